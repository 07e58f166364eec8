"""Feed-forward block: finite differences, a torch twin from F.linear + activation, dropout, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.dropout import dropout_forward
from numpy_transformer.functional.feedforward import feedforward_backward, feedforward_forward
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

NAMES = ["relu", "gelu", "gelu_tanh"]
D, F = 4, 6


def parameters(rng, dtype=np.float64):
    return [
        rng.standard_normal((F, D)).astype(dtype),
        rng.standard_normal(F).astype(dtype),
        rng.standard_normal((D, F)).astype(dtype),
        rng.standard_normal(D).astype(dtype),
    ]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lead", [(2, 3), (1, 1)])
def test_feedforward_matches_finite_differences(rng, name, lead):
    x = rng.standard_normal(lead + (D,))
    w1, b1, w2, b2 = parameters(rng)
    if name == "relu":
        # keep the hidden pre-activations away from ReLU's kink, where finite differences are meaningless
        hidden = x @ w1.T + b1
        b1 = b1 + np.where(np.abs(hidden).min(axis=tuple(range(len(lead)))) < 1e-2, 0.1, 0.0)
    report = gradcheck(
        feedforward_forward,
        feedforward_backward,
        [x, w1, b1, w2, b2],
        names=["x", "w1", "b1", "w2", "b2"],
        kwargs={"activation": name},
    )
    report.assert_ok()


def test_feedforward_with_dropout_matches_finite_differences(rng):
    x = rng.standard_normal((2, 3, D))
    report = gradcheck(
        feedforward_forward,
        feedforward_backward,
        [x, *parameters(rng)],
        names=["x", "w1", "b1", "w2", "b2"],
        kwargs={"activation": "gelu", "dropout_p": 0.3, "rng": 4},
    )
    report.assert_ok()


def test_feedforward_without_biases(rng):
    x = rng.standard_normal((2, 3, D))
    w1, _, w2, _ = parameters(rng)

    def backward(dout, cache):
        dx, dw1, db1, dw2, db2 = feedforward_backward(dout, cache)
        assert db1 is None and db2 is None
        return dx, dw1, dw2

    report = gradcheck(
        lambda x, w1, w2: feedforward_forward(x, w1, None, w2, None, activation="gelu_tanh"),
        backward,
        [x, w1, w2],
        names=["x", "w1", "w2"],
    )
    report.assert_ok()


def torch_activation(torch, h, name):
    if name == "relu":
        return torch.nn.functional.relu(h)
    return torch.nn.functional.gelu(h, approximate="none" if name == "gelu" else "tanh")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dropout_p", [0.0, 0.5])
def test_feedforward_matches_torch(rng, torch, dtype, name, dropout_p):
    x = rng.standard_normal((3, 5, D)).astype(dtype)
    params = parameters(rng, dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)

    out, cache = feedforward_forward(x, *params, activation=name, dropout_p=dropout_p, rng=9)
    grads = feedforward_backward(dout, cache)

    # the same dropout mask, drawn from the same seed on an array of the hidden shape
    _, dropout_cache = dropout_forward(np.ones((3, 5, F), dtype=dtype), p=dropout_p, rng=9)
    mask = dropout_cache["mask"]
    tensors = [to_torch(a, requires_grad=True) for a in (x, *params)]
    tx, tw1, tb1, tw2, tb2 = tensors
    hidden = torch_activation(torch, torch.nn.functional.linear(tx, tw1, tb1), name)
    if mask is not None:
        hidden = hidden * to_torch(mask)
    tout = torch.nn.functional.linear(hidden, tw2, tb2)
    tout.backward(to_torch(dout))
    assert out.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    for label, ours, tensor in zip(["dx", "dw1", "db1", "dw2", "db2"], grads, tensors, strict=True):
        assert ours.dtype == np.dtype(dtype), label
        assert_close(ours, tensor.grad, what=label)


def test_feedforward_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3, D))
    w1, b1, w2, b2 = parameters(rng)
    with pytest.raises(ValueError, match="activation"):
        feedforward_forward(x, w1, b1, w2, b2, activation="tanh")
    with pytest.raises(ValueError, match="weight"):
        feedforward_forward(x, w1.T, b1, w2, b2)
    with pytest.raises(ValueError, match="p"):
        feedforward_forward(x, w1, b1, w2, b2, dropout_p=1.0)

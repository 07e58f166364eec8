"""ReLU and GELU (exact and tanh): finite differences, PyTorch (float64 tight, float32 loose), bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.activations import (
    activation_backward,
    activation_forward,
    gelu_backward,
    gelu_forward,
    relu_backward,
    relu_forward,
)
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

NAMES = ["relu", "gelu", "gelu_tanh"]


def away_from_zero(rng, shape):
    """Random values with |x| > 1e-3, so that finite differences never straddle ReLU's kink."""
    x = rng.standard_normal(shape) * 2
    return np.where(np.abs(x) < 1e-3, 0.5, x)


def torch_activation(torch, tx, name):
    if name == "relu":
        return torch.nn.functional.relu(tx)
    return torch.nn.functional.gelu(tx, approximate="none" if name == "gelu" else "tanh")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 1, 2), (7,)])
def test_activation_matches_finite_differences(rng, name, shape):
    x = away_from_zero(rng, shape)
    report = gradcheck(lambda x: activation_forward(x, name), activation_backward, [x], names=["x"])
    report.assert_ok()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_finite_differences(rng, approximate):
    x = rng.standard_normal((2, 3, 4)) * 3  # covers both tails, where the derivative dips below 0 and tends to 1
    report = gradcheck(lambda x: gelu_forward(x, approximate), gelu_backward, [x], names=["x"])
    report.assert_ok()


def test_relu_matches_finite_differences(rng):
    x = away_from_zero(rng, (4, 3))
    gradcheck(relu_forward, relu_backward, [x], names=["x"]).assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_activation_matches_torch(rng, torch, dtype, name):
    x = (rng.standard_normal((3, 5, 6)) * 3).astype(dtype)
    x[0, 0, :3] = [0.0, -8.0, 8.0]  # the kink and both tails
    dout = rng.standard_normal(x.shape).astype(dtype)

    out, cache = activation_forward(x, name)
    dx = activation_backward(dout, cache)

    tx = to_torch(x, requires_grad=True)
    tout = torch_activation(torch, tx, name)
    tout.backward(to_torch(dout))
    assert out.dtype == dx.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")


def test_gelu_approximations_differ_but_are_close(rng):
    x = np.linspace(-4, 4, 41)
    exact, _ = gelu_forward(x, "none")
    tanh, _ = gelu_forward(x, "tanh")
    assert 0 < np.abs(exact - tanh).max() < 1e-3  # the two formulas are distinct functions


def test_relu_kink_has_zero_gradient():
    x = np.array([-1.0, 0.0, 2.0])
    out, cache = relu_forward(x)
    np.testing.assert_array_equal(out, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(relu_backward(np.array([5.0, 5.0, 5.0]), cache), [0.0, 0.0, 5.0])


def test_activation_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match="activation"):
        activation_forward(x, "swish")
    with pytest.raises(ValueError, match="approximate"):
        gelu_forward(x, approximate="sigmoid")
    with pytest.raises(TypeError, match="x"):
        relu_forward(x.astype(np.int64))
    with pytest.raises(TypeError, match="x"):
        gelu_forward(x.astype(np.int64))

"""Softmax and log-softmax: finite differences along every axis, PyTorch (float64 tight, float32 loose),
large logits, all -inf rows, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.softmax import (
    log_softmax_backward,
    log_softmax_forward,
    softmax_backward,
    softmax_forward,
)
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

PAIRS = {
    "softmax": (softmax_forward, softmax_backward),
    "log_softmax": (log_softmax_forward, log_softmax_backward),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("shape, axis", [((2, 3, 4), -1), ((2, 3, 4), 0), ((2, 3, 4), 1), ((1, 5), -1), ((3, 1), -1)])
def test_softmax_matches_finite_differences(rng, name, shape, axis):
    forward, backward = PAIRS[name]
    x = rng.standard_normal(shape) * 2 + 0.3
    report = gradcheck(forward, backward, [x], names=["x"], kwargs={"axis": axis})
    report.assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_matches_torch(rng, torch, dtype, axis):
    x = (rng.standard_normal((3, 4, 5)) * 3).astype(dtype)
    dout = rng.standard_normal((3, 4, 5)).astype(dtype)
    for name, torch_fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
        forward, backward = PAIRS[name]
        y, cache = forward(x, axis=axis)
        dx = backward(dout, cache)
        tx = to_torch(x, requires_grad=True)
        ty = torch_fn(tx, dim=axis)
        ty.backward(to_torch(dout))
        assert y.dtype == dx.dtype == np.dtype(dtype)
        assert_close(y, ty, what=f"{name} y")
        assert_close(dx, tx.grad, what=f"{name} dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_large_logits_stay_finite(rng, dtype):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0], [-1e4, -1e4, -1e4, -1e4]], dtype=dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    for name, (forward, backward) in PAIRS.items():
        y, cache = forward(x)
        dx = backward(dout, cache)
        assert np.isfinite(y).all() and np.isfinite(dx).all(), name
    y, _ = softmax_forward(x)
    np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-6)
    np.testing.assert_allclose(y[1], 0.25, rtol=1e-6)


def test_softmax_all_minus_inf_row_gives_zeros(rng):
    x = rng.standard_normal((3, 4))
    x[1] = -np.inf
    x[2, :2] = -np.inf
    y, cache = softmax_forward(x)
    dx = softmax_backward(rng.standard_normal(x.shape), cache)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert (y[1] == 0).all() and (dx[1] == 0).all()
    assert (y[2, :2] == 0).all() and (dx[2, :2] == 0).all()
    np.testing.assert_allclose(y[[0, 2]].sum(-1), 1)


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_all_minus_inf_row_is_minus_inf_with_zero_gradient(rng, torch, axis):
    x = rng.standard_normal((3, 4))
    x[1] = -np.inf
    x[2, :2] = -np.inf
    x = x if axis == -1 else np.ascontiguousarray(x.T)
    dout = rng.standard_normal(x.shape)
    y, cache = log_softmax_forward(x, axis=axis)
    dx = log_softmax_backward(dout, cache)
    empty = (slice(None), 1) if axis == 0 else (1, slice(None))
    assert not np.isnan(y).any() and np.isfinite(dx).all()
    assert (y[empty] == -np.inf).all() and (dx[empty] == 0).all()
    # every other slice, partly -inf ones included, is torch's log_softmax and its gradient
    tx = to_torch(x, requires_grad=True)
    ty = torch.log_softmax(tx, dim=axis)
    ty.backward(to_torch(dout))
    keep = [0, 2]
    pick = (slice(None), keep) if axis == 0 else (keep, slice(None))
    theirs = ty.detach().numpy()[pick]
    finite = np.isfinite(theirs)
    assert (np.isfinite(y[pick]) == finite).all() and (y[pick][~finite] == -np.inf).all()
    assert_close(y[pick][finite], theirs[finite], what="log_softmax y")
    assert_close(dx[pick], tx.grad[pick], what="log_softmax dx")
    assert torch.isnan(ty[empty]).all()  # torch gives NaN there; we give -inf and a zero gradient


def test_softmax_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3))
    for forward in (softmax_forward, log_softmax_forward):
        with pytest.raises(TypeError, match="x"):
            forward(np.arange(6).reshape(2, 3))
        with pytest.raises(ValueError, match="axis"):
            forward(x, axis=2)
        with pytest.raises(ValueError, match="axis"):
            forward(x, axis=1.0)


@pytest.mark.parametrize("pair", ["softmax", "log_softmax"])
def test_an_axis_of_no_entries_gives_the_empty_result_like_torch(torch, pair):
    import warnings

    forward, backward = {"softmax": (softmax_forward, softmax_backward),
                         "log_softmax": (log_softmax_forward, log_softmax_backward)}[pair]
    for shape, axis in (((2, 0), -1), ((3, 0, 4), 1), ((0, 5), -1)):
        x = np.zeros(shape)
        with warnings.catch_warnings():
            warnings.simplefilter("error")                        # no division by zero on the way
            y, cache = forward(x, axis=axis)
            dx = backward(np.zeros(shape), cache)
        tx = to_torch(x, requires_grad=True)
        ty = getattr(torch, pair)(tx, dim=axis)
        ty.sum().backward()
        assert y.shape == dx.shape == tuple(ty.shape) == tuple(tx.grad.shape) == shape

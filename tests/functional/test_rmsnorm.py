"""RMSNorm: finite differences, torch.nn.functional.rms_norm (float64 tight, float32 loose) with torch's eps
semantics, large values, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.rmsnorm import (
    default_eps,
    rmsnorm_backward,
    rmsnorm_forward,
)
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, assert_float16_close, to_torch


@pytest.mark.parametrize("shape, eps", [
    ((3, 4, 5), None), ((3, 4, 5), 0.3), ((1, 1, 7), 1e-5), ((6,), None),
    ((2, 1), 0.3),  # width 1: out = x / sqrt(x^2 + eps), whose derivative is all eps (a tiny eps: ~1e-16)
])
def test_rmsnorm_matches_finite_differences(rng, shape, eps):
    x = rng.standard_normal(shape) * 3 + 0.5
    weight = rng.standard_normal(shape[-1])  # random, never all ones: a weight-blind backward must fail
    report = gradcheck(rmsnorm_forward, rmsnorm_backward, [x, weight], names=["x", "weight"], kwargs={"eps": eps})
    report.assert_ok()


def test_rmsnorm_without_weight_matches_finite_differences(rng):
    x = rng.standard_normal((2, 3, 4))
    report = gradcheck(lambda x: rmsnorm_forward(x, None, 1e-3), lambda d, c: rmsnorm_backward(d, c)[0], [x],
                       names=["x"])
    report.assert_ok()
    _, cache = rmsnorm_forward(x)
    assert rmsnorm_backward(x, cache)[1] is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [None, 1e-5])
def test_rmsnorm_matches_torch(rng, torch, dtype, eps):
    x = (rng.standard_normal((3, 5, 7)) * 2 + 0.5).astype(dtype)
    weight = rng.standard_normal(7).astype(dtype)
    dout = rng.standard_normal((3, 5, 7)).astype(dtype)

    out, cache = rmsnorm_forward(x, weight, eps=eps)
    dx, dweight = rmsnorm_backward(dout, cache)

    tx, tweight = to_torch(x, requires_grad=True), to_torch(weight, requires_grad=True)
    tout = torch.nn.functional.rms_norm(tx, (7,), tweight, eps=eps)
    tout.backward(to_torch(dout))
    assert out.dtype == dx.dtype == dweight.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_close(dweight, tweight.grad, what="dweight")


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_eps_is_torchs(rng, torch, dtype):
    """eps=None is torch.finfo(dtype).eps: visible on rows so small that eps dominates the mean square."""
    assert default_eps(dtype) == torch.finfo(torch.float64 if dtype == np.float64 else torch.float32).eps
    x = (rng.standard_normal((4, 6)) * np.sqrt(default_eps(dtype))).astype(dtype)  # mean square ~ eps
    tx = to_torch(x, requires_grad=True)
    tout = torch.nn.functional.rms_norm(tx, (6,), eps=None)
    out, cache = rmsnorm_forward(x)
    assert_close(out, tout, what="out with eps=None")
    assert not np.allclose(out, rmsnorm_forward(x, eps=0.0)[0], rtol=1e-3)  # eps does matter on these rows
    dout = rng.standard_normal(x.shape).astype(dtype)
    tout.backward(to_torch(dout))
    assert_close(rmsnorm_backward(dout, cache)[0], tx.grad, what="dx with eps=None")


def test_default_eps_of_half_precision_is_float32s():
    """torch computes float16 in float32, so RMSNorm's default eps for float16 input is float32's."""
    assert default_eps(np.float16) == float(np.finfo(np.float32).eps)


def test_rmsnorm_large_values_stay_finite(rng):
    x = rng.standard_normal((2, 3, 8)) * 1e150
    out, cache = rmsnorm_forward(x, np.ones(8))
    dx, _ = rmsnorm_backward(rng.standard_normal(x.shape), cache)
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    np.testing.assert_allclose(np.sqrt((out ** 2).mean(-1)), 1.0, rtol=1e-12)  # unit root mean square


@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("spread", [1.0, 300.0, 3000.0])
def test_float16_matches_torch_float16(rng, torch, spread, weighted):
    """float16 in, float16 out, computed in float32 and rounded once as torch does: rows with |x| in the
    hundreds, whose float16 sum of squares would overflow (65504) and give all zeros, still normalize."""
    x = (rng.standard_normal((3, 5, 8)) * spread).astype(np.float16)
    weight = rng.standard_normal(8).astype(np.float16) if weighted else None
    dout = rng.standard_normal((3, 5, 8)).astype(np.float16)
    out, cache = rmsnorm_forward(x, weight)
    dx, dweight = rmsnorm_backward(dout, cache)

    tx = to_torch(x, requires_grad=True)
    tweight = to_torch(weight, requires_grad=True) if weighted else None
    tout = torch.nn.functional.rms_norm(tx, (8,), tweight)
    tout.backward(to_torch(dout))
    pairs = [("out", out, tout), ("dx", dx, tx.grad)] + ([("dweight", dweight, tweight.grad)] if weighted else [])
    assert weighted or dweight is None
    for name, ours, theirs in pairs:
        assert_float16_close(ours, theirs, what=name)


def test_rmsnorm_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match="weight"):
        rmsnorm_forward(x, np.ones(5))
    with pytest.raises(TypeError, match="x"):
        rmsnorm_forward(x.astype(np.int64), np.ones(4))
    with pytest.raises(TypeError, match="weight"):
        rmsnorm_forward(x, np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="eps"):
        rmsnorm_forward(x, np.ones(4), eps=-1.0)
    with pytest.raises(ValueError, match="x"):
        rmsnorm_forward(np.float64(1.0) * np.ones(()), None)

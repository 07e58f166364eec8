"""Layer norm: finite differences, PyTorch (float64 tight, float32 loose), bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.layernorm import layernorm_backward, layernorm_forward
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, assert_float16_close, to_torch


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 1, 7), (2, 1), (6,)])
def test_layernorm_matches_finite_differences(rng, shape):
    x = rng.standard_normal(shape) * 3 + 1
    gamma = rng.standard_normal(shape[-1])  # random, never all ones: a gamma-blind backward must fail
    beta = rng.standard_normal(shape[-1])
    report = gradcheck(layernorm_forward, layernorm_backward, [x, gamma, beta], names=["x", "gamma", "beta"])
    report.assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_matches_torch(rng, torch, dtype):
    x = (rng.standard_normal((3, 5, 7)) * 2 + 0.5).astype(dtype)
    gamma = rng.standard_normal(7).astype(dtype)
    beta = rng.standard_normal(7).astype(dtype)
    dout = rng.standard_normal((3, 5, 7)).astype(dtype)

    out, cache = layernorm_forward(x, gamma, beta, eps=1e-5)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)

    tx, tgamma, tbeta = (to_torch(a, requires_grad=True) for a in (x, gamma, beta))
    tout = torch.nn.functional.layer_norm(tx, (7,), tgamma, tbeta, eps=1e-5)
    tout.backward(to_torch(dout))
    assert out.dtype == dx.dtype == dgamma.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_close(dgamma, tgamma.grad, what="dgamma")
    assert_close(dbeta, tbeta.grad, what="dbeta")


def test_layernorm_large_values_stay_finite(rng):
    x = rng.standard_normal((2, 3, 8)) * 1e4
    out, cache = layernorm_forward(x, np.ones(8), np.zeros(8))
    dx, _, _ = layernorm_backward(rng.standard_normal(x.shape), cache)
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-9)


def test_layernorm_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match="gamma"):
        layernorm_forward(x, np.ones(5), np.zeros(4))
    with pytest.raises(ValueError, match="beta"):
        layernorm_forward(x, np.ones(4), np.zeros((4, 1)))
    with pytest.raises(TypeError, match="x"):
        layernorm_forward(x.astype(np.int64), np.ones(4), np.zeros(4))
    with pytest.raises(TypeError, match="gamma"):
        layernorm_forward(x, np.ones(4, dtype=np.float32), np.zeros(4))


@pytest.mark.parametrize("spread", [1.0, 300.0, 3000.0])
def test_float16_matches_torch_float16(rng, torch, spread):
    """float16 in, float16 out, computed in float32 as torch does: rows with |x - mean| in the hundreds, whose
    float16 sum of squares would overflow (65504), still normalize."""
    x = (rng.standard_normal((3, 5, 8)) * spread).astype(np.float16)
    gamma, beta = (rng.standard_normal(8).astype(np.float16) for _ in range(2))
    dout = rng.standard_normal((3, 5, 8)).astype(np.float16)
    out, cache = layernorm_forward(x, gamma, beta)
    grads = layernorm_backward(dout, cache)

    tx, tgamma, tbeta = (to_torch(a, requires_grad=True) for a in (x, gamma, beta))
    tout = torch.nn.functional.layer_norm(tx, (8,), tgamma, tbeta, eps=1e-5)
    tout.backward(to_torch(dout))
    for name, ours, theirs in (("out", out, tout), ("dx", grads[0], tx.grad), ("dgamma", grads[1], tgamma.grad),
                               ("dbeta", grads[2], tbeta.grad)):
        assert_float16_close(ours, theirs, what=name)


def test_eps_must_be_positive(rng):
    from numpy_transformer.nn import LayerNorm

    x = np.ones((2, 4))                                          # constant rows: variance 0
    for eps in (0.0, -1e-5):
        with pytest.raises(ValueError, match=f"eps: got {eps!r}; expected a number > 0"):
            LayerNorm(4, eps=eps)
        with pytest.raises(ValueError, match="eps: got"):
            layernorm_forward(x, np.ones(4), np.zeros(4), eps=eps)
    with pytest.raises(ValueError, match="eps: got"):
        LayerNorm(4, eps="small")
    assert np.isfinite(LayerNorm(4, eps=1e-12, dtype=np.float64)(x)).all()

"""The float32 exact GELU reads the normal CDF from a table: within float32 rounding of the double-precision
function everywhere (also far out and at the grid's ends), NaN stays NaN, and float64 still uses erf."""
import math

import numpy as np
import pytest
from scipy.special import ndtr

from numpy_transformer.functional.activations import _normal_cdf, gelu_backward, gelu_forward
from reference import to_torch


def exact_cdf(x):
    return ndtr(np.asarray(x, dtype=np.float64))


def test_table_cdf_is_within_float32_rounding(rng):
    x = np.concatenate([rng.standard_normal(200_000) * 3, np.linspace(-8.5, 8.5, 100_001)]).astype(np.float32)
    cdf = _normal_cdf(x)
    assert cdf.dtype == np.float32
    assert np.abs(cdf - exact_cdf(x)).max() < 1e-7
    assert ((cdf >= 0) & (cdf <= 1)).all()


@pytest.mark.filterwarnings("ignore:overflow encountered in multiply:RuntimeWarning")  # the derivative's x * x at 1e30
def test_table_cdf_far_out_and_at_the_grid_ends():
    x = np.array([-1e30, -100.0, -8.0, -8.0 + 2.0**-10, -1e-30, 0.0, 1e-30, 8.0 - 2.0**-10, 8.0, 100.0, 1e30],
                 dtype=np.float32)
    np.testing.assert_allclose(_normal_cdf(x), exact_cdf(x), rtol=0, atol=1e-7)
    out, cache = gelu_forward(x)
    assert out[0] == 0 and out[1] == 0 and out[-1] == x[-1]        # x * Phi(x): 0 far left, x far right
    slope = gelu_backward(np.ones_like(x), cache)
    assert slope[0] == 0 and slope[1] == 0 and slope[-1] == 1      # and its slope 0 far left, 1 far right
    assert _normal_cdf(np.float32(0.5) * np.ones(1, dtype=np.float32))[0] == np.float32(exact_cdf(0.5))


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # NaN to a table index
def test_nan_propagates():
    x = np.array([np.nan, 0.3, -2.0], dtype=np.float32)
    out, cache = gelu_forward(x)
    assert np.isnan(out[0]) and np.isfinite(out[1:]).all()
    dx = gelu_backward(np.ones_like(x), cache)
    assert np.isnan(dx[0]) and np.isfinite(dx[1:]).all()


def test_float64_keeps_erf(rng):
    from scipy.special import erf

    x = rng.standard_normal(1000) * 3
    expected = erf(x * (1.0 / math.sqrt(2.0)))
    expected += 1.0
    expected *= 0.5
    np.testing.assert_array_equal(_normal_cdf(x), expected)          # the erf formula, bit for bit


def test_float32_gelu_matches_torch(rng, torch):
    x = (rng.standard_normal((64, 257)) * 2.5).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    out, cache = gelu_forward(x)
    dx = gelu_backward(dout, cache)
    tx = to_torch(x, requires_grad=True)
    tout = torch.nn.functional.gelu(tx)
    tout.backward(to_torch(dout))
    assert np.abs(out - tout.detach().numpy()).max() <= 2e-7 * max(1.0, np.abs(x).max())
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(0,), (1,), (3, 0, 2)])
def test_empty_and_single_arrays(shape):
    x = np.full(shape, 0.25, dtype=np.float32)
    out, _ = gelu_forward(x)
    assert out.shape == shape and out.dtype == np.float32

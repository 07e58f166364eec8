"""Dropout: reproducibility, expectation, evaluation mode, backward, finite differences, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.dropout import dropout_backward, dropout_forward
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES


def test_dropout_reproducible_from_seed(rng):
    x = rng.standard_normal((4, 5, 6))
    out1, _ = dropout_forward(x, p=0.3, rng=7)
    out2, _ = dropout_forward(x, p=0.3, rng=7)
    out3, _ = dropout_forward(x, p=0.3, rng=8)
    np.testing.assert_array_equal(out1, out2)
    assert not np.array_equal(out1, out3)


def test_dropout_reproducible_from_generator(rng):
    x = rng.standard_normal((4, 5, 6))
    first = [dropout_forward(x, p=0.4, rng=g)[0] for g in [np.random.default_rng(3)] * 2]
    again = [dropout_forward(x, p=0.4, rng=g)[0] for g in [np.random.default_rng(3)] * 2]
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], first[1])  # the generator advances between calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_statistics(dtype, p):
    n = 1_000_000
    x = np.ones(n, dtype=dtype)
    out, cache = dropout_forward(x, p=p, rng=0)
    assert out.dtype == cache["mask"].dtype == np.dtype(dtype)
    scale = 1.0 / (1.0 - p)
    kept = out != 0
    # survivors carry exactly the inverted scale
    np.testing.assert_allclose(out[kept], scale, rtol=1e-6)
    # the kept fraction is Binomial(n, 1-p)/n with standard deviation sqrt(p(1-p)/n) <= 5e-4 here;
    # the mean of out is that fraction times the scale. Six standard deviations: a false failure has
    # probability ~1e-9, while a wrong p (or a missing rescale) misses by far more.
    sigma = np.sqrt(p * (1 - p) / n)
    assert abs(kept.mean() - (1 - p)) < 6 * sigma
    assert abs(out.astype(np.float64).mean() - 1.0) < 6 * sigma * scale


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_identity_in_eval_and_at_zero(rng, dtype):
    x = rng.standard_normal((3, 4)).astype(dtype)
    dout = rng.standard_normal((3, 4)).astype(dtype)
    for kwargs in ({"p": 0.5, "training": False}, {"p": 0.0}):
        out, cache = dropout_forward(x, rng=1, **kwargs)
        np.testing.assert_array_equal(out, x)
        np.testing.assert_array_equal(dropout_backward(dout, cache), dout)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_backward_is_scaled_mask(rng, dtype):
    x = (rng.standard_normal((5, 7)) + 3).astype(dtype)  # nonzero, so the mask can be read off out / x
    dout = rng.standard_normal((5, 7)).astype(dtype)
    out, cache = dropout_forward(x, p=0.25, rng=11)
    dx = dropout_backward(dout, cache)
    mask = (out != 0).astype(dtype) / dtype(0.75)
    assert dx.dtype == np.dtype(dtype)
    np.testing.assert_allclose(cache["mask"], mask, rtol=1e-6)
    np.testing.assert_allclose(dx, dout * mask, rtol=1e-6)
    assert 0 < (out == 0).sum() < out.size


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 1, 6)])
def test_dropout_matches_finite_differences(rng, shape):
    x = rng.standard_normal(shape)
    report = gradcheck(dropout_forward, dropout_backward, [x], names=["x"], kwargs={"p": 0.4, "rng": 5})
    report.assert_ok()


def test_dropout_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3))
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="p"):
            dropout_forward(x, p=p)
    with pytest.raises(TypeError, match="rng"):
        dropout_forward(x, p=0.5, rng="seed")
    with pytest.raises(TypeError, match="x"):
        dropout_forward(x.astype(np.int64), p=0.5)

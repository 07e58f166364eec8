"""Linear: finite differences, PyTorch (float64 tight, float32 loose), the skip flags, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.linear import linear_backward, linear_forward
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

# leading axes of x: none, one, two (with sizes 1 in the odd cases)
LEAD_SHAPES = [(), (3,), (2, 4), (1, 1)]


@pytest.mark.parametrize("lead", LEAD_SHAPES)
def test_linear_matches_finite_differences(rng, lead):
    x = rng.standard_normal(lead + (5,))
    weight = rng.standard_normal((3, 5))
    bias = rng.standard_normal(3)
    report = gradcheck(linear_forward, linear_backward, [x, weight, bias], names=["x", "weight", "bias"])
    report.assert_ok()


def test_linear_without_bias_matches_finite_differences(rng):
    x = rng.standard_normal((2, 3, 4))
    weight = rng.standard_normal((6, 4))

    def backward(dout, cache):
        dx, dweight, dbias = linear_backward(dout, cache)
        assert dbias is None
        return dx, dweight

    report = gradcheck(lambda x, w: linear_forward(x, w, None), backward, [x, weight], names=["x", "weight"])
    report.assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead", [(), (7,), (3, 5)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_torch(rng, torch, dtype, lead, with_bias):
    x = rng.standard_normal(lead + (6,)).astype(dtype)
    weight = rng.standard_normal((4, 6)).astype(dtype)
    bias = rng.standard_normal(4).astype(dtype) if with_bias else None
    dout = rng.standard_normal(lead + (4,)).astype(dtype)

    out, cache = linear_forward(x, weight, bias)
    dx, dweight, dbias = linear_backward(dout, cache)

    tx, tweight = to_torch(x, requires_grad=True), to_torch(weight, requires_grad=True)
    tbias = to_torch(bias, requires_grad=True) if with_bias else None
    tout = torch.nn.functional.linear(tx, tweight, tbias)
    tout.backward(to_torch(dout))
    assert out.dtype == dx.dtype == dweight.dtype == np.dtype(dtype)
    assert out.shape == lead + (4,) and dx.shape == x.shape
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_close(dweight, tweight.grad, what="dweight")
    if with_bias:
        assert dbias.dtype == np.dtype(dtype)
        assert_close(dbias, tbias.grad, what="dbias")
    else:
        assert dbias is None


def test_linear_skip_flags(rng):
    x = rng.standard_normal((2, 3, 4))
    weight = rng.standard_normal((5, 4))
    bias = rng.standard_normal(5)
    dout = rng.standard_normal((2, 3, 5))
    out, cache = linear_forward(x, weight, bias)
    full = linear_backward(dout, cache)

    dx, dweight, dbias = linear_backward(dout, cache, need_weight_grad=False)
    assert dweight is None and dbias is None
    np.testing.assert_array_equal(dx, full[0])

    dx, dweight, dbias = linear_backward(dout, cache, need_input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dweight, full[1])
    np.testing.assert_array_equal(dbias, full[2])


def test_linear_empty_batch(rng):
    x = np.zeros((0, 3, 4))
    weight = rng.standard_normal((5, 4))
    out, cache = linear_forward(x, weight, rng.standard_normal(5))
    dx, dweight, dbias = linear_backward(np.zeros((0, 3, 5)), cache)
    assert out.shape == (0, 3, 5) and dx.shape == x.shape
    np.testing.assert_array_equal(dweight, 0)
    np.testing.assert_array_equal(dbias, 0)


def test_linear_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match="weight"):
        linear_forward(x, rng.standard_normal((5, 3)))
    with pytest.raises(ValueError, match="weight"):
        linear_forward(x, rng.standard_normal(4))
    with pytest.raises(ValueError, match="bias"):
        linear_forward(x, rng.standard_normal((5, 4)), rng.standard_normal(4))
    with pytest.raises(TypeError, match="x"):
        linear_forward(x.astype(np.int64), rng.standard_normal((5, 4)))
    with pytest.raises(TypeError, match="weight"):
        linear_forward(x, rng.standard_normal((5, 4)).astype(np.float32))
    with pytest.raises(ValueError, match="x"):
        linear_forward(np.ones(()), rng.standard_normal((5, 1)))

"""SiLU and the SwiGLU feed-forward block: finite differences, PyTorch (float64 tight, float32 loose), the
tails of the sigmoid, bad input."""
import warnings

import numpy as np
import pytest

from numpy_transformer.functional.silu import sigmoid, silu_backward, silu_forward
from numpy_transformer.functional.swiglu import swiglu_backward, swiglu_forward
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

SWIGLU_NAMES = ["x", "w_gate", "w_up", "w_down", "b_gate", "b_up", "b_down"]


def swiglu_inputs(rng, lead=(2, 3), D=5, F=7, bias=True, dtype=np.float64):
    x = rng.standard_normal(lead + (D,))
    w_gate, w_up = rng.standard_normal((F, D)) * 0.7, rng.standard_normal((F, D)) * 0.7
    w_down = rng.standard_normal((D, F)) * 0.5
    biases = [rng.standard_normal(F), rng.standard_normal(F), rng.standard_normal(D)] if bias else []
    return [a.astype(dtype) for a in [x, w_gate, w_up, w_down] + biases]


@pytest.mark.parametrize("shape", [(3, 4, 5), (1,), (2, 1, 1)])
def test_silu_matches_finite_differences(rng, shape):
    x = rng.standard_normal(shape) * 3
    gradcheck(silu_forward, silu_backward, [x], names=["x"]).assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_matches_torch(rng, torch, dtype):
    x = (rng.standard_normal((4, 5, 6)) * 4).astype(dtype)
    x[0, 0, :4] = [0.0, -30.0, 30.0, -1.278]               # zero, both tails, near the minimum
    dout = rng.standard_normal(x.shape).astype(dtype)
    out, cache = silu_forward(x)
    dx = silu_backward(dout, cache)
    tx = to_torch(x, requires_grad=True)
    tout = torch.nn.functional.silu(tx)
    tout.backward(to_torch(dout))
    assert out.dtype == dx.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_tails_are_accurate_and_never_overflow(dtype):
    x = np.array([-1000.0, -80.0, -20.0, 0.0, 20.0, 80.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # an overflow in exp would raise here
        sigma = sigmoid(x)
        out, cache = silu_forward(x)
        dx = silu_backward(np.ones_like(x), cache)
    assert sigma.dtype == np.dtype(dtype) and np.isfinite(sigma).all() and np.isfinite(dx).all()
    # the far negative tail keeps full relative accuracy (1 - sigmoid(20) would have lost it)
    exact = np.exp(-20.0) / (1 + np.exp(-20.0))
    np.testing.assert_allclose(sigma[2], exact, rtol=1e-6 if dtype == np.float32 else 1e-15)
    np.testing.assert_allclose(sigma[[3, 6]], [0.5, 1.0])
    assert sigma[0] == 0.0 and out[0] == 0.0 and out[-1] == 1000.0


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("sizes", [dict(lead=(2, 3), D=5, F=7), dict(lead=(1, 1), D=3, F=1), dict(lead=(), D=4, F=2)])
def test_swiglu_matches_finite_differences(rng, bias, sizes):
    inputs = swiglu_inputs(rng, bias=bias, **sizes)
    if bias:
        report = gradcheck(swiglu_forward, swiglu_backward, inputs, names=SWIGLU_NAMES)
    else:  # no biases: the three bias gradients are None, so only the first four are checked
        report = gradcheck(swiglu_forward, lambda d, c: swiglu_backward(d, c)[:4], inputs, names=SWIGLU_NAMES[:4])
        _, cache = swiglu_forward(*inputs)
        assert swiglu_backward(np.ones((*sizes["lead"], sizes["D"])), cache)[4:] == (None, None, None)
    report.assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_matches_torch(rng, torch, dtype, bias):
    inputs = swiglu_inputs(rng, lead=(3, 4), D=6, F=11, bias=bias, dtype=dtype)
    dout = rng.standard_normal((3, 4, 6)).astype(dtype)
    out, cache = swiglu_forward(*inputs)
    grads = swiglu_backward(dout, cache)

    tensors = [to_torch(a, requires_grad=True) for a in inputs]
    tx, tgate, tup, tdown, *tb = tensors + [None] * (3 if not bias else 0)
    linear, silu = torch.nn.functional.linear, torch.nn.functional.silu
    tout = linear(silu(linear(tx, tgate, tb[0])) * linear(tx, tup, tb[1]), tdown, tb[2])
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    for number, tensor in enumerate(tensors):                 # every input, weight and bias given
        assert grads[number].dtype == np.dtype(dtype)
        assert_close(grads[number], tensor.grad, what=SWIGLU_NAMES[number])


def test_swiglu_bad_input_names_argument(rng):
    x, w_gate, w_up, w_down = swiglu_inputs(rng, bias=False)
    with pytest.raises(ValueError, match="w_up"):
        swiglu_forward(x, w_gate, w_up[:3], w_down)
    with pytest.raises(ValueError, match="w_down"):
        swiglu_forward(x, w_gate, w_up, w_down.T)
    with pytest.raises(ValueError, match="w_gate"):
        swiglu_forward(x, w_gate[0], w_up, w_down)
    with pytest.raises(TypeError, match="w_up"):
        swiglu_forward(x, w_gate, w_up.astype(np.float32), w_down)
    with pytest.raises(ValueError, match="x: got shape"):               # x's width does not match the weights
        swiglu_forward(x[..., :4], w_gate, w_up, w_down)
    with pytest.raises(TypeError, match="x"):
        silu_forward(np.arange(3))

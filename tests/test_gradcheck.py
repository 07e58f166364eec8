"""The public gradcheck API: it passes a correct backward, catches a wrong one, and works on user layers."""
import numpy as np
import pytest

from numpy_transformer.gradcheck import gradcheck, gradcheck_module, numerical_gradient, relative_error


def scaled_tanh_forward(x, scale):
    """out = scale * tanh(x): x (N, D), scale (D,)."""
    t = np.tanh(x)
    return scale * t, (t, scale)


def scaled_tanh_backward(dout, cache):
    t, scale = cache
    return dout * scale * (1 - t * t), (dout * t).sum(axis=0)


def wrong_scaled_tanh_backward(dout, cache):
    t, scale = cache
    return dout * scale * (1 - t), (dout * t).sum(axis=0)  # forgets to square tanh


class ParameterLike:
    def __init__(self, data):
        self.data, self.grad, self.requires_grad = data, None, True


class UserLayer:
    """A layer written without the library's Module class: out = x * w + b."""

    def __init__(self, rng, width):
        self.w = ParameterLike(rng.standard_normal(width))
        self.b = ParameterLike(rng.standard_normal(width))

    def named_parameters(self):
        return [("w", self.w), ("b", self.b)]

    def forward(self, x):
        self.x = x
        return x * self.w.data + self.b.data

    def backward(self, dout):
        for param, grad in ((self.w, (dout * self.x).sum(0)), (self.b, dout.sum(0))):
            param.grad = grad if param.grad is None else param.grad + grad
        return dout * self.w.data


def test_correct_backward_passes(rng):
    x, scale = rng.standard_normal((3, 4)), rng.standard_normal(4)
    report = gradcheck(scaled_tanh_forward, scaled_tanh_backward, [x, scale], names=["x", "scale"])
    assert report.ok and set(report.errors) == {"x", "scale"}
    assert report.max_error < 1e-8


def test_wrong_backward_is_caught_with_a_readable_report(rng):
    x, scale = rng.standard_normal((3, 4)), rng.standard_normal(4)
    report = gradcheck(scaled_tanh_forward, wrong_scaled_tanh_backward, [x, scale], names=["x", "scale"])
    assert not report.ok
    assert report.errors["x"] > 1e-2 and report.errors["scale"] < 1e-8
    text = str(report)
    assert "x" in text and "WRONG" in text
    with pytest.raises(AssertionError, match="gradient check failed"):
        report.assert_ok()


def test_user_written_layer(rng):
    layer = UserLayer(rng, 5)
    report = gradcheck_module(layer, [rng.standard_normal((2, 5))], input_names=["x"])
    assert report.ok and set(report.errors) == {"x", "w", "b"}


def test_caller_arrays_are_not_modified(rng):
    x, scale = rng.standard_normal((3, 4)), rng.standard_normal(4)
    before = x.copy()
    gradcheck(scaled_tanh_forward, scaled_tanh_backward, [x, scale])
    np.testing.assert_array_equal(x, before)


def test_numerical_gradient_of_a_quadratic(rng):
    x = rng.standard_normal(6)
    upstream = rng.standard_normal(6)
    grad = numerical_gradient(lambda: x * x, x, upstream)
    np.testing.assert_allclose(grad, 2 * x * upstream, rtol=1e-8)


def test_relative_error_edge_cases():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 2.2)
    with pytest.raises(ValueError, match="analytic"):
        relative_error(np.zeros(3), np.zeros(4))


def test_missing_gradient_is_reported(rng):
    x = rng.standard_normal((2, 3))
    report = gradcheck(lambda a: (a * 2, None), lambda d, c: (None,), [x], names=["x"])
    assert not report.ok and report.missing == ["x"]


def doubling_scaled_tanh_backward(dout, cache):
    dout *= 2                                                     # writes into the caller's array
    return scaled_tanh_backward(dout, cache)


def scaled_tanh_backward_that_then_clears_dout(dout, cache):
    grads = scaled_tanh_backward(dout, cache)                     # right gradients, then the caller's array is spoiled
    dout[...] = 0
    return grads


class DoublingUserLayer(UserLayer):
    def backward(self, dout):
        dout *= 2
        return super().backward(dout)


def test_backward_that_writes_into_its_upstream_gradient_is_caught(rng):
    x, scale = rng.standard_normal((3, 4)), rng.standard_normal(4)
    report = gradcheck(scaled_tanh_forward, doubling_scaled_tanh_backward, [x, scale], names=["x", "scale"])
    assert not report.ok and report.upstream_modified
    assert report.errors["x"] > 0.1                               # the finite differences used the original g
    assert "upstream gradient" in str(report) and "WRONG" in str(report)
    report = gradcheck(scaled_tanh_forward, scaled_tanh_backward_that_then_clears_dout, [x, scale])
    assert report.max_error < 1e-8 and report.upstream_modified and not report.ok
    report = gradcheck_module(DoublingUserLayer(rng, 5), [rng.standard_normal((2, 5))], input_names=["x"])
    assert not report.ok and report.upstream_modified and report.errors["x"] > 0.1
    assert not gradcheck(scaled_tanh_forward, scaled_tanh_backward, [x, scale]).upstream_modified


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lower_precision_is_refused_with_the_reason(rng, dtype):
    from numpy_transformer.nn import LayerNorm

    x, scale = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)
    with pytest.raises(TypeError, match=rf"x: got dtype {np.dtype(dtype)}; expected float64.*astype\(np.float64\)"):
        gradcheck(scaled_tanh_forward, scaled_tanh_backward, [x, scale], names=["x", "scale"])
    with pytest.raises(TypeError, match=rf"parameter weight: got dtype {np.dtype(dtype)}.*module.double\(\)"):
        gradcheck_module(LayerNorm(4, dtype=dtype), [x.astype(np.float64)], input_names=["x"])
    with pytest.raises(TypeError, match="x: got dtype"):
        numerical_gradient(lambda: x * 2, x, np.ones_like(x))


def test_a_module_with_dropout_on_is_refused_with_the_reason(rng):
    from numpy_transformer.nn import TransformerEncoderLayer

    layer = TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.1, batch_first=True, dtype=np.float64, rng=0)
    x = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match=r"training mode with dropout on \(self_attn \(p=0.1\), dropout \(p=0.1\), "
                                         r"dropout1 \(p=0.1\), dropout2 \(p=0.1\)\).*module.eval\(\)"):
        gradcheck_module(layer, [x], input_names=["x"])
    assert gradcheck_module(layer.eval(), [x], input_names=["x"]).ok

    def random_forward(x):
        return x * rng.random(x.shape), None

    with pytest.raises(ValueError, match="different outputs.*dropout"):
        gradcheck(random_forward, lambda dout, cache: dout, [x])

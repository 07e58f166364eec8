"""Every functional backward checks its upstream gradient against the forward's output: a gradient of another
shape is refused even when its size fits (never silently reshaped), and one of another dtype is refused (never
silently promoted), each with an error that names it."""
import numpy as np
import pytest

from numpy_transformer import functional as F
from numpy_transformer.functional.pooling import (
    l2_normalize_backward,
    l2_normalize_forward,
    mean_pooling_backward,
    mean_pooling_forward,
)

f32 = np.float32


def _pairs(rng):
    """name -> (forward() -> (out, cache), backward(dout, cache), name of the upstream gradient)."""
    x = rng.standard_normal((2, 3, 4)).astype(f32)
    q, k, v = (rng.standard_normal((2, 2, 3, 4)).astype(f32) for _ in range(3))
    w, b = rng.standard_normal((5, 4)).astype(f32), rng.standard_normal(5).astype(f32)
    w2, b2 = rng.standard_normal((4, 5)).astype(f32), rng.standard_normal(4).astype(f32)
    g, beta = rng.standard_normal(4).astype(f32), rng.standard_normal(4).astype(f32)
    images = rng.standard_normal((2, 1, 4, 6)).astype(f32)
    patches = rng.standard_normal((2, 6, 4)).astype(f32)
    table = F.sinusoidal_table(8, 4)
    ids = np.array([[1, 2, 3], [0, 4, 4]])
    mask = np.array([[1, 1, 0], [1, 1, 1]])

    def attention():
        out, _, cache = F.scaled_dot_product_attention_forward(q, k, v, is_causal=True)
        return out, cache

    def blocked():
        return F.blocked_attention_forward(q, k, v, is_causal=True, query_block=2, key_block=2)

    def grouped():
        out, _, cache = F.grouped_query_attention_forward(q, k[:, :1], v[:, :1], is_causal=True)
        return out, cache

    cos, sin = F.rope_tables(np.arange(3), 4)
    w_up, w_down = rng.standard_normal((5, 4)).astype(f32), rng.standard_normal((4, 5)).astype(f32)

    return {
        "linear": (lambda: F.linear_forward(x, w, b), F.linear_backward, "dout"),
        "layernorm": (lambda: F.layernorm_forward(x, g, beta), F.layernorm_backward, "dout"),
        "layernorm float16": (lambda: F.layernorm_forward(x.astype(np.float16), g.astype(np.float16),
                                                          beta.astype(np.float16)), F.layernorm_backward, "dout"),
        "softmax": (lambda: F.softmax_forward(x), F.softmax_backward, "dout"),
        "log_softmax": (lambda: F.log_softmax_forward(x, axis=1), F.log_softmax_backward, "dout"),
        "attention": (attention, F.scaled_dot_product_attention_backward, "dout"),
        "blocked_attention": (blocked, F.blocked_attention_backward, "dout"),
        "split_heads": (lambda: F.split_heads_forward(x, 2), F.split_heads_backward, "dout"),
        "merge_heads": (lambda: F.merge_heads_forward(q), F.merge_heads_backward, "dout"),
        "relu": (lambda: F.relu_forward(x), F.relu_backward, "dout"),
        "gelu": (lambda: F.gelu_forward(x), F.gelu_backward, "dout"),
        "gelu tanh": (lambda: F.gelu_forward(x, approximate="tanh"), F.gelu_backward, "dout"),
        "activation": (lambda: F.activation_forward(x, "gelu"), F.activation_backward, "dout"),
        "dropout": (lambda: F.dropout_forward(x, 0.5, rng=0), F.dropout_backward, "dout"),
        "dropout off": (lambda: F.dropout_forward(x, 0.5, training=False), F.dropout_backward, "dout"),
        "embedding": (lambda: F.embedding_forward(ids, w), F.embedding_backward, "dout"),
        "feedforward": (lambda: F.feedforward_forward(x, w, b, w2, b2), F.feedforward_backward, "dout"),
        "patchify": (lambda: F.patchify_forward(images, 2), F.patchify_backward, "dpatches"),
        "unpatchify": (lambda: F.unpatchify_forward(patches, (1, 4, 6), 2), F.unpatchify_backward, "dimages"),
        "positional": (lambda: F.positional_encoding_forward(x, table), F.positional_encoding_backward, "dout"),
        "mean_pooling": (lambda: mean_pooling_forward(x, mask), mean_pooling_backward, "dout"),
        "l2_normalize": (lambda: l2_normalize_forward(x), l2_normalize_backward, "dout"),
        "rmsnorm": (lambda: F.rmsnorm_forward(x, g), F.rmsnorm_backward, "dout"),
        "silu": (lambda: F.silu_forward(x), F.silu_backward, "dout"),
        "swiglu": (lambda: F.swiglu_forward(x, w, w_up, w_down), F.swiglu_backward, "dout"),
        "rope": (lambda: F.rope_forward(q, cos, sin), F.rope_backward, "dout"),
        "grouped_query_attention": (grouped, F.grouped_query_attention_backward, "dout"),
    }


NAMES = list(_pairs(np.random.default_rng(0)))


@pytest.mark.parametrize("name", NAMES)
def test_backward_refuses_an_upstream_gradient_that_does_not_fit(rng, name):
    forward, backward, dout_name = _pairs(rng)[name]
    out, cache = forward()
    good = rng.standard_normal(out.shape).astype(out.dtype)
    backward(good, cache)                                         # the right one passes

    reordered = good.reshape(out.shape[::-1])                     # the same size, another shape
    with pytest.raises(ValueError, match=rf"{dout_name}: got shape {tuple(reordered.shape)}; expected "
                                         rf"{tuple(out.shape)}".replace("(", r"\(").replace(")", r"\)")):
        backward(reordered, cache)
    with pytest.raises(ValueError, match=f"{dout_name}: got shape"):
        backward(good[..., :1], cache)
    with pytest.raises(TypeError, match=f"{dout_name}: got dtype float64; expected {out.dtype}"):
        backward(good.astype(np.float64), cache)
    with pytest.raises(TypeError, match=f"{dout_name}: got list"):
        backward(good.tolist(), cache)


def test_cross_entropy_takes_a_number_or_a_scalar(rng):
    logits = rng.standard_normal((2, 3, 5)).astype(f32)
    loss, cache = F.cross_entropy_forward(logits, np.array([[1, 2, 0], [4, 4, 3]]))
    reference = F.cross_entropy_backward(1.0, cache)
    for scalar in (1.0, 1, np.float64(1.0), np.array(1.0), np.array(1.0, f32)):
        dlogits = F.cross_entropy_backward(scalar, cache)
        assert dlogits.dtype == f32 and np.array_equal(dlogits, reference)
    with pytest.raises(ValueError, match=r"dloss: got shape \(1,\); expected \(\), the shape of the loss"):
        F.cross_entropy_backward(np.ones(1), cache)
    with pytest.raises(TypeError, match="dloss: got str"):
        F.cross_entropy_backward("1", cache)

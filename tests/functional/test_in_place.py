"""The ops that update arrays in place touch only arrays they made: inputs, upstream gradients and caches stay.

Each forward and backward below runs on copies kept for comparison; afterwards every input and every
upstream gradient must be unchanged, and a second backward on the same cache must give the same gradients
(a backward that consumed its cache would not).
"""
import numpy as np
import pytest

from numpy_transformer.functional.activations import gelu_backward, gelu_forward
from numpy_transformer.functional.attention import (
    causal_mask,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from numpy_transformer.functional.layernorm import layernorm_backward, layernorm_forward
from numpy_transformer.functional.softmax import softmax_backward, softmax_forward
from numpy_transformer.nn.attention import MultiheadAttention


def _unchanged(arrays, copies):
    for number, (array, copy) in enumerate(zip(arrays, copies, strict=True)):
        np.testing.assert_array_equal(array, copy, err_msg=f"argument {number} was modified")


def _same_grads(first, second):
    for number, (a, b) in enumerate(zip(first, second, strict=True)):
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"gradient {number} changed on a second backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_keeps_its_input_and_upstream_gradient(rng, dtype):
    x = rng.standard_normal((2, 3, 5)).astype(dtype)
    x[0, 1] = -np.inf                                   # an all -inf row
    dout = rng.standard_normal(x.shape).astype(dtype)
    x_copy, dout_copy = x.copy(), dout.copy()
    y, cache = softmax_forward(x, axis=-1)
    first = softmax_backward(dout, cache)
    second = softmax_backward(dout, cache)
    _unchanged([x, dout], [x_copy, dout_copy])
    _same_grads([first], [second])
    np.testing.assert_array_equal(y[0, 1], 0)
    expected = np.exp(x_copy[1] - x_copy[1].max(-1, keepdims=True))
    np.testing.assert_allclose(y[1], expected / expected.sum(-1, keepdims=True), rtol=1e-6)


def test_softmax_out_may_be_its_input(rng):
    x = rng.standard_normal((4, 6))
    expected, _ = softmax_forward(x.copy(), axis=-1)
    y, cache = softmax_forward(x, axis=-1, out=x)
    assert y is x and cache["y"] is x
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_attention_keeps_its_inputs_and_returns_the_weights_before_dropout(rng, mask_kind, dropout_p):
    B, H, T, S, Dh, Dv = 2, 3, 4, 5, 6, 7
    q = rng.standard_normal((B, H, T, Dh))
    k = rng.standard_normal((B, H, S, Dh))
    v = rng.standard_normal((B, H, S, Dv))
    dout = rng.standard_normal((B, H, T, Dv))
    mask, is_causal = None, False
    if mask_kind == "bool":
        mask = rng.random((B, 1, 1, S)) < 0.3
        mask[0, ..., :] = True                          # a fully masked batch row
    elif mask_kind == "float":
        mask = rng.standard_normal((T, S))
        mask[1, 2] = -np.inf
    elif mask_kind == "causal":
        is_causal = True
    inputs = [q, k, v, dout] + ([mask] if mask is not None else [])
    copies = [a.copy() for a in inputs]

    out, weights, cache = scaled_dot_product_attention_forward(q, k, v, mask=mask, is_causal=is_causal,
                                                               dropout_p=dropout_p, rng=3)
    weights_copy = weights.copy()
    first = scaled_dot_product_attention_backward(dout, cache)
    second = scaled_dot_product_attention_backward(dout, cache)
    _unchanged(inputs, copies)
    _same_grads(first, second)
    np.testing.assert_array_equal(weights, weights_copy)  # the backward left the returned weights alone

    scores = q @ k.swapaxes(-1, -2) / np.sqrt(Dh)
    if mask_kind == "bool":
        scores = np.where(mask, -np.inf, scores)
    elif mask_kind == "float":
        scores = scores + mask
    elif mask_kind == "causal":
        scores = np.where(causal_mask(T, S), -np.inf, scores)
    with np.errstate(invalid="ignore"):
        expected = np.exp(scores - scores.max(-1, keepdims=True))
        expected = expected / expected.sum(-1, keepdims=True)
    expected = np.nan_to_num(expected, nan=0.0)          # fully masked rows give zeros
    np.testing.assert_allclose(weights, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layernorm_keeps_its_inputs(rng, dtype):
    x = rng.standard_normal((3, 4, 6)).astype(dtype)
    gamma = rng.standard_normal(6).astype(dtype)
    beta = rng.standard_normal(6).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    inputs = [x, gamma, beta, dout]
    copies = [a.copy() for a in inputs]
    _, cache = layernorm_forward(x, gamma, beta)
    first = layernorm_backward(dout, cache)
    second = layernorm_backward(dout, cache)
    _unchanged(inputs, copies)
    _same_grads(first, second)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_keeps_its_input_and_upstream_gradient(rng, approximate):
    x = rng.standard_normal((3, 7)) * 2
    dout = rng.standard_normal(x.shape)
    copies = [x.copy(), dout.copy()]
    out, cache = gelu_forward(x, approximate=approximate)
    first = gelu_backward(dout, cache)
    second = gelu_backward(dout, cache)
    _unchanged([x, dout], copies)
    _same_grads([first], [second])


@pytest.mark.parametrize("path", ["qkv", "q_kv", "q_k_v"])
def test_multihead_attention_keeps_its_inputs(rng, path):
    B, T, S, D, H = 2, 3, 4, 6, 2
    query = rng.standard_normal((B, T, D))
    memory = rng.standard_normal((B, S, D))
    other = rng.standard_normal((B, S, D))
    dout = rng.standard_normal((B, T, D))
    key, value = {"qkv": (query, query), "q_kv": (memory, memory), "q_k_v": (memory, other)}[path]
    inputs = [query, memory, other, dout]
    copies = [a.copy() for a in inputs]
    layer = MultiheadAttention(D, H, batch_first=True, dtype=np.float64, rng=0)
    if path == "qkv":
        key = value = query
    layer(query, key, value)
    first = layer.backward(dout)
    second = layer.backward(dout)
    _unchanged(inputs, copies)
    _same_grads(first, second)

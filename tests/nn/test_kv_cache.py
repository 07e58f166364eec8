"""The key/value cache: decoding through MultiheadAttention and the layers one position at a time gives
exactly what one full causal forward gives (float64), with padding, pre- and post-norm, cross-attention."""
import numpy as np
import pytest

from numpy_transformer.nn import MultiheadAttention, TransformerDecoderLayer, TransformerEncoderLayer
from numpy_transformer.nn.attention import KVCache, causal_mask_after

TIGHT = dict(rtol=1e-12, atol=1e-12)


def _steps(total: int, first: int):
    """Chunks of a sequence: the first (a prompt) of length ``first``, then one position at a time."""
    yield 0, first
    for start in range(first, total):
        yield start, start + 1


def test_cache_appends_grows_and_reorders(rng):
    cache = KVCache()
    assert len(cache) == 0 and cache.keys is None
    k1, v1 = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 6))
    keys, values = cache.append(k1, v1)
    np.testing.assert_array_equal(keys, k1)
    for _ in range(20):                                           # past the first capacity, several doublings
        k, v = rng.standard_normal((2, 3, 1, 5)), rng.standard_normal((2, 3, 1, 6))
        keys, values = cache.append(k, v)
        k1, v1 = np.concatenate([k1, k], axis=2), np.concatenate([v1, v], axis=2)
    assert len(cache) == 24 and keys.shape == (2, 3, 24, 5) and values.shape == (2, 3, 24, 6)
    np.testing.assert_array_equal(keys, k1)
    np.testing.assert_array_equal(values, v1)
    cache.reorder(np.array([1, 1, 0]))
    np.testing.assert_array_equal(cache.keys, k1[[1, 1, 0]])
    with pytest.raises(ValueError, match="keys"):
        cache.append(rng.standard_normal((3, 2, 1, 5)), rng.standard_normal((3, 2, 1, 6)))  # other head count
    with pytest.raises(ValueError, match="values"):
        KVCache().append(rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 3, 5)))
    static = KVCache(static=True)
    static.append(k1, v1)
    with pytest.raises(ValueError, match="static"):
        static.append(k1, v1)


def test_causal_mask_after_aligns_to_the_end():
    np.testing.assert_array_equal(causal_mask_after(2, 3), [[0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    assert causal_mask_after(7, 1) is None


def test_attention_with_cache_equals_one_causal_forward(rng):
    attention = MultiheadAttention(12, 3, batch_first=True, rng=0, dtype=np.float64).eval()
    x = rng.standard_normal((2, 7, 12))
    padding = np.zeros((2, 7), dtype=bool)
    padding[1, :2] = True                                         # row 1 is left-padded
    full, full_weights = attention(x, x, x, key_padding_mask=padding, is_causal=True, average_attn_weights=False)
    cache = KVCache()
    for start, stop in _steps(7, 3):
        new = x[:, start:stop]
        out, weights = attention(new, new, new, key_padding_mask=padding[:, :stop], is_causal=True, cache=cache,
                                 average_attn_weights=False)
        real = ~padding[:, start:stop]                            # fully masked query rows are zero in both
        np.testing.assert_allclose(out[real], full[:, start:stop][real], **TIGHT)
        np.testing.assert_allclose(weights, full_weights[:, :, start:stop, :stop], **TIGHT)
    assert len(cache) == 7
    with pytest.raises(RuntimeError, match="KVCache"):
        attention.backward(np.ones((2, 1, 12)))


def test_static_cache_computes_the_memory_once(rng, monkeypatch):
    attention = MultiheadAttention(8, 2, batch_first=True, rng=1, dtype=np.float64)
    query, memory = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 5, 8))
    padding = np.array([[False] * 5, [False, False, False, True, True]])
    full, _ = attention(query, memory, memory, key_padding_mask=padding)
    cache = KVCache(static=True)
    first, _ = attention(query[:, :2], memory, memory, key_padding_mask=padding, cache=cache)
    calls = []
    import numpy_transformer.nn.attention as module

    original = module.linear_forward
    monkeypatch.setattr(module, "linear_forward", lambda x, w, b=None: calls.append(w.shape) or original(x, w, b))
    second, _ = attention(query[:, 2:], memory, memory, key_padding_mask=padding, cache=cache)
    assert calls == [(8, 8)]                                      # only the query is projected
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, **TIGHT)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_decodes_with_a_cache(rng, norm_first):
    layer = TransformerEncoderLayer(12, 3, dim_feedforward=20, dropout=0.0, activation="gelu_tanh",
                                    norm_first=norm_first, batch_first=True, dtype=np.float64, rng=2)
    x = rng.standard_normal((3, 6, 12))
    full, full_weights = layer(x, is_causal=True, need_weights=True)
    cache = KVCache()
    outs = []
    for start, stop in _steps(6, 2):
        out, weights = layer(x[:, start:stop], is_causal=True, cache=cache, need_weights=True)
        np.testing.assert_allclose(weights, full_weights[:, :, start:stop, :stop], **TIGHT)
        outs.append(out)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, **TIGHT)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_decodes_with_caches(rng, norm_first):
    layer = TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, norm_first=norm_first,
                                    batch_first=True, dtype=np.float64, rng=3)
    tgt, memory = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 4, 8))
    memory_padding = np.array([[False] * 4, [False, False, True, True]])
    full, full_self, full_cross = layer(tgt, memory, tgt_is_causal=True, memory_key_padding_mask=memory_padding,
                                        need_weights=True)
    cache, memory_cache = KVCache(), KVCache(static=True)
    for start, stop in _steps(5, 1):
        out, self_weights, cross_weights = layer(tgt[:, start:stop], memory, tgt_is_causal=True,
                                                 memory_key_padding_mask=memory_padding, cache=cache,
                                                 memory_cache=memory_cache, need_weights=True)
        np.testing.assert_allclose(out, full[:, start:stop], **TIGHT)
        np.testing.assert_allclose(self_weights, full_self[:, :, start:stop, :stop], **TIGHT)
        np.testing.assert_allclose(cross_weights, full_cross[:, :, start:stop], **TIGHT)


def test_layer_masks_with_a_cache_cover_every_key(rng):
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=8, dropout=0.0, batch_first=True, dtype=np.float64, rng=0)
    cache = KVCache()
    layer(rng.standard_normal((2, 3, 8)), cache=cache)
    with pytest.raises(ValueError, match=r"src_key_padding_mask: got shape \(2, 1\); expected \(2, 4\)"):
        layer(rng.standard_normal((2, 1, 8)), src_key_padding_mask=np.zeros((2, 1), dtype=bool), cache=cache)
    with pytest.raises(TypeError, match="cache"):
        layer.self_attn(*(rng.standard_normal((2, 1, 8)),) * 3, cache=[])


def test_need_weights_returns_the_attention_of_the_same_forward(rng):
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=8, dropout=0.0, batch_first=True, dtype=np.float64, rng=0)
    x = rng.standard_normal((2, 5, 8))
    padding = np.array([[False] * 5, [False, False, False, True, True]])
    out, weights = layer(x, src_key_padding_mask=padding, need_weights=True)
    np.testing.assert_array_equal(out, layer(x, src_key_padding_mask=padding))
    _, expected = layer.self_attn(x, x, x, key_padding_mask=padding, average_attn_weights=False)
    np.testing.assert_allclose(weights, expected, **TIGHT)
    assert weights.shape == (2, 2, 5, 5) and np.all(weights[1, :, :, 3:] == 0)
    dx = layer.backward(np.ones_like(out))                        # the recorded forward still trains
    assert dx.shape == x.shape


def test_a_sequence_first_layer_decodes_with_a_cache(rng):
    """torch's default layout (T, B, D): the cache still holds (B, H, P, Dh), the outputs stay (t, B, D)."""
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0, norm_first=True, dtype=np.float64, rng=4)
    x = rng.standard_normal((5, 3, 8))                            # (T, B, D)
    full = layer(x, is_causal=True)
    cache = KVCache()
    outs = [layer(x[start:stop], is_causal=True, cache=cache) for start, stop in _steps(5, 2)]
    np.testing.assert_allclose(np.concatenate(outs, axis=0), full, **TIGHT)
    assert cache.keys.shape == (3, 2, 5, 4)

"""Rotary position embedding: finite differences, Hugging Face's Llama rotation (float64 tight, float32 loose),
the relative-position property proved numerically, the backward as the inverse rotation, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.rope import rope_backward, rope_forward, rope_tables
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, require, to_torch


def rotate(x, positions, theta=10000.0):
    cos, sin = rope_tables(np.asarray(positions), x.shape[-1], theta, dtype=x.dtype)
    out, _ = rope_forward(x, cos, sin)
    return out


@pytest.mark.parametrize("shape, offset", [
    ((2, 3, 5, 6), 0),     # (B, H, T, Dh)
    ((1, 1, 1, 2), 7),     # batch 1, one head, T = 1 at position 7, head width 2
    ((3, 2, 4, 8), 1000),  # far positions: the fast pairs have turned many times
    ((4, 10), 2),          # (T, Dh) without leading axes
])
def test_rope_matches_finite_differences(rng, shape, offset):
    T, Dh = shape[-2], shape[-1]
    cos, sin = rope_tables(np.arange(offset, offset + T), Dh, theta=100.0, dtype=np.float64)
    x = rng.standard_normal(shape)
    report = gradcheck(lambda x: rope_forward(x, cos, sin), rope_backward, [x], names=["x"])
    report.assert_ok()


def test_rope_per_sequence_positions_match_finite_differences(rng):
    """Tables of positions (B, T) broadcast over the heads as (B, 1, T, Dh/2)."""
    positions = np.array([[0, 1, 2], [5, 6, 7]])
    cos, sin = rope_tables(positions, 4, dtype=np.float64)                 # (B, T, Dh/2)
    x = rng.standard_normal((2, 3, 3, 4))
    report = gradcheck(lambda x: rope_forward(x, cos[:, None], sin[:, None]), rope_backward, [x], names=["x"])
    report.assert_ok()
    np.testing.assert_allclose(rope_forward(x, cos[:, None], sin[:, None])[0][1], rotate(x[1], np.arange(5, 8)),
                               rtol=0, atol=0)


def hf_cos_sin(torch, positions, head_dim, theta, dtype):
    """Hugging Face's full-width tables cat(freqs, freqs).cos() / .sin(), written out in ``dtype``."""
    inverse_frequency = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.tensor(positions, dtype=torch.float64)[:, None] * inverse_frequency
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [dict(B=2, H=3, T=5, Dh=8), dict(B=1, H=1, T=1, Dh=2)])
def test_rope_matches_transformers_apply_rotary_pos_emb(rng, torch, dtype, sizes):
    """Output and input gradient against transformers' ``apply_rotary_pos_emb`` (q and k at once)."""
    require("transformers")
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    B, H, T, Dh = sizes["B"], sizes["H"], sizes["T"], sizes["Dh"]
    offset, theta = 3, 500.0
    positions = np.arange(offset, offset + T)
    q = rng.standard_normal((B, H, T, Dh)).astype(dtype)
    k = rng.standard_normal((B, 1, T, Dh)).astype(dtype)
    dq_up, dk_up = rng.standard_normal(q.shape).astype(dtype), rng.standard_normal(k.shape).astype(dtype)

    cos, sin = rope_tables(positions, Dh, theta, dtype=dtype)
    q_rot, q_cache = rope_forward(q, cos, sin)
    k_rot, k_cache = rope_forward(k, cos, sin)
    dq, dk = rope_backward(dq_up, q_cache), rope_backward(dk_up, k_cache)

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    tcos, tsin = hf_cos_sin(torch, positions, Dh, theta, tdtype)
    assert_close(np.concatenate([cos, cos], -1), tcos, what="cos table")
    assert_close(np.concatenate([sin, sin], -1), tsin, what="sin table")
    tq, tk = to_torch(q, requires_grad=True), to_torch(k, requires_grad=True)
    tq_rot, tk_rot = apply_rotary_pos_emb(tq, tk, tcos[None], tsin[None])  # (1, T, Dh) -> (1, 1, T, Dh)
    (tq_rot * to_torch(dq_up)).sum().add((tk_rot * to_torch(dk_up)).sum()).backward()
    assert q_rot.dtype == dq.dtype == np.dtype(dtype)
    assert_close(q_rot, tq_rot, what="q rotated")
    assert_close(k_rot, tk_rot, what="k rotated")
    assert_close(dq, tq.grad, what="dq")
    assert_close(dk, tk.grad, what="dk")


def test_rope_tables_match_llama_rotary_embedding(rng, torch):
    """Against transformers' own LlamaRotaryEmbedding. It computes the angles in float32 whatever the dtype,
    so the comparison is at float32's tolerance; the float64 formula is checked tightly above."""
    require("transformers")
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = LlamaConfig(hidden_size=24, num_attention_heads=2, rope_theta=500.0)  # head_dim 12
    rotary = LlamaRotaryEmbedding(config)
    positions = np.array([[0, 1, 2, 9, 40]])
    tcos, tsin = rotary(torch.zeros(1, dtype=torch.float32), torch.tensor(positions))
    cos, sin = rope_tables(positions, 12, theta=500.0, dtype=np.float32)
    assert_close(np.concatenate([cos, cos], -1), tcos, what="cos")
    assert_close(np.concatenate([sin, sin], -1), tsin, what="sin")


def test_scores_depend_only_on_relative_position(rng):
    """(R_m q) . (R_n k) = q^T R_(n-m) k: shift both positions by any s and no score changes."""
    Dh = 16
    q, k = rng.standard_normal(Dh), rng.standard_normal(Dh)
    for m, n in ((0, 0), (3, 7), (7, 3), (0, 50), (123, 17)):
        score = rotate(q[None], [m]) @ rotate(k[None], [n]).T             # (1, 1)
        for shift in (1, 5, 1000):
            shifted = rotate(q[None], [m + shift]) @ rotate(k[None], [n + shift]).T
            np.testing.assert_allclose(shifted, score, rtol=1e-12, atol=1e-12)
        # the same number from the relative rotation alone: q . R_(n-m) k
        np.testing.assert_allclose(q @ rotate(k[None], [n - m])[0], score[0, 0], rtol=1e-12, atol=1e-12)
    # whole score matrices: a sequence at offset 0 and the same sequence at offset 37
    qs, ks = rng.standard_normal((6, Dh)), rng.standard_normal((6, Dh))
    at_zero = rotate(qs, np.arange(6)) @ rotate(ks, np.arange(6)).T
    at_37 = rotate(qs, np.arange(37, 43)) @ rotate(ks, np.arange(37, 43)).T
    np.testing.assert_allclose(at_37, at_zero, rtol=1e-12, atol=1e-12)
    # and they are NOT the raw dot products: the rotation did change them
    assert not np.allclose(at_zero, qs @ ks.T)


def test_rotation_keeps_lengths_and_backward_is_the_inverse_rotation(rng):
    x = rng.standard_normal((2, 3, 7, 8))
    cos, sin = rope_tables(np.arange(7) + 11, 8, dtype=np.float64)
    rotated, cache = rope_forward(x, cos, sin)
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-13)
    np.testing.assert_allclose(rope_backward(rotated, cache), x, rtol=1e-13, atol=1e-14)  # R^T R x = x
    assert not np.allclose(rotated, x)
    # position 0 is the identity
    unrotated, _ = rope_forward(x[..., :1, :], *rope_tables(np.arange(1), 8, dtype=np.float64))
    np.testing.assert_array_equal(unrotated, x[..., :1, :])


def test_rope_pairs_feature_i_with_feature_i_plus_half(rng):
    """The half-split layout: one pair (i, i + Dh/2) turns by m * theta^(-2i/Dh), nothing else moves."""
    Dh, i, m, theta = 8, 1, 3, 100.0
    x = np.zeros((1, Dh))
    x[0, i] = 1.0
    out = rotate(x, [m], theta)
    angle = m * theta ** (-2 * i / Dh)
    expected = np.zeros(Dh)
    expected[i], expected[i + Dh // 2] = np.cos(angle), np.sin(angle)
    np.testing.assert_allclose(out[0], expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_keeps_the_dtype(rng, dtype):
    x = rng.standard_normal((2, 2, 3, 4)).astype(dtype)
    cos, sin = rope_tables(np.arange(3), 4, dtype=dtype)
    out, cache = rope_forward(x, cos, sin)
    assert cos.dtype == sin.dtype == out.dtype == rope_backward(out, cache).dtype == np.dtype(dtype)


def test_rope_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3, 4))
    cos, sin = rope_tables(np.arange(3), 4, dtype=np.float64)
    with pytest.raises(ValueError, match="head_dim"):
        rope_tables(np.arange(3), 5)
    with pytest.raises(TypeError, match="positions"):
        rope_tables(np.arange(3.0), 4)
    with pytest.raises(ValueError, match="theta"):
        rope_tables(np.arange(3), 4, theta=0.0)
    with pytest.raises(ValueError, match="x"):
        rope_forward(rng.standard_normal((2, 3, 5)), cos, sin)                 # odd head width
    with pytest.raises(ValueError, match="cos"):
        rope_forward(rng.standard_normal((2, 4, 4)), cos, sin)                 # tables for 3 positions, x has 4
    with pytest.raises(ValueError, match="sin"):
        rope_forward(x, cos, sin[:2])
    with pytest.raises(TypeError, match="cos"):
        rope_forward(x, cos.astype(np.float32), sin)

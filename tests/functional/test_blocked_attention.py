"""Blocked (memory-efficient) attention: the same numbers as the plain pair under every mask and block size,
finite differences, PyTorch (float64 tight, float32 loose), fully masked rows, causal block skipping, memory
that does not grow with T x S, bad input."""
import tracemalloc

import numpy as np
import pytest
from test_attention import MASKS, make_inputs, make_mask, torch_reference

from numpy_transformer.functional.attention import (
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from numpy_transformer.functional.blocked_attention import blocked_attention_backward, blocked_attention_forward
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

# (query block, key block): one position per block, blocks that do not divide T or S, one block of each
BLOCK_SIZES = [(1, 1), (2, 3), (3, 2), (64, 64), (2, 64)]


def both(q, k, v, dout, blocks, **kwargs):
    """(out, dq, dk, dv) of the plain pair and of the blocked pair on the same inputs."""
    out, _, cache = scaled_dot_product_attention_forward(q, k, v, **kwargs)
    plain = (out,) + scaled_dot_product_attention_backward(dout, cache)
    out_b, cache_b = blocked_attention_forward(q, k, v, query_block=blocks[0], key_block=blocks[1], **kwargs)
    blocked = (out_b,) + blocked_attention_backward(dout, cache_b)
    return plain, blocked


@pytest.mark.parametrize("blocks", BLOCK_SIZES)
@pytest.mark.parametrize("kind", MASKS)
def test_blocked_equals_plain_to_rounding(rng, kind, blocks):
    B, T, S = 2, 4, 5
    q, k, v = make_inputs(rng, B=B, T=T, S=S)
    mask, is_causal, _ = make_mask(kind, rng, B, T, S)
    dout = rng.standard_normal((B, 3, T, 7))
    plain, blocked = both(q, k, v, dout, blocks, mask=mask, is_causal=is_causal)
    for name, a, b in zip(("out", "dq", "dk", "dv"), plain, blocked, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32])
def test_blocked_equals_plain_in_float32_at_a_longer_length(rng, dtype):
    """T = S = 70 in blocks of 16 (the last one short), causal + key padding: float32 rounding only."""
    B, H, T, Dh = 2, 2, 70, 8
    q, k, v, dout = (rng.standard_normal((B, H, T, Dh)).astype(dtype) for _ in range(4))
    padding = np.zeros((B, 1, 1, T), dtype=bool)
    padding[1, ..., 50:] = True
    plain, blocked = both(q, k, v, dout, (32, 16), mask=padding, is_causal=True)
    for name, a, b in zip(("out", "dq", "dk", "dv"), plain, blocked, strict=True):
        assert b.dtype == np.float32
        assert_close(b, a, what=name)


@pytest.mark.parametrize("kind", MASKS)
def test_blocked_matches_finite_differences(rng, kind):
    q, k, v = make_inputs(rng)
    mask, is_causal, _ = make_mask(kind, rng, 2, 4, 5)
    report = gradcheck(blocked_attention_forward, blocked_attention_backward, [q, k, v], names=["q", "k", "v"],
                       kwargs={"mask": mask, "is_causal": is_causal, "query_block": 2, "key_block": 3})
    report.assert_ok()


@pytest.mark.parametrize("sizes", [
    dict(B=1, H=1, T=1, S=3, Dh=2, Dv=3),   # batch 1, one query
    dict(B=1, H=2, T=3, S=1, Dh=1, Dv=2),   # one key, head width 1
    dict(B=3, H=1, T=5, S=2, Dh=4, Dv=1),   # S < T, value width 1
])
def test_blocked_odd_sizes_match_finite_differences(rng, sizes):
    q, k, v = make_inputs(rng, **sizes)
    for is_causal in (False, True):
        report = gradcheck(blocked_attention_forward, blocked_attention_backward, [q, k, v], names=["q", "k", "v"],
                           kwargs={"is_causal": is_causal, "query_block": 2, "key_block": 3, "scale": 0.8})
        report.assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASKS)
def test_blocked_matches_torch(rng, torch, dtype, kind):
    B, T, S = 2, 4, 5
    q, k, v = make_inputs(rng, B=B, T=T, S=S, dtype=dtype)
    mask, is_causal, forbidden = make_mask(kind, rng, B, T, S, dtype=dtype)
    dout = rng.standard_normal((B, 3, T, 7)).astype(dtype)

    out, cache = blocked_attention_forward(q, k, v, mask=mask, is_causal=is_causal, query_block=3, key_block=2)
    dq, dk, dv = blocked_attention_backward(dout, cache)
    tout, _, tdq, tdk, tdv, full_rows = torch_reference(torch, q, k, v, mask, is_causal, forbidden, dout)

    assert out.dtype == dq.dtype == dk.dtype == dv.dtype == np.dtype(dtype)
    rows = ~np.broadcast_to(full_rows, out.shape[:-1] + (1,))[..., 0]   # (B, H, T) rows with a key to attend
    assert_close(out[rows], tout.detach().numpy()[rows], what="out")
    assert_close(dq[rows], tdq.numpy()[rows], what="dq")
    assert_close(dk, tdk, what="dk")
    assert_close(dv, tdv, what="dv")
    # fully masked rows: exactly zero output and gradient, never NaN
    assert (out[~rows] == 0).all() and (dq[~rows] == 0).all()
    assert np.isfinite(dk).all() and np.isfinite(dv).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_blocked_matches_torch_sdpa_causal_with_fewer_keys_than_queries(rng, torch, dtype):
    """Top-left causal alignment with T != S (torch's is_causal), blocks that cross the diagonal."""
    q, k, v = make_inputs(rng, B=1, H=2, T=9, S=6, dtype=dtype)
    dout = rng.standard_normal((1, 2, 9, 7)).astype(dtype)
    out, cache = blocked_attention_forward(q, k, v, is_causal=True, query_block=4, key_block=4)
    dq, dk, dv = blocked_attention_backward(dout, cache)
    tq, tk, tv = (to_torch(a, requires_grad=True) for a in (q, k, v))
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    tout.backward(to_torch(dout))
    for ours, theirs, what in ((out, tout, "out"), (dq, tq.grad, "dq"), (dk, tk.grad, "dk"), (dv, tv.grad, "dv")):
        assert_close(ours, theirs, what=what)


def test_causal_blocks_after_the_diagonal_are_never_computed(rng, monkeypatch):
    """T = S = 8 in blocks of 2: 10 of the 16 (query block, key block) pairs hold an allowed key."""
    import numpy_transformer.functional.blocked_attention as blocked

    penalties = []
    original = blocked._block_penalty

    def counting(mask, is_causal, rows, cols, dtype, xp):
        penalties.append((rows, cols))
        return original(mask, is_causal, rows, cols, dtype, xp)

    monkeypatch.setattr(blocked, "_block_penalty", counting)
    q, k, v = make_inputs(rng, B=1, H=1, T=8, S=8)
    out, cache = blocked.blocked_attention_forward(q, k, v, is_causal=True, query_block=2, key_block=2)
    assert len(penalties) == 10 and all(cols[0] <= rows[1] - 1 for rows, cols in penalties)
    penalties.clear()
    blocked.blocked_attention_backward(np.ones_like(out), cache)
    assert len(penalties) == 10


def test_large_logits_and_a_fully_masked_row_stay_finite(rng):
    q = np.full((2, 1, 3, 1), 100.0)
    q[0, 0, 1] = -100.0
    k = np.array([100.0, -100.0, 99.0, 0.0]).reshape(1, 1, 4, 1).repeat(2, axis=0)
    v = rng.standard_normal((2, 1, 4, 2))
    mask = np.zeros((3, 4))
    mask[2] = -np.inf
    out, cache = blocked_attention_forward(q, k, v, mask=mask, scale=1.0, query_block=1, key_block=1)  # +-1e4
    grads = blocked_attention_backward(rng.standard_normal(out.shape), cache)
    plain, _, _ = scaled_dot_product_attention_forward(q, k, v, mask=mask, scale=1.0)
    assert np.isfinite(out).all() and all(np.isfinite(g).all() for g in grads)
    np.testing.assert_allclose(out, plain, rtol=1e-12, atol=1e-14)
    assert (out[..., 2, :] == 0).all() and (grads[0][..., 2, :] == 0).all()


def test_the_cache_holds_nothing_of_size_t_by_s(rng):
    T = 96
    q, k, v = (rng.standard_normal((2, 3, T, 4)) for _ in range(3))
    _, cache = blocked_attention_forward(q, k, v, is_causal=True, query_block=16, key_block=16)
    for name, value in cache.items():
        if hasattr(value, "shape"):
            assert value.size <= 2 * 3 * T * 4, f"{name}: {value.shape}"
    assert cache["logsumexp"].shape == (2, 3, T, 1)


def test_peak_memory_does_not_grow_with_t_by_s(rng):
    """One (T, S) float64 score matrix is 8 MiB at T = S = 1024; forward + backward in blocks of 64 stay far
    below it (tracemalloc sees every NumPy allocation)."""
    T, Dh = 1024, 8
    q, k, v, dout = (rng.standard_normal((1, 1, T, Dh)) for _ in range(4))
    tracemalloc.start()
    try:
        out, cache = blocked_attention_forward(q, k, v, query_block=64, key_block=64)
        blocked_attention_backward(dout, cache)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < T * T * 8 / 8, f"peak {peak / 2**20:.1f} MiB"


def test_leading_axes_need_not_be_batch_and_heads(rng):
    q, k, v = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 6, 5)), rng.standard_normal((3, 6, 2))
    dout = rng.standard_normal((3, 4, 2))
    plain, blocked = both(q, k, v, dout, (4, 4), is_causal=True, scale=0.5)
    for a, b in zip(plain, blocked, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_blocked_bad_input_names_argument(rng):
    q, k, v = make_inputs(rng)
    f = blocked_attention_forward
    with pytest.raises(ValueError, match="query_block"):
        f(q, k, v, query_block=0)
    with pytest.raises(ValueError, match="key_block"):
        f(q, k, v, key_block=2.5)
    with pytest.raises(ValueError, match="k"):
        f(q, k[..., :5], v)
    with pytest.raises(ValueError, match="mask"):
        f(q, k, v, mask=np.zeros((4, 4), dtype=bool))
    with pytest.raises(TypeError, match="mask"):
        f(q, k, v, mask=np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="is_causal"):
        f(q, k, v, is_causal=1)
    with pytest.raises(TypeError, match="scale"):
        f(q, k, v, scale="big")

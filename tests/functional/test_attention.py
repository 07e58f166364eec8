"""Scaled dot-product attention: finite differences for dq, dk, dv under every kind of mask and with dropout,
PyTorch (float64 tight, float32 loose) for out, weights and every gradient, fully masked rows, large logits,
bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.attention import (
    causal_mask,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

MASKS = ["none", "padding", "causal", "padding+causal", "additive", "bool_full_row", "additive_full_row"]


def make_inputs(rng, B=2, H=3, T=4, S=5, Dh=6, Dv=7, dtype=np.float64):
    q = (rng.standard_normal((B, H, T, Dh)) * 1.5).astype(dtype)
    k = (rng.standard_normal((B, H, S, Dh)) + 0.2).astype(dtype)
    v = (rng.standard_normal((B, H, S, Dv)) - 0.1).astype(dtype)
    return q, k, v


def make_mask(kind, rng, B, T, S, dtype=np.float64):
    """Returns (mask, is_causal, forbidden) with ``forbidden`` the bool (B, 1, T, S) of every -inf score."""
    forbidden = np.zeros((B, 1, T, S), dtype=bool)
    mask, is_causal = None, False
    if "padding" in kind:
        mask = np.zeros((B, 1, 1, S), dtype=bool)  # key padding: True = padding
        mask[0, ..., S - 2:] = True  # sequence 0 has two padded keys, sequence 1 none
        forbidden |= mask
    if "causal" in kind:
        is_causal = True
        forbidden |= np.triu(np.ones((T, S), dtype=bool), k=1)
    if kind == "additive":
        mask = rng.standard_normal((T, S)).astype(dtype)  # a bias, broadcast over batch and heads
        mask[0, 1] = mask[2, 0] = -np.inf
        forbidden |= np.isinf(mask)
    if kind == "bool_full_row":
        mask = rng.random((B, 1, T, S)) < 0.3
        mask[:, :, :, 0] = False
        mask[1, :, 2] = True  # query 2 of sequence 1 may attend to nothing
        forbidden |= mask
    if kind == "additive_full_row":
        mask = np.zeros((T, S), dtype=dtype)
        mask[1] = -np.inf  # query 1 may attend to nothing, in every sequence
        mask[3, 2] = -np.inf
        forbidden |= np.isinf(mask)
    return mask, is_causal, forbidden


def torch_reference(torch, q, k, v, mask, is_causal, forbidden, dout, scale=None):
    """Explicit softmax(q k^T * scale + mask) v in torch; fully masked rows are unmasked there and get a zero
    upstream gradient (torch gives NaN for them), so their contributions to dk and dv are zero, as ours."""
    full_rows = forbidden.all(-1, keepdims=True)  # (B, 1, T, 1)
    additive = np.where(forbidden & ~full_rows, -np.inf, 0.0)
    if mask is not None and mask.dtype != np.bool_:
        additive = additive + np.where(np.isinf(mask), 0.0, mask)
    tq, tk, tv = (to_torch(a, requires_grad=True) for a in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = tq @ tk.transpose(-1, -2) * scale + to_torch(additive.astype(q.dtype))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ tv
    out.backward(to_torch(np.where(full_rows, 0, dout).astype(q.dtype)))
    return out, weights, tq.grad, tk.grad, tv.grad, full_rows


@pytest.mark.parametrize("kind", MASKS)
def test_attention_matches_finite_differences(rng, kind):
    q, k, v = make_inputs(rng)
    mask, is_causal, _ = make_mask(kind, rng, 2, 4, 5)
    report = gradcheck(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward, [q, k, v],
                       names=["q", "k", "v"], kwargs={"mask": mask, "is_causal": is_causal})
    report.assert_ok()


@pytest.mark.parametrize("sizes", [
    dict(B=1, H=1, T=1, S=3, Dh=2, Dv=3),   # batch 1, one query
    dict(B=1, H=2, T=3, S=1, Dh=1, Dv=2),   # one key, head width 1
    dict(B=3, H=1, T=5, S=2, Dh=4, Dv=1),   # S < T, value width 1
])
def test_attention_odd_sizes_match_finite_differences(rng, sizes):
    q, k, v = make_inputs(rng, **sizes)
    for is_causal in (False, True):
        report = gradcheck(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward, [q, k, v],
                           names=["q", "k", "v"], kwargs={"is_causal": is_causal})
        report.assert_ok()


def test_attention_without_head_axis_and_custom_scale(rng):
    q = rng.standard_normal((2, 3, 4))  # (B, T, Dh): any leading axes
    k = rng.standard_normal((2, 5, 4))
    v = rng.standard_normal((2, 5, 6))
    report = gradcheck(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward, [q, k, v],
                       names=["q", "k", "v"], kwargs={"scale": 0.7, "is_causal": True})
    report.assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASKS)
def test_attention_matches_torch(rng, torch, dtype, kind):
    B, T, S = 2, 4, 5
    q, k, v = make_inputs(rng, B=B, T=T, S=S, dtype=dtype)
    mask, is_causal, forbidden = make_mask(kind, rng, B, T, S, dtype=dtype)
    dout = rng.standard_normal((B, 3, T, 7)).astype(dtype)

    out, weights, cache = scaled_dot_product_attention_forward(q, k, v, mask=mask, is_causal=is_causal)
    dq, dk, dv = scaled_dot_product_attention_backward(dout, cache)
    tout, tweights, tdq, tdk, tdv, full_rows = torch_reference(torch, q, k, v, mask, is_causal, forbidden, dout)

    assert out.dtype == weights.dtype == dq.dtype == dk.dtype == dv.dtype == np.dtype(dtype)
    rows = ~np.broadcast_to(full_rows, weights.shape[:-1] + (1,))[..., 0]  # (B, H, T) rows with a key to attend
    assert_close(out[rows], tout.detach().numpy()[rows], what="out")
    assert_close(weights[rows], tweights.detach().numpy()[rows], what="weights")
    assert_close(dq[rows], tdq.numpy()[rows], what="dq")
    assert_close(dk, tdk, what="dk")
    assert_close(dv, tdv, what="dv")
    # fully masked rows: exactly zero output, weights and gradient, never NaN
    assert (out[~rows] == 0).all() and (weights[~rows] == 0).all() and (dq[~rows] == 0).all()
    assert np.isfinite(dk).all() and np.isfinite(dv).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["none", "padding", "causal", "additive"])
def test_attention_matches_torch_sdpa(rng, torch, dtype, kind):
    """Against torch.nn.functional.scaled_dot_product_attention itself (its bool mask is True = MAY attend)."""
    q, k, v = make_inputs(rng, dtype=dtype)
    mask, is_causal, _ = make_mask(kind, rng, 2, 4, 5, dtype=dtype)
    dout = rng.standard_normal((2, 3, 4, 7)).astype(dtype)
    out, _, cache = scaled_dot_product_attention_forward(q, k, v, mask=mask, is_causal=is_causal, scale=0.3)
    dq, dk, dv = scaled_dot_product_attention_backward(dout, cache)

    tq, tk, tv = (to_torch(a, requires_grad=True) for a in (q, k, v))
    tmask = None if mask is None else to_torch(~mask if mask.dtype == np.bool_ else mask)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, is_causal=is_causal,
                                                            scale=0.3)
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    assert_close(dq, tq.grad, what="dq")
    assert_close(dk, tk.grad, what="dk")
    assert_close(dv, tv.grad, what="dv")


def test_attention_odd_sizes_match_torch(rng, torch):
    for sizes in (dict(B=1, H=1, T=1, S=3, Dh=2, Dv=3), dict(B=1, H=2, T=3, S=1, Dh=1, Dv=2)):
        q, k, v = make_inputs(rng, **sizes)
        dout = rng.standard_normal(q.shape[:-1] + (sizes["Dv"],))
        out, weights, cache = scaled_dot_product_attention_forward(q, k, v)
        dq, dk, dv = scaled_dot_product_attention_backward(dout, cache)
        forbidden = np.zeros((1, 1, sizes["T"], sizes["S"]), dtype=bool)
        tout, tweights, tdq, tdk, tdv, _ = torch_reference(torch, q, k, v, None, False, forbidden, dout)
        for ours, theirs, what in ((out, tout, "out"), (weights, tweights, "weights"), (dq, tdq, "dq"),
                                   (dk, tdk, "dk"), (dv, tdv, "dv")):
            assert_close(ours, theirs, what=what)


def test_attention_dropout_is_reproducible_and_matches_finite_differences(rng):
    q, k, v = make_inputs(rng)
    mask, _, _ = make_mask("padding", rng, 2, 4, 5)
    kwargs = {"mask": mask, "is_causal": True, "dropout_p": 0.3, "rng": 7}
    out1, weights1, cache = scaled_dot_product_attention_forward(q, k, v, **kwargs)
    out2, weights2, _ = scaled_dot_product_attention_forward(q, k, v, **kwargs)
    np.testing.assert_array_equal(out1, out2)
    out_plain, weights_plain, _ = scaled_dot_product_attention_forward(q, k, v, mask=mask, is_causal=True)
    np.testing.assert_array_equal(weights1, weights_plain)  # weights are returned before dropout
    assert not np.allclose(out1, out_plain)
    # each dropped weight is 0 or weight / (1 - p), and out uses exactly those
    dropped = cache["dropped"]
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], weights1[kept] / 0.7, rtol=1e-12)
    assert (~kept & (weights1 > 0)).any()
    np.testing.assert_allclose(out1, dropped @ v, rtol=1e-12)

    report = gradcheck(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward, [q, k, v],
                       names=["q", "k", "v"], kwargs=kwargs)
    report.assert_ok()


def test_attention_dropout_generator_and_zero_p(rng):
    q, k, v = make_inputs(rng, dtype=np.float32)
    out_a, _, _ = scaled_dot_product_attention_forward(q, k, v, dropout_p=0.5, rng=np.random.default_rng(3))
    out_b, _, _ = scaled_dot_product_attention_forward(q, k, v, dropout_p=0.5, rng=3)
    np.testing.assert_array_equal(out_a, out_b)
    assert out_a.dtype == np.float32
    out_zero, _, _ = scaled_dot_product_attention_forward(q, k, v, dropout_p=0.0, rng=3)
    out_none, _, _ = scaled_dot_product_attention_forward(q, k, v)
    np.testing.assert_array_equal(out_zero, out_none)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_large_logits_stay_finite(rng, dtype):
    q = np.full((2, 1, 3, 1), 100.0, dtype=dtype)
    q[0, 0, 1] = -100.0
    k = np.array([100.0, -100.0, 99.0, 0.0]).reshape(1, 1, 4, 1).repeat(2, axis=0).astype(dtype)
    v = rng.standard_normal((2, 1, 4, 2)).astype(dtype)
    mask = np.zeros((3, 4), dtype=dtype)
    mask[2] = -np.inf  # and a fully masked row on top of +-1e4 logits
    out, weights, cache = scaled_dot_product_attention_forward(q, k, v, mask=mask, scale=1.0)  # scores +-1e4
    grads = scaled_dot_product_attention_backward(rng.standard_normal(out.shape).astype(dtype), cache)
    assert np.isfinite(out).all() and np.isfinite(weights).all()
    assert all(np.isfinite(g).all() for g in grads)
    np.testing.assert_allclose(weights[0, 0, 0], [1, 0, 0, 0], atol=1e-6)
    assert (weights[..., 2, :] == 0).all() and (out[..., 2, :] == 0).all()


def test_causal_mask():
    np.testing.assert_array_equal(causal_mask(2, 3), [[False, True, True], [False, False, True]])
    assert causal_mask(4, 4).dtype == np.bool_
    with pytest.raises(ValueError, match="S"):
        causal_mask(2, -1)


def test_attention_bad_input_names_argument(rng):
    q, k, v = make_inputs(rng)
    f = scaled_dot_product_attention_forward
    with pytest.raises(ValueError, match="q"):
        f(q[0, 0, 0], k, v)
    with pytest.raises(ValueError, match="k"):
        f(q, k[..., :5], v)  # Dh differs
    with pytest.raises(ValueError, match="k"):
        f(q, k[:1], v)  # leading axes differ
    with pytest.raises(ValueError, match="v"):
        f(q, k, v[..., :4, :])  # S differs
    with pytest.raises(ValueError, match="v"):
        f(q, k, v[0])  # ndim differs
    with pytest.raises(TypeError, match="k"):
        f(q, k.astype(np.float32), v)
    with pytest.raises(TypeError, match="v"):
        f(q, k, v.astype(np.int64))
    with pytest.raises(ValueError, match="mask"):
        f(q, k, v, mask=np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="mask"):
        f(q, k, v, mask=np.zeros((3, 2, 1, 4, 5), dtype=bool))
    with pytest.raises(TypeError, match="mask"):
        f(q, k, v, mask=np.zeros((4, 5), dtype=np.int64))
    with pytest.raises(TypeError, match="mask"):
        f(q, k, v, mask=np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="dropout_p"):
        f(q, k, v, dropout_p=1.0)
    with pytest.raises(ValueError, match="dropout_p"):
        f(q, k, v, dropout_p=-0.1)
    with pytest.raises(TypeError, match="scale"):
        f(q, k, v, scale="big")
    with pytest.raises(TypeError, match="rng"):
        f(q, k, v, dropout_p=0.1, rng="seed")

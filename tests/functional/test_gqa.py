"""Grouped-query attention: finite differences for every grouping (multi-query, grouped, plain multi-head) under
every kind of mask, PyTorch's scaled_dot_product_attention with enable_gqa (float64 tight, float32 loose), the
group sum against copied keys, end-aligned causal masks, fully masked rows, no loop over heads, bad input."""
import ast
import inspect

import numpy as np
import pytest

from numpy_transformer.functional import gqa
from numpy_transformer.functional.attention import (
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from numpy_transformer.functional.gqa import (
    end_aligned_causal_mask,
    grouped_query_attention_backward,
    grouped_query_attention_forward,
)
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

GROUPINGS = [(4, 2), (3, 1), (2, 2), (6, 3)]  # (H, Hkv): grouped, multi-query, multi-head (group 1), groups of 2
MASKS = ["none", "padding", "causal", "padding+causal", "additive", "per_head", "additive+causal"]


def make_inputs(rng, B=2, H=4, Hkv=2, T=3, S=5, Dh=4, Dv=3, dtype=np.float64):
    q = (rng.standard_normal((B, H, T, Dh)) * 1.5).astype(dtype)
    k = (rng.standard_normal((B, Hkv, S, Dh)) + 0.2).astype(dtype)
    v = (rng.standard_normal((B, Hkv, S, Dv)) - 0.1).astype(dtype)
    return q, k, v


def make_mask(kind, rng, B, H, T, S, dtype=np.float64):
    """(mask, is_causal, forbidden): ``forbidden`` the bool (B, H, T, S) of every -inf score."""
    forbidden = np.zeros((B, H, T, S), dtype=bool)
    mask, is_causal = None, "causal" in kind
    if is_causal:
        forbidden |= end_aligned_causal_mask(T, S)
    if "padding" in kind:
        mask = np.zeros((B, 1, 1, S), dtype=bool)                  # key padding, True = padding
        mask[0, ..., :1] = True                                    # sequence 0: its first key is padding
        forbidden |= mask
    if kind.startswith("additive"):
        mask = rng.standard_normal((T, S)).astype(dtype)           # a bias shared by every head
        mask[0, -1] = -np.inf
        forbidden |= np.isinf(mask)
    if kind == "per_head":
        mask = rng.random((B, H, T, S)) < 0.3                      # a different mask for every query head
        mask[..., 0] = False
        forbidden |= mask
    return mask, is_causal, forbidden


def reference_by_copying(q, k, v, mask, is_causal):
    """The textbook's own multi-head attention on keys and values COPIED to every query head of their group
    (Hugging Face's repeat_kv), and the copies' gradients summed over the group: the result GQA must equal."""
    B, H, T, _ = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    group = H // Hkv
    k_all, v_all = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)   # (B, H, S, ...)
    full_mask = mask
    if is_causal:
        causal = end_aligned_causal_mask(T, S)
        if mask is None:
            full_mask = causal
        elif mask.dtype == np.bool_:
            full_mask = mask | causal
        else:
            full_mask = mask + np.where(causal, -np.inf, 0.0).astype(q.dtype)
    out, weights, cache = scaled_dot_product_attention_forward(q, k_all, v_all, mask=full_mask)

    def backward(dout):
        dq, dk_all, dv_all = scaled_dot_product_attention_backward(dout, cache)
        dk = dk_all.reshape(B, Hkv, group, S, -1).sum(axis=2)                # the sum over each group
        dv = dv_all.reshape(B, Hkv, group, S, -1).sum(axis=2)
        return dq, dk, dv

    return out, weights, backward


@pytest.mark.parametrize("H, Hkv", GROUPINGS)
@pytest.mark.parametrize("kind", MASKS)
def test_gqa_matches_finite_differences(rng, H, Hkv, kind):
    q, k, v = make_inputs(rng, H=H, Hkv=Hkv)
    mask, is_causal, _ = make_mask(kind, rng, 2, H, 3, 5)
    report = gradcheck(grouped_query_attention_forward, grouped_query_attention_backward, [q, k, v],
                       names=["q", "k", "v"], kwargs={"mask": mask, "is_causal": is_causal})
    report.assert_ok()


@pytest.mark.parametrize("sizes", [
    dict(B=1, H=2, Hkv=1, T=1, S=1, Dh=2, Dv=2),    # batch 1, one query, one key, head width 2, multi-query
    dict(B=1, H=3, Hkv=3, T=4, S=4, Dh=1, Dv=1),    # group size 1 = multi-head, head width 1
    dict(B=3, H=4, Hkv=1, T=2, S=6, Dh=2, Dv=3),    # T < S: the queries are the last 2 of 6 positions
])
def test_gqa_odd_sizes_match_finite_differences(rng, sizes):
    q, k, v = make_inputs(rng, **sizes)
    for is_causal in (False, True):
        report = gradcheck(grouped_query_attention_forward, grouped_query_attention_backward, [q, k, v],
                           names=["q", "k", "v"], kwargs={"is_causal": is_causal, "scale": 0.8})
        report.assert_ok()


def test_gqa_dropout_matches_finite_differences(rng):
    q, k, v = make_inputs(rng)
    kwargs = {"is_causal": True, "dropout_p": 0.3, "rng": 5}
    out, weights, _ = grouped_query_attention_forward(q, k, v, **kwargs)
    plain, plain_weights, _ = grouped_query_attention_forward(q, k, v, is_causal=True)
    np.testing.assert_array_equal(weights, plain_weights)          # the weights are returned before dropout
    assert not np.allclose(out, plain)
    gradcheck(grouped_query_attention_forward, grouped_query_attention_backward, [q, k, v], names=["q", "k", "v"],
              kwargs=kwargs).assert_ok()


@pytest.mark.parametrize("H, Hkv", GROUPINGS)
@pytest.mark.parametrize("kind", MASKS)
def test_gqa_equals_copied_keys_with_gradients_summed_over_the_group(rng, H, Hkv, kind):
    q, k, v = make_inputs(rng, H=H, Hkv=Hkv)
    mask, is_causal, _ = make_mask(kind, rng, 2, H, 3, 5)
    dout = rng.standard_normal((2, H, 3, 3))
    out, weights, cache = grouped_query_attention_forward(q, k, v, mask=mask, is_causal=is_causal)
    grads = grouped_query_attention_backward(dout, cache)
    ref_out, ref_weights, ref_backward = reference_by_copying(q, k, v, mask, is_causal)
    np.testing.assert_allclose(out, ref_out, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-13, atol=1e-14)
    ref_grads = ref_backward(dout)
    for number, name in enumerate(("dq", "dk", "dv")):
        np.testing.assert_allclose(grads[number], ref_grads[number], rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H, Hkv", GROUPINGS)
@pytest.mark.parametrize("kind", ["none", "padding", "causal", "additive", "per_head"])
def test_gqa_matches_torch_sdpa_enable_gqa(rng, torch, dtype, H, Hkv, kind):
    """Against torch.nn.functional.scaled_dot_product_attention(..., enable_gqa=True) (T == S, so its
    start-aligned is_causal is ours; its bool mask is True = MAY attend)."""
    T = S = 4
    q, k, v = make_inputs(rng, H=H, Hkv=Hkv, T=T, S=S, dtype=dtype)
    mask, is_causal, _ = make_mask(kind, rng, 2, H, T, S, dtype=dtype)
    dout = rng.standard_normal((2, H, T, 3)).astype(dtype)
    out, _, cache = grouped_query_attention_forward(q, k, v, mask=mask, is_causal=is_causal)
    dq, dk, dv = grouped_query_attention_backward(dout, cache)

    tq, tk, tv = (to_torch(a, requires_grad=True) for a in (q, k, v))
    tmask = None if mask is None else to_torch(~mask if mask.dtype == np.bool_ else mask)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, is_causal=is_causal,
                                                            enable_gqa=True)
    tout.backward(to_torch(dout))
    assert out.dtype == dq.dtype == dk.dtype == dv.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dq, tq.grad, what="dq")
    assert_close(dk, tk.grad, what="dk")
    assert_close(dv, tv.grad, what="dv")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gqa_end_aligned_causal_matches_torch_with_explicit_mask(rng, torch, dtype):
    """T = 2 new queries after 4 cached keys: query t sits at position 4 + t and sees keys 0 .. 4 + t."""
    T, S = 2, 6
    q, k, v = make_inputs(rng, H=4, Hkv=2, T=T, S=S, dtype=dtype)
    np.testing.assert_array_equal(end_aligned_causal_mask(T, S), [[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]])
    dout = rng.standard_normal((2, 4, T, 3)).astype(dtype)
    out, _, cache = grouped_query_attention_forward(q, k, v, is_causal=True)
    dq, dk, dv = grouped_query_attention_backward(dout, cache)
    tq, tk, tv = (to_torch(a, requires_grad=True) for a in (q, k, v))
    may_attend = to_torch(~end_aligned_causal_mask(T, S))
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=may_attend, enable_gqa=True)
    tout.backward(to_torch(dout))
    for name, ours, theirs in (("out", out, tout), ("dq", dq, tq.grad), ("dk", dk, tk.grad), ("dv", dv, tv.grad)):
        assert_close(ours, theirs, what=name)


def test_gqa_fully_masked_rows_give_zeros(rng):
    q, k, v = make_inputs(rng, H=4, Hkv=2)
    mask = np.zeros((2, 4, 3, 5), dtype=bool)
    mask[1, 2, 0] = True                                   # head 2 of sequence 1, query 0: no key at all
    out, weights, cache = grouped_query_attention_forward(q, k, v, mask=mask)
    dq, dk, dv = grouped_query_attention_backward(rng.standard_normal(out.shape), cache)
    assert (out[1, 2, 0] == 0).all() and (weights[1, 2, 0] == 0).all() and (dq[1, 2, 0] == 0).all()
    assert np.isfinite(dk).all() and np.isfinite(dv).all() and (out[1, 3, 0] != 0).any()


def test_gqa_has_no_python_loop():
    """No loop over heads, groups or positions: the grouping is a reshape, the group sum a matmul's inner axis."""
    for function in (grouped_query_attention_forward, grouped_query_attention_backward, gqa._fold_mask):
        tree = ast.parse(inspect.getsource(function))
        loops = [node.lineno for node in ast.walk(tree) if isinstance(node, (ast.For, ast.While, ast.comprehension))]
        assert loops == [], f"{function.__name__}: loops at lines {loops} of its source"


def test_gqa_bad_input_names_argument(rng):
    q, k, v = make_inputs(rng, H=4, Hkv=2)
    with pytest.raises(ValueError, match="k: got 3 key/value heads"):
        grouped_query_attention_forward(q, *make_inputs(rng, H=4, Hkv=3)[1:])
    with pytest.raises(ValueError, match="k: got shape"):
        grouped_query_attention_forward(q, k[..., :3], v)
    with pytest.raises(ValueError, match="v: got shape"):
        grouped_query_attention_forward(q, k, v[:, :, :4])
    with pytest.raises(ValueError, match="q: got shape"):
        grouped_query_attention_forward(q[0], k, v)
    with pytest.raises(ValueError, match="mask"):
        grouped_query_attention_forward(q, k, v, mask=np.zeros((3, 4), dtype=bool))
    with pytest.raises(TypeError, match="mask"):
        grouped_query_attention_forward(q, k, v, mask=np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="is_causal"):
        grouped_query_attention_forward(q, k, v, is_causal=1)
    with pytest.raises(TypeError, match="k"):
        grouped_query_attention_forward(q, k.astype(np.float32), v)

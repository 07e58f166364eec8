r"""Grouped-query attention (GQA): fewer key/value heads than query heads, each shared by a group.

Multi-head attention gives every one of the $H$ query heads its own key and value head. While decoding, the
keys and values of every earlier token are kept (the key/value cache), and reading that cache, not the
arithmetic, is what bounds the speed. Grouped-query attention (Ainslie et al. 2023; Llama 2 70B, Llama 3,
Mistral, Qwen) keeps only $H_{kv}$ key/value heads and lets each serve a GROUP of $G = H / H_{kv}$
consecutive query heads: query head $h$ reads key/value head $\lfloor h / G \rfloor$, as Hugging Face's
``repeat_kv`` lays them out. The cache shrinks by the factor $G$. Multi-query attention (Shazeer 2019) is the
case $H_{kv} = 1$ (all query heads share one key and one value head); $H_{kv} = H$, $G = 1$, is plain
multi-head attention. For query head $h$ of group $j = \lfloor h/G \rfloor$:

$$
A_h = s\, Q_h K_j^\top + M, \qquad O_h = \mathrm{softmax}(A_h)\, V_j, \qquad s = 1/\sqrt{D_h}
$$

**One attention, not a second implementation.** The $G$ query heads of a group all meet the same keys, so
they are read as $G \cdot T$ query rows of ONE head: $Q$ (B, H, T, Dh) is reshaped to (B, Hkv, G*T, Dh) (row
$g T + t$ is head $jG + g$ at position $t$), and the scaled dot-product attention pair of ``attention.py``
runs unchanged on (B, Hkv) heads with $G \cdot T$ queries each. The mask is laid out the same way
(:func:`_fold_mask`), and the output and weights are reshaped back to (B, H, T, ...). Nothing copies the
keys and values $G$ times (Hugging Face's ``repeat_kv`` does), and the matrix products are larger.

**Backward: a shared head sums its group's gradients.** If the keys WERE copied ($K_h = K_j$ for every
$h$ of group $j$), each copy would receive the gradient $dK_h = s\, dA_h^\top Q_h$ of its own head, and
the shared $K_j$, used $G$ times, would receive their sum:

$$
\frac{\partial L}{\partial K_j} = \sum_{h \in j} s\, dA_h^\top Q_h
= s \begin{bmatrix} dA_{jG} \\ \vdots \\ dA_{jG+G-1} \end{bmatrix}^\top
\begin{bmatrix} Q_{jG} \\ \vdots \\ Q_{jG+G-1} \end{bmatrix},
\qquad
\frac{\partial L}{\partial V_j} = \sum_{h \in j} P_h^\top dO_h
$$

and the right-hand side is exactly the product that the attention backward computes on the stacked rows: the
sum over the group is the inner dimension of one ``matmul``, over all $G \cdot T$ rows. No loop over heads or
groups, and no separate sum. The query gradients are per head, as in multi-head attention, and are reshaped
back to (B, H, T, Dh). The cache is the attention pair's cache and the shape (B, H, T). The derivation is in
``docs/derivations/gqa.md``.

**Causal masking, aligned to the end.** With ``is_causal=True`` the $T$ queries are the LAST $T$ of the
$S$ key positions (query $t$ sits at position $S - T + t$) and may not attend to any later key. With
$T = S$ this is the usual causal mask; with $T < S$ it is what decoding with a cache of $S - T$ earlier keys
needs. (``torch.nn.functional.scaled_dot_product_attention``'s ``is_causal`` aligns to the start instead; the
two agree when $T = S$.)

Shapes: q (B, H, T, Dh); k (B, Hkv, S, Dh); v (B, Hkv, S, Dv); mask broadcastable to (B, H, T, S);
out (B, H, T, Dv); weights (B, H, T, S).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import Array, get_array_module
from ..checks import (
    check_array,
    check_broadcastable,
    check_float,
    check_ndim,
    check_same_dtype,
    check_upstream,
    upstream_spec,
)
from .attention import scaled_dot_product_attention_backward, scaled_dot_product_attention_forward


def _check_gqa(q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool) -> None:
    for name, x, meaning in (("q", q, "(B, H, T, Dh)"), ("k", k, "(B, Hkv, S, Dh)"), ("v", v, "(B, Hkv, S, Dv)")):
        check_float(name, x)
        check_ndim(name, x, 4, meaning)
    check_same_dtype(("q", "k", "v"), q, k, v)
    B, H, _, Dh = q.shape
    if k.shape[0] != B or k.shape[3] != Dh:
        raise ValueError(f"k: got shape {tuple(k.shape)}; expected (B, Hkv, S, Dh) with B = {B} and Dh = {Dh} "
                         f"to match q {tuple(q.shape)}")
    if k.shape[1] < 1 or H % k.shape[1]:
        raise ValueError(f"k: got {k.shape[1]} key/value heads (shape {tuple(k.shape)}); expected a divisor of "
                         f"the H = {H} query heads, so that each key/value head serves a group of H / Hkv")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v: got shape {tuple(v.shape)}; expected (B, Hkv, S, Dv) with (B, Hkv, S) = "
                         f"{tuple(k.shape[:3])} to match k")
    if mask is not None:
        check_array("mask", mask)
        if mask.dtype != np.bool_:
            check_float("mask", mask)
            check_same_dtype(("q", "mask"), q, mask)
        check_broadcastable("mask", mask.shape, (B, H, q.shape[2], k.shape[2]), "(B, H, T, S)")
    if not isinstance(is_causal, (bool, np.bool_)):
        raise TypeError(f"is_causal: got {type(is_causal).__name__}; expected a bool")


def end_aligned_causal_mask(T: int, S: int, xp: Any = np) -> Array:
    """The causal mask of T queries that are the last T of S positions: True where key j > S - T + query t.

    Inputs:
        T: number of query positions; S: number of key positions
        xp: the array module to build it with

    Returns:
        mask: bool (T, S), True = may NOT attend; with T == S the usual ``triu(ones, k=1)``
    """
    return xp.triu(xp.ones((T, S), dtype=bool), k=1 + S - T)   # (T, S)


def _fold_mask(mask: Array, num_kv_heads: int, group: int, T: int, xp: Any) -> Array:
    """Lay a mask broadcastable to (B, H, T, S) out like the folded queries: broadcastable to (B, Hkv, G*T, S).

    A mask that is the same for every head and query, (b, 1, 1, s), needs nothing. Otherwise the head axis
    is split into (Hkv, G) (or stays 1 when shared by all heads), the (G, T) rows are broadcast to full size
    and joined: a copy of the mask, never of the scores.
    """
    mask = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))  # (..., t, s) -> (b, h, t, s)
    b, h, t, s = mask.shape
    if h == 1 and t == 1:
        return mask                                              # (b, 1, 1, s): broadcasts over every row
    kv_axis = 1 if h == 1 else num_kv_heads
    split = mask.reshape(b, kv_axis, h // kv_axis, t, s)         # (b, h, t, s) -> (b, 1 or Hkv, 1 or G, t, s)
    full = xp.broadcast_to(split, (b, kv_axis, group, T, s))    # -> (b, 1 or Hkv, G, T, s), a view
    return full.reshape(b, kv_axis, group * T, s)                # -> (b, 1 or Hkv, G*T, s)


def grouped_query_attention_forward(q: Array, k: Array, v: Array, mask: Array | None = None,
                                    is_causal: bool = False, dropout_p: float = 0.0, rng: Any = None,
                                    scale: float | None = None) -> tuple[Array, Array, dict]:
    """Attention of H query heads over Hkv shared key/value heads (query head h reads head h // (H / Hkv)).

    Inputs:
        q: (B, H, T, Dh) queries
        k: (B, Hkv, S, Dh) keys, Hkv a divisor of H (Hkv = 1: multi-query; Hkv = H: multi-head)
        v: (B, Hkv, S, Dv) values
        mask: None; bool, True = may NOT attend; or float (q's dtype) added to the scores; broadcastable to
            (B, H, T, S), e.g. a key padding mask (B, 1, 1, S) or a (T, S) mask
        is_causal: also forbid keys after each query, the T queries being the last T of the S positions
            (:func:`end_aligned_causal_mask`)
        dropout_p, rng: attention dropout, as in
            :func:`~numpy_transformer.functional.attention.scaled_dot_product_attention_forward`
        scale: multiplies the scores; default ``1/sqrt(Dh)``

    Returns:
        out: (B, H, T, Dv)
        weights: (B, H, T, S) the softmax probabilities before dropout (a view of the cached array)
        cache: dict with ``attention`` (the scaled dot-product attention cache, on (B, Hkv, G*T, ...) arrays),
            ``shape`` = (B, H, T) and ``out_spec`` (the shape and dtype of out)
    """
    _check_gqa(q, k, v, mask, is_causal)
    xp = get_array_module(q, k, v, mask)
    B, H, T, Dh = q.shape
    num_kv_heads, S, Dv = k.shape[1], k.shape[2], v.shape[3]
    group = H // num_kv_heads

    if is_causal:
        forbidden = end_aligned_causal_mask(T, S, xp)            # (T, S) bool
        if mask is None:
            mask = forbidden
        elif mask.dtype == np.bool_:
            mask = mask | forbidden                              # broadcasts, e.g. (B, 1, 1, S) -> (B, 1, T, S)
        else:
            minus_inf, zero = xp.asarray(-math.inf, dtype=q.dtype), xp.zeros((), dtype=q.dtype)
            mask = mask + xp.where(forbidden, minus_inf, zero)   # additive mask, -inf where forbidden
    folded_mask = None if mask is None else _fold_mask(mask, num_kv_heads, group, T, xp)

    # the G query heads of a group become G*T query rows of one head: row g*T + t is head j*G + g, position t
    q_rows = q.reshape(B, num_kv_heads, group * T, Dh)           # (B, H, T, Dh) -> (B, Hkv, G*T, Dh)
    out_rows, weights_rows, attention_cache = scaled_dot_product_attention_forward(
        q_rows, k, v, mask=folded_mask, dropout_p=dropout_p, rng=rng, scale=scale,
    )                                                            # (B, Hkv, G*T, Dv), (B, Hkv, G*T, S)
    out = out_rows.reshape(B, H, T, Dv)                          # (B, Hkv, G*T, Dv) -> (B, H, T, Dv), a view
    weights = weights_rows.reshape(B, H, T, S)                   # (B, Hkv, G*T, S) -> (B, H, T, S), a view
    return out, weights, {"attention": attention_cache, "shape": (B, H, T), "out_spec": upstream_spec(out)}


def grouped_query_attention_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Gradients of grouped-query attention with respect to q, k and v.

    Inputs:
        dout: (B, H, T, Dv) upstream gradient
        cache: from :func:`grouped_query_attention_forward`

    Returns:
        dq: (B, H, T, Dh); dk: (B, Hkv, S, Dh) and dv: (B, Hkv, S, Dv), each summed over the group of query
        heads that shares the key/value head
    """
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: reuse the attention backward on the stacked rows; where does the sum over each group happen?
    B, H, T = cache["shape"]
    num_kv_heads = cache["attention"]["k"].shape[1]
    # forward: out = out_rows.reshape(B, H, T, Dv)
    dout_rows = dout.reshape(B, num_kv_heads, (H // num_kv_heads) * T, dout.shape[-1])  # -> (B, Hkv, G*T, Dv)
    # forward: out_rows = attention(q_rows, k, v). Its dk = s dA^T q_rows and dv = P^T dout_rows contract
    # over all G*T rows: the sum of the shared head's gradients over its group is this product's inner axis.
    dq_rows, dk, dv = scaled_dot_product_attention_backward(dout_rows, cache["attention"])
    # forward: q_rows = q.reshape(B, Hkv, G*T, Dh)
    dq = dq_rows.reshape(B, H, T, dq_rows.shape[-1])             # (B, Hkv, G*T, Dh) -> (B, H, T, Dh)
    return dq, dk, dv
    # END EXERCISE

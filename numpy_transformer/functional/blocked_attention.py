r"""Memory-efficient attention: the same $\mathrm{softmax}(s\,QK^\top + M)\,V$, computed block by block.

The plain pair in :mod:`~numpy_transformer.functional.attention` forms the whole score matrix, (..., T, S), and
keeps the probabilities for the backward pass: memory grows with $T \cdot S$, 1 GiB of float32 per (batch,
head) at $T = S = 16384$. Here the queries are cut into blocks of $T_b$ rows and the keys into blocks of $S_b$
rows, and only one (..., Tb, Sb) block of scores exists at a time (FlashAttention, Dao et al. 2022).

Forward: the online softmax. For one query row with scores $A_j$ ($A = s\,QK^\top + M$, as in the plain pair),
the keys arrive block after block. Keep three running quantities, the largest score so far $m$, the sum of
exponentials $\ell = \sum_j e^{A_j - m}$ and the unnormalised output $a = \sum_j e^{A_j - m} V_j$. When block $J$
of scores arrives, with $m' = \max(m, \max_{j \in J} A_j)$:

$$
\ell \leftarrow e^{m - m'} \ell + \sum_{j \in J} e^{A_j - m'}, \qquad
a \leftarrow e^{m - m'} a + \sum_{j \in J} e^{A_j - m'} V_j, \qquad m \leftarrow m'
$$

After the last block $O = a / \ell$, exactly the softmax-weighted average, with every exponent $\le 0$ as in the
plain softmax. Kept for the backward: the row statistic $L = m + \log \ell$ (the log-sum-exp of the row, one
number per query) and $O$; both are (..., T, ...) arrays: memory grows linearly in T.

Backward: recomputation. The probabilities are never stored; block by block they are rebuilt from the saved
statistic, $P_{ij} = e^{A_{ij} - L_i}$ (the softmax, since $e^{L_i} = \sum_j e^{A_{ij}}$), and the plain
backward runs on the block, with the row sum $r_i = \sum_c dO_{ic} O_{ic}$ computed once beforehand:

$$
dV_J \mathrel{+}= P^\top dO, \qquad dP = dO\, V_J^\top, \qquad dA = P \odot (dP - r), \qquad
dQ \mathrel{+}= s\, dA\, K_J, \qquad dK_J \mathrel{+}= s\, dA^\top Q
$$

The price is one more product $QK^\top$ and one more exponential per block; the gain is memory linear in the
sequence length. Derived step by step in ``docs/derivations/blocked_attention.md``.

Masks as in the plain pair: a boolean ``mask`` is True where a query may NOT attend, a float ``mask`` is added
to the scores, ``is_causal`` forbids the keys after each query's position; a key block that is entirely after
a query block under ``is_causal`` is skipped, never computed. A row with every key forbidden gives zero output
and zero gradient. No attention dropout (the modules use the plain pair when it is active).

Shapes: q (..., T, Dh), k (..., S, Dh), v (..., S, Dv); out (..., T, Dv); Tb and Sb are the lengths of a query
block and a key block (``query_block``, ``key_block``; shorter at the end).
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
    check_positive_int,
    check_same_dtype,
    check_upstream,
    upstream_spec,
)
from ..grad_mode import check_cache, is_grad_enabled
from .attention import _check_qkv

#: positions of a query block and of a key block: a (B, H, 1024, 256) float32 block of scores is 8 MiB at
#: B*H = 8, and each matrix product of a block is large enough to keep BLAS busy
QUERY_BLOCK, KEY_BLOCK = 1024, 256


def _check_blocked(q: Array, k: Array, v: Array, mask: Array | None, is_causal: bool, scale: float | None,
                   query_block: int, key_block: int) -> float:
    """The argument checks of :func:`blocked_attention_forward`; returns the scale as a Python float."""
    _check_qkv(q, k, v)
    if not isinstance(is_causal, (bool, np.bool_)):
        raise TypeError(f"is_causal: got {type(is_causal).__name__}; expected a bool")
    check_positive_int("query_block", query_block)
    check_positive_int("key_block", key_block)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    elif isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale: got {type(scale).__name__}; expected a real number (or None for 1/sqrt(Dh))")
    if mask is not None:
        check_array("mask", mask)
        if mask.dtype != np.bool_:
            check_float("mask", mask)
            check_same_dtype(("q", "mask"), q, mask)
        scores_shape = tuple(q.shape[:-2]) + (q.shape[-2], k.shape[-2])
        check_broadcastable("mask", mask.shape, scores_shape, "(..., T, S)")
    return float(scale)


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of ``size`` positions covering ``range(n)``."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _block_penalty(mask: Array | None, is_causal: bool, rows: tuple[int, int], cols: tuple[int, int], dtype: Any,
                   xp: Any) -> Array | None:
    """What the mask adds to the block of scores ``rows`` x ``cols``: 0 / -inf (a bool mask, the causal mask)
    or the float mask's values; None when nothing is masked. Broadcastable to (..., Tb, Sb)."""
    (i0, i1), (j0, j1) = rows, cols
    penalty = None
    if mask is not None:
        # an axis of size 1 broadcasts over all positions: it is not sliced
        block = mask[..., slice(None) if mask.shape[-2] == 1 else slice(i0, i1),
                     slice(None) if mask.shape[-1] == 1 else slice(j0, j1)]
        if block.dtype == np.bool_:
            penalty = xp.where(block, xp.asarray(-math.inf, dtype=dtype), xp.zeros((), dtype=dtype))
        else:
            penalty = block
    if is_causal and j1 - 1 > i0:                               # some key of the block is after some query
        after = xp.arange(j0, j1)[None, :] > xp.arange(i0, i1)[:, None]  # (Tb, Sb) bool, key j > query i
        causal = xp.where(after, xp.asarray(-math.inf, dtype=dtype), xp.zeros((), dtype=dtype))
        penalty = causal if penalty is None else penalty + causal
    return penalty


def _skipped(is_causal: bool, rows: tuple[int, int], cols: tuple[int, int]) -> bool:
    """Under ``is_causal``, a key block that starts after the last query of the query block is all forbidden."""
    return is_causal and cols[0] > rows[1] - 1


def blocked_attention_forward(q: Array, k: Array, v: Array, mask: Array | None = None, is_causal: bool = False,
                              scale: float | None = None, query_block: int = QUERY_BLOCK,
                              key_block: int = KEY_BLOCK) -> tuple[Array, dict]:
    r"""Attention ``softmax(scale * q k^T + mask) v`` with an online softmax over blocks of keys.

    Inputs:
        q: (..., T, Dh) queries (usually (B, H, T, Dh))
        k: (..., S, Dh) keys
        v: (..., S, Dv) values
        mask: None; a bool array, True = may NOT attend; or a float array (q's dtype) added to the scores,
            ``-inf`` allowed. Broadcastable to (..., T, S).
        is_causal: also forbid keys after each query's position
        scale: multiplies the scores; default ``1/sqrt(Dh)``
        query_block, key_block: positions of a query block and of a key block

    Returns:
        out: (..., T, Dv), equal to the plain pair's up to rounding
        cache: dict with ``q_scaled`` = scale * q, ``k``, ``v``, ``mask``, ``is_causal``, ``scale``, the
            block sizes ``blocks``, ``out`` and ``logsumexp`` (..., T, 1), the log-sum-exp $L$ of each row of
            scores (0 for a row with every key forbidden). Nothing of size T x S. None under ``no_grad()``
    """
    scale = _check_blocked(q, k, v, mask, is_causal, scale, query_block, key_block)
    xp = get_array_module(q, k, v, mask)
    T, S, Dv = q.shape[-2], k.shape[-2], v.shape[-1]
    lead = tuple(q.shape[:-2])
    q_scaled = q * scale                                         # (..., T, Dh), the scale folded into q
    k_t = xp.swapaxes(k, -1, -2)                                 # (..., S, Dh) -> (..., Dh, S), a view
    out = xp.empty(lead + (T, Dv), dtype=q.dtype)                # (..., T, Dv)
    logsumexp = xp.empty(lead + (T, 1), dtype=q.dtype)           # (..., T, 1)

    for rows in _blocks(T, query_block):                         # a loop over blocks of queries
        i0, i1 = rows
        q_block = q_scaled[..., i0:i1, :]                        # (..., Tb, Dh)
        row_max = xp.full(lead + (i1 - i0, 1), -math.inf, dtype=q.dtype)  # m, (..., Tb, 1)
        row_sum = xp.zeros(lead + (i1 - i0, 1), dtype=q.dtype)   # l, (..., Tb, 1)
        acc = xp.zeros(lead + (i1 - i0, Dv), dtype=q.dtype)      # a, (..., Tb, Dv)
        for cols in _blocks(S, key_block):                       # ... and over blocks of keys
            if _skipped(is_causal, rows, cols):
                break                                            # every later key block is after the queries too
            j0, j1 = cols
            scores = q_block @ k_t[..., :, j0:j1]                # (..., Tb, Dh) @ (..., Dh, Sb) -> (..., Tb, Sb)
            penalty = _block_penalty(mask, is_causal, rows, cols, q.dtype, xp)
            if penalty is not None:
                scores += penalty                                # (..., Tb, Sb), in place
            # m' = max(m, rowmax(block)); a row with no allowed key so far keeps m' = -inf and is shifted by 0
            new_max = xp.maximum(row_max, scores.max(axis=-1, keepdims=True))  # (..., Tb, 1)
            shift = xp.where(xp.isfinite(new_max), new_max, xp.zeros((), dtype=q.dtype))  # (..., Tb, 1)
            rescale = xp.exp(row_max - shift)                    # e^{m - m'}, (..., Tb, 1); 0 while m = -inf
            # Plainly p = exp(scores - m'), written over the scores: one (..., Tb, Sb) array, not two
            probs = xp.subtract(scores, shift, out=scores)       # (..., Tb, Sb)
            xp.exp(probs, out=probs)
            row_sum *= rescale                                   # l <- e^{m - m'} l + rowsum(p)
            row_sum += probs.sum(axis=-1, keepdims=True)
            acc *= rescale                                       # a <- e^{m - m'} a + p V_J
            acc += probs @ v[..., j0:j1, :]                      # (..., Tb, Sb) @ (..., Sb, Dv) -> (..., Tb, Dv)
            row_max = new_max
        empty = row_sum == 0                                     # (..., Tb, 1) rows with every key forbidden
        safe_sum = xp.where(empty, xp.ones((), dtype=q.dtype), row_sum)
        out[..., i0:i1, :] = acc / safe_sum                      # O = a / l; an empty row stays 0
        # L = m + log l; an empty row gets 0 (its scores are all -inf, so exp(A - L) = 0 for any finite L)
        shift = xp.where(empty, xp.zeros((), dtype=q.dtype), row_max)
        logsumexp[..., i0:i1, :] = shift + xp.log(safe_sum)
    if not is_grad_enabled():
        return out, None
    cache = {"q_scaled": q_scaled, "k": k, "v": v, "mask": mask, "is_causal": bool(is_causal), "scale": scale,
             "blocks": (query_block, key_block), "out": out, "logsumexp": logsumexp}
    return out, cache


def blocked_attention_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    r"""Gradients of blocked attention with respect to q, k and v, recomputing each block of probabilities.

    Inputs:
        dout: (..., T, Dv) upstream gradient, the shape and dtype of the forward's ``out``
        cache: from :func:`blocked_attention_forward`

    Returns:
        dq: (..., T, Dh), dk: (..., S, Dh), dv: (..., S, Dv)
    """
    check_cache("blocked_attention_backward", cache)
    check_upstream("dout", dout, upstream_spec(cache["out"]))
    # EXERCISE: for each pair of blocks, rebuild the probabilities from the cached logsumexp, then undo
    # out = P V, the softmax and the scores on the block, adding into dq, dk and dv.
    q_scaled, k, v, mask = cache["q_scaled"], cache["k"], cache["v"], cache["mask"]
    is_causal, (query_block, key_block), logsumexp = cache["is_causal"], cache["blocks"], cache["logsumexp"]
    xp = get_array_module(dout, q_scaled)
    T, S = q_scaled.shape[-2], k.shape[-2]
    k_t, v_t = xp.swapaxes(k, -1, -2), xp.swapaxes(v, -1, -2)   # (..., Dh, S), (..., Dv, S), views
    dq = xp.zeros(q_scaled.shape, dtype=q_scaled.dtype)         # (..., T, Dh)
    dk = xp.zeros(k.shape, dtype=k.dtype)                       # (..., S, Dh)
    dv = xp.zeros(v.shape, dtype=v.dtype)                       # (..., S, Dv)
    # the softmax row sum r = rowsum(dP * P) = rowsum(dO * O), once for all blocks (as in the plain backward)
    row_dot = (dout * cache["out"]).sum(axis=-1, keepdims=True)  # (..., T, Dv) -> (..., T, 1)

    for rows in _blocks(T, query_block):
        i0, i1 = rows
        q_block, dout_block = q_scaled[..., i0:i1, :], dout[..., i0:i1, :]  # (..., Tb, Dh), (..., Tb, Dv)
        for cols in _blocks(S, key_block):
            if _skipped(is_causal, rows, cols):
                break
            j0, j1 = cols
            # forward, recomputed: P = exp(scale * q k^T + mask - L), the block's softmax probabilities
            probs = q_block @ k_t[..., :, j0:j1]                 # (..., Tb, Dh) @ (..., Dh, Sb) -> (..., Tb, Sb)
            penalty = _block_penalty(mask, is_causal, rows, cols, q_scaled.dtype, xp)
            if penalty is not None:
                probs += penalty
            probs -= logsumexp[..., i0:i1, :]                    # Plainly probs = exp(scores - L), in place
            xp.exp(probs, out=probs)                             # (..., Tb, Sb)
            # forward: out = P V
            dv[..., j0:j1, :] += xp.swapaxes(probs, -1, -2) @ dout_block  # (..., Sb, Tb) @ (..., Tb, Dv)
            dscores = dout_block @ v_t[..., :, j0:j1]            # dP = dO V^T, (..., Tb, Dv) @ (..., Dv, Sb)
            # forward: P = softmax(scores); Plainly dA = P * (dP - r), in place in dP
            dscores -= row_dot[..., i0:i1, :]
            dscores *= probs                                     # (..., Tb, Sb)
            # forward: scores = (scale * q) k^T + mask
            dq[..., i0:i1, :] += dscores @ k[..., j0:j1, :]      # (..., Tb, Sb) @ (..., Sb, Dh) -> (..., Tb, Dh)
            dk[..., j0:j1, :] += xp.swapaxes(dscores, -1, -2) @ q_block  # (..., Sb, Tb) @ (..., Tb, Dh)
    dq *= cache["scale"]                                         # d(scale * q) / dq = scale
    return dq, dk, dv
    # END EXERCISE

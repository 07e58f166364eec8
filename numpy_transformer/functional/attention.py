r"""Scaled dot-product attention, with masks and dropout, and its backward pass.

Each query asks every key how well it matches (a dot product), turns the matches into probabilities with a
softmax, and returns the probability-weighted average of the values ("Attention Is All You Need", eq. 1).
For $T$ queries and $S$ keys:

$$
A = s\, Q K^\top + M, \qquad P = \mathrm{softmax}_{\text{rows}}(A), \qquad
\tilde{P} = P \odot Z, \qquad O = \tilde{P} V
$$

with $A$ the $T \times S$ matrix of scores, $s = 1/\sqrt{D_h}$ by default (so the scores keep unit variance
when $q$ and $k$ do), $M$ the mask and $Z$ the dropout mask: $Z = \mathrm{keep} / (1 - p)$ with
$\mathrm{keep} \sim \mathrm{Bernoulli}(1 - p)$ (inverted dropout), or all ones without dropout. Every
matrix here carries leading axes (usually (B, H)): the heads are just one more batch axis of one ``matmul``.

Masks. A boolean ``mask`` is True where a query may NOT attend to a key (``torch.nn.MultiheadAttention``'s
convention, the opposite of ``torch.nn.functional.scaled_dot_product_attention``'s boolean mask); those
scores become $-\infty$. A float ``mask`` is added to the scores (0 = keep, $-\infty$ = forbid, anything in
between biases). ``is_causal=True`` also forbids every key after the query's own position
(:func:`causal_mask`). A $-\infty$ score gets probability exactly 0, so masking needs nothing special in the
backward pass: a zero probability passes a zero gradient.

A query row whose keys are ALL forbidden has no meaningful softmax (0/0). We define its weights, its output
and its gradient to be exactly zero, never NaN (see :mod:`numpy_transformer.functional.softmax`); PyTorch
gives NaN there. (A large finite penalty such as $-10^9$ on every key is not "all forbidden": the softmax is
then uniform, as in PyTorch.)

No keys at all (S = 0) is the same case for every query: as in PyTorch, the output is zeros (..., T, Dv), the
weights an empty (..., T, 0) array, and the query gradient zero. No queries (T = 0) gives empty arrays.

Backward. With $dO = \partial L / \partial O$, and $dA$, $dP$ ... the gradients of the loss with respect to
each matrix, undo the forward lines from the last to the first:

- $O = \tilde{P} V$: a matrix product, so $dV = \tilde{P}^\top dO$ $(S \times D_v)$ and
  $d\tilde{P} = dO\, V^\top$ $(T \times S)$.
- $\tilde{P} = P \odot Z$: elementwise, so $dP = d\tilde{P} \odot Z$.
- $P = \mathrm{softmax}(A)$ row by row: $dA = P \odot (dP - \mathrm{rowsum}(dP \odot P))$ (the closed form
  derived in ``docs/derivations/softmax.md``; no Jacobian). The row sum is cheaper than it looks,

  $$
  \mathrm{rowsum}(dP \odot P) = \mathrm{rowsum}(d\tilde{P} \odot \tilde{P})
  = \mathrm{rowsum}(dO \odot \tilde{P} V) = \mathrm{rowsum}(dO \odot O),
  $$

  a sum over the $D_v$ output features instead of the $S$ keys (the trick of FlashAttention).
- $A = s\, Q K^\top + M$: the mask is a constant, so $dQ = s\, dA\, K$ $(T \times D_h)$ and
  $dK = s\, dA^\top Q$ $(S \times D_h)$.

A masked score has $P = 0$, hence $dA = 0$ there: the mask is already in $P$. The full derivation is in
``docs/derivations/attention.md``.

Shapes: q (..., T, Dh), k (..., S, Dh), v (..., S, Dv); out (..., T, Dv); weights (..., T, S).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import Array, get_array_module, seeded_generator
from ..checks import (
    check_array,
    check_broadcastable,
    check_float,
    check_probability,
    check_same_dtype,
    check_upstream,
    upstream_spec,
)
from ..grad_mode import check_cache, is_grad_enabled
from .softmax import softmax_forward


def causal_mask(T: int, S: int, xp: Any = np) -> Array:
    """The causal mask: True above the diagonal, i.e. where key position j > query position i (may NOT attend).

    Inputs:
        T: number of query positions
        S: number of key positions
        xp: the array module (``numpy`` or ``cupy``) to build it with

    Returns:
        mask: bool (T, S); ``mask[i, j] = j > i``
    """
    for name, n in (("T", T), ("S", S)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name}: got {n!r}; expected a non-negative integer")
    return xp.triu(xp.ones((T, S), dtype=bool), k=1)            # (T, S)


def _check_qkv(q: Array, k: Array, v: Array) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_float(name, x)
        if x.ndim < 2:
            raise ValueError(f"{name}: got shape {tuple(x.shape)} ({x.ndim}-D); expected (..., positions, width)")
    check_same_dtype(("q", "k", "v"), q, k, v)
    if k.ndim != q.ndim or k.shape[:-2] != q.shape[:-2]:
        raise ValueError(f"k: got shape {tuple(k.shape)}; expected leading axes {tuple(q.shape[:-2])} "
                         f"to match q {tuple(q.shape)}, so (..., S, Dh)")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k: got shape {tuple(k.shape)}; expected last axis Dh = {q.shape[-1]} to match q")
    if v.ndim != q.ndim or v.shape[:-2] != q.shape[:-2]:
        raise ValueError(f"v: got shape {tuple(v.shape)}; expected leading axes {tuple(q.shape[:-2])} "
                         f"to match q {tuple(q.shape)}, so (..., S, Dv)")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"v: got shape {tuple(v.shape)}; expected S = {k.shape[-2]} positions to match k")


def scaled_dot_product_attention_forward(q: Array, k: Array, v: Array, mask: Array | None = None,
                                         is_causal: bool = False, dropout_p: float = 0.0,
                                         rng: int | np.random.Generator | None = None,
                                         scale: float | None = None) -> tuple[Array, Array, dict]:
    """Attention ``dropout(softmax(scale * q k^T + mask)) v``.

    Inputs:
        q: (..., T, Dh) queries (usually (B, H, T, Dh))
        k: (..., S, Dh) keys
        v: (..., S, Dv) values
        mask: None; a bool array, True = may NOT attend; or a float array (q's dtype) added to the scores,
            ``-inf`` allowed. Broadcastable to (..., T, S); e.g. a key padding mask (B, 1, 1, S) or a
            causal mask (T, S).
        is_causal: also forbid keys after each query's position (:func:`causal_mask` (T, S))
        dropout_p: probability of zeroing each attention weight (the kept ones are scaled by 1/(1-p))
        rng: int seed, Generator of q's array module, or None; used only when ``dropout_p > 0``
        scale: multiplies the scores; default ``1/sqrt(Dh)``

    Returns:
        out: (..., T, Dv)
        weights: (..., T, S) the softmax probabilities BEFORE dropout (rows sum to 1, or are all 0 when
            every key of the row is masked)
        cache: dict with ``q_scaled`` = scale * q, ``k``, ``v``, ``scale``, ``weights`` (..., T, S),
            ``dropped`` (..., T, S) = the weights after dropout, ``keep_scale`` (..., T, S) = the dropout
            mask ``keep / (1 - p)`` or None without dropout, and ``out`` (for the softmax row sum). The
            returned ``out`` and ``weights`` are these cached arrays: do not modify them in place. None under
            ``no_grad()``
    """
    _check_qkv(q, k, v)
    check_probability("dropout_p", dropout_p)
    if not isinstance(is_causal, (bool, np.bool_)):
        raise TypeError(f"is_causal: got {type(is_causal).__name__}; expected a bool")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    elif isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale: got {type(scale).__name__}; expected a real number (or None for 1/sqrt(Dh))")
    scale = float(scale)  # a Python float: it never upcasts float32 scores
    xp = get_array_module(q, k, v, mask)
    T, S = q.shape[-2], k.shape[-2]
    scores_shape = tuple(q.shape[:-2]) + (T, S)
    if mask is not None:
        check_array("mask", mask)
        if mask.dtype != np.bool_:
            check_float("mask", mask)
            check_same_dtype(("q", "mask"), q, mask)
        check_broadcastable("mask", mask.shape, scores_shape, "(..., T, S)")

    # forward: scores = scale * q @ k^T. The scale is folded into q, a (T, Dh) pass instead of a (T, S)
    # one; q_scaled is also contiguous, and the backward reuses it for dk.
    q_scaled = q * scale                                         # (..., T, Dh)
    scores = q_scaled @ xp.swapaxes(k, -1, -2)                  # (..., T, Dh) @ (..., Dh, S) -> (..., T, S)
    forbidden = causal_mask(T, S, xp) if is_causal else None     # (T, S) or None
    if mask is not None and mask.dtype == np.bool_:
        forbidden = mask if forbidden is None else (mask | forbidden)  # broadcasts to (..., T, S)
    elif mask is not None:
        scores += mask                                          # (..., T, S), additive mask, in place
    if forbidden is not None:
        # Plainly scores = where(forbidden, -inf, scores). Adding -inf (and 0 elsewhere) gives the same
        # scores in place, and the 0 / -inf array keeps the mask's small shape, e.g. (T, S) or (B, 1, 1, S).
        penalty = xp.where(forbidden, xp.asarray(-math.inf, dtype=scores.dtype),
                           xp.zeros((), dtype=scores.dtype))    # shape of forbidden, q's dtype
        scores += penalty                                       # (..., T, S), in place
    # the scores are not needed after the softmax, so it overwrites them: one (..., T, S) array, not two
    weights, softmax_cache = softmax_forward(scores, axis=-1, out=scores)  # (..., T, S); all -inf row -> 0

    if dropout_p > 0:
        generator = seeded_generator(rng, xp)
        keep = generator.random(weights.shape) >= dropout_p    # (..., T, S) bool, True with probability 1 - p
        keep_scale = keep.astype(weights.dtype)                 # (..., T, S)
        keep_scale *= 1.0 / (1.0 - dropout_p)                   # keep / (1 - p), inverted dropout
        dropped = weights * keep_scale                          # (..., T, S); weights stay pre-dropout
    else:
        keep_scale = None
        dropped = weights
    out = dropped @ v                                           # (..., T, S) @ (..., S, Dv) -> (..., T, Dv)
    if not is_grad_enabled():
        return out, weights, None
    cache = {"q_scaled": q_scaled, "k": k, "v": v, "scale": scale, "weights": weights,
             "dropped": dropped, "keep_scale": keep_scale, "out": out}
    return out, weights, cache


def scaled_dot_product_attention_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Gradients of attention with respect to q, k and v.

    Inputs:
        dout: (..., T, Dv) upstream gradient, the shape and dtype of the forward's ``out``
        cache: from :func:`scaled_dot_product_attention_forward`

    Returns:
        dq: (..., T, Dh), dk: (..., S, Dh), dv: (..., S, Dv)
    """
    check_cache("scaled_dot_product_attention_backward", cache)
    check_upstream("dout", dout, upstream_spec(cache["out"]))
    # EXERCISE: undo out = dropped @ v, the dropout, the softmax and the scores, giving dq, dk, dv.
    q_scaled, k, v, scale = cache["q_scaled"], cache["k"], cache["v"], cache["scale"]
    dropped, keep_scale = cache["dropped"], cache["keep_scale"]
    xp = get_array_module(dout, q_scaled)

    # forward: out = dropped @ v
    dv = xp.swapaxes(dropped, -1, -2) @ dout                    # (..., S, T) @ (..., T, Dv) -> (..., S, Dv)
    ddropped = dout @ xp.swapaxes(v, -1, -2)                    # (..., T, Dv) @ (..., Dv, S) -> (..., T, S)

    # forward: dropped = weights * keep_scale (ddropped is our own array: scaled in place)
    dweights = ddropped if keep_scale is None else xp.multiply(ddropped, keep_scale, out=ddropped)  # (..., T, S)

    # forward: weights = softmax(scores); dA = P * (dP - rowsum(dP * P)), zero on masked entries and rows.
    # The row sum needs no (T, S) pass: rowsum(dP * P) = rowsum(dO * out), a (T, Dv) one (the identity
    # FlashAttention uses; derived in docs/derivations/attention.md). Plainly, with the softmax pair:
    # dscores = softmax_backward(dweights, softmax_cache). dweights is our own array: updated in place.
    row_sum = (dout * cache["out"]).sum(axis=-1, keepdims=True)  # (..., T, Dv) -> (..., T, 1)
    dscores = dweights
    dscores -= row_sum                                          # (..., T, S), dP - rowsum(dP * P)
    dscores *= cache["weights"]                                 # (..., T, S), P * (...)

    # forward: scores = (scale * q) @ k^T (+ mask, a constant; -inf entries already have dscores = 0)
    dq = dscores @ k                                            # (..., T, S) @ (..., S, Dh) -> (..., T, Dh)
    dq *= scale                                                 # d(scale * q) / dq = scale
    dk = xp.swapaxes(dscores, -1, -2) @ q_scaled                # (..., S, T) @ (..., T, Dh) -> (..., S, Dh)
    return dq, dk, dv
    # END EXERCISE

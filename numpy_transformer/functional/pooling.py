r"""Sentence vectors from token vectors: mean pooling over the real tokens, and scaling to unit length.

Sentence embeddings (sentence-transformers' ``all-MiniLM-L6-v2``) are the mean of the token vectors over the
real (non-padding) tokens, scaled to unit length. With $a_{bt}$ = 1 for a token and 0 for padding:

$$
m_b = \frac{\sum_t a_{bt}\, h_{bt}}{\max(\sum_t a_{bt},\ 10^{-9})}, \qquad
e_b = \frac{m_b}{\max(\lVert m_b \rVert_2,\ \epsilon)}, \quad \epsilon = 10^{-12}
$$

Backward, with upstream gradient $g$:

- mean pooling is linear in $h$: $\partial L / \partial h_{bt} = a_{bt}\, g_b / \mathrm{count}_b$, so padding
  positions get zero;
- normalization: with $n = \lVert m \rVert$ above the floor, $\partial e / \partial m = (I - e e^\top) / n$, so
  $\partial L / \partial m = (g - e\,(e \cdot g)) / n$ (the part of $g$ along $e$ only changes the length,
  which is divided out); below the floor the map is $m / \epsilon$, linear, and the gradient is $g / \epsilon$.

Shapes: hidden (B, T, D), attention_mask (B, T), pooled (B, D).
"""
from __future__ import annotations

from ..backend import Array, get_array_module
from ..checks import check_float, check_ndim, check_upstream, upstream_spec

__all__ = ["mean_pooling_forward", "mean_pooling_backward", "l2_normalize_forward", "l2_normalize_backward"]


def _check_pooling(hidden: Array, attention_mask: Array) -> None:
    check_float("hidden", hidden)
    check_ndim("hidden", hidden, 3, "(B, T, D)")
    if tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"attention_mask: got shape {tuple(attention_mask.shape)}; expected "
                         f"{tuple(hidden.shape[:2])} (B, T of hidden)")


def mean_pooling_forward(hidden: Array, attention_mask: Array) -> tuple[Array, dict]:
    """Average the token vectors of each sequence over its real tokens (sentence-transformers' mean pooling).

    Inputs:
        hidden: (B, T, D) float token vectors
        attention_mask: (B, T) 1 = real token, 0 = padding (int, bool or float)

    Returns:
        out: (B, D)
        cache: ``weights`` (B, T, 1) = mask / count, the factor each token vector was multiplied by, and
            ``out_spec`` (the shape and dtype of out)
    """
    _check_pooling(hidden, attention_mask)
    mask = attention_mask.astype(hidden.dtype)[..., None]       # (B, T) -> (B, T, 1)
    count = mask.sum(axis=1, keepdims=True)                      # (B, 1, 1)
    count = count.clip(1e-9, None)                               # an all-padding row gives 0, not nan
    weights = mask / count                                       # (B, T, 1)
    out = (hidden * weights).sum(axis=1)                         # (B, T, D) -> (B, D)
    return out, {"weights": weights, "out_spec": upstream_spec(out)}


def mean_pooling_backward(dout: Array, cache: dict) -> Array:
    """dout (B, D) -> dhidden (B, T, D); padding positions get zero."""
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: the pooling is linear: each token's gradient is dout times the weight it was averaged with.
    # forward: out = sum_t hidden[:, t] * weights[:, t]
    return dout[:, None, :] * cache["weights"]                   # (B, D) -> (B, T, D)
    # END EXERCISE


def l2_normalize_forward(x: Array, eps: float = 1e-12) -> tuple[Array, dict]:
    """Scale each row to unit length: ``y = x / max(||x||, eps)`` (torch's ``F.normalize(x, dim=-1)``).

    Inputs:
        x: (..., D) float

    Returns:
        y: (..., D)
        cache: ``y``, ``denom`` (..., 1) = max(||x||, eps) and ``above`` (..., 1) bool ||x|| > eps
    """
    check_float("x", x)
    xp = get_array_module(x)
    norm = xp.sqrt((x * x).sum(axis=-1, keepdims=True))          # (..., 1)
    above = norm > eps
    denom = xp.maximum(norm, eps).astype(x.dtype, copy=False)    # (..., 1)
    y = x / denom
    return y, {"y": y, "denom": denom, "above": above}


def l2_normalize_backward(dout: Array, cache: dict) -> Array:
    """dout (..., D) -> dx (..., D): ``(g - y (y . g)) / n`` where the norm was above eps, else ``g / eps``."""
    check_upstream("dout", dout, upstream_spec(cache["y"]))
    # EXERCISE: remove the part of dout along y (it only changed the length), divide by the norm.
    y, denom, above = cache["y"], cache["denom"], cache["above"]
    # forward: y = x / max(||x||, eps); the norm's own gradient only where ||x|| > eps
    along = (dout * y).sum(axis=-1, keepdims=True) * above       # (..., 1)
    return (dout - y * along) / denom
    # END EXERCISE

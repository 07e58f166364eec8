r"""Splitting the model width into attention heads, and merging the heads back.

Multi-head attention runs $H$ independent attentions of width $D_h = D / H$ side by side. The features of
one token, a vector of width $D$, are read as $H$ consecutive blocks of width $D_h$ (head $h$ owns features
$h D_h, \dots, (h+1) D_h - 1$), and the head axis is moved next to the batch axis so that one batched ``matmul``
over (B, H) computes every head at once:

$$
X \in \mathbb{R}^{B \times T \times D} \;\to\; \mathbb{R}^{B \times T \times H \times D_h}
\;\to\; \mathbb{R}^{B \times H \times T \times D_h}
\qquad (\text{split: reshape, then swap } T \text{ and } H)
$$

Merging is the inverse: swap $H$ and $T$ back, then read the $H$ blocks of width $D_h$ as one vector of width
$H D_h$. This is exactly torch's ``x.view(B, T, H, Dh).transpose(1, 2)`` and its inverse.

Backward. Both maps only move numbers around (a permutation of the entries), so the gradient of each is the
inverse permutation applied to the upstream gradient: the backward of split is merge, and the backward of
merge is split. Nothing is added or scaled. See ``docs/derivations/multihead.md``.

Copies. A reshape that only splits an axis is a free view; a transpose is a free (strided) view. A reshape
that JOINS two axes which a transpose has made non-adjacent in memory has to copy, and the comments say
where that happens.
"""
from __future__ import annotations

from ..backend import Array
from ..checks import check_array, check_ndim, check_positive_int, check_upstream, upstream_spec


def split_heads_forward(x: Array, num_heads: int) -> tuple[Array, dict]:
    """Split the feature axis into heads and move the head axis before the positions.

    Inputs:
        x: (B, T, D) with D divisible by ``num_heads``
        num_heads: H

    Returns:
        out: (B, H, T, Dh) with Dh = D / H; a view of x (no copy)
        cache: dict with ``num_heads`` and ``out_spec`` (the shape and dtype of out)
    """
    check_array("x", x)
    check_ndim("x", x, 3, "(B, T, D)")
    check_positive_int("num_heads", num_heads)
    B, T, D = x.shape
    if D % num_heads != 0:
        raise ValueError(f"num_heads: got {num_heads}; expected a divisor of the model width D = {D} (x.shape[-1])")
    head_width = D // num_heads

    split = x.reshape(B, T, num_heads, head_width)              # (B, T, D) -> (B, T, H, Dh), a view
    out = split.transpose(0, 2, 1, 3)                           # (B, T, H, Dh) -> (B, H, T, Dh), a view
    return out, {"num_heads": num_heads, "out_spec": upstream_spec(out)}


def split_heads_backward(dout: Array, cache: dict) -> Array:
    """Gradient of :func:`split_heads_forward`: merge the heads of ``dout`` back.

    Inputs:
        dout: (B, H, T, Dh)
        cache: from :func:`split_heads_forward`

    Returns:
        dx: (B, T, D) with D = H * Dh
    """
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: split only moved numbers around: undo the permutation.
    # forward: out = x.reshape(B, T, H, Dh).transpose(0, 2, 1, 3), a permutation: undo it
    dx, _ = merge_heads_forward(dout)                           # (B, H, T, Dh) -> (B, T, H * Dh)
    return dx
    # END EXERCISE


def merge_heads_forward(x: Array) -> tuple[Array, dict]:
    """Move the head axis back after the positions and join the heads into one feature axis.

    Inputs:
        x: (B, H, T, Dh)

    Returns:
        out: (B, T, H * Dh)
        cache: dict with ``num_heads`` and ``out_spec`` (the shape and dtype of out)
    """
    check_array("x", x)
    check_ndim("x", x, 4, "(B, H, T, Dh)")
    B, H, T, Dh = x.shape

    moved = x.transpose(0, 2, 1, 3)                             # (B, H, T, Dh) -> (B, T, H, Dh), a view
    # This reshape copies (unless H == 1 or T == 1): in x's memory the Dh features of one token in
    # different heads are T * Dh apart, and joining (H, Dh) into one axis needs them side by side. The
    # copy is what the following output projection needs anyway: one contiguous (B * T, D) matrix.
    out = moved.reshape(B, T, H * Dh)                           # (B, T, H, Dh) -> (B, T, D)
    return out, {"num_heads": H, "out_spec": upstream_spec(out)}


def merge_heads_backward(dout: Array, cache: dict) -> Array:
    """Gradient of :func:`merge_heads_forward`: split ``dout`` into heads again.

    Inputs:
        dout: (B, T, H * Dh)
        cache: from :func:`merge_heads_forward`

    Returns:
        dx: (B, H, T, Dh); a view of dout when dout is contiguous (no copy)
    """
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: merge only moved numbers around: undo the permutation.
    # forward: out = x.transpose(0, 2, 1, 3).reshape(B, T, H * Dh), a permutation: undo it
    dx, _ = split_heads_forward(dout, cache["num_heads"])       # (B, T, D) -> (B, H, T, Dh)
    return dx
    # END EXERCISE

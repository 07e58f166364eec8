r"""Rotary position embedding (RoPE): position as a rotation of each query and key, and its backward pass.

The 2017 Transformer adds a position vector to every token (``positional.py``). RoPE (Su et al., "RoFormer",
2021), used by Llama, Mistral, Qwen and their kin, instead *rotates* each query and key vector inside
attention by an angle proportional to its position. The $D_h$ features of one head are read as $D_h/2$
pairs, and pair $i$ of the vector at position $m$ turns by the angle $m\,\omega_i$, with frequencies that fall
geometrically from 1 radian per position to nearly $1/\theta$:

$$
\omega_i = \theta^{-2i/D_h}, \qquad i = 0, 1, \dots, D_h/2 - 1, \qquad \theta = 10000 \text{ by default}
$$

(Llama 3 uses $\theta = 500000$: slower clocks, for longer contexts.)

**Layout.** Hugging Face's Llama pairs feature $i$ with feature $i + D_h/2$: the first half of the head
against the second half (``rotate_half``). Writing $x = [x^{(1)}; x^{(2)}]$ for the two halves and
$c_i = \cos m\omega_i$, $s_i = \sin m\omega_i$:

$$
y^{(1)} = x^{(1)} \odot c - x^{(2)} \odot s, \qquad
y^{(2)} = x^{(2)} \odot c + x^{(1)} \odot s
$$

which is Hugging Face's ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x)`` $= [-x^{(2)}; x^{(1)}]$ and
its full-width tables ``cos`` $= [c; c]$, ``sin`` $= [s; s]$. (Meta's original code pairs neighbours
$(2i, 2i+1)$ instead; the two layouts differ by a fixed permutation of each head's features, which the
checkpoint conversion folds into the rows of ``q_proj`` and ``k_proj``, so the attention scores are the same.)
This file keeps the tables at half width, $(T, D_h/2)$: the duplicated half would only be read twice.

In matrix form $y = R_m x$, where $R_m$ is block-diagonal up to that permutation, one $2 \times 2$ rotation
$\begin{pmatrix} c_i & -s_i \\ s_i & c_i \end{pmatrix}$ acting on the pair $(x_i, x_{i + D_h/2})$.

**Why attention then sees only relative positions.** A rotation's transpose is its inverse, and rotations
of one plane compose by adding angles, so $R_m^\top R_n = R_{n-m}$ and

$$
(R_m q)^\top (R_n k) = q^\top R_m^\top R_n\, k = q^\top R_{n-m}\, k :
$$

the score between a query at position $m$ and a key at position $n$ depends on the positions only through
$n - m$. Shifting a whole sequence (or decoding token 1000 with a cache of 999 rotated keys) changes no score.
Rotations also keep lengths, $|R_m x| = |x|$, so RoPE never changes the size of a score, only its phase.

**Backward.** $y = R_m x$ is linear in $x$, so $\partial L / \partial x = R_m^\top\, \partial L / \partial y
= R_{-m}\, \partial L / \partial y$: the gradient is turned back by the same angle (same cosine, sine
negated), the inverse rotation:

$$
dx^{(1)} = dy^{(1)} \odot c + dy^{(2)} \odot s, \qquad
dx^{(2)} = dy^{(2)} \odot c - dy^{(1)} \odot s
$$

The tables are constants, not parameters. The cache holds ``cos`` and ``sin``: nothing else is needed. The
derivation, with the proof of the relative-position property, is in ``docs/derivations/rope.md``.

Shapes: positions (T,) (or any integer shape, e.g. (B, T)); cos and sin (T, Dh/2), broadcastable to
x's (..., T, Dh/2); x and out (..., T, Dh), usually (B, H, T, Dh).
"""
from __future__ import annotations

import numpy as np

from ..backend import Array, get_array_module
from ..checks import (
    check_broadcastable,
    check_float,
    check_integer,
    check_positive_int,
    check_same_dtype,
    check_upstream,
    upstream_spec,
)


def _check_rope(x: Array, cos: Array, sin: Array) -> None:
    for name, array in (("x", x), ("cos", cos), ("sin", sin)):
        check_float(name, array)
    check_same_dtype(("x", "cos", "sin"), x, cos, sin)
    if x.ndim < 2 or x.shape[-1] % 2:
        raise ValueError(f"x: got shape {tuple(x.shape)}; expected (..., T, Dh) with an even head width Dh "
                         "(RoPE rotates pairs of features)")
    if cos.shape != sin.shape:
        raise ValueError(f"sin: got shape {tuple(sin.shape)}; expected {tuple(cos.shape)} to match cos")
    half_shape = tuple(x.shape[:-1]) + (x.shape[-1] // 2,)
    check_broadcastable("cos", cos.shape, half_shape, f"(T, Dh/2) for x of shape {tuple(x.shape)}")


def rope_tables(positions: Array, head_dim: int, theta: float = 10000.0, dtype=np.float32) -> tuple[Array, Array]:
    r"""The cosines and sines of the angles $m\,\omega_i$, $\omega_i = \theta^{-2i/D_h}$, for each position $m$.

    Inputs:
        positions: integer array (T,) of the positions $m$, e.g. ``arange(offset, offset + T)`` for T tokens
            that follow ``offset`` earlier ones (decoding with a cache); any shape (such as (B, T)) is allowed
        head_dim: Dh, even
        theta: the base $\theta$ of the frequencies (Hugging Face's ``rope_theta``)
        dtype: the tables' dtype (the angles are computed in float64 and the tables cast once)

    Returns:
        cos: (*positions.shape, Dh/2) = $\cos m\omega_i$; on the array module of ``positions``
        sin: (*positions.shape, Dh/2) = $\sin m\omega_i$
    """
    check_integer("positions", positions)
    check_positive_int("head_dim", head_dim)
    if head_dim % 2:
        raise ValueError(f"head_dim: got {head_dim}; expected an even number (RoPE rotates pairs of features)")
    if isinstance(theta, bool) or not isinstance(theta, (int, float, np.integer, np.floating)) or not theta > 0:
        raise ValueError(f"theta: got {theta!r}; expected a positive number (the base of the frequencies)")
    xp = get_array_module(positions)
    exponents = xp.arange(0, head_dim, 2, dtype=np.float64) / head_dim  # (Dh/2,) = 2i / Dh
    inverse_frequency = float(theta) ** -exponents                       # (Dh/2,) = omega_i
    angles = positions[..., None].astype(np.float64) * inverse_frequency  # (..., 1) * (Dh/2,) -> (..., Dh/2)
    return xp.cos(angles).astype(dtype, copy=False), xp.sin(angles).astype(dtype, copy=False)


def rope_forward(x: Array, cos: Array, sin: Array) -> tuple[Array, dict]:
    """Rotate each pair ``(x_i, x_{i + Dh/2})`` of ``x`` by its position's angle (Hugging Face's layout).

    Inputs:
        x: (..., T, Dh) queries or keys, usually (B, H, T, Dh)
        cos: (T, Dh/2) from :func:`rope_tables`, x's dtype, or any shape broadcastable to (..., T, Dh/2)
            (tables of positions (B, T) are (B, T, Dh/2): pass ``cos[:, None]`` for x (B, H, T, Dh))
        sin: the same shape as cos

    Returns:
        out: (..., T, Dh), equal to Hugging Face's ``x * cat(cos, cos) + rotate_half(x) * cat(sin, sin)``
        cache: dict with ``cos`` and ``sin`` (the rotation; the backward turns back by it) and ``out_spec``
            (the shape and dtype of out)
    """
    _check_rope(x, cos, sin)
    xp = get_array_module(x, cos, sin)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]                       # 2 x (..., T, Dh/2), views

    # Plainly out = concatenate((x1 * cos - x2 * sin, x2 * cos + x1 * sin), axis=-1); each half is written
    # straight into its slice of one output array.
    out = xp.empty(x.shape, dtype=x.dtype)                       # (..., T, Dh)
    first, second = out[..., :half], out[..., half:]             # 2 x (..., T, Dh/2), views into out
    xp.multiply(x1, cos, out=first)
    first -= x2 * sin                                           # y1 = x1 c - x2 s
    xp.multiply(x2, cos, out=second)
    second += x1 * sin                                          # y2 = x2 c + x1 s
    return out, {"cos": cos, "sin": sin, "out_spec": upstream_spec(out)}


def rope_backward(dout: Array, cache: dict) -> Array:
    """Gradient of :func:`rope_forward`: the inverse rotation (the same angles, turned back).

    Inputs:
        dout: (..., T, Dh) upstream gradient
        cache: from :func:`rope_forward`

    Returns:
        dx: (..., T, Dh)
    """
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: y = R x is linear with R a rotation: turn dout back by the same angles, from cos and sin.
    cos, sin = cache["cos"], cache["sin"]
    xp = get_array_module(dout, cos)
    half = dout.shape[-1] // 2
    d1, d2 = dout[..., :half], dout[..., half:]                  # 2 x (..., T, Dh/2), views

    # forward: y1 = x1 c - x2 s, y2 = x2 c + x1 s, i.e. y = R x; so dx = R^T dy, the rotation by minus the angle.
    # Plainly dx = concatenate((d1 * cos + d2 * sin, d2 * cos - d1 * sin), axis=-1).
    dx = xp.empty(dout.shape, dtype=dout.dtype)                 # (..., T, Dh)
    first, second = dx[..., :half], dx[..., half:]               # 2 x (..., T, Dh/2), views into dx
    xp.multiply(d1, cos, out=first)
    first += d2 * sin                                           # dx1 = dy1 c + dy2 s
    xp.multiply(d2, cos, out=second)
    second -= d1 * sin                                          # dx2 = dy2 c - dy1 s
    return dx
    # END EXERCISE

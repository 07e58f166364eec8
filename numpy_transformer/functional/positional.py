r"""Sinusoidal positional encoding ("Attention Is All You Need", section 3.5).

Attention by itself ignores the order of the tokens, so each position $pos$ gets a fixed vector that is
added to its token embedding. Channel pair $(2i, 2i+1)$ is a sine and a cosine of the same frequency, and
the frequencies fall geometrically from 1 to $1/10000$ across the channels:

$$
PE_{pos,\,2i} = \sin\!\left(\frac{pos}{10000^{2i/D}}\right), \qquad
PE_{pos,\,2i+1} = \cos\!\left(\frac{pos}{10000^{2i/D}}\right)
$$

Because $\sin$ and $\cos$ of $pos + k$ are a fixed rotation of those of $pos$, a relative offset is a
linear function of the encoding, which attention can learn to read. An odd width $D$ is allowed: the last
channel, $2i = D - 1$, is a sine with no cosine partner.

Forward, for a sequence $x$ of length $T$ starting at position $offset$ ($offset > 0$ when decoding one
token at a time after earlier ones):

$$
y_{t} = x_{t} + PE_{offset + t}
$$

Backward. The table is a constant, not a parameter, and $y$ is $x$ plus a constant, so
$\partial L / \partial x = \partial L / \partial y$: the gradient passes through unchanged and the cache holds nothing.

Shapes: table (max_len, D), x (..., T, D) (usually (B, T, D)), out (..., T, D).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Array, get_array_module
from ..checks import check_float, check_ndim, check_positive_int, check_same_dtype, check_upstream, upstream_spec


def sinusoidal_table(max_len: int, d_model: int, dtype: Any = np.float32, xp: Any = np) -> Array:
    """The table of sinusoidal position vectors.

    Inputs:
        max_len: number of positions (rows)
        d_model: width D (columns); odd widths are allowed
        dtype: the table's dtype (computed in float64, then cast once)
        xp: the array module to build it with (``numpy`` or ``cupy``)

    Returns:
        table: (max_len, D) with ``sin`` on even channels and ``cos`` on odd channels
    """
    check_positive_int("max_len", max_len)
    check_positive_int("d_model", d_model)
    positions = xp.arange(max_len, dtype=np.float64)[:, None]  # (max_len, 1)
    pair_index = xp.arange(d_model) // 2                        # (D,): channel 2i and 2i+1 share frequency i
    inverse_frequency = 10000.0 ** (-2.0 * pair_index / d_model)  # (D,) = 1 / 10000^(2i/D)
    angles = positions * inverse_frequency                      # (max_len, 1) * (D,) -> (max_len, D)
    table = xp.empty((max_len, d_model), dtype=np.float64)     # (max_len, D)
    table[:, 0::2] = xp.sin(angles[:, 0::2])                    # even channels: sine
    table[:, 1::2] = xp.cos(angles[:, 1::2])                    # odd channels: cosine
    return table.astype(dtype, copy=False)


def positional_encoding_forward(x: Array, table: Array, offset: int = 0) -> tuple[Array, dict]:
    """Add the position vectors ``table[offset : offset + T]`` to the sequence ``x``.

    Inputs:
        x: (..., T, D) float array, usually (B, T, D)
        table: (max_len, D) from :func:`sinusoidal_table`, same dtype as x
        offset: the position of x's first token (0 for a whole sequence)

    Returns:
        out: (..., T, D)
        cache: dict with only ``out_spec`` (the shape and dtype of out): the backward is the identity
    """
    check_float("x", x)
    check_float("table", table)
    check_ndim("table", table, 2, "(max_len, D)")
    if x.ndim < 2:
        raise ValueError(f"x: got shape {tuple(x.shape)}; expected (..., T, D), usually (B, T, D)")
    if x.shape[-1] != table.shape[1]:
        raise ValueError(
            f"table: got shape {tuple(table.shape)}; expected (max_len, {x.shape[-1]}) with D = x.shape[-1]"
        )
    check_same_dtype(("x", "table"), x, table)
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ValueError(f"offset: got {offset!r}; expected a non-negative int")
    length, max_len = x.shape[-2], table.shape[0]
    if length + offset > max_len:
        raise ValueError(
            f"x: got T = {length} positions at offset = {offset}, which needs {length + offset} rows; "
            f"expected T + offset <= max_len = {max_len} (table.shape[0]); build a longer table"
        )
    get_array_module(x, table)  # refuses a mix of NumPy and CuPy arrays

    out = x + table[offset:offset + length]                     # (..., T, D) + (T, D) -> (..., T, D)
    return out, {"out_spec": upstream_spec(out)}


def positional_encoding_backward(dout: Array, cache: dict) -> Array:
    """Gradient of the input: the same array as ``dout``, since the table is a constant.

    Inputs:
        dout: (..., T, D) upstream gradient
        cache: from :func:`positional_encoding_forward`

    Returns:
        dx: (..., T, D), ``dout`` itself (not a copy)
    """
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: the table is a constant: what is dx?
    # forward: out = x + table[offset : offset + T]
    return dout
    # END EXERCISE

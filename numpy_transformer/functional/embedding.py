r"""Token embedding: look up one learned vector per token id.

The table $W$ has one row of width $D$ for each of the $V$ tokens of the vocabulary. Reading row ``ids`` is
the same as multiplying a one-hot vector by $W$, but a gather costs $D$ reads per token instead of a
$V \times D$ product, so that is what is done.

Forward, for every position $n$ of the id array:

$$
y_n = W_{\,\mathrm{id}_n}
$$

Backward. With upstream gradient $g_n = \partial L / \partial y_n$, row $v$ of $W$ received every position whose
id is $v$, so its gradient is the sum over those positions:

$$
\frac{\partial L}{\partial W_v} = \sum_{n \,:\, \mathrm{id}_n = v} g_n
$$

That is a scatter-add (``add.at``): a plain ``dW[ids] += g`` would keep only one of the repeated ids.
Rows no id points to get zero. The row ``padding_idx`` (if any) is a constant padding vector, as in
``torch.nn.Embedding``: its gradient is set to zero, so an optimizer never moves it. The ids themselves are
integers and have no gradient.

The backward needs only the ids, the table's shape and dtype, and ``padding_idx``: that is the cache.

Shapes: ids (...), weight (V, D), out (..., D).
"""
from __future__ import annotations

import numpy as np

from ..backend import Array, get_array_module, is_cupy_array
from ..checks import check_float, check_integer, check_ndim, check_upstream, upstream_spec


def _scatter_add(target: Array, index: Array, values: Array) -> None:
    """``target[index[n]] += values[n]`` for every n, repeated indices adding up (unbuffered)."""
    if is_cupy_array(target):
        import cupyx  # cupyx.scatter_add exists in every CuPy release; cupy.add.at only in recent ones

        cupyx.scatter_add(target, index, values)
    else:
        get_array_module(target).add.at(target, index, values)


def embedding_forward(ids: Array, weight: Array, padding_idx: int | None = None) -> tuple[Array, dict]:
    """Gather ``weight[ids]``.

    Inputs:
        ids: (...) integer array of token ids in [0, V)
        weight: (V, D) float table (torch's ``Embedding.weight``)
        padding_idx: None, or the id in [-V, V) whose row gets no gradient (negative counts from the end)

    Returns:
        out: (..., D)
        cache: dict with ``ids`` (...), ``num_embeddings`` V, ``weight_dtype``, ``padding_idx``
            (normalized to [0, V) or None) and ``out_spec`` (the shape and dtype of out)
    """
    check_integer("ids", ids)
    check_float("weight", weight)
    check_ndim("weight", weight, 2, "(V, D)")
    vocab_size = weight.shape[0]
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
            raise TypeError(f"padding_idx: got {type(padding_idx).__name__}; expected an int or None")
        if not -vocab_size <= padding_idx < vocab_size:
            raise ValueError(f"padding_idx: got {padding_idx}; expected an id in [-{vocab_size}, {vocab_size})")
        padding_idx = int(padding_idx) % vocab_size
    xp = get_array_module(ids, weight)
    # The range check reads two numbers back from the array; on a GPU that would stall every step on a
    # device-to-host copy, so it runs on the host only (validate ids on the CPU before moving them).
    if ids.size and xp is np:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"ids: got id {bad}; expected ids in [0, {vocab_size}) (V = weight.shape[0])")

    out = xp.take(weight, ids, axis=0)                          # (V, D) gathered at (...) -> (..., D)
    cache = {"ids": ids, "num_embeddings": vocab_size, "weight_dtype": weight.dtype, "padding_idx": padding_idx,
             "out_spec": upstream_spec(out)}
    return out, cache


def embedding_backward(dout: Array, cache: dict) -> Array:
    """Gradient of the table: scatter-add each position's gradient into the row of its id.

    Inputs:
        dout: (..., D) upstream gradient
        cache: from :func:`embedding_forward`

    Returns:
        dweight: (V, D); the row ``padding_idx`` is zero
    """
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: dweight (V, D): each position's gradient added into the row of its id; repeated ids add up.
    ids = cache["ids"]
    xp = get_array_module(dout, ids)
    width = dout.shape[-1]
    # forward: out = weight[ids]
    dweight = xp.zeros((cache["num_embeddings"], width), dtype=cache["weight_dtype"])  # (V, D)
    _scatter_add(dweight, ids.reshape(-1), dout.reshape(-1, width))  # (N,) ids, (N, D) rows added into (V, D)
    if cache["padding_idx"] is not None:
        dweight[cache["padding_idx"]] = 0                       # the padding row is constant
    return dweight
    # END EXERCISE

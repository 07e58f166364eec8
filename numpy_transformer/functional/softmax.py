r"""Softmax and log-softmax along one axis, numerically stable, with closed-form backward passes.

Softmax turns a vector of scores $x$ (of length $N$) into probabilities:

$$
y_i = \frac{e^{x_i}}{\sum_j e^{x_j}} = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad m = \max_j x_j
$$

Subtracting the row maximum $m$ changes nothing mathematically but keeps every exponent $\le 0$, so
``exp`` never overflows (scores of $10^4$ are fine) and the largest term is exactly 1, so the sum is $\ge 1$.

Log-softmax is computed as $\log y_i = (x_i - m) - \log \sum_j e^{x_j - m}$ (the log-sum-exp trick), never as
``log(softmax(x))``, which would give $-\infty$ when a probability underflows to 0.

A row whose entries are all $-\infty$ (every choice forbidden, as in a fully masked attention row) has no
finite maximum; we shift it by 0 instead, its exponentials are all 0, and softmax returns a row of zeros
(and a zero gradient) instead of NaN. Log-softmax returns the logarithm of that row of zeros, a row of
$-\infty$, and a zero gradient, instead of NaN. (``torch.softmax`` and ``torch.log_softmax`` return NaN there.)

An axis with no entries at all (N = 0, e.g. attention over zero keys) has a well-defined softmax, as in
PyTorch: an empty array of x's shape, with an empty gradient.

Backward. With upstream gradient $g = \partial L / \partial y$, and
$\partial y_i / \partial x_j = y_i (\delta_{ij} - y_j)$:

$$
\frac{\partial L}{\partial x_j} = \sum_i g_i y_i (\delta_{ij} - y_j) = y_j \Big(g_j - \sum_i g_i y_i\Big)
$$

For log-softmax, $\partial \log y_i / \partial x_j = \delta_{ij} - p_j$ with $p = \mathrm{softmax}(x)$:

$$
\frac{\partial L}{\partial x_j} = g_j - p_j \sum_i g_i
$$

Both are a handful of elementwise operations and one reduction along the axis: the $N \times N$ Jacobian
is never built. Derived step by step in ``docs/derivations/softmax.md``.

Shapes: x (..., N, ...) with the softmax taken along ``axis``; y has the shape of x.
"""
from __future__ import annotations

from ..backend import Array, get_array_module
from ..checks import check_float, check_upstream, upstream_spec
from ..grad_mode import check_cache, is_grad_enabled


def _check_axis(x: Array, axis: int) -> int:
    """``axis`` must be an int that indexes an axis of ``x``; returns it as a non-negative int."""
    if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"axis: got {axis!r}; expected an int in [{-x.ndim}, {x.ndim}) for x of shape {tuple(x.shape)}"
        )
    return axis % x.ndim


def _row_max(x: Array, axis: int) -> Array:
    """The maximum along ``axis``, kept as an axis of size 1; 0 for an all ``-inf`` row and for no entries."""
    xp = get_array_module(x)
    if x.shape[axis] == 0:                                      # N = 0: nothing to take the maximum of
        return xp.zeros(x.shape[:axis] + (1,) + x.shape[axis + 1:], dtype=x.dtype)
    row_max = x.max(axis=axis, keepdims=True)                   # (..., 1, ...)
    return xp.where(xp.isfinite(row_max), row_max, 0)          # all -inf row: shift by 0, not by -inf


def _shifted_exp(x: Array, axis: int) -> tuple[Array, Array]:
    """``x - max`` and ``exp(x - max)`` along ``axis``; an all ``-inf`` row is shifted by 0, not by ``-inf``."""
    xp = get_array_module(x)
    shifted = x - _row_max(x, axis)                             # (..., N, ...), every entry <= 0
    return shifted, xp.exp(shifted)


def softmax_forward(x: Array, axis: int = -1, out: Array | None = None) -> tuple[Array, dict]:
    """Softmax of ``x`` along ``axis``.

    Inputs:
        x: float array of any shape (scores, logits)
        axis: the axis that sums to one
        out: None, or an array of x's shape and dtype to write y into; it may be ``x`` itself when the
            caller no longer needs the scores (attention does this: one (..., T, S) array fewer)

    Returns:
        y: the shape of x; each slice along ``axis`` sums to 1 (or is all zeros if it was all ``-inf``)
        cache: dict with ``y`` and ``axis`` (``y``'s shape and dtype are what ``dout`` must have); None under
            ``no_grad()``
    """
    check_float("x", x)
    axis = _check_axis(x, axis)
    xp = get_array_module(x)

    # Plainly: exps = exp(x - m); y = exps / sum(exps). Written into ONE array, updated in place, so the
    # three passes (subtract, exp, divide) allocate nothing beyond y itself.
    row_max = _row_max(x, axis)                                 # (..., 1, ...)
    y = xp.subtract(x, row_max, out=out)                        # (..., N, ...), every entry <= 0
    xp.exp(y, out=y)                                            # exp(x - m), in place
    total = y.sum(axis=axis, keepdims=True)                     # (..., 1, ...); >= 1 unless all -inf
    y /= xp.where(total == 0, 1, total)                         # (..., N, ...); an all -inf row stays 0
    return y, ({"y": y, "axis": axis} if is_grad_enabled() else None)


def softmax_backward(dout: Array, cache: dict) -> Array:
    """Gradient of softmax.

    Inputs:
        dout: upstream gradient, the shape of y
        cache: from :func:`softmax_forward`

    Returns:
        dx: the shape of x
    """
    check_cache("softmax_backward", cache)
    check_upstream("dout", dout, upstream_spec(cache["y"]))
    # EXERCISE: dx from dout and the cached y along axis, in O(N) per slice: build no Jacobian.
    y, axis = cache["y"], cache["axis"]
    xp = get_array_module(dout, y)
    # forward: y = exp(x - m) / sum(exp(x - m)); dx = y * (g - sum(g * y)), no Jacobian.
    # One fresh array holds g * y, then is overwritten with g - sum(g * y), then multiplied by y in place.
    dx = dout * y                                               # (..., N, ...)
    weighted_sum = dx.sum(axis=axis, keepdims=True)             # (..., N, ...) -> (..., 1, ...)
    xp.subtract(dout, weighted_sum, out=dx)                     # g - sum(g * y)
    dx *= y                                                     # (..., N, ...)
    return dx
    # END EXERCISE


def log_softmax_forward(x: Array, axis: int = -1) -> tuple[Array, dict]:
    """Log-softmax of ``x`` along ``axis``: ``x - logsumexp(x)``.

    Inputs:
        x: float array of any shape
        axis: the axis to normalize over

    Returns:
        y: the shape of x, ``y = log(softmax(x))`` computed without taking the log of a probability; a
            slice that is all ``-inf`` stays all ``-inf`` (the log of softmax's row of zeros), never NaN
        cache: dict with ``probs`` = softmax(x) (the shape and dtype of x and y, which ``dout`` must have),
            ``axis`` and ``empty`` (the shape of x with ``axis`` of size 1, bool): True for the all ``-inf``
            slices, whose gradient is zero; None under ``no_grad()``
    """
    check_float("x", x)
    axis = _check_axis(x, axis)
    xp = get_array_module(x)

    shifted, exps = _shifted_exp(x, axis)                       # (..., N, ...)
    total = exps.sum(axis=axis, keepdims=True)                  # (..., 1, ...); 0 only for an all -inf row
    empty = total == 0                                          # (..., 1, ...) bool
    total = xp.where(empty, 1, total)                           # all -inf row: log 1 = 0, so y stays -inf
    y = shifted - xp.log(total)                                 # (..., N, ...)
    if not is_grad_enabled():
        return y, None
    probs = exps / total                                        # softmax, reusing exps: no second exp
    return y, {"probs": probs, "axis": axis, "empty": empty}


def log_softmax_backward(dout: Array, cache: dict) -> Array:
    """Gradient of log-softmax.

    Inputs:
        dout: upstream gradient, the shape of y
        cache: from :func:`log_softmax_forward`

    Returns:
        dx: the shape of x
    """
    check_cache("log_softmax_backward", cache)
    check_upstream("dout", dout, upstream_spec(cache["probs"]))
    # EXERCISE: dx from dout and the cached probs along axis; a slice marked empty gets a zero gradient.
    probs, axis = cache["probs"], cache["axis"]
    # forward: y = x - m - log(sum(exp(x - m))); dx = g - softmax(x) * sum(g)
    dout_sum = dout.sum(axis=axis, keepdims=True)               # (..., N, ...) -> (..., 1, ...)
    dx = dout - probs * dout_sum                                # (..., N, ...)
    # forward: an all -inf row stayed -inf whatever x did there, so its gradient is zero.
    # Plainly dx = where(empty, 0, dx); here dx is our own array, multiplied in place.
    dx *= ~cache["empty"]                                       # (..., N, ...)
    return dx
    # END EXERCISE

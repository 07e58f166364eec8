r"""The affine map of a fully connected layer: $y = x W^\top + b$.

The weight is stored as in ``torch.nn.Linear``: $W$ has shape (Dout, Din), one row per output feature,
so a checkpoint from PyTorch loads without transposing.

Forward, for one row $x$ of width $D_{in}$:

$$
y_j = \sum_i x_i W_{ji} + b_j, \qquad Y = X W^\top + b
$$

Any number of leading axes is allowed (a token sequence (B, T, Din), a batch (B, Din), one vector (Din,)).
They are all flattened into one axis of $M$ = product of the leading sizes, so the whole layer is a single
2-D matrix product (M, Din) @ (Din, Dout), which BLAS runs at full speed; a 3-D ``dot`` would not.

Backward. With upstream gradient $G = \partial L / \partial Y$ of shape (M, Dout):

- $dX = G W$, (M, Dout) @ (Dout, Din): each input feature collects the gradient of every output it feeds.
- $dW = G^\top X$, (Dout, M) @ (M, Din): the weight is shared by all $M$ rows, so its gradient sums over
  every leading axis, and the sum is the inner dimension of the product.
- $db = \sum_{\text{rows}} G$: the bias is added to every row.

So the backward needs $X$ (for $dW$) and $W$ (for $dX$): that is exactly what the cache keeps. A frozen
layer asks for ``need_weight_grad=False`` and skips the $dW$ product; the first layer of a network, whose
input is data, asks for ``need_input_grad=False`` and skips the $dX$ product.

Shapes: x (..., Din), weight (Dout, Din), bias (Dout,) or None, out (..., Dout).
"""
from __future__ import annotations

import math

from ..backend import Array, get_array_module
from ..checks import check_float, check_ndim, check_same_dtype, check_shape, check_upstream, upstream_spec
from ..grad_mode import check_cache, is_grad_enabled


def linear_forward(x: Array, weight: Array, bias: Array | None = None) -> tuple[Array, dict]:
    """Apply ``out = x @ weight.T + bias`` over the last axis of ``x``.

    Inputs:
        x: (..., Din) float array; any number of leading axes, including none
        weight: (Dout, Din) (torch's ``Linear.weight`` layout)
        bias: (Dout,) or None

    Returns:
        out: (..., Dout)
        cache: dict with ``x2d`` (M, Din) = x flattened over its leading axes, ``weight`` (Dout, Din),
            ``has_bias``, ``lead_shape`` (the leading axes of x, so that dx gets x's shape back) and
            ``out_spec`` (the shape and dtype of out, which ``dout`` must have); None under ``no_grad()``
    """
    check_float("x", x)
    check_float("weight", weight)
    if x.ndim < 1:
        raise ValueError("x: got a 0-D array; expected shape (..., Din)")
    check_ndim("weight", weight, 2, "(Dout, Din)")
    in_features = x.shape[-1]
    out_features = weight.shape[0]
    check_shape("weight", weight, (out_features, in_features), f"(Dout, Din) with Din = x.shape[-1] = {in_features}")
    if bias is not None:
        check_float("bias", bias)
        check_shape("bias", bias, (out_features,), f"(Dout,) with Dout = weight.shape[0] = {out_features}")
    check_same_dtype(("x", "weight", "bias"), x, weight, bias)
    xp = get_array_module(x, weight, bias)

    lead_shape = x.shape[:-1]
    rows = math.prod(lead_shape)
    x2d = x.reshape(rows, in_features)                          # (..., Din) -> (M, Din), a view when contiguous
    out2d = xp.matmul(x2d, weight.T)                            # (M, Din) @ (Din, Dout) -> (M, Dout)
    if bias is not None:
        out2d += bias                                           # (M, Dout) + (Dout,), in place: no extra array
    out = out2d.reshape(lead_shape + (out_features,))           # (M, Dout) -> (..., Dout)
    if not is_grad_enabled():
        return out, None
    cache = {"x2d": x2d, "weight": weight, "has_bias": bias is not None, "lead_shape": lead_shape,
             "out_spec": upstream_spec(out)}
    return out, cache


def linear_backward(dout: Array, cache: dict, need_input_grad: bool = True,
                    need_weight_grad: bool = True) -> tuple[Array | None, Array | None, Array | None]:
    """Gradients of the affine map.

    Inputs:
        dout: (..., Dout) upstream gradient
        cache: from :func:`linear_forward`
        need_input_grad: compute ``dx`` (False for a layer that reads data, to skip one matrix product)
        need_weight_grad: compute ``dweight`` and ``dbias`` (False for a frozen layer)

    Returns:
        dx: (..., Din) or None when ``need_input_grad`` is False
        dweight: (Dout, Din) or None when ``need_weight_grad`` is False
        dbias: (Dout,) or None when ``need_weight_grad`` is False or the layer has no bias
    """
    check_cache("linear_backward", cache)
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: from dout and the cached x2d and weight, compute dx, dweight and dbias (each only when asked for).
    x2d, weight = cache["x2d"], cache["weight"]
    xp = get_array_module(dout, weight)
    out_features, in_features = weight.shape
    dout2d = dout.reshape(x2d.shape[0], out_features)           # (..., Dout) -> (M, Dout)

    dx = dweight = dbias = None
    # forward: out2d = x2d @ weight.T + bias
    if need_weight_grad:
        dweight = xp.matmul(dout2d.T, x2d)                      # (Dout, M) @ (M, Din) -> (Dout, Din)
        if cache["has_bias"]:
            dbias = dout2d.sum(axis=0)                          # (M, Dout) -> (Dout,)
    if need_input_grad:
        dx2d = xp.matmul(dout2d, weight)                        # (M, Dout) @ (Dout, Din) -> (M, Din)
        # forward: x2d = x.reshape(M, Din)
        dx = dx2d.reshape(cache["lead_shape"] + (in_features,))  # (M, Din) -> (..., Din)
    return dx, dweight, dbias
    # END EXERCISE

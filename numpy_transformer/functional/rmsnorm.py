r"""Root-mean-square normalization (RMSNorm) over the last axis, and its backward pass.

RMSNorm (Zhang and Sennrich, 2019) is layer norm without the mean: each row $x$ of width $D$ (one token's
features) is divided by its root mean square and scaled by a learned per-feature weight $w$. There is no mean
subtraction and no bias. Llama, Mistral, Qwen and T5 use it; it is ``torch.nn.RMSNorm`` and Hugging Face's
``LlamaRMSNorm``.

Forward, for one row:

$$
r = \Big(\frac{1}{D}\sum_i x_i^2 + \epsilon\Big)^{-1/2}, \qquad \hat x_i = x_i\, r, \qquad y_i = w_i\, \hat x_i
$$

The output keeps the direction of $x$ and has root mean square (almost) 1 before the weight: re-centering
was found to matter little, and dropping it saves a pass over the row.

The default $\epsilon$ (``eps=None``) is PyTorch's: the machine epsilon of the dtype the arithmetic runs in,
``torch.finfo(x.dtype).eps``, except that PyTorch computes half precision in float32, so a float16 row gets
float32's epsilon. Hugging Face's Llama passes its own (``rms_norm_eps``, 1e-6 or 1e-5).

**Backward.** With $g = \partial L / \partial y$:

- $\partial L / \partial w = \sum_{\text{rows}} g \odot \hat x$ (the weight is shared by every row), and
  $\hat g := \partial L / \partial \hat x = g \odot w$.
- $r$ depends on the whole row: $\partial r / \partial x_j = -\tfrac12 r^3 \cdot \tfrac{2 x_j}{D}
  = -r^2 \hat x_j / D$. By the product rule on $\hat x_i = x_i r$,
  $\partial \hat x_i / \partial x_j = r\,(\delta_{ij} - \hat x_i \hat x_j / D)$, and contracting with $\hat g$:

$$
\frac{\partial L}{\partial x} = r \left( \hat g - \hat x\; \overline{\hat g \odot \hat x} \right)
$$

where the bar is the mean over the row. This is layer norm's formula without the term $-\overline{\hat g}$ that
came from the mean: the gradient removes only the part that would rescale the row, which the normalization
divides out. The cache holds $\hat x$, $r$ and $w$. Derived step by step in ``docs/derivations/rmsnorm.md``.

float16. The sum of squares overflows float16 (largest value 65504) once $|x|$ reaches about 256 in a row of
one feature, sooner in wider rows: $r$ becomes 0 and the output all zeros. As PyTorch does, a float16 input is
normalized in float32 (forward and backward) and the results are rounded to float16 once.

Shapes: x (..., D), weight (D,) or None; out (..., D).
"""
from __future__ import annotations

import numpy as np

from ..backend import Array, get_array_module
from ..checks import check_float, check_same_dtype, check_shape, check_upstream, upstream_spec


def default_eps(dtype) -> float:
    """PyTorch's ``eps=None`` for ``torch.nn.RMSNorm``: the epsilon of the compute dtype (float16 -> float32's)."""
    return float(np.finfo(np.promote_types(dtype, np.float32)).eps)


def _check_rmsnorm(x: Array, weight: Array | None, eps: float | None) -> None:
    check_float("x", x)
    if x.ndim < 1:
        raise ValueError("x: got a 0-D array; expected shape (..., D)")
    if weight is not None:
        check_float("weight", weight)
        check_shape("weight", weight, (x.shape[-1],), f"(D,) with D = x.shape[-1] = {x.shape[-1]}")
        check_same_dtype(("x", "weight"), x, weight)
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating))
                            or not eps >= 0):
        raise ValueError(f"eps: got {eps!r}; expected None (the dtype's machine epsilon) or a number >= 0")


def rmsnorm_forward(x: Array, weight: Array | None = None, eps: float | None = None) -> tuple[Array, dict]:
    """Divide each row of ``x`` by its root mean square, then scale by ``weight``.

    Inputs:
        x: (..., D) float array
        weight: (D,) scale (torch's ``RMSNorm.weight``), or None for no scale
        eps: added to the mean square; None = :func:`default_eps` of x's dtype, as torch

    Returns:
        out: (..., D)
        cache: dict with ``xhat`` (..., D) = x * rrms, ``rrms`` (..., 1) = 1/sqrt(mean(x^2) + eps),
            ``weight`` (D,) or None (float32 for a float16 input), ``float16`` (whether to round the
            gradients to float16) and ``out_spec`` (the shape and dtype of out)
    """
    _check_rmsnorm(x, weight, eps)
    xp = get_array_module(x, weight)
    eps = default_eps(x.dtype) if eps is None else float(eps)
    if x.dtype == np.float16:
        # computed in float32 and rounded once, as torch does: float16 squares overflow (see the docstring)
        wide = np.float32
        out, cache = rmsnorm_forward(x.astype(wide), None if weight is None else weight.astype(wide), eps)
        out = out.astype(np.float16)
        cache.update(float16=True, out_spec=upstream_spec(out))
        return out, cache
    width = x.shape[-1]

    # mean of squares; einsum sums the squares without a (..., D) temporary
    mean_square = xp.einsum("...d,...d->...", x, x)[..., None] / width  # (..., D) -> (..., 1)
    rrms = 1.0 / xp.sqrt(mean_square + eps)                             # (..., 1)
    xhat = x * rrms                                                     # (..., D)
    out = xhat if weight is None else xhat * weight                    # (..., D)
    return out, {"xhat": xhat, "rrms": rrms, "weight": weight, "float16": False, "out_spec": upstream_spec(out)}


def rmsnorm_backward(dout: Array, cache: dict) -> tuple[Array, Array | None]:
    """Gradients of RMSNorm.

    Inputs:
        dout: (..., D) upstream gradient
        cache: from :func:`rmsnorm_forward`

    Returns:
        dx: (..., D)
        dweight: (D,), or None when the forward had no weight
    """
    check_upstream("dout", dout, cache["out_spec"])
    if cache["float16"]:
        # forward: out = rmsnorm(x in float32).astype(float16); the gradients likewise, rounded once
        wide = dict(cache, float16=False, out_spec=(cache["out_spec"][0], cache["xhat"].dtype))
        dx, dweight = rmsnorm_backward(dout.astype(wide["xhat"].dtype), wide)
        return dx.astype(np.float16), None if dweight is None else dweight.astype(np.float16)
    # EXERCISE: dx and dweight from the cached xhat, rrms and weight; layer norm's formula without the mean.
    xhat, rrms, weight = cache["xhat"], cache["rrms"], cache["weight"]
    xp = get_array_module(dout, xhat)
    reduce_axes = tuple(range(dout.ndim - 1))  # every axis but the feature axis

    # forward: out = xhat * weight
    dweight = None if weight is None else (dout * xhat).sum(axis=reduce_axes)  # (..., D) -> (D,)
    dxhat = dout if weight is None else dout * weight                  # (..., D)

    # forward: xhat = x * rrms, with rrms a function of the whole row.
    # Plainly dx = rrms * (dxhat - xhat * mean(dxhat * xhat)).
    mean_dxhat_xhat = xp.einsum("...d,...d->...", dxhat, xhat)[..., None] / xhat.shape[-1]  # (..., 1)
    dx = xhat * mean_dxhat_xhat                                         # (..., D)
    xp.subtract(dxhat, dx, out=dx)                                      # dxhat - xhat * mean(dxhat * xhat)
    dx *= rrms                                                          # (..., D)
    return dx, dweight
    # END EXERCISE

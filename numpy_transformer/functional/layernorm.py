r"""Layer normalization over the last axis.

Each vector $x$ of width $D$ (one token's features) is normalized to zero mean and unit variance, then
scaled and shifted by learned per-feature parameters ``gamma`` and ``beta`` (torch: ``weight``, ``bias``).

Forward, for one row $x$ of width $D$:

$$
\mu = \frac{1}{D}\sum_i x_i, \qquad
\sigma^2 = \frac{1}{D}\sum_i (x_i - \mu)^2, \qquad
r = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
$$

$$
\hat{x}_i = (x_i - \mu)\, r, \qquad y_i = \gamma_i \hat{x}_i + \beta_i
$$

Note the variance is the biased one (divide by $D$), as in the paper and in ``torch.nn.LayerNorm``.

Backward. With upstream gradient $g = \partial L / \partial y$:

- $\partial L / \partial \beta = \sum_{\text{rows}} g$ and
  $\partial L / \partial \gamma = \sum_{\text{rows}} g \odot \hat{x}$ ($y$ is linear in both).
- $\hat{g} = \partial L / \partial \hat{x} = g \odot \gamma$ (``dxhat`` in the code).
- $\hat{x}$ depends on every $x_j$ of its row through $\mu$ and $r$. Using $\partial \mu / \partial x_j = 1/D$
  and $\partial r / \partial x_j = -r^3 (x_j - \mu) / D = -r^2 \hat{x}_j / D$, the chain rule gives (derived
  step by step in ``docs/derivations/layernorm.md``):

$$
\frac{\partial L}{\partial x_j} = r \left( \hat{g}_j - \overline{\hat{g}}
    - \hat{x}_j \, \overline{\hat{g} \odot \hat{x}} \right)
$$

where a bar is the mean over the row. So the backward needs only $\hat{x}$ (``xhat``), $r$ (``rstd``) and
$\gamma$ (``gamma``) from the forward pass: that is exactly what the cache keeps.

float16. The sum of squares overflows float16 (largest value 65504) once ``|x - mu|`` reaches about 256 in a
row of one feature, sooner in wider rows, and the output would be all zeros. As PyTorch does, a float16 input
is normalized in float32 (both passes) and the results are rounded to float16 once.

Shapes: x (..., D), gamma and beta (D,); any number of leading axes (e.g. (B, T, D)).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import Array, get_array_module
from ..checks import check_float, check_same_dtype, check_shape, check_upstream, upstream_spec
from ..grad_mode import check_cache, is_grad_enabled


def _row_mean(a: Array, weights: Array | None = None) -> Array:
    """The mean over the last axis of ``a`` (of ``a * weights``, with ``weights`` (D,)), kept as an axis of size 1.

    In float32 it is a matrix-vector product, ``a @ weights / D`` (BLAS: a fraction of the time of NumPy's
    reduction over rows this short, and no (..., D) array for the product). Every other dtype keeps NumPy's own
    sum of the plain formula, so float64, the dtype of the gradient checks, gives its numbers bit for bit.
    """
    width = a.shape[-1]
    if a.dtype != np.float32:
        return (a if weights is None else a * weights).mean(axis=-1, keepdims=True)  # (..., D) -> (..., 1)
    xp = get_array_module(a)
    weights = xp.ones(width, dtype=a.dtype) if weights is None else weights         # (D,)
    sums = a.reshape(math.prod(a.shape[:-1]), width) @ weights  # (M, D) @ (D,) -> (M,)
    return (sums / width).reshape(a.shape[:-1] + (1,))          # (M,) -> (..., 1)


def layernorm_forward(x: Array, gamma: Array, beta: Array, eps: float = 1e-5) -> tuple[Array, dict]:
    """Normalize the last axis of ``x``, then scale by ``gamma`` and shift by ``beta``.

    Inputs:
        x: (..., D) float array
        gamma: (D,) scale (torch's ``LayerNorm.weight``)
        beta: (D,) shift (torch's ``LayerNorm.bias``)
        eps: added to the variance for numerical safety (torch's default 1e-5); must be > 0, or a constant
            row would give 0 / 0

    Returns:
        out: (..., D)
        cache: dict with ``xhat`` (..., D), ``rstd`` (..., 1) = 1/sqrt(var + eps), ``gamma`` (D,) (float32
            for a float16 input), ``float16`` (whether to round the gradients to float16) and ``out_spec``;
            None under ``no_grad()``
    """
    check_float("x", x)
    check_float("gamma", gamma)
    check_float("beta", beta)
    if x.ndim < 1:
        raise ValueError("x: got a 0-D array; expected shape (..., D)")
    width = x.shape[-1]
    check_shape("gamma", gamma, (width,), f"(D,) with D = x.shape[-1] = {width}")
    check_shape("beta", beta, (width,), f"(D,) with D = x.shape[-1] = {width}")
    check_same_dtype(("x", "gamma", "beta"), x, gamma, beta)
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) or not eps > 0:
        raise ValueError(f"eps: got {eps!r}; expected a number > 0 (a constant row has variance 0)")
    xp = get_array_module(x, gamma, beta)
    if x.dtype == np.float16:
        # computed in float32 and rounded once, as torch does: float16 squares overflow (see the docstring)
        wide = np.float32
        out, cache = layernorm_forward(x.astype(wide), gamma.astype(wide), beta.astype(wide), eps)
        out = out.astype(np.float16)
        if cache is not None:
            cache.update(float16=True, out_spec=upstream_spec(out))
        return out, cache

    # Plainly: centered = x - mean; xhat = centered * rstd; out = xhat * gamma + beta. Here xhat is ONE
    # fresh array updated in place (centered, then scaled), and out is another: two (..., D) arrays, not five
    # (one under no_grad(), where out is xhat scaled and shifted in place).
    mean = _row_mean(x)                                         # (..., D) -> (..., 1)
    xhat = x - mean                                             # (..., D), centered; x is left untouched
    # variance = mean(centered ** 2); einsum sums the squares without a (..., D) temporary
    variance = xp.einsum("...d,...d->...", xhat, xhat)[..., None] / width  # (..., 1), biased: divide by D
    rstd = 1.0 / xp.sqrt(variance + eps)                        # (..., 1)
    xhat *= rstd                                                # (..., D), centered * rstd, in place
    keep = is_grad_enabled()
    out = xp.multiply(xhat, gamma, out=None if keep else xhat)  # (..., D)
    out += beta
    if not keep:
        return out, None
    cache = {"xhat": xhat, "rstd": rstd, "gamma": gamma, "float16": False, "out_spec": upstream_spec(out)}
    return out, cache


def layernorm_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Gradients of layer norm.

    Inputs:
        dout: (..., D) upstream gradient
        cache: from :func:`layernorm_forward`

    Returns:
        dx: (..., D), dgamma: (D,), dbeta: (D,)
    """
    check_cache("layernorm_backward", cache)
    check_upstream("dout", dout, cache["out_spec"])
    if cache["float16"]:
        # forward: out = layernorm(x in float32).astype(float16); the gradients likewise, rounded once
        wide = dict(cache, float16=False, out_spec=(cache["out_spec"][0], cache["xhat"].dtype))
        return tuple(g.astype(np.float16) for g in layernorm_backward(dout.astype(wide["xhat"].dtype), wide))
    # EXERCISE: dx, dgamma and dbeta from the cached xhat, rstd and gamma; no D x D Jacobian.
    xhat, rstd, gamma = cache["xhat"], cache["rstd"], cache["gamma"]
    reduce_axes = tuple(range(dout.ndim - 1))  # every axis but the feature axis
    xp = get_array_module(dout, xhat)

    # forward: out = xhat * gamma + beta
    dbeta = dout.sum(axis=reduce_axes)                           # (..., D) -> (D,)
    work = dout * xhat                                           # (..., D), g * xhat; reused below
    dgamma = work.sum(axis=reduce_axes)                          # (..., D) -> (D,)

    # forward: xhat = (x - mean) * rstd, with mean and rstd functions of the whole row.
    # Plainly dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = g * gamma. The two
    # row means are taken with gamma as weights (products with gamma in float32, see _row_mean); below, dxhat
    # becomes dx in place and ``work`` holds the products, so no further (..., D) array is allocated.
    mean_dxhat = _row_mean(dout, gamma)                          # mean(g * gamma), (..., 1)
    mean_dxhat_xhat = _row_mean(work, gamma)                     # mean(g * xhat * gamma), (..., 1)
    dx = dout * gamma                                            # (..., D), dxhat
    xp.multiply(xhat, mean_dxhat_xhat, out=work)                 # (..., D), xhat * mean(dxhat * xhat)
    dx -= mean_dxhat
    dx -= work
    dx *= rstd                                                   # (..., D)
    return dx, dgamma, dbeta
    # END EXERCISE

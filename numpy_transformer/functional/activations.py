r"""Elementwise activations of the feed-forward block: ReLU and GELU (exact and tanh-approximate).

ReLU:

$$
y = \max(x, 0), \qquad \frac{dy}{dx} = [x > 0]
$$

(at the kink $x = 0$ the derivative is taken as 0, as in PyTorch).

GELU weighs its input by the probability that a standard normal variable is smaller:
$y = x\,\Phi(x)$. The exact form uses the normal CDF through ``erf``:

$$
\Phi(x) = \tfrac12\left(1 + \mathrm{erf}(x/\sqrt2)\right), \qquad
\frac{dy}{dx} = \Phi(x) + x\,\varphi(x), \quad \varphi(x) = \frac{e^{-x^2/2}}{\sqrt{2\pi}}
$$

The tanh approximation (GPT-2, BERT's original code) replaces $\Phi$:

$$
u = \sqrt{2/\pi}\,(x + 0.044715\,x^3), \qquad t = \tanh u, \qquad y = \tfrac12 x (1 + t)
$$

$$
\frac{dy}{dx} = \tfrac12 (1 + t) + \tfrac12 x (1 - t^2)\,\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)
$$

Each backward differentiates exactly the formula its forward computed (the approximation is chosen once, in
the forward, and stored in the cache), so the gradient is never that of a different function. The caches
keep what the derivative reuses: $x$ and $\Phi(x)$ for the exact form, $x$ and $t$ for the tanh
form, so no transcendental function is evaluated twice.

$\Phi$ in float32 is read from a table with linear interpolation (as close to the exact function as float32's
own ``erf``, at a fraction of the time; see :func:`_table_cdf`); in other dtypes it is ``erf``, from
``scipy.special`` for NumPy arrays and from ``cupyx.scipy.special`` for CuPy arrays.

Under ``no_grad()`` (inference) every forward returns ``cache = None``, and exact GELU writes its output into
the array of $\Phi(x)$.

Shapes: every array has the shape of x (any shape).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import Array, get_array_module, is_cupy_array
from ..checks import check_choice, check_float, check_upstream, upstream_spec
from ..grad_mode import check_cache, is_grad_enabled

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_TANH_CUBIC = 0.044715

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")


#: the float32 table of Phi: grid points -8, -8 + h, ..., 8 + h with h = 1/2048 (built on first use, 2 x 128 KiB)
_GRID_LOW, _GRID_STEP, _GRID_POINTS = -8.0, 1.0 / 2048, 16 * 2048 + 2
_cdf_tables = {}


def _cdf_table(xp: Any) -> tuple[Array, Array]:
    """``(Phi(g_k), Phi(g_{k+1}) - Phi(g_k))``, two float32 arrays of the array module ``xp``: computed once on
    the host in double precision (SciPy's ``ndtr``), copied once to a device, so both use the same table."""
    if "host" not in _cdf_tables:
        from scipy.special import ndtr
        exact = ndtr([_GRID_LOW + k * _GRID_STEP for k in range(_GRID_POINTS + 1)])  # Phi(g_0 ... g_{N+1})
        exact[0] = 0.0        # Phi(-8) = 6e-16 made 0, so that x * Phi(x) is 0, not -6e-16 x, far below -8
        _cdf_tables["host"] = (exact[:-1].astype(np.float32), (exact[1:] - exact[:-1]).astype(np.float32))
    if xp.__name__ not in _cdf_tables:
        _cdf_tables[xp.__name__] = tuple(xp.asarray(table) for table in _cdf_tables["host"])
    return _cdf_tables[xp.__name__]


def _table_cdf(x: Array) -> Array:
    r"""``Phi(x)`` of a float32 array from a table, as in the back of a statistics book.

    SciPy's float32 ``erf`` evaluates every element in double precision (10 to 20 ns each here). A table of
    $\Phi$ at the points $g_k = -8 + k h$, $h = 1/2048$, read with linear interpolation, costs a few passes and
    two gathers. With $(x + 8) / h = k + f$, $k$ its integer part:

    $$
    \Phi(x) \approx \Phi(g_k) + f\,\big(\Phi(g_{k+1}) - \Phi(g_k)\big),
    \qquad |\text{error}| \le \frac{h^2}{8} \max|\Phi''| = \frac{h^2}{8}\,\varphi(1) < 10^{-8},
    $$

    below float32's own rounding of a number near 1 ($6 \cdot 10^{-8}$), so the result is as close to the exact
    $\Phi$ as SciPy's and PyTorch's float32 erf are (within $7 \cdot 10^{-8}$). Outside $[-8, 8]$, $\Phi$ is 0
    or 1 to within $7 \cdot 10^{-16}$: $x$ is clipped to the grid, whose first value is taken as exactly 0.
    """
    xp = get_array_module(x)
    values, steps = _cdf_table(xp)
    # Plainly k = floor((x - low) / h) and f = (x - low) / h - k. Written so that f is exact: x / h is (h is a
    # power of 2), and so is x / h - floor(x / h), a float32's fraction. Three arrays of x's shape, each reused
    # (a fresh array costs its page faults): f's array ends as Phi.
    position = xp.multiply(x, 1.0 / _GRID_STEP)                 # x / h, shape of x
    xp.clip(position, _GRID_LOW / _GRID_STEP, -_GRID_LOW / _GRID_STEP, out=position)  # x clipped to [-8, 8]
    node = xp.floor(position)                                   # floor(x / h)
    frac = position
    frac -= node                                                # f, in [0, 1)
    node -= _GRID_LOW / _GRID_STEP                              # k = floor(x / h) - low / h, an integer
    row = node.astype(xp.intp)                                  # k as the index type that take reads as it is
    # NumPy's take writes straight into its out= array only when told what to do with an index outside the
    # table (clip to it); CuPy's take has no such option (it wraps). Only a NaN gives such an index, and
    # x * Phi(x) is NaN all the same.
    outside = {} if is_cupy_array(x) else {"mode": "clip"}
    step = xp.take(steps, row, out=node, **outside)             # Phi(g_{k+1}) - Phi(g_k), in k's float array
    step *= frac                                                # f (Phi(g_{k+1}) - Phi(g_k))
    cdf = xp.take(values, row, out=frac, **outside)             # Phi(g_k), in f's array
    cdf += step                                                 # Phi(g_k) + f (Phi(g_{k+1}) - Phi(g_k))
    return cdf


def _normal_cdf(x: Array) -> Array:
    """``Phi(x) = (1 + erf(x / sqrt(2))) / 2`` of a NumPy or CuPy array, keeping its dtype.

    A float32 array reads it from a table (:func:`_table_cdf`, the same numbers on NumPy and CuPy); every
    other dtype uses ``erf`` (``scipy.special.erf`` or ``cupyx.scipy.special.erf``), and the two passes after
    it update its result in place, so float64 keeps the exact function.
    """
    if x.dtype == np.float32:
        return _table_cdf(x)
    if is_cupy_array(x):
        from cupyx.scipy.special import erf
    else:
        from scipy.special import erf
    cdf = erf(x * _SQRT_HALF).astype(x.dtype, copy=False)      # shape of x
    cdf += 1.0
    cdf *= 0.5
    return cdf


def relu_forward(x: Array) -> tuple[Array, dict]:
    """``max(x, 0)`` elementwise.

    Inputs:
        x: float array, any shape

    Returns:
        out: shape of x
        cache: dict with ``positive`` (shape of x, bool) = x > 0 and ``out_spec`` (shape and dtype of out);
            None under ``no_grad()``
    """
    check_float("x", x)
    xp = get_array_module(x)
    out = xp.maximum(x, 0)                                      # shape of x
    if not is_grad_enabled():
        return out, None
    return out, {"positive": x > 0, "out_spec": upstream_spec(out)}


def relu_backward(dout: Array, cache: dict) -> Array:
    """Gradient of ReLU: ``dout`` where the input was positive, 0 elsewhere.

    Inputs:
        dout: upstream gradient, shape of x
        cache: from :func:`relu_forward`

    Returns:
        dx: shape of x
    """
    check_cache("relu_backward", cache)
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: pass dout through where the input was positive (the cache holds that mask).
    # forward: out = max(x, 0)
    return dout * cache["positive"]
    # END EXERCISE


def gelu_forward(x: Array, approximate: str = "none") -> tuple[Array, dict | None]:
    """GELU, ``x * Phi(x)``, exact (``approximate="none"``) or tanh-approximate (``"tanh"``).

    Matches ``torch.nn.functional.gelu(x, approximate=...)``.

    Inputs:
        x: float array, any shape
        approximate: ``"none"`` (erf) or ``"tanh"``

    Returns:
        out: shape of x
        cache: dict with ``approximate``, ``x``, ``out_spec`` and either ``cdf`` = Phi(x) (exact) or ``tanh``
            = t (tanh form); None under ``no_grad()``
    """
    check_float("x", x)
    check_choice("approximate", approximate, ("none", "tanh"))
    xp = get_array_module(x)
    if approximate == "none":
        cdf = _normal_cdf(x)                                    # Phi(x) = (1 + erf(x / sqrt 2)) / 2, shape of x
        if not is_grad_enabled():
            cdf *= x                                            # out = x * Phi(x), in Phi's own array
            return cdf, None
        out = x * cdf
        return out, {"approximate": approximate, "x": x, "cdf": cdf, "out_spec": upstream_spec(out)}
    inner = _SQRT_2_OVER_PI * (x + _TANH_CUBIC * (x * x * x))   # u, shape of x
    t = xp.tanh(inner)
    out = 0.5 * x * (1.0 + t)
    if not is_grad_enabled():
        return out, None
    return out, {"approximate": approximate, "x": x, "tanh": t, "out_spec": upstream_spec(out)}


def gelu_backward(dout: Array, cache: dict) -> Array:
    """Gradient of GELU, the derivative of the same formula the forward used.

    Inputs:
        dout: upstream gradient, shape of x
        cache: from :func:`gelu_forward`

    Returns:
        dx: shape of x
    """
    check_cache("gelu_backward", cache)
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: the derivative of the formula the forward chose, from the cached x and cdf (exact) or tanh.
    x = cache["x"]
    xp = get_array_module(dout, x)
    if cache["approximate"] == "none":
        # forward: out = x * Phi(x), so dout/dx = Phi(x) + x * phi(x)
        # Plainly dout * (cdf + x * exp(-x^2 / 2) / sqrt(2 pi)); built in ONE array updated in place
        local = x * x                                           # shape of x
        local *= -0.5
        xp.exp(local, out=local)                                # exp(-x^2 / 2)
        local *= x
        local *= _INV_SQRT_2PI                                  # x * phi(x)
        local += cache["cdf"]                                   # Phi(x) + x * phi(x)
        local *= dout
        return local
    # forward: out = 0.5 * x * (1 + t), t = tanh(u), u = sqrt(2/pi) * (x + 0.044715 x^3)
    t = cache["tanh"]
    du_dx = _SQRT_2_OVER_PI * (1.0 + 3.0 * _TANH_CUBIC * (x * x))
    local = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx
    return dout * local
    # END EXERCISE


def activation_forward(x: Array, name: str) -> tuple[Array, dict]:
    """Apply the activation called ``name``: ``"relu"``, ``"gelu"`` (exact) or ``"gelu_tanh"``.

    Inputs:
        x: float array, any shape
        name: one of ``ACTIVATIONS``

    Returns:
        out: shape of x
        cache: dict with ``name`` and the chosen activation's own cache (``inner``); None under ``no_grad()``
    """
    check_choice("activation", name, ACTIVATIONS)
    if name == "relu":
        out, inner = relu_forward(x)
    else:
        out, inner = gelu_forward(x, approximate="none" if name == "gelu" else "tanh")
    return out, None if inner is None else {"name": name, "inner": inner}


def activation_backward(dout: Array, cache: dict) -> Array:
    """Gradient of the activation chosen in :func:`activation_forward`.

    Inputs:
        dout: upstream gradient, shape of x
        cache: from :func:`activation_forward`

    Returns:
        dx: shape of x
    """
    check_cache("activation_backward", cache)
    # EXERCISE: call the backward pass of the activation the forward chose, with its own cache.
    if cache["name"] == "relu":
        return relu_backward(dout, cache["inner"])
    return gelu_backward(dout, cache["inner"])
    # END EXERCISE

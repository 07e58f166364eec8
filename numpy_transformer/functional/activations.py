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

``erf`` comes from ``scipy.special`` for NumPy arrays and from ``cupyx.scipy.special`` for CuPy arrays.

Shapes: every array has the shape of x (any shape).
"""
from __future__ import annotations

import math

from ..backend import Array, get_array_module, is_cupy_array
from ..checks import check_choice, check_float, check_upstream, upstream_spec

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_TANH_CUBIC = 0.044715

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")


def _normal_cdf(x: Array) -> Array:
    """``Phi(x) = (1 + erf(x / sqrt(2))) / 2`` of a NumPy or CuPy array, keeping its dtype.

    ``erf`` is ``scipy.special.erf`` or ``cupyx.scipy.special.erf``; the two passes after it update its
    result in place. (SciPy's float32 ``erf`` evaluates in double precision element by element: it, not
    the passes around it, is most of the time of the exact GELU.)
    """
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
        cache: dict with ``positive`` (shape of x, bool) = x > 0 and ``out_spec`` (shape and dtype of out)
    """
    check_float("x", x)
    xp = get_array_module(x)
    out = xp.maximum(x, 0)                                      # shape of x
    return out, {"positive": x > 0, "out_spec": upstream_spec(out)}


def relu_backward(dout: Array, cache: dict) -> Array:
    """Gradient of ReLU: ``dout`` where the input was positive, 0 elsewhere.

    Inputs:
        dout: upstream gradient, shape of x
        cache: from :func:`relu_forward`

    Returns:
        dx: shape of x
    """
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: pass dout through where the input was positive (the cache holds that mask).
    # forward: out = max(x, 0)
    return dout * cache["positive"]
    # END EXERCISE


def gelu_forward(x: Array, approximate: str = "none") -> tuple[Array, dict]:
    """GELU, ``x * Phi(x)``, exact (``approximate="none"``) or tanh-approximate (``"tanh"``).

    Matches ``torch.nn.functional.gelu(x, approximate=...)``.

    Inputs:
        x: float array, any shape
        approximate: ``"none"`` (erf) or ``"tanh"``

    Returns:
        out: shape of x
        cache: dict with ``approximate``, ``x``, ``out_spec`` and either ``cdf`` = Phi(x) (exact) or ``tanh``
            = t (tanh form)
    """
    check_float("x", x)
    check_choice("approximate", approximate, ("none", "tanh"))
    xp = get_array_module(x)
    if approximate == "none":
        cdf = _normal_cdf(x)                                    # Phi(x) = (1 + erf(x / sqrt 2)) / 2, shape of x
        out = x * cdf
        return out, {"approximate": approximate, "x": x, "cdf": cdf, "out_spec": upstream_spec(out)}
    inner = _SQRT_2_OVER_PI * (x + _TANH_CUBIC * (x * x * x))   # u, shape of x
    t = xp.tanh(inner)
    out = 0.5 * x * (1.0 + t)
    return out, {"approximate": approximate, "x": x, "tanh": t, "out_spec": upstream_spec(out)}


def gelu_backward(dout: Array, cache: dict) -> Array:
    """Gradient of GELU, the derivative of the same formula the forward used.

    Inputs:
        dout: upstream gradient, shape of x
        cache: from :func:`gelu_forward`

    Returns:
        dx: shape of x
    """
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
        cache: dict with ``name`` and the chosen activation's own cache (``inner``)
    """
    check_choice("activation", name, ACTIVATIONS)
    if name == "relu":
        out, inner = relu_forward(x)
    else:
        out, inner = gelu_forward(x, approximate="none" if name == "gelu" else "tanh")
    return out, {"name": name, "inner": inner}


def activation_backward(dout: Array, cache: dict) -> Array:
    """Gradient of the activation chosen in :func:`activation_forward`.

    Inputs:
        dout: upstream gradient, shape of x
        cache: from :func:`activation_forward`

    Returns:
        dx: shape of x
    """
    # EXERCISE: call the backward pass of the activation the forward chose, with its own cache.
    if cache["name"] == "relu":
        return relu_backward(dout, cache["inner"])
    return gelu_backward(dout, cache["inner"])
    # END EXERCISE

r"""SiLU (the sigmoid-weighted linear unit, also called Swish), the activation of SwiGLU, and its backward pass.

SiLU weighs its input by the logistic sigmoid of itself, as GELU weighs it by the normal CDF:

$$
\sigma(x) = \frac{1}{1 + e^{-x}}, \qquad \mathrm{silu}(x) = x\, \sigma(x)
$$

It is smooth, close to ReLU far from 0 ($\mathrm{silu}(x) \to x$ for large $x$, $\to 0$ for very negative
$x$), and dips slightly below zero (minimum about $-0.278$ at $x \approx -1.278$). It is
``torch.nn.functional.silu`` and Hugging Face's ``hidden_act="silu"``.

**Backward.** With $\sigma'(x) = \sigma(x)\,(1 - \sigma(x))$ and the product rule:

$$
\frac{d\,\mathrm{silu}}{dx} = \sigma(x) + x\, \sigma(x)\,(1 - \sigma(x)) = \sigma(x)\,\big(1 + x\,(1 - \sigma(x))\big)
$$

so the backward needs only $x$ and $\sigma(x)$, which the cache keeps: no exponential is computed twice.

**A sigmoid that never overflows.** $e^{-x}$ overflows for $x < -709$ in float64 ($-88$ in float32). With
$e = e^{-|x|} \in (0, 1]$ instead, $\sigma(x) = 1/(1 + e)$ for $x \ge 0$ and $e/(1 + e)$ for $x < 0$ (multiply
the top and the bottom by $e^{x}$): one exponential, never of a positive number, and full relative accuracy
in both tails.

Shapes: every array has the shape of x (any shape).
"""
from __future__ import annotations

from ..backend import Array, get_array_module
from ..checks import check_float, check_upstream, upstream_spec


def sigmoid(x: Array) -> Array:
    r"""The logistic function $1 / (1 + e^{-x})$ of a float array, computed without overflow (see above).

    Inputs:
        x: float array, any shape

    Returns:
        sigma: shape of x, x's dtype
    """
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))                                      # shape of x, in (0, 1]
    # Plainly where(x >= 0, 1 / (1 + e), e / (1 + e)); one reciprocal, updated in place, serves both
    reciprocal = e + 1.0
    xp.reciprocal(reciprocal, out=reciprocal)                   # 1 / (1 + e)
    return xp.where(x >= 0, reciprocal, e * reciprocal)        # shape of x


def silu_forward(x: Array) -> tuple[Array, dict]:
    """SiLU ``x * sigmoid(x)`` elementwise; matches ``torch.nn.functional.silu``.

    Inputs:
        x: float array, any shape

    Returns:
        out: shape of x
        cache: dict with ``x`` and ``sigmoid`` = sigmoid(x), both of x's shape (and of out's shape and dtype,
            which ``dout`` must have)
    """
    check_float("x", x)
    sigma = sigmoid(x)                                          # shape of x
    out = x * sigma
    return out, {"x": x, "sigmoid": sigma}


def silu_backward(dout: Array, cache: dict) -> Array:
    """Gradient of SiLU: ``dout * sigmoid(x) * (1 + x * (1 - sigmoid(x)))``.

    Inputs:
        dout: upstream gradient, shape of x
        cache: from :func:`silu_forward`

    Returns:
        dx: shape of x
    """
    check_upstream("dout", dout, upstream_spec(cache["x"]))
    # EXERCISE: the derivative of x * sigmoid(x) from the cached x and sigmoid(x); no exponential needed.
    x, sigma = cache["x"], cache["sigmoid"]
    # forward: out = x * sigmoid(x), so dout/dx = sigmoid(x) * (1 + x * (1 - sigmoid(x)))
    # Plainly dout * sigma * (1 + x * (1 - sigma)); built in ONE array updated in place
    local = 1.0 - sigma                                         # shape of x
    local *= x
    local += 1.0
    local *= sigma
    local *= dout
    return local
    # END EXERCISE

r"""The SwiGLU feed-forward block of Llama-style decoders, and its backward pass.

The 2017 block widens, applies a nonlinearity and narrows: $\mathrm{act}(x W_1^\top) W_2^\top$
(``feedforward.py``). A gated linear unit (Dauphin et al. 2017; Shazeer, "GLU Variants Improve Transformer",
2020) computes TWO widenings of the same input and lets one, through its activation, gate the other
elementwise; SwiGLU's activation is SiLU (Swish):

$$
g = x W_g^\top, \qquad u = x W_u^\top, \qquad a = \mathrm{silu}(g), \qquad h = a \odot u, \qquad
y = h W_d^\top
$$

This is Hugging Face's ``LlamaMLP``: ``down_proj(act_fn(gate_proj(x)) * up_proj(x))``, with $W_g$, $W_u$ of
shape (F, D) and $W_d$ of shape (D, F), no biases by default (each gets one with ``mlp_bias=True``). A third
matrix costs parameters, so Llama picks $F \approx \tfrac{8}{3} D$ instead of $4D$ to keep the count of the
2017 block.

**Backward.** A chain of ops, each with its own backward pass, read from the last to the first. The only new
step is the product $h = a \odot u$: each factor's gradient is the upstream gradient times the OTHER factor,

$$
\frac{\partial L}{\partial a} = \frac{\partial L}{\partial h} \odot u, \qquad
\frac{\partial L}{\partial u} = \frac{\partial L}{\partial h} \odot a,
$$

then $\partial L / \partial g = \mathrm{silu}'(g) \odot \partial L / \partial a$ with
$\mathrm{silu}'(g) = \sigma(g)\,(1 + g\,(1 - \sigma(g)))$ (``silu.py``). The input feeds both widenings, so its
gradient is the sum of the two paths:

$$
\frac{\partial L}{\partial x} = \frac{\partial L}{\partial g} W_g + \frac{\partial L}{\partial u} W_u
$$

The cache holds the caches of the three linear maps and of SiLU, and the two factors $a$ and $u$.

Shapes: x (..., D); w_gate and w_up (F, D); w_down (D, F); biases (F,), (F,), (D,) or None; hidden
arrays (..., F); out (..., D).
"""
from __future__ import annotations

from ..backend import Array
from ..checks import check_float, check_ndim, check_same_dtype, check_shape
from .linear import linear_backward, linear_forward
from .silu import silu_backward, silu_forward


def _check_swiglu(x: Array, w_gate: Array, w_up: Array, w_down: Array) -> None:
    for name, array in (("x", x), ("w_gate", w_gate), ("w_up", w_up), ("w_down", w_down)):
        check_float(name, array)
    check_ndim("w_gate", w_gate, 2, "(F, D)")
    width, hidden = w_gate.shape[1], w_gate.shape[0]
    check_shape("w_up", w_up, (hidden, width), f"(F, D) = {tuple(w_gate.shape)} to match w_gate")
    check_shape("w_down", w_down, (width, hidden), f"(D, F) = ({width}, {hidden}), the transpose of w_gate's shape")
    check_same_dtype(("x", "w_gate", "w_up", "w_down"), x, w_gate, w_up, w_down)
    if x.ndim < 1 or x.shape[-1] != width:
        raise ValueError(f"x: got shape {tuple(x.shape)}; expected (..., D) with D = {width} (w_gate.shape[1])")


def swiglu_forward(x: Array, w_gate: Array, w_up: Array, w_down: Array, b_gate: Array | None = None,
                   b_up: Array | None = None, b_down: Array | None = None) -> tuple[Array, dict]:
    """Apply ``(silu(x @ w_gate.T + b_gate) * (x @ w_up.T + b_up)) @ w_down.T + b_down``.

    Inputs:
        x: (..., D) float array
        w_gate: (F, D) (Hugging Face's ``gate_proj.weight``)
        w_up: (F, D) (``up_proj.weight``)
        w_down: (D, F) (``down_proj.weight``)
        b_gate, b_up: (F,) or None; b_down: (D,) or None

    Returns:
        out: (..., D)
        cache: dict with the caches ``gate``, ``up``, ``silu``, ``down`` and the factors ``activated`` = silu(g)
            and ``up_out`` = u, both (..., F)
    """
    _check_swiglu(x, w_gate, w_up, w_down)
    gate, gate_cache = linear_forward(x, w_gate, b_gate)          # (..., D) -> (..., F)
    up, up_cache = linear_forward(x, w_up, b_up)                  # (..., D) -> (..., F)
    activated, silu_cache = silu_forward(gate)                    # (..., F)
    hidden = activated * up                                       # (..., F)
    out, down_cache = linear_forward(hidden, w_down, b_down)      # (..., F) -> (..., D)
    cache = {"gate": gate_cache, "up": up_cache, "silu": silu_cache, "down": down_cache,
             "activated": activated, "up_out": up}
    return out, cache


def swiglu_backward(dout: Array, cache: dict) -> tuple[Array | None, ...]:
    """Gradients of the SwiGLU block: the forward pass read upwards.

    Inputs:
        dout: (..., D) upstream gradient
        cache: from :func:`swiglu_forward`

    Returns:
        dx: (..., D), dw_gate: (F, D), dw_up: (F, D), dw_down: (D, F),
        db_gate: (F,) or None, db_up: (F,) or None, db_down: (D,) or None (None where the forward had no bias)
    """
    # EXERCISE: undo down, the product silu(gate) * up, SiLU and both widenings; x feeds two paths.
    # forward: out = linear(hidden, w_down, b_down)
    dhidden, dw_down, db_down = linear_backward(dout, cache["down"])  # (..., D) -> (..., F)
    # forward: hidden = activated * up: each factor's gradient is dhidden times the other factor
    dactivated = dhidden * cache["up_out"]                        # (..., F)
    dup = dhidden * cache["activated"]                            # (..., F)
    # forward: activated = silu(gate)
    dgate = silu_backward(dactivated, cache["silu"])              # (..., F)
    # forward: up = linear(x, w_up, b_up) and gate = linear(x, w_gate, b_gate): x feeds both, the paths add
    dx, dw_up, db_up = linear_backward(dup, cache["up"])          # (..., F) -> (..., D)
    dx_gate, dw_gate, db_gate = linear_backward(dgate, cache["gate"])  # (..., F) -> (..., D)
    dx += dx_gate
    return dx, dw_gate, dw_up, dw_down, db_gate, db_up, db_down
    # END EXERCISE

r"""The position-wise feed-forward block of a Transformer layer.

Every position's vector goes through the same two-layer network: widen from $D$ to $F$ (usually $4D$), apply a
nonlinearity, optionally drop out, and project back to $D$:

$$
h = x W_1^\top + b_1, \qquad a = \mathrm{act}(h), \qquad
a' = \mathrm{dropout}(a), \qquad y = a' W_2^\top + b_2
$$

with $\mathrm{act}$ one of ``"relu"``, ``"gelu"`` (exact) or ``"gelu_tanh"``. This is
``torch.nn.TransformerEncoderLayer``'s ``linear2(dropout(activation(linear1(x))))``.

Backward. The block is a chain of four ops, each with its own backward pass, so the chain rule is those
backward passes called in the reverse order, each on the gradient the next one returned:

$$
(da', dW_2, db_2) = \mathrm{linear}'(dy), \quad da = \mathrm{dropout}'(da'), \quad
dh = \mathrm{act}'(da), \quad (dx, dW_1, db_1) = \mathrm{linear}'(dh)
$$

The cache is the tuple of the four ops' caches.

Shapes: x (..., D), w1 (F, D), b1 (F,), w2 (D, F), b2 (D,), hidden arrays (..., F), out (..., D).
"""
from __future__ import annotations

import numpy as np

from ..backend import Array
from ..checks import check_choice
from ..grad_mode import check_cache, is_grad_enabled
from .activations import ACTIVATIONS, activation_backward, activation_forward
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward


def feedforward_forward(x: Array, w1: Array, b1: Array | None, w2: Array, b2: Array | None, activation: str = "relu",
                        dropout_p: float = 0.0, rng: int | np.random.Generator | None = None) -> tuple[Array, dict]:
    """Apply ``act(x @ w1.T + b1)``, dropout, then ``@ w2.T + b2``.

    Inputs:
        x: (..., D) float array
        w1: (F, D), b1: (F,) or None   the widening layer (torch's ``linear1``)
        w2: (D, F), b2: (D,) or None   the projection back (torch's ``linear2``)
        activation: ``"relu"``, ``"gelu"`` or ``"gelu_tanh"``
        dropout_p: drop probability of the hidden activations (0 in evaluation)
        rng: int seed, Generator or None, for the dropout mask

    Returns:
        out: (..., D)
        cache: dict with the caches of ``linear1``, ``activation``, ``dropout`` and ``linear2``; None under
            ``no_grad()``
    """
    check_choice("activation", activation, ACTIVATIONS)
    hidden, linear1_cache = linear_forward(x, w1, b1)            # (..., D) -> (..., F)
    activated, activation_cache = activation_forward(hidden, activation)  # (..., F)
    dropped, dropout_cache = dropout_forward(activated, p=dropout_p, training=True, rng=rng)  # (..., F)
    out, linear2_cache = linear_forward(dropped, w2, b2)        # (..., F) -> (..., D)
    if not is_grad_enabled():
        return out, None
    cache = {
        "linear1": linear1_cache,
        "activation": activation_cache,
        "dropout": dropout_cache,
        "linear2": linear2_cache,
    }
    return out, cache


def feedforward_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array | None, Array, Array | None]:
    """Gradients of the feed-forward block: the forward pass read upwards.

    Inputs:
        dout: (..., D) upstream gradient
        cache: from :func:`feedforward_forward`

    Returns:
        dx: (..., D), dw1: (F, D), db1: (F,) or None, dw2: (D, F), db2: (D,) or None
    """
    check_cache("feedforward_backward", cache)
    # EXERCISE: the four ops' backward passes, called in the reverse order of the forward.
    # forward: out = linear(dropped, w2, b2)
    ddropped, dw2, db2 = linear_backward(dout, cache["linear2"])  # (..., D) -> (..., F)
    # forward: dropped = dropout(activated)
    dactivated = dropout_backward(ddropped, cache["dropout"])    # (..., F)
    # forward: activated = act(hidden)
    dhidden = activation_backward(dactivated, cache["activation"])  # (..., F)
    # forward: hidden = linear(x, w1, b1)
    dx, dw1, db1 = linear_backward(dhidden, cache["linear1"])    # (..., F) -> (..., D)
    return dx, dw1, db1, dw2, db2
    # END EXERCISE

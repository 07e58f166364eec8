r"""Inverted dropout.

During training each element is zeroed with probability $p$ and the survivors are scaled by
$1 / (1 - p)$, so the expected value of every element is unchanged and evaluation needs no rescaling:

$$
m_i \sim \mathrm{Bernoulli}(1 - p), \qquad s_i = \frac{m_i}{1 - p}, \qquad y_i = x_i s_i,
\qquad \mathbb{E}[y_i] = x_i
$$

In evaluation (``training=False``) or with $p = 0$ dropout is the identity.

Backward. $y$ is $x$ times a constant $s$ drawn in the forward pass, so
$\partial L / \partial x = \partial L / \partial y \odot s$: the same elements are dropped and the same scale
applied. The cache keeps the scaled mask $s$ (not $x$,
which the gradient does not need), or nothing when dropout was the identity.

Randomness: ``rng`` is an int seed (reproducible), a Generator of x's array module (``numpy.random`` or
``cupy.random``, advanced by each call), or None (fresh entropy).

Shapes: every array has the shape of x (any shape).
"""
from __future__ import annotations

import numpy as np

from ..backend import Array, get_array_module, seeded_generator
from ..checks import check_float, check_probability, check_upstream, upstream_spec


def dropout_forward(x: Array, p: float = 0.5, training: bool = True,
                    rng: int | np.random.Generator | None = None) -> tuple[Array, dict]:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Inputs:
        x: float array, any shape
        p: drop probability in [0, 1)
        training: False makes dropout the identity
        rng: int seed, Generator (of x's array module) or None

    Returns:
        out: shape of x
        cache: dict with ``mask`` = the scaled mask s (shape of x, dtype of x), or None for the identity,
            and ``out_spec`` (the shape and dtype of out)
    """
    check_float("x", x)
    check_probability("p", p)
    if not training or p == 0:
        return x, {"mask": None, "out_spec": upstream_spec(x)}
    xp = get_array_module(x)
    generator = seeded_generator(rng, xp)
    scale = 1.0 / (1.0 - float(p))                              # a Python float: keeps x's dtype
    draw_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
    keep = generator.random(x.shape, dtype=draw_dtype) >= p     # shape of x, bool: True with probability 1 - p
    mask = keep.astype(x.dtype)                                 # m in {0, 1}
    mask *= scale                                               # s = m / (1 - p), in place
    out = x * mask
    return out, {"mask": mask, "out_spec": upstream_spec(out)}


def dropout_backward(dout: Array, cache: dict) -> Array:
    """Gradient of dropout: the upstream gradient through the same scaled mask.

    Inputs:
        dout: upstream gradient, shape of x
        cache: from :func:`dropout_forward`

    Returns:
        dx: shape of x
    """
    check_upstream("dout", dout, cache["out_spec"])
    # EXERCISE: send dout through the same scaled mask (None: dropout was the identity).
    mask = cache["mask"]
    if mask is None:
        # forward: out = x (evaluation, or p = 0)
        return dout
    # forward: out = x * mask
    return dout * mask
    # END EXERCISE

r"""Gradient clipping by the global norm, as ``torch.nn.utils.clip_grad_norm_``.

All gradients together are seen as one long vector $g$. If its norm $\lVert g \rVert$ exceeds ``max_norm``,
every gradient is scaled by $\text{max\_norm} / (\lVert g \rVert + 10^{-6})$, which keeps the direction and
caps the length:

$$
g \leftarrow g \cdot \min\left(1, \frac{\text{max\_norm}}{\lVert g \rVert + 10^{-6}}\right)
$$

The norm of the long vector is the norm of the per-array norms (for any p-norm), so it is computed without
concatenating anything. The factor is applied whether or not it is 1, so no value ever has to be read back
from the device to decide.
"""
from __future__ import annotations

import math

from ..backend import get_array_module

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False):
    """Scale the gradients of ``parameters`` in place so that their global norm is at most ``max_norm``.

    Inputs:
        parameters: a Parameter or an iterable of them; those whose ``grad`` is None are ignored.
        max_norm: the largest allowed norm.
        norm_type: p of the p-norm (``float("inf")`` for the largest absolute value).
        error_if_nonfinite: raise when the norm is nan or inf (this reads the norm back from the device).

    Returns:
        the global norm before clipping, a 0-d array on the gradients' device (0.0 when no gradients).
    """
    if hasattr(parameters, "grad"):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or max_norm < 0:
        raise ValueError(f"max_norm: got {max_norm!r}; expected a non-negative number")
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    xp = get_array_module(*grads)
    norms = [xp.linalg.norm(g.reshape(-1), ord=norm_type) for g in grads]  # one p-norm per array
    total = xp.linalg.norm(xp.stack(norms), ord=norm_type)                 # (number of arrays,) -> ()
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise RuntimeError(
            f"parameters: the total {norm_type}-norm of the gradients is {float(total)}; expected a finite value"
        )
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)                     # 0-d, on the device
    for g in grads:
        g *= scale.astype(g.dtype)
    return total

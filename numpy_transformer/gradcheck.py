r"""Gradient checking: is a hand-written backward pass the true derivative of its forward pass?

For a function $y = f(x)$ and any fixed "upstream gradient" $g$ (same shape as $y$), the backward
pass must return the gradient of the scalar $L(x) = \sum_j g_j f_j(x)$:

$$
\frac{\partial L}{\partial x_i} = \sum_j g_j \frac{\partial f_j}{\partial x_i}
$$

Central differences estimate each component with an error of order $\epsilon^2$:

$$
\frac{\partial L}{\partial x_i} \approx \frac{L(x + \epsilon e_i) - L(x - \epsilon e_i)}{2 \epsilon}
$$

In float64 with $\epsilon = 10^{-6}$ this agrees with a correct backward pass to about 1e-9 relative, so any
bug (a missing transpose, a forgotten path, a wrong sign) shows up as an error near 1. The upstream
gradient is random, not all ones, so that a backward that ignores ``g`` or mixes up its axes cannot pass.

The relative error of one gradient is measured against the size of that gradient:

$$
\text{err} = \frac{\max_i |a_i - n_i|}{\max(\max_i |a_i|, \max_i |n_i|)}
$$

where $a$ is the analytic (hand-written) and $n$ the numerical gradient. It is 0 for two exactly
equal gradients (both all zero included).

Public API:

- :func:`numerical_gradient` -- the central-difference gradient of ``sum(g * f())`` with respect to one array.
- :func:`gradcheck` -- checks a functional ``forward(...) -> (out, cache)`` / ``backward(dout, cache)`` pair.
- :func:`gradcheck_module` -- checks a layer (anything with ``forward``, ``backward`` and ``named_parameters``)
  with respect to every input and every parameter.

Both checkers return a :class:`GradcheckReport`; ``print(report)`` shows one line per input and parameter,
``report.ok`` says whether all passed, and ``report.assert_ok()`` raises with the table if not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .backend import get_array_module, to_numpy

__all__ = ["numerical_gradient", "relative_error", "gradcheck", "gradcheck_module", "GradcheckReport"]


def numerical_gradient(f: Callable[[], Any], x, upstream, eps: float = 1e-6):
    """Central-difference gradient of ``sum(upstream * f())`` with respect to ``x``.

    Inputs:
        f: a function of no arguments that reads ``x`` (the array object itself, changed in place) and
           returns an output array of the same shape as ``upstream``.
        x: the float array to differentiate with respect to; it is perturbed in place one element at a
           time and restored exactly, so it must be writable and C-contiguous.
        upstream: the upstream gradient ``g``, shape of ``f()``.
        eps: the step.

    Returns:
        grad: an array of the shape of ``x``.

    NOTE: this loops over the elements of ``x``; that is the one place in the library where a Python loop
    over array elements is the point (it costs two forward passes per element, so keep test sizes small).
    """
    xp = get_array_module(x)
    grad = xp.zeros(x.shape, dtype=np.float64)
    if not x.flags.c_contiguous:
        raise ValueError("x: got a non-contiguous array; expected a C-contiguous array that can be perturbed in place")
    flat_x = x.reshape(-1)  # a view, so writing to it perturbs x itself
    flat_grad = grad.reshape(-1)
    for index in range(flat_x.size):
        original = flat_x[index].copy()
        flat_x[index] = original + eps
        plus = float((upstream * f()).sum())
        flat_x[index] = original - eps
        minus = float((upstream * f()).sum())
        flat_x[index] = original
        flat_grad[index] = (plus - minus) / (2.0 * eps)
    return grad


def relative_error(analytic, numerical) -> float:
    """``max|a - n| / max(max|a|, max|n|)``; 0 when both are exactly zero."""
    analytic = to_numpy(analytic).astype(np.float64)
    numerical = to_numpy(numerical).astype(np.float64)
    if analytic.shape != numerical.shape:
        raise ValueError(f"analytic: got shape {analytic.shape}; expected {numerical.shape} (the numerical gradient's)")
    if analytic.size == 0:
        return 0.0
    worst = float(np.max(np.abs(analytic - numerical)))
    scale = max(float(np.max(np.abs(analytic))), float(np.max(np.abs(numerical))))
    if worst == 0.0:
        return 0.0
    return worst / scale if scale > 0 else float("inf")


@dataclass
class GradcheckReport:
    """The worst relative error of each checked gradient, and whether all are within ``tol``."""

    errors: dict = field(default_factory=dict)  # name -> worst relative error
    tol: float = 1e-6
    missing: list = field(default_factory=list)  # names whose backward returned no gradient

    @property
    def ok(self) -> bool:
        return not self.missing and all(err <= self.tol for err in self.errors.values())

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    def __str__(self) -> str:
        width = max([len(n) for n in list(self.errors) + self.missing] + [8])
        lines = [f"{'gradient'.ljust(width)}  worst relative error  (tolerance {self.tol:.0e})"]
        for name, err in self.errors.items():
            verdict = "ok" if err <= self.tol else "WRONG"
            lines.append(f"{name.ljust(width)}  {err:20.3e}  {verdict}")
        for name in self.missing:
            lines.append(f"{name.ljust(width)}  {'(no gradient returned)':>20}  WRONG")
        return "\n".join(lines)

    def assert_ok(self) -> "GradcheckReport":
        if not self.ok:
            raise AssertionError("gradient check failed:\n" + str(self))
        return self


def _split_result(result):
    """A forward returns ``(out, cache)`` or ``(out, extra..., cache)``: the output is first."""
    if isinstance(result, tuple):
        return result[0], result[-1]
    return result, None


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def _is_float_array(x) -> bool:
    return hasattr(x, "dtype") and getattr(x.dtype, "kind", "") == "f"


def gradcheck(
    forward: Callable,
    backward: Callable,
    inputs: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
    wrt: Sequence[int] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    eps: float = 1e-6,
    tol: float = 1e-6,
    seed: int = 0,
) -> GradcheckReport:
    """Check a functional pair ``forward(*inputs, **kwargs) -> (out, cache)``, ``backward(dout, cache) -> grads``.

    Inputs:
        forward: returns ``(out, cache)`` (or ``(out, ..., cache)``: the first item is the output).
        backward: takes ``(dout, cache)`` and returns one gradient per differentiated input, in order
            (a tuple, or a single array when there is one). ``None`` stands for "no gradient".
        inputs: the positional inputs of ``forward``. Use float64 for meaningful results.
        names: a name for each input, used in the report (default ``input0``, ``input1`` ...).
        wrt: indices of the inputs that ``backward`` returns gradients for, in order
            (default: every floating-point array input).
        kwargs: keyword arguments for ``forward`` (masks, flags ...); not differentiated.
        eps, tol: finite-difference step and the largest relative error that passes.
        seed: seeds the random upstream gradient.

    Returns:
        a :class:`GradcheckReport`.
    """
    kwargs = dict(kwargs or {})
    xp = get_array_module(*[x for x in inputs if hasattr(x, "dtype")])
    # Copies, so that the caller's arrays are never touched by the in-place perturbation.
    inputs = [xp.array(x, copy=True) if hasattr(x, "dtype") else x for x in inputs]
    names = list(names) if names is not None else [f"input{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(f"names: got {len(names)} names; expected one per input ({len(inputs)})")
    if wrt is None:
        wrt = [i for i, x in enumerate(inputs) if _is_float_array(x)]

    def run():
        out, _ = _split_result(forward(*inputs, **kwargs))
        return out

    out, cache = _split_result(forward(*inputs, **kwargs))
    rng = np.random.default_rng(seed)
    upstream = xp.asarray(rng.standard_normal(np.shape(out)).astype(np.float64))
    if hasattr(out, "dtype"):
        upstream = upstream.astype(out.dtype)
    analytic = _as_tuple(backward(upstream, cache))
    if len(analytic) != len(wrt):
        raise ValueError(f"backward: returned {len(analytic)} gradients; expected {len(wrt)} (one per index in wrt)")

    report = GradcheckReport(tol=tol)
    for index, grad in zip(wrt, analytic):
        if grad is None:
            report.missing.append(names[index])
            continue
        numerical = numerical_gradient(run, inputs[index], upstream, eps)
        report.errors[names[index]] = relative_error(grad, numerical)
    return report


def gradcheck_module(
    module: Any,
    inputs: Sequence[Any],
    *,
    kwargs: Mapping[str, Any] | None = None,
    input_names: Sequence[str] | None = None,
    output: Callable[[Any], Any] | None = None,
    eps: float = 1e-6,
    tol: float = 1e-6,
    seed: int = 0,
) -> GradcheckReport:
    """Check a layer's ``backward`` against finite differences, for every float input and every parameter.

    The layer needs ``forward(*inputs, **kwargs)``, ``backward(dout)`` (returning the gradient of each float
    input, as a tuple when there are several) and ``named_parameters()`` yielding ``(name, param)`` with
    ``param.data``, ``param.grad`` and ``param.requires_grad``; parameter gradients are read from
    ``param.grad`` after one backward from zeroed gradients. Any :class:`numpy_transformer.nn.Module`
    qualifies, and so does a small class a user writes (see the README).

    Inputs:
        module: the layer; put it in eval mode (or seed its dropout) so that forward is deterministic.
        inputs: positional inputs of ``forward``; float arrays among them are differentiated.
        kwargs: keyword arguments for ``forward`` (masks ...).
        input_names: names for the inputs in the report.
        output: picks the differentiated output from what forward returns (default: the first item of a
            tuple, or the value itself).
    """
    kwargs = dict(kwargs or {})
    xp = get_array_module(*[x for x in inputs if hasattr(x, "dtype")])
    inputs = [xp.array(x, copy=True) if hasattr(x, "dtype") else x for x in inputs]
    names = list(input_names) if input_names is not None else [f"input{i}" for i in range(len(inputs))]
    pick = output or (lambda result: result[0] if isinstance(result, tuple) else result)
    float_inputs = [i for i, x in enumerate(inputs) if _is_float_array(x)]

    def run():
        return pick(module.forward(*inputs, **kwargs))

    parameters = [(n, p) for n, p in module.named_parameters() if getattr(p, "requires_grad", True)]
    for _, param in parameters:
        param.grad = None
    out = run()
    rng = np.random.default_rng(seed)
    upstream = xp.asarray(rng.standard_normal(np.shape(out))).astype(out.dtype)
    input_grads = _as_tuple(module.backward(upstream))

    report = GradcheckReport(tol=tol)
    for position, index in enumerate(float_inputs):
        grad = input_grads[position] if position < len(input_grads) else None
        if grad is None:
            report.missing.append(names[index])
            continue
        report.errors[names[index]] = relative_error(grad, numerical_gradient(run, inputs[index], upstream, eps))
    for name, param in parameters:
        if param.grad is None:
            report.missing.append(name)
            continue
        analytic = xp.array(param.grad, copy=True)
        report.errors[name] = relative_error(analytic, numerical_gradient(run, param.data, upstream, eps))
    return report

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

Three ways a check could mislead, and what the checkers do about each:

- **float32 or float16.** Central differences need float64: in float32 a step of 1e-6 is lost in rounding
  and a correct backward shows errors of 1e-2 to 1e-1 (float16: 1). The checkers refuse any float input or
  parameter that is not float64, and say how to convert (``x.astype(np.float64)``, ``module.double()``).
- **A random forward.** Dropout in training mode draws a new mask on every call, so the finite differences
  compare two different functions. The checkers run forward twice first and refuse a forward whose two
  outputs differ, naming the dropout layers that are on (``module.eval()`` turns them off).
- **A backward that writes into its upstream gradient.** ``backward`` gets a private copy of ``g``; the
  finite differences use the original. A backward that changes ``g`` (``dout *= 2``) is reported as WRONG
  on a line of its own, even when its gradients happen to be right: the caller's array would be corrupted.

Public API:

- :func:`numerical_gradient` -- the central-difference gradient of ``sum(g * f())`` with respect to one array.
- :func:`gradcheck` -- checks a functional ``forward(...) -> (out, cache)`` / ``backward(dout, cache)`` pair.
- :func:`gradcheck_module` -- checks a layer (anything with ``forward``, ``backward`` and ``named_parameters``)
  with respect to every input and every parameter.

Both checkers return a :class:`GradcheckReport`; ``print(report)`` shows one line per input and parameter,
``report.ok`` says whether all passed, and ``report.assert_ok()`` raises with the table if not.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    if x.dtype != np.float64:
        raise TypeError(f"x: got dtype {x.dtype}; expected float64 (a step of {eps:g} is lost to rounding in "
                        "lower precision): pass x.astype(np.float64)")
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
    upstream_modified: bool = False  # backward wrote into the upstream gradient it was given

    @property
    def ok(self) -> bool:
        return not self.missing and not self.upstream_modified and all(err <= self.tol for err in self.errors.values())

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
        if self.upstream_modified:
            lines.append("backward changed the upstream gradient it was given (in place)  WRONG: copy before "
                         "writing into dout")
        return "\n".join(lines)

    def assert_ok(self) -> GradcheckReport:
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


def _check_float64(named_arrays, how: str) -> None:
    """Every float array must be float64; ``how`` says how to convert (finite differences need the precision)."""
    for name, array in named_arrays:
        if _is_float_array(array) and array.dtype != np.float64:
            raise TypeError(f"{name}: got dtype {array.dtype}; expected float64: finite differences in "
                            f"{array.dtype} are off by about 1e-2 or more even for a correct backward. {how}")


def _check_deterministic(first, second, what: str) -> None:
    """Two forward calls on the same inputs must agree, or finite differences compare different functions."""
    xp = get_array_module(first, second)
    if not bool(xp.array_equal(first, second, equal_nan=True)):
        raise ValueError(f"{what}: two forward calls on the same inputs gave different outputs, so finite "
                         "differences would compare two different functions")


def _dropouts_on(module) -> list[str]:
    """The dropout layers of a Module that would drop something in its current mode (``name (p=...)``)."""
    from .nn.attention import MultiheadAttention  # here, not at the top: gradcheck does not need nn otherwise
    from .nn.layers import Dropout

    found = []
    for name, sub in module.named_modules() if hasattr(module, "named_modules") else ():
        p = sub.p if isinstance(sub, Dropout) else sub.dropout if isinstance(sub, MultiheadAttention) else 0.0
        if sub.training and p > 0:
            found.append(f"{name or type(sub).__name__} (p={p:g})")
    return found


def _private_copy(upstream, xp):
    """A copy of the upstream gradient for backward, so the finite differences keep the original."""
    return xp.array(upstream, copy=True)


def _changed(upstream, given, xp) -> bool:
    return not bool(xp.array_equal(upstream, given, equal_nan=True))


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
        inputs: the positional inputs of ``forward``; float arrays must be float64 (others are refused).
        names: a name for each input, used in the report (default ``input0``, ``input1`` ...).
        wrt: indices of the inputs that ``backward`` returns gradients for, in order
            (default: every floating-point array input).
        kwargs: keyword arguments for ``forward`` (masks, flags ...); not differentiated.
        eps, tol: finite-difference step and the largest relative error that passes.
        seed: seeds the random upstream gradient.

    Returns:
        a :class:`GradcheckReport`.

    Raises:
        TypeError for a float input that is not float64; ValueError when two forward calls on the same
        inputs give different outputs (random dropout: pass ``dropout_p=0`` or a fixed int seed).
    """
    kwargs = dict(kwargs or {})
    xp = get_array_module(*[x for x in inputs if hasattr(x, "dtype")])
    # Copies, so that the caller's arrays are never touched by the in-place perturbation.
    inputs = [xp.array(x, copy=True) if hasattr(x, "dtype") else x for x in inputs]
    names = list(names) if names is not None else [f"input{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(f"names: got {len(names)} names; expected one per input ({len(inputs)})")
    _check_float64(zip(names, inputs, strict=True), "Pass x.astype(np.float64) for each.")
    if wrt is None:
        wrt = [i for i, x in enumerate(inputs) if _is_float_array(x)]

    def run():
        out, _ = _split_result(forward(*inputs, **kwargs))
        return out

    first = xp.array(run(), copy=True)
    out, cache = _split_result(forward(*inputs, **kwargs))
    try:
        _check_deterministic(first, out, "forward")
    except ValueError as error:
        raise ValueError(f"{error} (random dropout? pass dropout_p=0, or an int seed so that every call draws "
                         "the same mask)") from None
    rng = np.random.default_rng(seed)
    upstream = xp.asarray(rng.standard_normal(np.shape(out)).astype(np.float64))
    if hasattr(out, "dtype"):
        upstream = upstream.astype(out.dtype)
    given = _private_copy(upstream, xp)                          # backward may not write into the original
    analytic = _as_tuple(backward(given, cache))
    if len(analytic) != len(wrt):
        raise ValueError(f"backward: returned {len(analytic)} gradients; expected {len(wrt)} (one per index in wrt)")

    report = GradcheckReport(tol=tol, upstream_modified=_changed(upstream, given, xp))
    for index, grad in zip(wrt, analytic, strict=True):
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
        module: the layer, with float64 parameters (``module.double()``) and a deterministic forward (eval
            mode: ``module.eval()``); anything else is refused with an error that says which and why.
        inputs: positional inputs of ``forward``; float arrays among them (float64) are differentiated.
        kwargs: keyword arguments for ``forward`` (masks ...).
        input_names: names for the inputs in the report.
        output: picks the differentiated output from what forward returns (default: the first item of a
            tuple, or the value itself).
    """
    kwargs = dict(kwargs or {})
    xp = get_array_module(*[x for x in inputs if hasattr(x, "dtype")])
    inputs = [xp.array(x, copy=True) if hasattr(x, "dtype") else x for x in inputs]
    names = list(input_names) if input_names is not None else [f"input{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(f"input_names: got {len(names)} names; expected one per input ({len(inputs)})")
    pick = output or (lambda result: result[0] if isinstance(result, tuple) else result)
    float_inputs = [i for i, x in enumerate(inputs) if _is_float_array(x)]

    def run():
        return pick(module.forward(*inputs, **kwargs))

    parameters = [(n, p) for n, p in module.named_parameters() if getattr(p, "requires_grad", True)]
    convert = "Convert the module (module.double(), or build it with dtype=np.float64) and its inputs " \
              "(x.astype(np.float64))."
    _check_float64(zip(names, inputs, strict=True), convert)
    _check_float64([(f"parameter {name}", param.data) for name, param in parameters], convert)
    for _, param in parameters:
        param.grad = None
    first = xp.array(run(), copy=True)
    out = run()
    try:
        _check_deterministic(first, out, "module")
    except ValueError as error:
        dropouts = _dropouts_on(module)
        if dropouts:
            raise ValueError(f"{error}: the module is in training mode with dropout on ({', '.join(dropouts)}), "
                             "which draws a new mask on every call; call module.eval() first") from None
        raise
    _check_float64([("forward's output", out)], convert)
    rng = np.random.default_rng(seed)
    upstream = xp.asarray(rng.standard_normal(np.shape(out))).astype(out.dtype)
    given = _private_copy(upstream, xp)                          # backward may not write into the original
    input_grads = _as_tuple(module.backward(given))

    report = GradcheckReport(tol=tol, upstream_modified=_changed(upstream, given, xp))
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

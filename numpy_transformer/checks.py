"""Argument checks shared by every op, so that bad input fails early with a message that helps.

Each check raises ``ValueError`` (wrong shape or value) or ``TypeError`` (wrong type or dtype) whose
message names the argument, what it got, and what was expected, e.g.:

    ValueError: weight: got shape (3, 5); expected (4, 5) (out_features=4, in_features=5)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import FLOAT_DTYPES


def check_array(name: str, x: Any) -> None:
    """``x`` must be a NumPy or CuPy array."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "ndim")):
        raise TypeError(f"{name}: got {type(x).__name__}; expected a NumPy or CuPy array")


def check_float(name: str, x: Any) -> None:
    """``x`` must be a floating-point array (float16, float32 or float64)."""
    check_array(name, x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: got dtype {x.dtype}; expected a floating dtype (float16, float32 or float64)")


def check_integer(name: str, x: Any) -> None:
    """``x`` must be an integer array (indices, token ids, class targets)."""
    check_array(name, x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name}: got dtype {x.dtype}; expected an integer dtype (e.g. int64 token ids)")


def check_ndim(name: str, x: Any, ndim: int | Sequence[int], meaning: str = "") -> None:
    """``x.ndim`` must be ``ndim`` (or one of several); ``meaning`` spells the expected axes, e.g. "(B, T, D)"."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.ndim not in allowed:
        want = " or ".join(str(n) for n in allowed)
        extra = f" {meaning}" if meaning else ""
        raise ValueError(f"{name}: got shape {tuple(x.shape)} ({x.ndim}-D); expected {want}-D{extra}")


def check_shape(name: str, x: Any, expected: Sequence[int | None], meaning: str = "") -> None:
    """``x.shape`` must equal ``expected``, where ``None`` in ``expected`` matches any size."""
    expected = tuple(expected)
    ok = x.ndim == len(expected) and all(e is None or e == s for s, e in zip(x.shape, expected, strict=True))
    if not ok:
        sizes = ", ".join("*" if e is None else str(e) for e in expected)
        shown = "(" + sizes + ("," if len(expected) == 1 else "") + ")"
        extra = f" {meaning}" if meaning else ""
        raise ValueError(f"{name}: got shape {tuple(x.shape)}; expected {shown}{extra}")


def check_same_dtype(names: Sequence[str], *arrays: Any) -> None:
    """All given (non-None) arrays must share one floating dtype: nothing is silently upcast."""
    pairs = [(n, a) for n, a in zip(names, arrays, strict=True) if a is not None]
    first_name, first = pairs[0]
    for name, array in pairs[1:]:
        if array.dtype != first.dtype:
            raise TypeError(
                f"{name}: got dtype {array.dtype}; expected {first.dtype} to match {first_name} "
                "(cast explicitly; the library never upcasts silently)"
            )


def check_broadcastable(name: str, shape: Sequence[int], target: Sequence[int], meaning: str = "") -> None:
    """An array of ``shape`` must broadcast to ``target`` (without growing ``target``)."""
    shape, target = tuple(shape), tuple(target)
    ok = len(shape) <= len(target) and all(s in (1, t) for s, t in zip(shape[::-1], target[::-1], strict=False))
    if not ok:
        extra = f" {meaning}" if meaning else ""
        raise ValueError(f"{name}: got shape {shape}; expected a shape that broadcasts to {target}{extra}")


def check_probability(name: str, p: Any) -> None:
    """``p`` must be a number in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{name}: got {p!r}; expected a probability in [0, 1)")


def check_positive_int(name: str, n: Any) -> None:
    """``n`` must be an int >= 1."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}: got {n!r}; expected a positive integer")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: got {value!r}; expected one of {', '.join(repr(c) for c in choices)}")


def upstream_spec(out: Any) -> tuple:
    """What the upstream gradient of ``out`` must look like: ``(shape, dtype)``, kept in a forward's cache."""
    return tuple(out.shape), out.dtype


def check_upstream(name: str, dout: Any, spec: tuple, of: str = "the forward's output") -> None:
    """``dout`` must have the shape and dtype in ``spec`` (from :func:`upstream_spec` of the forward's output).

    A gradient of another shape is never reshaped to fit, and one of another dtype is never silently
    promoted (a float64 ``dout`` would otherwise turn every gradient of a float32 model into float64).
    """
    shape, dtype = spec
    check_array(name, dout)
    if tuple(dout.shape) != shape:
        raise ValueError(f"{name}: got shape {tuple(dout.shape)}; expected {shape}, the shape of {of}")
    if dout.dtype != dtype:
        raise TypeError(f"{name}: got dtype {dout.dtype}; expected {dtype}, the dtype of {of} (cast explicitly; "
                        "the library never upcasts silently)")

"""Grading a folder of exercises with the project's own gradient checks.

For each exercise, in reading order, and for each of its cases (:mod:`.cases`):

1. the student's forward pass runs on fresh float64 inputs, and the student's backward pass on a random
   upstream gradient; each gradient it returns must be there (or ``None`` where the op has none, such as
   the bias of a layer without one), with the shape and dtype of its input;
2. :func:`numpy_transformer.gradcheck.gradcheck` holds every gradient against float64 central differences
   (worst relative error at most 1e-6);
3. when PyTorch is installed, ``torch.autograd`` gives the reference gradients of the case's torch twin, in
   float64 (relative error at most 1e-9) and in float32 (at most 1e-4, and the gradients must stay float32).

The result is one line per function: ``passed``, or what is wrong and where: which gradient, its worst
relative error against which reference, and in which case.
"""
from __future__ import annotations

import importlib.util
import pathlib
import traceback
from dataclasses import dataclass

import numpy as np

from ..book.contents import PACKAGE_DIR
from ..gradcheck import gradcheck, relative_error
from .cases import Case, cases_for
from .source import Exercise, all_exercises

FD_TOLERANCE = 1e-6
TORCH_TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


@dataclass
class Result:
    """The verdict on one function: ``status`` is ``"passed"``, ``"not written"``, ``"WRONG"`` or ``"ERROR"``."""

    exercise: Exercise
    status: str
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def line(self, width: int = 40) -> str:
        text = f"{self.exercise.function.ljust(width)}  {self.status}"
        return f"{text}: {self.message}" if self.message else text


class _Failure(Exception):
    """A case found a problem: the status and the message of the function's line."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def load_module(path: pathlib.Path, name: str):
    """Import one exercise file by its path (a fresh module each time, never cached in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(f"numpy_transformer_exercise_{name}", path.resolve())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_exercise_file(filename: str) -> bool:
    """True for a frame of the student's file: neither this package, nor an installed package, nor Python's."""
    path = pathlib.Path(filename)
    return path.suffix == ".py" and PACKAGE_DIR not in path.parents and "site-packages" not in path.parts \
        and pathlib.Path(traceback.__file__).parent not in path.parents


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _as_dtype(inputs: list, dtype) -> list:
    return [x.astype(dtype) if isinstance(x, np.ndarray) and x.dtype.kind == "f" else x for x in inputs]


def _call(function, *args, **kwargs):
    """Call the student's code; a NotImplementedError is an unwritten gap, anything else an error."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        raise _Failure("not written yet", "") from None
    except Exception as error:  # the student's code may raise anything: report it, with where in their file
        frames = [f for f in traceback.extract_tb(error.__traceback__) if _is_exercise_file(f.filename)]
        where = f" (line {frames[-1].lineno} of {pathlib.Path(frames[-1].filename).name})" if frames else ""
        raise _Failure("ERROR", f"{type(error).__name__}: {error}{where}") from None


def _run(module, function: str, case: Case, inputs: list, rng: np.random.Generator):
    """Forward and backward once: returns (output, cache, upstream, gradients as a tuple)."""
    forward, backward = getattr(module, case.forward), getattr(module, function)
    result = _call(forward, *inputs, **case.kwargs)
    out, cache = result[0], result[-1]
    upstream = rng.standard_normal(np.shape(out)).astype(out.dtype)
    grads = _call(backward, upstream, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(case.grads):
        raise _Failure("WRONG", f"returned {len(grads)} gradient(s); expected {len(case.grads)}: "
                                f"{', '.join('d' + n if n else 'None' for n in case.grads)}")
    for name, grad in zip(case.grads, grads, strict=True):
        if name is None:
            if grad is not None:
                raise _Failure("WRONG", f"returned an array where the op has no such input; expected None "
                                        f"(case: {case.label})")
            continue
        expected = inputs[case.names.index(name)]
        if grad is None:
            raise _Failure("WRONG", f"d{name} is None; expected an array of shape {tuple(expected.shape)}, "
                                    f"the shape of {name} (case: {case.label})")
        if not hasattr(grad, "shape") or tuple(grad.shape) != tuple(expected.shape):
            got = tuple(grad.shape) if hasattr(grad, "shape") else type(grad).__name__
            raise _Failure("WRONG", f"d{name} has shape {got}; expected {tuple(expected.shape)}, the shape of "
                                    f"{name} (case: {case.label})")
        if grad.dtype != expected.dtype:
            raise _Failure("WRONG", f"d{name} has dtype {grad.dtype}; expected {expected.dtype}, the dtype of "
                                    f"{name} (case: {case.label})")
    return out, cache, upstream, grads


def _finite_differences(module, function: str, case: Case, inputs: list, seed: int) -> None:
    backward = getattr(module, function)
    keep = [i for i, name in enumerate(case.grads) if name is not None]
    wrt = [case.names.index(case.grads[i]) for i in keep]

    def selected(dout, cache):
        grads = backward(dout, cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return tuple(grads[i] for i in keep)

    report = _call(gradcheck, getattr(module, case.forward), selected, inputs, names=list(case.names), wrt=wrt,
                   kwargs=case.kwargs, tol=FD_TOLERANCE, seed=seed)
    wrong = sorted(((err, name) for name, err in report.errors.items() if not err <= FD_TOLERANCE), reverse=True)
    if wrong:
        errors = ", ".join(f"d{name} {err:.1e}" for err, name in wrong)
        raise _Failure("WRONG", f"worst relative error {errors} against finite differences (float64, tolerance "
                                f"{FD_TOLERANCE:.0e}; case: {case.label})")


def _against_torch(torch, module, function: str, case: Case, inputs: list, rng: np.random.Generator) -> None:
    dtype = next(x.dtype for x in inputs if isinstance(x, np.ndarray) and x.dtype.kind == "f")
    _, cache, upstream, grads = _run(module, function, case, inputs, rng)
    tensors = []
    for name, value in zip(case.names, inputs, strict=True):
        if isinstance(value, np.ndarray):
            tensor = torch.tensor(value)
            if name in case.grads:
                tensor.requires_grad_(True)
            tensors.append(tensor)
        else:
            tensors.append(value)
    out = case.torch(torch, tensors, cache)
    out.backward(torch.tensor(upstream))
    tolerance = TORCH_TOLERANCE[np.dtype(dtype)]
    wrong = []
    for name, grad in zip(case.grads, grads, strict=True):
        if name is None:
            continue
        reference = tensors[case.names.index(name)].grad.numpy()
        err = relative_error(grad, reference)
        if not err <= tolerance:
            wrong.append((err, name))
    if wrong:
        errors = ", ".join(f"d{name} {err:.1e}" for err, name in sorted(wrong, reverse=True))
        raise _Failure("WRONG", f"worst relative error {errors} against PyTorch ({np.dtype(dtype).name}, tolerance "
                                f"{tolerance:.0e}; case: {case.label})")


def grade_function(module, exercise: Exercise, torch=None, seed: int = 0) -> Result:
    """Run every case of one exercise; the first problem found is the verdict."""
    cases = cases_for(exercise.function)
    if not cases:
        return Result(exercise, "ERROR", "no grading cases for this function (numpy_transformer/exercises/cases.py)")
    if not hasattr(module, exercise.function):
        return Result(exercise, "ERROR", f"{exercise.module}.py defines no function {exercise.function}")
    checks = set()
    try:
        for number, case in enumerate(cases):
            # four independent streams: the inputs, and the upstream gradients of the three checks. (A seed
            # sequence ignores trailing zeros, so each list starts with its own nonzero tag.)
            inputs = case.make(np.random.default_rng([1, seed, number]))
            _run(module, exercise.function, case, inputs, np.random.default_rng([2, seed, number]))
            if case.finite_differences:
                _finite_differences(module, exercise.function, case, inputs, seed=int(np.random.SeedSequence(
                    [3, seed, number]).generate_state(1)[0]))
                checks.add("finite differences")
            if torch is not None and case.torch is not None:
                for dtype in (np.float64, np.float32):
                    _against_torch(torch, module, exercise.function, case, _as_dtype(inputs, dtype),
                                   np.random.default_rng([4, seed, number]))
                checks.add("PyTorch float64 and float32")
    except _Failure as failure:
        return Result(exercise, failure.status, failure.message)
    order = [c for c in ("finite differences", "PyTorch float64 and float32") if c in checks]
    return Result(exercise, "passed", f"{len(cases)} case{'s' * (len(cases) > 1)}, {' and '.join(order)}")


def check(directory, torch="auto") -> list[Result]:
    """Grade every exercise found in ``directory`` (written by ``init``); one :class:`Result` per function.

    ``torch``: ``"auto"`` uses PyTorch when it is installed, ``None`` skips it, or pass the module.
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"directory: got {directory}, which is not a folder; expected the folder that "
                                f"`python -m numpy_transformer.exercises init` wrote")
    torch = _torch() if torch == "auto" else torch
    results, modules = [], {}
    for exercise in all_exercises():
        path = directory / f"{exercise.module}.py"
        if exercise.module not in modules:
            if not path.exists():
                modules[exercise.module] = f"{path} is missing (run init again into a new folder)"
            else:
                try:
                    modules[exercise.module] = load_module(path, exercise.module)
                except Exception as error:  # a syntax error or a failing import in the student's file
                    modules[exercise.module] = f"{exercise.module}.py does not import: {type(error).__name__}: {error}"
        module = modules[exercise.module]
        if isinstance(module, str):
            results.append(Result(exercise, "ERROR", module))
        else:
            results.append(grade_function(module, exercise, torch=torch))
    return results

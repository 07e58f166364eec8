"""Exercises: write the backward passes yourself, and have them graded by the project's own gradient checks.

    python -m numpy_transformer.exercises init DIR     # the functional files, each backward body removed
    python -m numpy_transformer.exercises check DIR    # one line per function: passed, or what is wrong

``init`` writes every file of ``numpy_transformer/functional/`` that has exercise markers into ``DIR``, with
the body of each backward pass replaced by a one-line statement of what to derive (the regions are marked in
the source, so the exercises are generated from the code and never drift from it: :mod:`.source`).
``check`` runs the same float64 finite-difference checks as the project's tests
(:func:`numpy_transformer.gradcheck.gradcheck`) and, when PyTorch is installed, compares every gradient with
``torch.autograd`` in float64 and float32, on masks, odd sizes and fully masked rows (:mod:`.cases`,
:mod:`.grader`). It prints one line per function: ``passed``, or the gradient that is wrong, its worst
relative error, the reference it disagrees with and the case.
"""
from __future__ import annotations

from .grader import Result, check
from .source import Exercise, all_exercises, exercise_source, find_exercises, write_exercises

init = write_exercises

__all__ = ["Exercise", "Result", "all_exercises", "check", "exercise_source", "find_exercises", "init",
           "write_exercises"]

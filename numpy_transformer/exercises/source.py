"""Reading the exercise markers in the source, and writing the exercise files.

In ``numpy_transformer/functional/*.py`` the body of each backward pass sits between two comment lines:

    # EXERCISE: what to derive, in one line
    ... the reference body ...
    # END EXERCISE

An exercise file is the source file with each such region replaced by its statement and a
``raise NotImplementedError``; everything else (the module docstring with the math, the forward pass, the
function's docstring naming the cache's contents and what to return, any argument check above the marker)
stays as it is. So the exercises are generated from the code and cannot drift from it. A file without
markers is simply not an exercise.

Relative imports become absolute (``from ..backend import`` -> ``from numpy_transformer.backend import``,
``from .linear import`` -> ``from numpy_transformer.functional.linear import``), so an exercise file runs from
any folder, and a backward pass that calls another op's backward (the feed-forward block) is graded on its
own, with the reference versions of the others.
"""
from __future__ import annotations

import ast
import pathlib
import re
from dataclasses import dataclass

from ..book.contents import ordered_modules, source_path

BEGIN = re.compile(r"^(?P<indent>\s*)# EXERCISE: (?P<statement>.+?)\s*$")
END = re.compile(r"^\s*# END EXERCISE\s*$")
#: a comment line right after the marker continues the statement, unless it is a step's own comment
CONTINUATION = re.compile(r"^\s*# (?!forward:|Plainly|END EXERCISE)(?P<text>.+?)\s*$")
_RELATIVE_IMPORT = re.compile(r"^(?P<indent>\s*)from (?P<dots>\.+)(?P<module>[\w.]*) import ")


@dataclass(frozen=True)
class Exercise:
    """One gap: the function whose body is removed, its file and the one-line statement of what to derive."""

    module: str          # e.g. "softmax" (numpy_transformer/functional/softmax.py)
    function: str        # e.g. "softmax_backward"
    statement: str
    begin_line: int      # 1-based line numbers of the two markers in the reference source
    end_line: int
    statement_lines: int = 1  # the marker line and the comment lines that continue its statement


def _enclosing_functions(source: str) -> dict[int, str]:
    """Line number -> name of the top-level function that contains it.

    A function owns its lines up to the next top-level statement, so a comment after its last statement
    (``# END EXERCISE`` after the ``return``) is still its own.
    """
    body = ast.parse(source).body
    starts = [min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) for node in body]
    last_line = len(source.splitlines())
    owner = {}
    for index, node in enumerate(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stop = starts[index + 1] - 1 if index + 1 < len(body) else last_line
            for line in range(node.lineno, stop + 1):
                owner[line] = node.name
    return owner


def find_exercises(source: str, module: str) -> list[Exercise]:
    """The marked regions of one source file, checked: markers pair up, one region per function, inside it."""
    owner = _enclosing_functions(source)
    lines = source.splitlines()
    exercises, open_marker = [], None
    for number, line in enumerate(lines, start=1):
        if BEGIN.match(line):
            if open_marker is not None:
                raise ValueError(f"{module}.py line {number}: EXERCISE marker inside the region opened at line "
                                 f"{open_marker[0]}; expected '# END EXERCISE' first")
            statement, count = [BEGIN.match(line).group("statement")], 1
            while number + count <= len(lines) and CONTINUATION.match(lines[number + count - 1]):
                statement.append(CONTINUATION.match(lines[number + count - 1]).group("text"))
                count += 1
            open_marker = (number, " ".join(statement), count)
        elif END.match(line):
            if open_marker is None:
                raise ValueError(f"{module}.py line {number}: '# END EXERCISE' without an EXERCISE marker above it")
            begin, statement, count = open_marker
            function = owner.get(begin)
            if function is None or owner.get(number) != function:
                raise ValueError(f"{module}.py lines {begin}-{number}: an exercise region must lie inside one "
                                 f"top-level function")
            if any(e.function == function for e in exercises):
                raise ValueError(f"{module}.py line {begin}: a second exercise region in {function}; expected one")
            exercises.append(Exercise(module, function, statement, begin, number, count))
            open_marker = None
    if open_marker is not None:
        raise ValueError(f"{module}.py line {open_marker[0]}: EXERCISE marker without '# END EXERCISE' below it")
    return exercises


def all_exercises() -> list[Exercise]:
    """Every marked region of ``numpy_transformer/functional/``, in reading order."""
    found = []
    for module in ordered_modules("functional"):
        found.extend(find_exercises(source_path("functional", module).read_text(encoding="utf-8"), module))
    return found


def _absolute_import(line: str) -> str:
    match = _RELATIVE_IMPORT.match(line)
    if not match:
        return line
    base = ["numpy_transformer", "functional"][: 3 - len(match.group("dots"))]
    module = ".".join(base + ([match.group("module")] if match.group("module") else []))
    return f"{match.group('indent')}from {module} import " + line[match.end():]


def exercise_source(source: str, module: str, directory: str = "DIR", solutions: bool = False) -> str:
    """The exercise file of one source file: gaps instead of the marked bodies (or the bodies, ``solutions``)."""
    exercises = {e.begin_line: e for e in find_exercises(source, module)}
    lines = source.splitlines()
    out = [
        f"# Exercise file written by `python -m numpy_transformer.exercises init`, from "
        f"numpy_transformer/functional/{module}.py.",
        f"# Fill in each gap marked EXERCISE, then grade: python -m numpy_transformer.exercises check {directory}",
    ]
    number = 0
    while number < len(lines):
        line = lines[number]
        exercise = exercises.get(number + 1)
        if exercise is None:
            out.append(_absolute_import(line))
            number += 1
            continue
        indent = BEGIN.match(line).group("indent")
        out.extend(lines[number:number + exercise.statement_lines])      # the marker and its statement
        body = lines[number + exercise.statement_lines: exercise.end_line - 1]
        if solutions:
            out.extend(_absolute_import(body_line) for body_line in body)
        else:
            out.append(f"{indent}# The docstring above names what the cache holds and what to return.")
            out.append(f'{indent}raise NotImplementedError("{exercise.function}: not written yet")')
        out.append(lines[exercise.end_line - 1])
        number = exercise.end_line
    return "\n".join(out) + "\n"


def write_exercises(directory, solutions: bool = False) -> list[pathlib.Path]:
    """Write one exercise file per functional file that has markers, and a README; returns the files written.

    Refuses to overwrite a file that exists already (a student's work), with a clear error.
    """
    directory = pathlib.Path(directory)
    exercises = all_exercises()
    modules = list(dict.fromkeys(e.module for e in exercises))
    targets = [directory / f"{module}.py" for module in modules] + [directory / "README.md"]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise FileExistsError(f"directory: got {directory}, which already holds {', '.join(existing)}; expected a "
                              f"new or empty folder (your own work is never overwritten)")
    directory.mkdir(parents=True, exist_ok=True)
    for module in modules:
        source = source_path("functional", module).read_text(encoding="utf-8")
        text = exercise_source(source, module, str(directory), solutions=solutions)
        (directory / f"{module}.py").write_text(text, encoding="utf-8")
    (directory / "README.md").write_text(_readme(directory, exercises), encoding="utf-8")
    return targets


def _readme(directory: pathlib.Path, exercises: list[Exercise]) -> str:
    lines = [
        "# Backward passes to write",
        "",
        "Each file here is a file of `numpy_transformer/functional/` with the body of its backward passes",
        "removed. Read the module docstring (the math) and the forward pass, then write each gap marked",
        "`EXERCISE`. Grade your work with",
        "",
        f"    python -m numpy_transformer.exercises check {directory}",
        "",
        "which runs the project's own gradient checks on your functions: float64 central differences for every",
        "input, and PyTorch (float64 and float32) when it is installed. It prints one line per function.",
        "",
        "In reading order:",
        "",
    ]
    lines += [f"- `{e.module}.py`, `{e.function}`: {e.statement}" for e in exercises]
    return "\n".join(lines) + "\n"

"""``python -m numpy_transformer.exercises init DIR`` / ``check DIR``: see :mod:`numpy_transformer.exercises`."""
from __future__ import annotations

import argparse
import sys

from . import all_exercises, check, write_exercises
from .grader import _torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m numpy_transformer.exercises",
        description="Write the backward passes of numpy_transformer yourself, graded by its gradient checks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write the exercise files into a new folder")
    init.add_argument("directory", help="a new or empty folder")
    init.add_argument("--solutions", action="store_true",
                      help="keep the reference bodies (a worked copy, to check the checker or to compare)")
    grade = commands.add_parser("check", help="grade the backward passes written in the folder")
    grade.add_argument("directory", help="the folder that init wrote")
    grade.add_argument("--no-torch", action="store_true", help="finite differences only, even if PyTorch is installed")
    args = parser.parse_args(argv)

    if args.command == "init":
        try:
            written = write_exercises(args.directory, solutions=args.solutions)
        except FileExistsError as error:
            print(error, file=sys.stderr)
            return 2
        exercises = all_exercises()
        print(f"Wrote {len(written) - 1} files with {len(exercises)} backward passes to write, and README.md, "
              f"into {args.directory}:")
        for exercise in exercises:
            print(f"  {exercise.module}.py  {exercise.function}: {exercise.statement}")
        print(f"Grade them with: python -m numpy_transformer.exercises check {args.directory}")
        return 0

    torch = None if args.no_torch else _torch()
    references = "float64 finite differences" + (", PyTorch float64 and float32" if torch is not None else
                                                  " (PyTorch is not installed: no PyTorch comparison)")
    print(f"Grading {args.directory} against {references}")
    try:
        results = check(args.directory, torch=torch)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    width = max(len(r.exercise.function) for r in results)
    for result in results:
        print(result.line(width))
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} passed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

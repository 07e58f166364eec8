"""What every demo shares: command-line options, a headless matplotlib, progress lines and saved pictures.

Every demo takes the same options::

    --quick      a tiny run that finishes in seconds (the tests use it)
    --out DIR    where the pictures go (default demos_output/<demo name>)
    --seed N     the random seed (default 0)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# Run from a source checkout without installing: put the repository root on the import path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # draw into files; no display needed


def setup(name: str, description: str, add_arguments=None) -> argparse.Namespace:
    """Parse the shared options, create the output folder and print the demo's title.

    ``add_arguments(parser)``, when given, adds the demo's own options (they then show in ``--help``).
    Returns the parsed options: ``quick``, ``out``, ``seed`` and the demo's own.
    """
    parser = argparse.ArgumentParser(prog=f"{name}.py", description=description)
    parser.add_argument("--quick", action="store_true", help="a tiny run that finishes in seconds")
    parser.add_argument("--out", default=os.path.join("demos_output", name),
                        help="folder for the pictures (default: demos_output/%(prog)s without .py)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    title = f"{name}: {description}"
    print(title)
    print("=" * len(title))
    return args


def section(title: str) -> None:
    """Print a section heading."""
    print(f"\n--- {title} ---")


def save(fig, out: str, filename: str) -> str:
    """Save a figure as ``out/filename`` and say so."""
    from numpy_transformer.viz import save_figure

    path = save_figure(fig, os.path.join(out, filename))
    print(f"  picture: {path}")
    return path


def done(out: str) -> None:
    """The last line of every demo: where the pictures are."""
    pictures = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    print(f"\n{len(pictures)} pictures saved to {os.path.abspath(out)}")


class Progress:
    """Prints one line every ``every`` steps: step, loss, steps per second and the time left.

    >>> progress = Progress(total=1000, every=100)
    >>> for step in range(1, 1001):
    ...     loss = train_step()
    ...     progress.update(step, loss)
    """

    def __init__(self, total: int, every: int | None = None, label: str = "step"):
        self.total = total
        self.every = every or max(1, total // 10)
        self.label = label
        self.start = time.perf_counter()

    def update(self, step: int, loss: float, **extra) -> None:
        if step % self.every and step != self.total:
            return
        elapsed = time.perf_counter() - self.start
        speed = step / elapsed if elapsed > 0 else float("inf")
        left = (self.total - step) / speed if speed > 0 else 0.0
        more = "".join(f"  {key} {value:.4g}" for key, value in extra.items())
        print(f"  {self.label} {step:>{len(str(self.total))}}/{self.total}  loss {float(loss):.4f}{more}"
              f"  {speed:7.1f} {self.label}s/s  {elapsed:5.1f}s elapsed  ~{left:4.1f}s left")

"""What every demo shares: command-line options, a headless matplotlib, progress lines and saved pictures.

Every demo takes the same options::

    --quick      a tiny run that finishes in seconds (the tests use it)
    --out DIR    where the pictures go (default demos_output/<demo name>); created when the first file is saved
    --seed N     the random seed, an integer >= 0 (default 0)

Numbers on the command line are checked here, once for every demo: an option declared with ``type=int`` or
``type=float`` refuses a negative or non-finite value, and a demo that needs a narrower range declares it with
:func:`integer` or :func:`real` (``--steps`` takes ``integer(1)``, so ``--steps 0`` is an error, not the
default). A refused value ends the demo with argparse's usage message, naming the option and what it expected.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

# Run from a source checkout without installing: put the repository root on the import path.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # draw into files; no display needed


def integer(low: int | None = None, high: int | None = None):
    """An argparse ``type`` for an integer in ``[low, high]`` (either bound may be None): ``integer(1)``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected {_range('an integer', low, high)}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"got {value}; expected {_range('an integer', low, high)}")
        return value

    parse.__name__ = "integer"
    return parse


def real(low: float | None = None, high: float | None = None, low_open: bool = False):
    """An argparse ``type`` for a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def parse(text: str) -> float:
        what = _range("a finite number", low, high, low_open)
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected {what}") from None
        if (not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low))
                or (high is not None and value > high)):
            raise argparse.ArgumentTypeError(f"got {text}; expected {what}")
        return value

    parse.__name__ = "number"
    return parse


def _range(what: str, low, high, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{what} <= {high}"
    return what


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose plain ``type=int`` / ``type=float`` options refuse negative and non-finite values."""

    def add_argument(self, *names, **options):
        if options.get("type") is int:
            options["type"] = integer(0)
        elif options.get("type") is float:
            options["type"] = real(0)
        return super().add_argument(*names, **options)


def setup(name: str, description: str, add_arguments=None) -> argparse.Namespace:
    """Parse the shared options and print the demo's title.

    ``add_arguments(parser)``, when given, adds the demo's own options (they then show in ``--help``).
    Returns the parsed options: ``quick``, ``out``, ``seed`` and the demo's own. The folder ``out`` is not
    created here, only when something is saved into it (:func:`save`, :func:`output_path`).
    """
    parser = _Parser(prog=f"{name}.py", description=description)
    parser.add_argument("--quick", action="store_true", help="a tiny run that finishes in seconds")
    parser.add_argument("--out", default=os.path.join("demos_output", name),
                        help="folder for the pictures (default: demos_output/%(prog)s without .py)")
    parser.add_argument("--seed", type=integer(0), default=0, help="random seed, an integer >= 0 (default 0)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    title = f"{name}: {description}"
    print(title)
    print("=" * len(title))
    return args


def fail(message: str) -> None:
    """End the demo with ``message`` on standard error and exit status 1 (a usage problem, not a crash)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def output_path(out: str, filename: str) -> str:
    """``out/filename``, creating the folder ``out`` first: for the files a demo writes besides pictures."""
    os.makedirs(out, exist_ok=True)
    return os.path.join(out, filename)


def section(title: str) -> None:
    """Print a section heading."""
    print(f"\n--- {title} ---")


def save(fig, out: str, filename: str) -> str:
    """Save a figure as ``out/filename`` and say so."""
    from numpy_transformer.viz import save_figure

    path = save_figure(fig, os.path.join(out, filename))
    print(f"  picture: {path}")
    return path


def plural(count: int, noun: str) -> str:
    """``"1 picture"``, ``"2 pictures"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def done(out: str) -> None:
    """The last line of every demo: where the pictures are."""
    pictures = sorted(f for f in os.listdir(out) if f.endswith(".png")) if os.path.isdir(out) else []
    print(f"\n{plural(len(pictures), 'picture')} saved to {os.path.abspath(out)}")


def add_prompt_options(parser: argparse.ArgumentParser, family: str) -> None:
    """The options of a decoder demo that continues a prompt with a Hugging Face folder of ``family``."""
    parser.add_argument("--model", metavar="DIR", help=f"a Hugging Face {family} folder to continue --prompt with")
    parser.add_argument("--prompt", default="The Transformer is", help="the text to continue (with --model)")
    parser.add_argument("--max-new-tokens", type=int, default=40, help="tokens to write (with --model)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most probable tokens")
    parser.add_argument("--top-p", type=float, default=None, help="sample within the nucleus of mass p")


def continue_prompt(model, tokenizer, args):
    """Write up to ``--max-new-tokens`` after ``args.prompt`` as the options of :func:`add_prompt_options` say
    (greedy or sampled, through the key/value caches; no further than the model's ``max_len`` when it has
    one), and print them with the time taken.

    Returns the prompt's ids (1, T0), the whole sequence (1, T0 + n) and how many tokens were asked for (n is
    fewer when the text ends with the tokenizer's end-of-text token).
    """
    import numpy as np

    ids = np.array([tokenizer.encode(args.prompt)])
    new_tokens = args.max_new_tokens
    if model.max_len is not None:
        new_tokens = min(new_tokens, model.max_len - ids.shape[1])
    how = "greedy" if args.temperature == 0 else (f"sampling at temperature {args.temperature:g}"
                                                  f"{f', top-k {args.top_k}' if args.top_k else ''}"
                                                  f"{f', top-p {args.top_p:g}' if args.top_p else ''}")
    start = time.perf_counter()
    out = model.generate(ids, new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         rng=args.seed, eos_token_id=tokenizer.eos_token_id)
    seconds = time.perf_counter() - start
    print(f"  {ids.shape[1]} prompt tokens, {out.shape[1] - ids.shape[1]} new ({how}, KV cache) in {seconds:.2f} s:")
    print("  " + tokenizer.decode(out[0]).replace("\n", "\n  "))
    return ids, out, new_tokens


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

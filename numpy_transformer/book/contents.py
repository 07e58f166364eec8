"""The reading order of the source, in ONE place: the book's pages and the exercises follow it.

``FUNCTIONAL`` follows the numbered list of the README's "Reading order" (a test holds the two together: every
file the README lists is here, in the same order); ``NN`` follows it. A new file joins with one line here; a
listed name whose file does not exist is skipped. A file of ``functional/`` or ``nn/`` that is not listed is
not lost: it comes after the listed ones, in alphabetical order, so that nothing is ever left out of the book.
"""
from __future__ import annotations

import pathlib

#: the pure forward/backward pairs of ``numpy_transformer/functional/``, in reading order
FUNCTIONAL = [
    "linear",
    "activations",
    "softmax",
    "embedding",
    "positional",
    "attention",
    "blocked_attention",
    "heads",
    "layernorm",
    "dropout",
    "feedforward",
    "patchify",
    "losses",
    "pooling",
    "rmsnorm",
    "silu",
    "swiglu",
    "rope",
    "gqa",
]

#: the ``torch.nn``-style layers of ``numpy_transformer/nn/``, in reading order
NN = [
    "module",
    "layers",
    "attention",
    "transformer",
    "modern",
]

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1]   # numpy_transformer/
REPOSITORY_DIR = PACKAGE_DIR.parent                           # holds docs/ and tests/ in a checkout


def ordered_modules(package: str) -> list[str]:
    """The module names of ``numpy_transformer/<package>/`` in reading order: listed ones first, then the rest."""
    listed = {"functional": FUNCTIONAL, "nn": NN}[package]
    present = sorted(path.stem for path in (PACKAGE_DIR / package).glob("*.py") if path.stem != "__init__")
    return [name for name in listed if name in present] + [name for name in present if name not in listed]


def source_path(package: str, name: str) -> pathlib.Path:
    """The file of module ``numpy_transformer.<package>.<name>``."""
    return PACKAGE_DIR / package / f"{name}.py"

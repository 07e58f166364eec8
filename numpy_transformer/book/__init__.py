"""The typeset book of the source: ``python -m numpy_transformer.book OUT`` writes a static HTML site.

One page per functional file, per ``nn`` module file, per derivation in ``docs/derivations/`` and per test
file that those pages point to, with an index in the README's reading order (:mod:`.contents`). Each page
sets the notes beside the code they explain: the module docstring, each function's docstring and each comment
block in a left column, the code in a right column, highlighted. Math ($...$ and $$...$$) is converted to
MathML when the book is built, so the site needs no network and no script to read: open ``OUT/index.html``
from disk. Everything is generated from the source, so the book cannot drift from the code.

Building needs the ``book`` extra (``pygments``, ``latex2mathml``, ``markdown-it-py``); the library itself
does not.
"""
from __future__ import annotations

from .contents import FUNCTIONAL, NN


def build(out_dir, quiet: bool = True):
    """Write the book into ``out_dir`` (created if missing); returns a :class:`~.site.BuildReport`."""
    from .site import build as _build

    return _build(out_dir, quiet=quiet)


__all__ = ["FUNCTIONAL", "NN", "build"]

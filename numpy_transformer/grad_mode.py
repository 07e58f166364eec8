r"""Inference without backward caches: ``with numpy_transformer.no_grad(): ...``, as ``torch.no_grad()``.

Every forward pass here keeps what its backward pass will need (the functional pairs return it as their cache,
the modules keep it on ``self``). Inference needs none of it, and keeping it costs memory (a BERT forward would
hold every layer's normalized activations, attention probabilities and GELU inputs) and time (each kept array
is a fresh array, whose pages the system must hand over the first time they are written). Inside
``no_grad()``:

- the functional pairs of ``linear``, ``activations``, ``layernorm``, ``softmax``, ``attention``,
  ``blocked_attention`` and ``feedforward`` return ``cache = None`` and may finish their work in place in
  their own intermediate arrays (layer norm scales and shifts its normalized array into the output, GELU
  multiplies its $\Phi(x)$ array by $x$): the same numbers with fewer fresh arrays;
- every module forgets its caches (its attributes named ``*_cache``) as soon as its forward returns, so a
  model holds one layer's arrays at a time, not every layer's;
- a backward pass after such a forward is refused with an error that says why.

The mode belongs to the thread that sets it (as in torch): another thread's forward passes keep their caches.
``enable_grad()`` turns caching back on inside a ``no_grad()`` block; both also work as decorators.
"""
from __future__ import annotations

import threading
from contextlib import ContextDecorator

__all__ = ["no_grad", "enable_grad", "is_grad_enabled", "check_cache"]

_state = threading.local()


def is_grad_enabled() -> bool:
    """True unless this thread is inside ``no_grad()`` (and not inside a nested ``enable_grad()``)."""
    return getattr(_state, "enabled", True)


class _GradMode(ContextDecorator):
    """Sets the mode on entry and restores the previous one on exit (nesting and recursion included)."""

    enabled = True

    def __init__(self):
        self._previous = []                                     # a stack: one instance may be entered twice

    def __enter__(self):
        self._previous.append(is_grad_enabled())
        _state.enabled = self.enabled
        return self

    def __exit__(self, *exc_info) -> bool:
        _state.enabled = self._previous.pop()
        return False

    def _recreate_cm(self):
        # as a decorator, each call enters a fresh instance: calls in other threads never share the stack
        return type(self)()


class no_grad(_GradMode):
    """Forward passes keep no backward caches inside this block (see the module docstring)."""

    enabled = False


class enable_grad(_GradMode):
    """Forward passes keep their backward caches again inside this block, even within ``no_grad()``."""

    enabled = True


def check_cache(name: str, cache) -> None:
    """A backward pass needs the cache of its forward: refuse ``None``, what a forward under ``no_grad()`` gave."""
    if cache is None:
        raise RuntimeError(f"{name}: got cache None; its forward ran under numpy_transformer.no_grad(), which keeps "
                           "nothing for a backward pass (run the forward outside no_grad() to differentiate it)")

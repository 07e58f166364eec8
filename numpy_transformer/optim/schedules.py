"""Learning-rate schedules: a multiplier of each group's base learning rate, a function of the step.

:class:`LambdaLR` has the semantics of ``torch.optim.lr_scheduler.LambdaLR``: on construction it records
each group's base rate (``initial_lr``) and sets ``lr = base * factor(0)``; each ``step()`` (called after
``optimizer.step()``) advances the count ``k`` and sets ``lr = base * factor(k)``. So the k-th optimizer
update (k = 1, 2, ...) runs with ``factor(k - 1)``.

The factories build the schedules of the Transformer literature on top of it:

- :func:`warmup_inverse_sqrt`: the paper's (Vaswani et al., section 5.3)
  ``lr = d_model^-0.5 * min(n^-0.5, n * warmup^-1.5)`` for update number n = 1, 2, ..., rising linearly
  for ``warmup`` updates, then falling as ``1/sqrt(n)``. Give the optimizer ``lr=1.0`` (or a scale factor)
  to get the paper's rate exactly.
- :func:`warmup_linear_decay`: linear warmup from 0, then linear decay to 0 at ``total_steps`` (BERT).
- :func:`warmup_cosine`: linear warmup, then half a cosine down to 0 at ``total_steps`` (GPT, ViT).

The last two equal ``transformers.get_linear_schedule_with_warmup`` / ``get_cosine_schedule_with_warmup``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["LambdaLR", "warmup_inverse_sqrt", "warmup_linear_decay", "warmup_cosine"]


class LambdaLR:
    """Set each group's ``lr`` to ``initial_lr * lr_lambda(step)`` (``torch.optim.lr_scheduler.LambdaLR``).

    Inputs:
        optimizer: an :class:`~numpy_transformer.optim.Optimizer`.
        lr_lambda: a function of the step count returning a multiplier, or one function per group.
        last_epoch: -1 to start fresh; otherwise the step count to resume from (the groups must then carry
            ``initial_lr``, as after a first construction).
    """

    def __init__(self, optimizer, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1):
        self.optimizer = optimizer
        groups = optimizer.param_groups
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * len(groups)
        else:
            self.lr_lambdas = list(lr_lambda)
            if len(self.lr_lambdas) != len(groups):
                raise ValueError(f"lr_lambda: got {len(self.lr_lambdas)} functions; "
                                 f"expected one per group ({len(groups)})")
        for number, group in enumerate(groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param_groups[{number}]: has no 'initial_lr'; "
                               f"expected it when resuming (last_epoch != -1)")
        self.base_lrs = [group["initial_lr"] for group in groups]
        self.last_epoch = last_epoch
        self._last_lr: list[float] = []
        self.step()

    def get_lr(self) -> list[float]:
        return [base * factor(self.last_epoch) for base, factor in zip(self.base_lrs, self.lr_lambdas, strict=True)]

    def step(self) -> None:
        """Advance the count and set every group's ``lr``; call once per ``optimizer.step()``, after it."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group as set by the last ``step()``."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """The count and base rates (the functions are code, rebuilt by the caller, as in torch)."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), "_last_lr": list(self._last_lr)}

    def load_state_dict(self, state: dict) -> None:
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise ValueError(f"state: got {len(state['base_lrs'])} base rates; "
                             f"expected {len(self.base_lrs)} (one per group)")
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self._last_lr = [float(lr) for lr in state.get("_last_lr", self.get_lr())]


def _check_steps(**steps: int) -> None:
    for name, value in steps.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: got {value!r}; expected a non-negative int")


def warmup_inverse_sqrt(optimizer, d_model: int, warmup_steps: int = 4000, factor: float = 1.0) -> LambdaLR:
    """The paper's schedule, ``factor * d_model^-0.5 * min(n^-0.5, n * warmup^-1.5)`` at update n = k + 1."""
    _check_steps(d_model=d_model, warmup_steps=warmup_steps)
    if d_model < 1 or warmup_steps < 1:
        raise ValueError(f"d_model, warmup_steps: got {d_model}, {warmup_steps}; expected positive ints")

    def rate(step: int) -> float:
        n = step + 1  # LambdaLR counts from 0; the paper's step_num counts updates from 1
        return factor * d_model**-0.5 * min(n**-0.5, n * warmup_steps**-1.5)

    return LambdaLR(optimizer, rate)


def warmup_linear_decay(optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """Multiplier ``k / warmup`` while warming up, then ``(total - k) / (total - warmup)``, never below 0."""
    _check_steps(warmup_steps=warmup_steps, total_steps=total_steps)

    def rate(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return LambdaLR(optimizer, rate)


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int, num_cycles: float = 0.5) -> LambdaLR:
    """Multiplier ``k / warmup`` while warming up, then ``0.5 (1 + cos(2 pi num_cycles progress))``, >= 0."""
    _check_steps(warmup_steps=warmup_steps, total_steps=total_steps)

    def rate(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress)))

    return LambdaLR(optimizer, rate)

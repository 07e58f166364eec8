r"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam and AdamW, with torch.optim's semantics.

An optimizer holds the parameters it updates in ``param_groups``, a list of dicts exactly as in torch: each
has ``"params"`` (a list of :class:`~numpy_transformer.nn.Parameter`) and its own hyper-parameters
(``lr``, ``weight_decay`` ...), so that, for example, biases and LayerNorm weights can go without weight
decay. Every parameter's state (momentum buffer, Adam's moments) lives HERE, in ``self.state``, keyed by the
parameter's position in the groups, never in a layer; ``self.step_count`` counts calls to :meth:`step`.

Each ``step()`` updates each parameter with a few whole-array operations, in place, on the parameter's own
device and in its dtype; hyper-parameters are Python floats, so nothing leaves the device and nothing is
upcast. A parameter whose ``grad`` is None or whose ``requires_grad`` is False is skipped.

Adam, for gradient $g$ at step $t$ (the paper's algorithm 1, as torch writes it):

$$
m_t = \beta_1 m_{t-1} + (1-\beta_1) g, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2
$$

$$
\theta_t = \theta_{t-1} - \frac{lr}{1-\beta_1^t} \cdot
    \frac{m_t}{\sqrt{v_t} / \sqrt{1-\beta_2^t} + \epsilon}
$$

Adam's ``weight_decay`` adds $wd \cdot \theta$ to $g$ (L2 regularization, which the adaptive scaling then
distorts); AdamW instead shrinks the weights directly, $\theta \leftarrow \theta\,(1 - lr \cdot wd)$, before
the Adam step (Loshchilov and Hutter's decoupled weight decay).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backend import get_array_module, to_device, to_numpy

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


def _check_number(name: str, value: Any, low: float = 0.0, high: float | None = None, open_high: bool = False):
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    ok = ok and value >= low and (high is None or (value < high if open_high else value <= high))
    if not ok:
        upper = "" if high is None else (f" and < {high}" if open_high else f" and <= {high}")
        raise ValueError(f"{name}: got {value!r}; expected a number >= {low}{upper}")


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, ``state_dict``.

    Inputs:
        params: an iterable of Parameters, or of dicts ``{"params": [...], "lr": ..., ...}`` (param groups);
            a group's missing hyper-parameters take the optimizer's defaults.
        defaults: the default hyper-parameters of this optimizer.
    """

    #: names of the per-parameter state arrays this optimizer keeps (set by each subclass)
    state_names: tuple = ()

    def __init__(self, params: Iterable, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[int, dict[str, Any]] = {}
        self.step_count = 0
        if hasattr(params, "data") and hasattr(params, "grad"):
            raise TypeError("params: got a single Parameter; expected an iterable of Parameters or of dicts")
        params = list(params)
        if not params:
            raise ValueError("params: got an empty list; expected at least one Parameter")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group ``{"params": [...], hyper-parameter: value ...}``; missing ones take the defaults."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"param_groups: got {type(group).__name__}; expected a dict with a 'params' list")
        params = group["params"]
        params = [params] if hasattr(params, "grad") else list(params)
        for param in params:
            if not (hasattr(param, "data") and hasattr(param, "grad") and hasattr(param, "requires_grad")):
                raise TypeError(f"params: got {type(param).__name__}; expected Parameters (numpy_transformer.nn)")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("params: got a Parameter twice; expected each Parameter in exactly one group")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"param_groups: got unknown option(s) {sorted(unknown)}; expected {sorted(self.defaults)}")
        full = {**self.defaults, **group, "params": params}
        self._check_group(full)
        self.param_groups.append(full)

    def _check_group(self, group: dict) -> None:
        _check_number("lr", group["lr"])
        _check_number("weight_decay", group.get("weight_decay", 0.0))

    def _indexed_params(self):
        """``(position, group, parameter)`` for every parameter, positions counted across the groups."""
        position = 0
        for group in self.param_groups:
            for param in group["params"]:
                yield position, group, param
                position += 1

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (torch's default ``set_to_none=True``)."""
        for _, _, param in self._indexed_params():
            param.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, then count the step."""
        self.step_count += 1
        for position, group, param in self._indexed_params():
            if param.grad is None or not param.requires_grad:
                continue
            state = self.state.setdefault(position, {})
            self._update(param, param.grad, state, group)

    def _update(self, param, grad, state: dict, group: dict) -> None:
        raise NotImplementedError

    def to(self, device: str) -> Optimizer:
        """Move the optimizer's state (momentum buffers, Adam's moments) to ``"cpu"`` or ``"cuda"``.

        State is created on each parameter's own device at its first step, so this is needed only for an
        optimizer that has already stepped when its model moves: ``model.to("cuda"); optimizer.to("cuda")``.
        """
        self.state = {
            position: {name: to_device(value, device) for name, value in entries.items()}
            for position, entries in self.state.items()
        }
        return self

    # ----------------------------------------------------------------------------------- saving
    def state_dict(self) -> dict:
        """The optimizer's state as plain Python values and NumPy arrays (host copies).

        ``{"state": {position: {name: array}}, "param_groups": [{hyper-parameters, "params": [positions]}],
        "step_count": int}``, the layout of torch's ``Optimizer.state_dict``.
        """
        groups, position = [], 0
        for group in self.param_groups:
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = list(range(position, position + len(group["params"])))
            position += len(group["params"])
            groups.append(saved)
        state = {
            index: {name: np.array(to_numpy(value), copy=True) for name, value in entries.items()}
            for index, entries in self.state.items()
        }
        return {"state": state, "param_groups": groups, "step_count": self.step_count}

    def _prepare_state(self, state_dict: dict):
        """Check a saved state against this optimizer's groups and cast it, changing nothing.

        Raises one ValueError listing every problem; returns what :meth:`_assign_state` writes.
        """
        problems = []
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError("state_dict: expected a dict with 'state' and 'param_groups' (from Optimizer.state_dict)")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            problems.append(f"  param_groups: got {len(saved_groups)} groups; expected {len(self.param_groups)}")
        else:
            for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
                if len(saved["params"]) != len(group["params"]):
                    problems.append(
                        f"  param_groups[{number}]: got {len(saved['params'])} parameters; "
                        f"expected {len(group['params'])}"
                    )
        params = {position: param for position, _, param in self._indexed_params()}
        new_state = {}
        for key, entries in state_dict["state"].items():
            position = int(key)
            if position not in params:
                problems.append(f"  state[{position}]: got state for parameter {position}; "
                                f"expected positions < {len(params)}")
                continue
            param, cast = params[position], {}
            for name, value in entries.items():
                if name not in self.state_names:
                    problems.append(f"  state[{position}].{name}: got an unknown entry; "
                                    f"expected one of {self.state_names}")
                    continue
                value = to_numpy(value)
                if tuple(value.shape) != param.shape:
                    problems.append(f"  state[{position}].{name}: got shape {tuple(value.shape)}; "
                                    f"expected {param.shape}")
                    continue
                cast[name] = value.astype(param.dtype)
            new_state[position] = cast
        if problems:
            raise ValueError(
                f"state_dict: {len(problems)} problem(s) loading into {type(self).__name__}; nothing was loaded:\n"
                + "\n".join(problems)
            )
        return saved_groups, new_state, int(state_dict.get("step_count", 0)), params

    def _assign_state(self, prepared) -> None:
        saved_groups, new_state, step_count, params = prepared
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            for key, value in saved.items():
                if key != "params":
                    group[key] = value
        self.state = {
            position: {name: get_array_module(params[position].data).asarray(value) for name, value in entries.items()}
            for position, entries in new_state.items()
        }
        self.step_count = step_count

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters, per-parameter state (onto each parameter's device) and the step count.

        All-or-nothing: every group size and array shape is checked before anything changes.
        """
        self._assign_state(self._prepare_state(state_dict))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            options = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {number}: {len(group['params'])} parameters, {options}")
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    """Stochastic gradient descent, exactly as ``torch.optim.SGD``.

    With ``d = g + wd * theta``; momentum buffer ``b = d`` at the first step, then ``b = mu b + (1 - dampening) d``;
    the step direction is ``b`` (or ``d + mu b`` with Nesterov); ``theta <- theta - lr * direction``.
    """

    state_names = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        _check_number("momentum", group["momentum"])
        _check_number("dampening", group["dampening"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"nesterov: got True with momentum={group['momentum']}, dampening={group['dampening']}; "
                "expected momentum > 0 and dampening = 0"
            )

    def _update(self, param, grad, state, group) -> None:
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        direction = grad + weight_decay * param.data if weight_decay != 0 else grad
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = direction.copy()   # first step: b = d
            else:
                buffer *= momentum                                     # b = mu b + (1 - dampening) d
                buffer += (1.0 - group["dampening"]) * direction
            direction = direction + momentum * buffer if group["nesterov"] else buffer
        param.data -= lr * direction


class Adam(Optimizer):
    """Adam (Kingma and Ba), exactly as ``torch.optim.Adam`` (``amsgrad`` included).

    Bias correction uses the optimizer's step count ``t`` (``step_count``).
    """

    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        group["betas"] = tuple(group["betas"])
        if len(group["betas"]) != 2:
            raise ValueError(f"betas: got {group['betas']!r}; expected two numbers in [0, 1)")
        _check_number("betas[0]", group["betas"][0], 0.0, 1.0, open_high=True)
        _check_number("betas[1]", group["betas"][1], 0.0, 1.0, open_high=True)
        _check_number("eps", group["eps"])

    def _update(self, param, grad, state, group) -> None:
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        xp = get_array_module(param.data)
        if weight_decay != 0:
            if self.decoupled:
                param.data *= 1.0 - lr * weight_decay                  # AdamW: theta <- theta (1 - lr wd)
            else:
                grad = grad + weight_decay * param.data                # Adam: g <- g + wd theta
        if "exp_avg" not in state:
            state["exp_avg"] = xp.zeros_like(param.data)
            state["exp_avg_sq"] = xp.zeros_like(param.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param.data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - beta1) * (grad - m)                                # m = b1 m + (1 - b1) g  (torch's lerp)
        v *= beta2                                                     # v = b2 v + (1 - b2) g^2
        v += (1.0 - beta2) * (grad * grad)
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        t = self.step_count
        step_size = lr / (1.0 - beta1**t)
        denom = xp.sqrt(v) / math.sqrt(1.0 - beta2**t) + eps          # sqrt(v_hat) + eps
        param.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay, exactly as ``torch.optim.AdamW`` (default ``weight_decay=0.01``)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

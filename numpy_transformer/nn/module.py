"""Parameters and modules: the bookkeeping around the functional pairs.

A :class:`Parameter` is an array the optimizer changes (``.data``) together with the gradient a backward
pass adds into it (``.grad``). A :class:`Module` owns parameters and sub-modules, chains functional
``*_forward`` calls in :meth:`Module.forward` and the matching ``*_backward`` calls, in reverse order, in
:meth:`Module.backward`. There is no autograd tape: each module keeps on ``self`` the cache of its last
forward call, and its backward reads that cache.

Names, keys and behaviour follow ``torch.nn.Module``, so that a torch model's ``state_dict`` loads here and
ours loads there, key for key:

- assigning a :class:`Parameter` or a :class:`Module` to an attribute registers it, in assignment order;
  ``register_buffer`` registers an array that is state but not a parameter (persistent buffers are saved);
- ``state_dict()`` keys are dotted paths such as ``"layers.0.linear1.weight"``;
- ``load_state_dict`` checks every key and shape first and changes nothing unless all are right.

Gradients ADD into ``param.grad`` (:meth:`Parameter.accumulate_grad`): a parameter used twice in one
forward pass (tied embeddings, one memory read by every decoder layer) receives the sum of both paths, and
two backward passes without ``zero_grad()`` in between sum as in torch.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Iterator

import numpy as np

from ..backend import FLOAT_DTYPES, check_device, get_array_module, to_device, to_numpy

__all__ = ["Parameter", "Module", "ModuleList", "IncompatibleKeys"]

#: what ``load_state_dict(strict=False)`` returns, as in torch
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter:
    """A learnable array and its gradient.

    Attributes:
        data: the array (NumPy or CuPy), changed in place by optimizers.
        grad: an array of the same shape and dtype, or ``None`` until a backward pass adds into it.
        requires_grad: when False, backward passes neither compute nor store this parameter's gradient.
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Parameter):
            data = data.data
        if not (hasattr(data, "shape") and hasattr(data, "dtype")):
            data = np.asarray(data)
        if data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"data: got dtype {data.dtype}; expected a floating dtype (float16, float32 or float64)")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def accumulate_grad(self, grad) -> None:
        """Add ``grad`` into ``self.grad`` (a copy of ``grad`` when ``self.grad`` is None)."""
        if tuple(grad.shape) != self.shape:
            raise ValueError(f"grad: got shape {tuple(grad.shape)}; expected {self.shape} (the parameter's shape)")
        if self.grad is None:
            xp = get_array_module(grad)
            self.grad = xp.array(grad, dtype=self.data.dtype, copy=True)
        else:
            self.grad += grad

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.shape}, dtype={self.dtype}{frozen})"


class Module:
    """Base class of every layer and model (the twin of ``torch.nn.Module``).

    A subclass calls ``super().__init__()`` first, then assigns its parameters and sub-modules as
    attributes, and writes ``forward`` (keeping on ``self`` what backward needs) and ``backward``.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        registered = "_parameters" in self.__dict__
        if not registered:
            if isinstance(value, (Parameter, Module)):
                raise AttributeError(
                    f"{name}: cannot register a {type(value).__name__} before Module.__init__() was called; "
                    f"call super().__init__() first in {type(self).__name__}.__init__"
                )
            object.__setattr__(self, name, value)
            return
        if isinstance(value, (Parameter, Module)):
            self.__dict__.pop(name, None)
            for registry in (self._parameters, self._buffers, self._modules):
                registry.pop(name, None)
            self._non_persistent.discard(name)
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
        elif name in self._parameters or name in self._modules:
            if value is not None:
                kind = "Parameter" if name in self._parameters else "Module"
                raise TypeError(f"{name}: got {type(value).__name__}; expected a {kind} or None")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        elif name in self._buffers:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # called only when normal lookup fails: parameters, buffers and sub-modules live in the registries
        registries = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in registries and name in registries[key]:
                return registries[key][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for key in ("_parameters", "_buffers", "_modules"):
            registry = self.__dict__.get(key, {})
            if name in registry:
                del registry[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        """Register an array that belongs to the module's state but is not learned (e.g. a table).

        Persistent buffers appear in ``state_dict()``; non-persistent ones (recomputable constants such as
        the sinusoidal position table) do not.
        """
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"name: got {name!r}; expected a non-empty attribute name without '.'")
        if name in self._parameters or name in self._modules:
            raise ValueError(f"name: got {name!r}; expected a name not already used by a parameter or module")
        self.__dict__.pop(name, None)
        self._buffers[name] = array
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    # ----------------------------------------------------------------------------------- forward / backward
    def forward(self, *args, **kwargs):
        """Compute the output, keeping on ``self`` what ``backward`` needs; every layer writes its own."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, dout):
        """Return the gradient of each input and ADD each parameter's gradient into ``param.grad``."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not written")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _cached(self, name: str = "_cache"):
        """The cache of the last forward call, or a clear error when backward comes first."""
        cache = self.__dict__.get(name)
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: called before forward; run forward first")
        return cache

    # ----------------------------------------------------------------------------------- traversal
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """``(name, module)`` for each direct submodule, in registration order (``None`` slots skipped)."""
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "", _seen: set | None = None) -> Iterator[tuple[str, "Module"]]:
        """Every module in the tree (this one first, as ``prefix``), each once."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def _named_members(self, kind: str, prefix: str, remove_duplicate: bool):
        seen = set()
        for module_prefix, module in self.named_modules(prefix):
            for name, member in getattr(module, kind).items():
                if member is None:
                    continue
                if remove_duplicate:
                    if id(member) in seen:
                        continue
                    seen.add(id(member))
                yield (f"{module_prefix}.{name}" if module_prefix else name), member

    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, Parameter)`` pairs; a tied parameter appears once, under its first name."""
        yield from self._named_members("_parameters", prefix, remove_duplicate)

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        yield from self._named_members("_buffers", prefix, True)

    def buffers(self) -> Iterator[Any]:
        for _, buffer in self.named_buffers():
            yield buffer

    def num_parameters(self, trainable_only: bool = False) -> int:
        """How many numbers the model learns (tied parameters counted once)."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ----------------------------------------------------------------------------------- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Name -> NumPy copy of every parameter and persistent buffer, with torch's keys.

        A tied parameter appears under each of its names, as in torch.
        """
        state = OrderedDict()
        for key, (module, name, kind) in self._all_state_entries().items():
            value = module._parameters[name].data if kind == "parameter" else module._buffers[name]
            state[key] = np.array(to_numpy(value), copy=True)
        return state

    def _all_state_entries(self):
        """Every saved key, in torch's order, with the module, attribute name and kind that hold it.

        A sub-module or parameter reachable under two names is listed under both, as in torch."""
        entries = OrderedDict()

        def walk(module, prefix):
            dot = f"{prefix}." if prefix else ""
            for name, param in module._parameters.items():
                if param is not None:
                    entries[dot + name] = (module, name, "parameter")
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent:
                    entries[dot + name] = (module, name, "buffer")
            for name, child in module._modules.items():
                if child is not None:
                    walk(child, dot + name)

        walk(self, "")
        return entries

    def _prepare_state(self, state, strict: bool = True):
        """Check a state dict against this module and cast every value, without changing anything.

        Returns ``(assignments, missing_keys, unexpected_keys)`` where ``assignments`` is a list of
        ``(module, attribute, kind, array)`` ready to be written by :meth:`_assign_state`. Raises one
        ValueError naming every problem (missing and unexpected keys when ``strict``, and every shape
        mismatch) so that a failed load leaves the module exactly as it was.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"state: got {type(state).__name__}; expected a mapping from names to arrays")
        entries = self._all_state_entries()
        missing = [key for key in entries if key not in state]
        unexpected = [key for key in state if key not in entries]
        problems, assignments = [], []
        for key, (module, name, kind) in entries.items():
            if key not in state:
                continue
            current = module._parameters[name].data if kind == "parameter" else module._buffers[name]
            value = state[key]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            value = to_numpy(value)
            if tuple(value.shape) != tuple(current.shape):
                problems.append(f"  {key}: got shape {tuple(value.shape)}; expected {tuple(current.shape)}")
                continue
            if current.dtype.kind == "f" and value.dtype.kind not in "fiub":
                problems.append(f"  {key}: got dtype {value.dtype}; expected a number array ({current.dtype})")
                continue
            assignments.append((module, name, kind, value.astype(current.dtype, copy=False)))
        if strict:
            problems = [f"  missing key: {key}" for key in missing] + [
                f"  unexpected key: {key}" for key in unexpected
            ] + problems
        if problems:
            raise ValueError(
                f"state: {len(problems)} problem(s) loading into {type(self).__name__}; nothing was loaded:\n"
                + "\n".join(problems)
            )
        return assignments, missing, unexpected

    @staticmethod
    def _assign_state(assignments) -> None:
        """Write prepared values (from :meth:`_prepare_state`) in place, on each array's own device."""
        for module, name, kind, value in assignments:
            current = module._parameters[name].data if kind == "parameter" else module._buffers[name]
            xp = get_array_module(current)
            current[...] = xp.asarray(value)

    def load_state_dict(self, state, strict: bool = True) -> IncompatibleKeys:
        """Copy the arrays of ``state`` (name -> array, torch's keys) into this module's parameters and buffers.

        Values may be NumPy arrays, CuPy arrays or CPU torch tensors; each is cast to the dtype of the
        parameter it replaces and copied onto that parameter's device. Every key and shape is checked before
        anything is written: on any problem one ValueError lists all of them (missing keys and unexpected
        keys when ``strict``, shape mismatches always) and the module is unchanged.

        Returns:
            ``IncompatibleKeys(missing_keys, unexpected_keys)`` (both empty when ``strict``).
        """
        assignments, missing, unexpected = self._prepare_state(state, strict)
        self._assign_state(assignments)
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------------------------- modes, devices
    def zero_grad(self) -> None:
        """Forget every parameter gradient (set to None, as torch's default)."""
        for param in self.parameters():
            param.grad = None

    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active) for this module and every sub-module."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode (dropout off) for this module and every sub-module."""
        return self.train(False)

    def freeze(self) -> "Module":
        """Stop learning every parameter: backward passes no longer compute their gradients."""
        for param in self.parameters():
            param.requires_grad = False
        return self

    def unfreeze(self) -> "Module":
        for param in self.parameters():
            param.requires_grad = True
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        return self.unfreeze() if requires_grad else self.freeze()

    def _apply(self, function, floats_only_buffers: bool) -> None:
        for module in self.modules():
            for param in module._parameters.values():
                if param is None:
                    continue
                param.data = function(param.data)
                if param.grad is not None:
                    param.grad = function(param.grad)
            for name, buffer in module._buffers.items():
                if buffer is None or (floats_only_buffers and buffer.dtype.kind != "f"):
                    continue
                module._buffers[name] = function(buffer)

    def to(self, device: str) -> "Module":
        """Move every parameter, gradient and buffer to ``"cpu"`` (NumPy) or ``"cuda"`` (CuPy)."""
        device = check_device(device)
        self._apply(lambda array: to_device(array, device), floats_only_buffers=False)
        return self

    def to_dtype(self, dtype) -> "Module":
        """Cast every parameter, gradient and floating buffer to ``dtype`` (e.g. ``np.float64`` for gradcheck)."""
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype: got {dtype}; expected a floating dtype (float16, float32 or float64)")
        self._apply(lambda array: array if array.dtype == dtype else array.astype(dtype), floats_only_buffers=True)
        return self

    # ----------------------------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        """The layer's own settings for ``repr`` (e.g. ``in_features=4, out_features=3``); empty here."""
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}({extra}" if extra else f"{type(self).__name__}("
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules registered under the keys ``"0"``, ``"1"`` ... (the twin of ``torch.nn.ModuleList``).

    It has no forward or backward of its own: the module holding it loops over it.
    """

    def __init__(self, modules=None):
        super().__init__()
        for module in modules or ():
            self.append(module)

    def _check(self, module) -> Module:
        if not isinstance(module, Module):
            raise TypeError(f"module: got {type(module).__name__}; expected a Module")
        return module

    def append(self, module: Module) -> "ModuleList":
        self._modules[str(len(self._modules))] = self._check(module)
        return self

    def extend(self, modules) -> "ModuleList":
        for module in modules:
            self.append(module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def _index(self, index: int) -> str:
        if not isinstance(index, (int, np.integer)) or not -len(self) <= index < len(self):
            raise IndexError(f"index: got {index!r}; expected an int in [{-len(self)}, {len(self)})")
        return str(int(index) % len(self))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[self._index(index)]

    def __setitem__(self, index, module: Module) -> None:
        self._modules[self._index(index)] = self._check(module)

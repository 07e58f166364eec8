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

Every subclass's ``forward`` and ``backward`` are wrapped (in :meth:`Module.__init_subclass__`, so no layer
writes this itself) with two pieces of bookkeeping that keep a backward pass honest:

- a forward that returns records the shape and dtype of what it returned; its ``backward`` then refuses an
  upstream gradient of another shape (never reshaped to fit) or another dtype (a float64 gradient would
  silently turn a float32 model's gradients into float64), with an error that names it;
- a forward that RAISES leaves nothing to differentiate: the module and all its sub-modules forget their
  last forward, so a later ``backward`` refuses ("run forward first") instead of combining the caches of two
  different calls (an encoder that ran with a decoder that refused its mask, say);
- a forward inside ``numpy_transformer.no_grad()`` (inference) keeps nothing to differentiate either: when it
  returns, the module drops its caches (by convention the attributes whose names end in ``_cache``), and its
  ``backward`` refuses, saying why.
"""
from __future__ import annotations

import functools
import inspect
from collections import OrderedDict, namedtuple
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..backend import FLOAT_DTYPES, as_dtype, check_device, get_array_module, to_device, to_numpy
from ..checks import check_upstream, upstream_spec
from ..grad_mode import is_grad_enabled

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


def _output_specs(result) -> tuple:
    """The (shape, dtype) of each array a forward returned, in order (None for what is not an array)."""
    items = result if isinstance(result, tuple) else (result,)
    return tuple(upstream_spec(x) if hasattr(x, "shape") and hasattr(x, "dtype") else None for x in items)


#: what ``_forward_outputs`` holds after a forward under ``no_grad()``: nothing to differentiate, and why
_NO_GRAD = "no_grad"


def _remembering_forward(forward):
    """``forward``, recording what it returned; when it raises, the module tree forgets its last forward; under
    ``no_grad()`` the module drops its caches when it returns."""
    @functools.wraps(forward)
    def remembering_forward(self, *args, **kwargs):
        try:
            result = forward(self, *args, **kwargs)
        except BaseException:
            for module in self.modules() if "_modules" in self.__dict__ else (self,):
                object.__setattr__(module, "_forward_outputs", None)
            raise
        if is_grad_enabled():
            object.__setattr__(self, "_forward_outputs", _output_specs(result))
        else:
            for name in [name for name in self.__dict__ if name.endswith("_cache")]:
                object.__setattr__(self, name, None)
            object.__setattr__(self, "_forward_outputs", _NO_GRAD)
        return result

    remembering_forward._module_bookkeeping = True
    return remembering_forward


def _checked_backward(backward):
    """``backward``, refusing to run without a forward to differentiate, or on a gradient that does not fit."""
    names = [p.name for p in list(inspect.signature(backward).parameters.values())[1:]
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    @functools.wraps(backward)
    def checked_backward(self, *douts, **kwargs):
        outputs = self.__dict__.get("_forward_outputs")
        if outputs is _NO_GRAD:
            raise RuntimeError(f"{type(self).__name__}.backward: the last forward ran under "
                               "numpy_transformer.no_grad(), which keeps nothing for a backward pass; run the "
                               "forward outside no_grad() to differentiate it")
        if outputs is None:
            raise RuntimeError(f"{type(self).__name__}.backward: called before forward, or after a forward that "
                               "raised (a failed forward keeps nothing to differentiate); run forward first")
        for index, (dout, spec) in enumerate(zip(douts, outputs, strict=False)):  # MHA: one dout, 2 outputs
            if spec is not None and dout is not None:
                name = names[index] if index < len(names) else f"douts[{index}]"
                which = "output" if len(outputs) == 1 else f"output {index}"
                check_upstream(name, dout, spec, f"{type(self).__name__}.forward's {which}")
        return backward(self, *douts, **kwargs)

    checked_backward._module_bookkeeping = True
    return checked_backward


class Module:
    """Base class of every layer and model (the twin of ``torch.nn.Module``).

    A subclass calls ``super().__init__()`` first, then assigns its parameters and sub-modules as
    attributes, and writes ``forward`` (keeping on ``self`` what backward needs) and ``backward``.
    Both are wrapped when the subclass is defined (see the module docstring): ``backward`` checks each
    upstream gradient against the shape and dtype of the matching output of the last forward, and refuses
    to run when that forward raised.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, wrap in (("forward", _remembering_forward), ("backward", _checked_backward)):
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_module_bookkeeping", False):
                setattr(cls, name, wrap(method))

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_outputs", None)  # shape and dtype of each output of the last forward

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
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for each direct submodule, in registration order (``None`` slots skipped)."""
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "", _seen: set | None = None) -> Iterator[tuple[str, Module]]:
        """Every module in the tree (this one first, as ``prefix``), each once."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self) -> Iterator[Module]:
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
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
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

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and every sub-module."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off) for this module and every sub-module."""
        return self.train(False)

    def freeze(self) -> Module:
        """Stop learning every parameter: backward passes no longer compute their gradients."""
        for param in self.parameters():
            param.requires_grad = False
        return self

    def unfreeze(self) -> Module:
        for param in self.parameters():
            param.requires_grad = True
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
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

    def to(self, device=None, dtype=None) -> Module:
        """Move to a device, cast to a dtype, or both, as torch's ``module.to``.

        ``to("cuda")`` / ``to("cpu")`` moves every parameter, gradient and buffer to CuPy / NumPy;
        ``to(np.float64)`` (or ``"float64"``, ``torch.float64``: anything :meth:`to_dtype` accepts) casts them;
        ``to("cuda", dtype=np.float32)`` does both.
        """
        if device is not None and not (isinstance(device, str) and device.split(":")[0] in ("cpu", "cuda")):
            try:                                                    # torch's to(dtype)
                device, dtype = None, as_dtype(device if dtype is None else dtype)
            except TypeError:
                raise ValueError(f"device: got {device!r}; expected 'cpu' or 'cuda' (or a float dtype)") from None
        if dtype is not None:
            self.to_dtype(dtype)
        if device is not None:
            device = check_device(device)
            self._apply(lambda array: to_device(array, device), floats_only_buffers=False)
        return self

    def to_dtype(self, dtype) -> Module:
        """Cast every parameter, gradient and floating buffer to ``dtype``.

        ``dtype``: a NumPy float dtype (``np.float64``), its name (``"float64"``) or a torch dtype or its name
        (``torch.float64``, ``"torch.float64"``); torch is never imported (see
        :func:`~numpy_transformer.backend.as_dtype`).
        """
        dtype = as_dtype(dtype)
        self._apply(lambda array: array if array.dtype == dtype else array.astype(dtype), floats_only_buffers=True)
        return self

    def double(self) -> Module:
        """Cast to float64 (for gradient checks), as torch's ``module.double()``."""
        return self.to_dtype(np.float64)

    def float(self) -> Module:
        """Cast to float32, the default dtype of every module here as in torch (``module.float()``)."""
        return self.to_dtype(np.float32)

    def half(self) -> Module:
        """Cast to float16, as torch's ``module.half()``."""
        return self.to_dtype(np.float16)

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

    def append(self, module: Module) -> ModuleList:
        self._modules[str(len(self._modules))] = self._check(module)
        return self

    def extend(self, modules) -> ModuleList:
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

"""The array backend: which array module (NumPy or CuPy) an array belongs to, and moving arrays between them.

Every function in this library starts with ``xp = get_array_module(x)`` and then writes ``xp.exp``,
``xp.matmul`` ... instead of ``np.exp``: the same line of code then runs on the CPU when ``x`` is a NumPy
array and on the GPU when ``x`` is a CuPy array. CuPy is optional and imported only when a CuPy array or the
``"cuda"`` device is actually asked for, so importing this library never needs a GPU.

Devices are named as in PyTorch: ``"cpu"`` (NumPy) and ``"cuda"`` (CuPy).

Checkpoints are always written from plain NumPy arrays (see :func:`to_numpy`), so a model trained on a GPU
loads on a machine without CuPy.
"""
from __future__ import annotations

import importlib
from typing import Any, Union

import numpy as np

_cupy_module = None  # the imported cupy module, once someone has asked for it

#: the floating dtypes the library computes in; anything else is refused with a clear error
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

#: An array of this library: a ``numpy.ndarray`` on the CPU or a ``cupy.ndarray`` on a GPU. The alias names the
#: arguments of every function for readers and type checkers; at run time each function takes either kind and
#: computes with its array module (:func:`get_array_module`).
Array = Union[np.ndarray, "cupy.ndarray"]  # noqa: F821 - cupy is optional, named for type checkers only


def _import_cupy():
    """Import CuPy on first use, or explain clearly that it is missing."""
    global _cupy_module
    if _cupy_module is None:
        try:
            _cupy_module = importlib.import_module("cupy")
        except ImportError as error:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "device 'cuda' needs CuPy, which is not installed; install it with "
                "`pip install numpy_transformer[gpu]` (a CuPy wheel such as cupy-cuda12x) on a machine "
                "with an NVIDIA GPU, or keep the model on device 'cpu'"
            ) from error
    return _cupy_module


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        cupy = _import_cupy()
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, or no device
        return False


def is_cupy_array(x: Any) -> bool:
    """True for a CuPy ndarray, without importing CuPy when it was never imported."""
    return type(x).__module__.startswith("cupy")


def get_array_module(*arrays: Any):
    """The array module (``numpy`` or ``cupy``) of the given arrays.

    Non-array arguments (None, Python numbers) are ignored. Mixing NumPy and CuPy arrays is an error,
    because it would silently copy between host and device.
    """
    found_cupy = found_numpy = False
    for array in arrays:
        if is_cupy_array(array):
            found_cupy = True
        elif isinstance(array, np.ndarray):
            found_numpy = True
    if found_cupy and found_numpy:
        raise TypeError("arrays: got a mix of NumPy (cpu) and CuPy (cuda) arrays; expected all on one device")
    return _import_cupy() if found_cupy else np


def device_of(x: Any) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "cuda" if is_cupy_array(x) else "cpu"


def check_device(device: str) -> str:
    """Validate a device name and return it in canonical form (``"cpu"`` or ``"cuda"``)."""
    if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"device: got {device!r}; expected 'cpu' or 'cuda'")
    return device.split(":")[0]


def array_module_for(device: str):
    """The array module that holds arrays on ``device``: ``numpy`` for "cpu", ``cupy`` for "cuda"."""
    return np if check_device(device) == "cpu" else _import_cupy()


def to_device(x: Any, device: str):
    """Move an array to ``"cpu"`` (a NumPy array) or ``"cuda"`` (a CuPy array); a no-op when already there."""
    device = check_device(device)
    if device == "cpu":
        return to_numpy(x)
    cupy = _import_cupy()
    return cupy.asarray(x)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array holding the value of ``x`` (copied off the GPU if ``x`` is a CuPy array)."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def as_float_array(x: Any, name: str, dtype=None, like: Any = None):
    """Return ``x`` as a floating array on the same device as ``like`` (or as ``x``).

    Python lists and scalars become arrays of ``dtype`` (float32 when not given). Arrays that are already
    floating keep their dtype unless ``dtype`` asks otherwise: nothing is silently upcast.
    """
    xp = get_array_module(x, like)
    if not hasattr(x, "dtype"):
        x = xp.asarray(x, dtype=dtype or np.float32)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: got dtype {x.dtype}; expected a floating dtype (float16, float32 or float64)")
    if dtype is not None and x.dtype != np.dtype(dtype):
        x = x.astype(dtype)
    return x


def seeded_generator(seed_or_generator: Any, xp=np):
    """A random Generator for ``xp``: pass an int seed, an existing Generator (returned as is) or None."""
    if seed_or_generator is None or isinstance(seed_or_generator, (int, np.integer)):
        return xp.random.default_rng(seed_or_generator)
    if hasattr(seed_or_generator, "random"):
        return seed_or_generator
    raise TypeError(
        f"rng: got {type(seed_or_generator).__name__}; expected an int seed, a Generator "
        "(numpy.random.default_rng(...)) or None"
    )

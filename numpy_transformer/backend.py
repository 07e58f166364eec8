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


# torch's names of the float dtypes, as in ``str(torch.float64) == "torch.float64"`` (torch is never imported)
_TORCH_FLOAT_NAMES = {"float64": np.float64, "double": np.float64, "float32": np.float32, "float": np.float32,
                      "float16": np.float16, "half": np.float16}


def as_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """The NumPy float dtype that ``dtype`` names, as torch users and NumPy users write it.

    Accepted: a NumPy dtype or scalar type (``np.float64``), Python's ``float`` (float64, as in NumPy), a
    NumPy name (``"float64"``, ``"f8"``, ``"double"``, ``"half"``), a torch dtype (``torch.float64``, read by
    its name, so torch is never imported) or its name (``"torch.float64"``, ``"torch.float"`` = float32, as in
    torch), or None (float32, the default, as in torch). The bare string ``"float"`` is refused: it means
    float64 to NumPy and float32 to torch. Only float16, float32 and float64 are accepted (NumPy has no
    bfloat16).
    """
    if dtype is None:
        return np.dtype(np.float32)
    text = str(dtype) if type(dtype).__module__ == "torch" else dtype   # a torch.dtype prints "torch.float64"
    if isinstance(text, str):
        if text == "float":
            raise TypeError(f"{name}: got 'float', which is float64 to NumPy and float32 to torch; expected an "
                            "unambiguous name such as 'float32' or 'float64'")
        if text.startswith("torch."):
            if text[len("torch."):] not in _TORCH_FLOAT_NAMES:
                raise TypeError(f"{name}: got {text}; expected torch.float16, torch.float32 or torch.float64 "
                                "(NumPy has no bfloat16)")
            return np.dtype(_TORCH_FLOAT_NAMES[text[len("torch."):]])
    try:
        resolved = np.dtype(text)
    except TypeError:
        raise TypeError(f"{name}: got {dtype!r}; expected a float dtype such as np.float32, 'float64' or "
                        "torch.float64") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"{name}: got {dtype!r} ({resolved}); expected a floating dtype (float16, float32 or "
                        "float64)")
    return resolved


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

"""A test-only stand-in for CuPy, built on NumPy, that behaves like a GPU array library without a GPU.

Its arrays are instances of :class:`ndarray`, a class whose ``__module__`` is ``"cupy"``, so that
``numpy_transformer.backend`` takes them for CuPy arrays and hands this module out as ``xp``. Each wraps a
NumPy array (the "device memory") and keeps the rules that make a GPU array a GPU array:

- No implicit conversion to NumPy: ``np.asarray(x)``, ``np.exp(x)``, ``np.concatenate([x])`` ... raise
  ``TypeError("implicit conversion to a NumPy array is not allowed ...")``, and so does mixing a device
  array with a host NumPy array in one operation. (Real CuPy refuses ``np.asarray`` and host/device mixing
  the same way; it forwards some NumPy functions to itself, but the library's rule is stricter: compute only
  through ``xp``, so here every NumPy call on a device array is an error.) ``x.get()`` is the one explicit
  way back to the host.
- Every operator, method, index and ``xp.*`` function returns device arrays; reductions and scalar indexing
  give 0-d device arrays, as in CuPy, not NumPy scalars.
- Reading a value on the host (``float(x)``, ``int(x)``, ``bool(x)``, ``x.item()``, ``x.tolist()``, a format)
  is a host synchronisation: each one is counted in ``COUNTS["sync"]``, and each ``.get()`` in
  ``COUNTS["get"]``, so that a test can prove a training step never waits for the device.

Its random Generator draws the same numbers as NumPy's for the same seed (real CuPy's do not), so a run with
dropout can be compared with the CPU run exactly. :func:`install` puts this module in ``sys.modules`` as
``cupy`` (with a ``cupyx`` holding ``scatter_add`` and ``scipy.special.erf``) and undoes it afterwards.
"""
import builtins  # this module defines any, all, sum, max ... as cupy does
import contextlib
import sys
import traceback
import types

import numpy as np
import scipy.special

COUNTS = {"sync": 0, "get": 0}
#: where each host sync happened: (file:line of the caller in the library, what it was)
SYNC_SITES = []

_REFUSED = (
    "implicit conversion to a NumPy array is not allowed (a NumPy function or a host array met a device "
    "array); compute through xp = get_array_module(...) and use .get() to copy to the host explicitly"
)


def _note_sync(what):
    COUNTS["sync"] += 1
    frame = traceback.extract_stack(limit=4)[0]
    SYNC_SITES.append((f"{frame.filename}:{frame.lineno}", what))


def _unwrap(obj):
    """Device arrays -> their NumPy buffers (recursively in tuples, lists, slices); host arrays are refused."""
    if isinstance(obj, ndarray):
        return obj._data
    if isinstance(obj, np.ndarray):
        raise TypeError(_REFUSED + f" (got a host numpy.ndarray of shape {obj.shape})")
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap(item) for item in obj)
    if isinstance(obj, dict):
        return {key: _unwrap(value) for key, value in obj.items()}
    if isinstance(obj, slice):
        return slice(_unwrap(obj.start), _unwrap(obj.stop), _unwrap(obj.step))
    return obj


def _wrap(obj):
    """NumPy results -> device arrays (NumPy scalars become 0-d device arrays, as CuPy returns)."""
    if isinstance(obj, np.ndarray):
        return ndarray(obj)
    if isinstance(obj, np.generic):
        return ndarray(np.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(item) for item in obj)
    if isinstance(obj, list):
        return [_wrap(item) for item in obj]
    return obj


def _device(function):
    """A NumPy function turned into one on device arrays: unwrap the arguments, wrap the results."""

    def on_device(*args, **kwargs):
        return _wrap(function(*_unwrap(args), **_unwrap(kwargs)))

    on_device.__name__ = getattr(function, "__name__", "function")
    return on_device


class ndarray:
    """A device array: a NumPy buffer that refuses to leave the device implicitly."""

    __slots__ = ("_data",)
    __hash__ = None

    def __init__(self, data):
        self._data = data

    # ---------------------------------------------------------------- the ways back to the host
    def get(self):
        COUNTS["get"] += 1
        return self._data.copy()

    def __array__(self, *args, **kwargs):
        raise TypeError(_REFUSED)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # A NumPy scalar on the left of an operator (np.float32(2) * x) arrives here; CuPy computes it.
        if method == "__call__" and not kwargs and len(inputs) == 2 and ufunc.nin == 2:
            if builtins.any(isinstance(item, np.generic) for item in inputs):
                return _wrap(ufunc(*_unwrap(inputs)))
        raise TypeError(_REFUSED + f" (numpy.{ufunc.__name__} called on a device array)")

    def __array_function__(self, function, types, args, kwargs):
        raise TypeError(_REFUSED + f" (numpy.{function.__name__} called on a device array)")

    def _sync(self, what, convert):
        _note_sync(what)
        return convert(self._data)

    def __float__(self):
        return self._sync("float()", float)

    def __int__(self):
        return self._sync("int()", int)

    def __index__(self):
        return self._sync("__index__", lambda a: a.__index__())

    def __bool__(self):
        return self._sync("bool()", lambda a: a.__bool__())

    def __format__(self, spec):
        return self._sync("format", lambda a: format(a, spec))

    def item(self, *args):
        return self._sync("item()", lambda a: a.item(*args))

    def tolist(self):
        return self._sync("tolist()", lambda a: a.tolist())

    def __repr__(self):
        return f"fake_cupy.array({self._data!r})"

    # ---------------------------------------------------------------- metadata, and everything else
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    nbytes = property(lambda self: self._data.nbytes)
    itemsize = property(lambda self: self._data.itemsize)
    strides = property(lambda self: self._data.strides)
    T = property(lambda self: ndarray(self._data.T))
    device = property(lambda self: "cuda")

    def __len__(self):
        return len(self._data)

    def __iter__(self):
        return (ndarray(row) if isinstance(row, np.ndarray) else _wrap(row) for row in self._data)

    def __setitem__(self, key, value):
        self._data[_unwrap(key)] = _unwrap(value)

    def __getattr__(self, name):
        """Methods (sum, max, reshape, astype, transpose, ...) run on the buffer and return device arrays."""
        if name.startswith("_") or name in ("flat", "ctypes", "tobytes", "tofile", "dump", "dumps"):
            raise AttributeError(f"fake_cupy.ndarray has no attribute {name!r}")
        return _device(getattr(self._data, name))


def _operator(name):
    def operator(self, *args):
        result = getattr(self._data, name)(*_unwrap(args))
        if result is NotImplemented:
            return result
        return self if result is self._data else _wrap(result)  # in-place operators keep the object

    operator.__name__ = name
    return operator


for _name in (
    "add radd iadd sub rsub isub mul rmul imul truediv rtruediv itruediv floordiv rfloordiv mod rmod pow rpow "
    "ipow matmul rmatmul neg pos abs invert and rand iand or ror ior xor rxor lt le gt ge eq ne getitem"
).split():
    setattr(ndarray, f"__{_name}__", _operator(f"__{_name}__"))
ndarray.__module__ = "cupy"  # what backend.is_cupy_array looks at


class _Ufunc:
    """A NumPy ufunc on device arrays, with its methods (``add.at``, ``maximum.reduce`` ...)."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _device(self._ufunc)(*args, **kwargs)

    def __getattr__(self, name):
        return _device(getattr(self._ufunc, name))


# ---------------------------------------------------------------------------- the module's API
def asarray(obj, dtype=None, order=None):
    """Like cupy.asarray: an explicit host -> device copy for host data; device arrays stay as they are."""
    if isinstance(obj, ndarray):
        return obj if dtype is None or obj.dtype == np.dtype(dtype) else obj.astype(dtype)
    return ndarray(np.array(obj, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    data = obj._data if isinstance(obj, ndarray) else obj
    return ndarray(np.array(data, dtype=dtype, copy=copy, order=order, ndmin=ndmin))


def asnumpy(x):
    return x.get() if isinstance(x, ndarray) else np.asarray(x)


def scatter_add(target, index, values):
    np.add.at(target._data, _unwrap(index), _unwrap(values))


FUNCTIONS = (
    "zeros ones empty full arange linspace eye zeros_like ones_like empty_like full_like triu tril where "
    "swapaxes transpose moveaxis reshape expand_dims squeeze concatenate stack broadcast_to take repeat "
    "take_along_axis put_along_axis einsum sum mean max min amax amin argmax argmin argsort sort cumsum any all "
    "isnan isfinite isinf clip abs sign round outer diag count_nonzero nonzero unique allclose array_equal"
)
UFUNCS = (
    "add subtract multiply divide true_divide negative power exp log log1p expm1 sqrt tanh sin cos "
    "maximum minimum equal not_equal less less_equal greater greater_equal logical_and logical_or "
    "logical_not matmul square reciprocal floor"
)
_module = sys.modules[__name__]
for _name in FUNCTIONS.split():
    setattr(_module, _name, _device(getattr(np, _name)))
for _name in UFUNCS.split():
    setattr(_module, _name, _Ufunc(getattr(np, _name)))
_NAMES = "float16 float32 float64 int8 int32 int64 intp uint8 bool_ dtype newaxis inf nan pi e integer floating"
for _name in _NAMES.split():
    setattr(_module, _name, getattr(np, _name))
bool = np.bool_  # noqa: A001 - cupy.bool, as NumPy 2 spells it

linalg = types.SimpleNamespace(norm=_device(np.linalg.norm))


class Generator:
    """cupy.random.Generator's surface, drawing NumPy's numbers (so runs compare exactly with the CPU)."""

    def __init__(self, seed=None):
        self._generator = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._generator.random(size, dtype=dtype)))

    def standard_normal(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._generator.standard_normal(size, dtype=dtype)))

    def uniform(self, low=0.0, high=1.0, size=None):
        return ndarray(np.asarray(self._generator.uniform(low, high, size)))

    def integers(self, low, high=None, size=None, dtype=np.int64):
        return ndarray(np.asarray(self._generator.integers(low, high, size, dtype=dtype)))


random = types.SimpleNamespace(default_rng=Generator, Generator=Generator)
cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))


def _cupyx():
    special = types.ModuleType("cupyx.scipy.special")
    special.erf = _Ufunc(scipy.special.erf)
    scipy_module = types.ModuleType("cupyx.scipy")
    scipy_module.special = special
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add, cupyx.scipy = scatter_add, scipy_module
    return {"cupyx": cupyx, "cupyx.scipy": scipy_module, "cupyx.scipy.special": special}


@contextlib.contextmanager
def install():
    """Within the block, ``import cupy`` (and ``cupyx``) give the fake; the counters start from zero."""
    from numpy_transformer import backend

    modules = {"cupy": _module, **_cupyx()}
    saved = {name: sys.modules.get(name) for name in modules}
    saved_backend = backend._cupy_module
    sys.modules.update(modules)
    backend._cupy_module = None
    reset_counts()
    try:
        yield _module
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
        backend._cupy_module = saved_backend


def reset_counts():
    COUNTS.update(sync=0, get=0)
    SYNC_SITES.clear()

"""Read and write the safetensors format with NumPy alone.

A ``.safetensors`` file is three parts, one after another:

    [8 bytes]  N, the length of the header, an unsigned 64-bit little-endian integer
    [N bytes]  the header: UTF-8 JSON, {name: {"dtype": "F32", "shape": [384, 384],
               "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}   (metadata optional)
    [rest]     the data area: every tensor's raw little-endian bytes, in C order

``data_offsets`` count bytes from the start of the data area, so tensor ``name`` lives in the file at
``8 + N + begin`` up to ``8 + N + end``, and ``end - begin`` must equal ``itemsize * prod(shape)``. Taken in
the order of their offsets, the tensors fill the data area exactly: the first begins at 0, each begins where
the one before it ends, and the last ends at the end of the file (the reference reader refuses a gap, an
overlap or trailing bytes, and so does this one).

Reading maps the file into memory (``np.memmap``, copy-on-write): a tensor costs nothing until it is read,
and changing a returned array never changes the file. NumPy has no bfloat16, so ``BF16`` tensors are widened
to float32 on reading: a bfloat16 number is exactly the high 16 bits of the float32 with the same sign,
exponent and leading mantissa bits, so shifting the 16 bits into the high half of a uint32 and viewing the
result as float32 is exact. Writing float32 as ``BF16`` (``save_safetensors(..., bfloat16=names)``) rounds
to the nearest bfloat16, ties to even, as PyTorch does.

Every problem with a file raises ``ValueError`` naming the file and, where one is to blame, the tensor.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..backend import as_dtype, to_numpy
from .atomic import atomic_write, remove_stale_temporaries

__all__ = ["load_safetensors", "save_safetensors", "safetensors_header", "SAFETENSORS_DTYPES"]

#: safetensors dtype name -> NumPy dtype of the stored bytes (little-endian); BF16 is stored as uint16 bits
SAFETENSORS_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# NumPy dtype -> safetensors name, for writing (bfloat16 is chosen per tensor, see save_safetensors)
_NAME_OF_DTYPE = {dtype.newbyteorder("="): name for name, dtype in SAFETENSORS_DTYPES.items() if name != "BF16"}

_HEADER_LENGTH_BYTES = 8
# a header longer than this is certainly not a real one (the reference implementation's limit is 100 MB)
_MAX_HEADER_BYTES = 100_000_000


def _fail(path: str, message: str, tensor: str | None = None) -> ValueError:
    where = f"{path}: tensor {tensor!r}: " if tensor is not None else f"{path}: "
    return ValueError(where + message)


def _read_header(path: str) -> tuple[dict, int, int]:
    """Parse and validate the header. Returns (header, start of the data area, size of the data area)."""
    path = os.fspath(path)
    file_size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(_HEADER_LENGTH_BYTES)
        if len(prefix) < _HEADER_LENGTH_BYTES:
            raise _fail(path, f"file is {file_size} bytes; expected at least 8 bytes of header length (not a "
                              "safetensors file?)")
        header_length = int.from_bytes(prefix, "little")
        if header_length > _MAX_HEADER_BYTES:
            raise _fail(path, f"header length says {header_length} bytes; expected at most {_MAX_HEADER_BYTES} "
                              "(not a safetensors file?)")
        if _HEADER_LENGTH_BYTES + header_length > file_size:
            raise _fail(path, f"file is {file_size} bytes, shorter than its header length says "
                              f"(8 + {header_length} bytes): the file is truncated")
        raw = handle.read(header_length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(path, f"header is not valid UTF-8 JSON ({error})") from None
    if not isinstance(header, dict):
        raise _fail(path, f"header is a JSON {type(header).__name__}; expected a JSON object of tensors")
    data_start = _HEADER_LENGTH_BYTES + header_length
    data_size = file_size - data_start
    _validate_entries(path, header, data_size)
    return header, data_start, data_size


def _validate_entries(path: str, header: dict, data_size: int) -> None:
    """Check every tensor's dtype, shape and offsets against each other and against the data area."""
    metadata = header.get("__metadata__")
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise _fail(path, f"__metadata__ is {metadata!r}; expected a JSON object of strings")
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise _fail(path, f"entry is {entry!r}; expected an object with dtype, shape and data_offsets", name)
        dtype_name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype_name not in SAFETENSORS_DTYPES:
            raise _fail(path, f"unknown dtype {dtype_name!r}; expected one of {', '.join(SAFETENSORS_DTYPES)}", name)
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in shape):
            raise _fail(path, f"shape is {shape!r}; expected a list of non-negative integers", name)
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise _fail(path, f"data_offsets is {offsets!r}; expected [begin, end], two integers", name)
        begin, end = offsets
        if begin < 0 or end < begin:
            raise _fail(path, f"data_offsets {offsets} lie outside the data area; expected 0 <= begin <= end", name)
        if end > data_size:
            raise _fail(path, f"data_offsets {offsets} reach past the end of the data area ({data_size} bytes): "
                              "the data is truncated", name)
        expected = SAFETENSORS_DTYPES[dtype_name].itemsize * math.prod(shape)
        if end - begin != expected:
            raise _fail(path, f"data_offsets {offsets} hold {end - begin} bytes; expected {expected} "
                              f"for dtype {dtype_name} and shape {tuple(shape)}", name)
        spans.append((begin, end, name))
    # As the reference reader requires, the tensors, in the order of their offsets, tile the data area: each
    # begins where the one before it ends (the first at 0), and the last ends where the file ends.
    spans.sort()
    reach, reached_by = 0, None  # where the tensors seen so far end, and the tensor that ends there
    for begin, end, name in spans:
        if begin < reach:
            raise _fail(path, f"data_offsets [{begin}, {end}] overlap those of tensor {reached_by!r} "
                              f"(which end at {reach})", name)
        if begin > reach:
            after = "the start of the data area" if reached_by is None else f"tensor {reached_by!r}"
            raise _fail(path, f"data_offsets [{begin}, {end}] leave a gap of {begin - reach} bytes after {after}; "
                              "expected each tensor to begin where the one before it ends (the first at 0)", name)
        reach, reached_by = end, name
    if reach != data_size:
        raise _fail(path, f"the data area holds {data_size} bytes, but the tensors end at byte {reach}; expected "
                          "no bytes after the last tensor")


def safetensors_header(path) -> dict:
    """The validated JSON header of a safetensors file, without reading any tensor data.

    Returns:
        dict name -> {"dtype": str, "shape": list[int], "data_offsets": [begin, end]}, plus
        "__metadata__" -> dict[str, str] when the file has metadata.
    """
    header, _, _ = _read_header(path)
    return header


def _bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bit patterns (any shape) -> float32 of the same shape, exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 (any shape) -> uint16 bfloat16 bits, rounding to nearest, ties to even; NaN stays a (quiet) NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    # add 0x7FFF plus the lowest kept bit, so that a tie (low half exactly 0x8000) rounds to the even neighbour
    rounded = ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    nan_bits = ((bits >> 16) | 0x0040).astype(np.uint16)
    return np.where(np.isnan(x), nan_bits, rounded)


def load_safetensors(path, names: Iterable[str] | None = None, dtype=None) -> dict[str, np.ndarray]:
    """Load tensors from a safetensors file.

    Inputs:
        path: the ``.safetensors`` file
        names: the tensors to load (default: all of them, in the order of the header)
        dtype: cast floating tensors to this float dtype (e.g. ``np.float32``); integer and bool tensors keep
            theirs. Default: keep every tensor's stored dtype, with BF16 widened to float32.

    Returns:
        dict name -> np.ndarray with the stored shape. Arrays are copy-on-write views of the memory-mapped
        file where no conversion is needed (writing to them leaves the file untouched).
    """
    path = os.fspath(path)
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
    if dtype is not None:
        dtype = as_dtype(dtype)
    header, data_start, data_size = _read_header(path)
    available = [name for name in header if name != "__metadata__"]
    if names is None:
        wanted = available
    else:
        if isinstance(names, str):
            raise TypeError(f"names: got the string {names!r}; expected a list of tensor names")
        wanted = list(names)
        missing = [name for name in wanted if name not in header or name == "__metadata__"]
        if missing:
            shown = ", ".join(repr(n) for n in available[:10]) + (", ..." if len(available) > 10 else "")
            raise ValueError(f"{path}: names: tensor {missing[0]!r} is not in the file; it holds {shown}")
    data = np.memmap(path, dtype=np.uint8, mode="c", offset=data_start, shape=(data_size,)) if data_size else None
    out = {}
    for name in wanted:
        entry = header[name]
        stored = SAFETENSORS_DTYPES[entry["dtype"]]
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]
        if end == begin:
            array = np.zeros(shape, dtype=stored)
        else:
            array = data[begin:end].view(stored).reshape(shape)
        if entry["dtype"] == "BF16":
            array = _bfloat16_bits_to_float32(array)
        elif not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
            array = array.astype(dtype)
        out[name] = array
    return out


def save_safetensors(path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None,
                     bfloat16: Iterable[str] = ()) -> None:
    """Write tensors to a safetensors file, atomically (see :mod:`numpy_transformer.io.atomic`).

    The tensors are laid out one after another in the order given, from the start of the data area, with no
    gaps, as the reference reader requires. The file gets the usual permissions of a new file (``0o644``
    under the common umask), or keeps those of the file it replaces.

    Inputs:
        path: where to write
        tensors: dict name -> array (NumPy or CuPy) of float16/32/64, int8/16/32/64, uint8 or bool
        metadata: optional dict str -> str stored as the header's ``__metadata__``
        bfloat16: names of floating tensors to store as BF16 (rounded to nearest, ties to even)
    """
    path = os.fspath(path)
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors: got {type(tensors).__name__}; expected a dict name -> array")
    if metadata is not None and not (isinstance(metadata, Mapping)
                                     and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError(f"metadata: got {metadata!r}; expected a dict of str -> str")
    bfloat16 = set([bfloat16] if isinstance(bfloat16, str) else bfloat16)
    unknown = bfloat16 - set(tensors)
    if unknown:
        raise ValueError(f"bfloat16: got {sorted(unknown)!r}, which are not among the tensors")
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    blobs, offset = [], 0
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"tensors: got the name {name!r}; expected a string other than '__metadata__'")
        array = np.asarray(to_numpy(value))
        if name in bfloat16:
            if array.dtype.kind != "f":
                raise TypeError(f"bfloat16: tensor {name!r} has dtype {array.dtype}; expected a floating dtype")
            dtype_name, raw = "BF16", _float32_to_bfloat16_bits(array.astype(np.float32, copy=False))
        else:
            dtype_name = _NAME_OF_DTYPE.get(array.dtype.newbyteorder("="))
            if dtype_name is None:
                raise TypeError(f"tensors: tensor {name!r} has dtype {array.dtype}; expected one of "
                                "float16/32/64, int8/16/32/64, uint8, bool")
            raw = array
        raw = np.ascontiguousarray(raw, dtype=SAFETENSORS_DTYPES[dtype_name])  # little-endian, C order
        header[name] = {"dtype": dtype_name, "shape": list(array.shape), "data_offsets": [offset, offset + raw.nbytes]}
        blobs.append(raw)
        offset += raw.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # pad so the data area starts 8-byte aligned

    def write(out) -> None:
        out.write(len(encoded).to_bytes(8, "little"))
        out.write(encoded)
        for raw in blobs:
            out.write(memoryview(raw.reshape(-1).view(np.uint8)) if raw.size else b"")

    atomic_write(path, write)

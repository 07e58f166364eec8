"""Checkpoints: exact round trips, optimizer resume, corrupted files and bad keys, atomic writes."""
import os

import numpy as np
import pytest

from numpy_transformer.io import load_checkpoint, load_config, read_checkpoint, save_checkpoint
from numpy_transformer.nn import LayerNorm, Linear, Module
from numpy_transformer.optim import AdamW, warmup_cosine


class Tiny(Module):
    def __init__(self, width=3, seed=0):
        super().__init__()
        self.linear = Linear(2, width, rng=seed)
        self.norm = LayerNorm(width)
        self.head = Linear(width, 2, rng=seed + 1)

    def forward(self, x):
        return self.head(self.norm(self.linear(x)))

    def backward(self, dout):
        return self.linear.backward(self.norm.backward(self.head.backward(dout)))


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_save_load_is_exact(tmp_path):
    model = Tiny(seed=0)
    config = {"width": 3, "name": "tiny", "layers": [1, 2]}
    path = tmp_path / "tiny.npz"
    save_checkpoint(path, model, config=config)
    other = Tiny(seed=5)
    assert load_checkpoint(path, other) == config
    assert _same(model, other)
    assert load_config(path) == config
    assert os.listdir(tmp_path) == ["tiny.npz"]


def _train(model, optimizer, schedule, rng_seed, steps):
    rng = np.random.default_rng(rng_seed)
    for _ in range(steps):
        x = rng.standard_normal((4, 2)).astype(np.float32)
        model.zero_grad()
        out = model(x)
        model.backward(out - 1.0)
        optimizer.step()
        schedule.step()


def test_optimizer_resume_continues_identically(tmp_path):
    straight = Tiny()
    optimizer = AdamW(straight.parameters(), lr=0.01)
    schedule = warmup_cosine(optimizer, 3, 10)
    _train(straight, optimizer, schedule, 0, 5)
    _train(straight, optimizer, schedule, 1, 5)

    first = Tiny()
    optimizer = AdamW(first.parameters(), lr=0.01)
    schedule = warmup_cosine(optimizer, 3, 10)
    _train(first, optimizer, schedule, 0, 5)
    path = tmp_path / "resume.npz"
    save_checkpoint(path, first, optimizer=optimizer, scheduler=schedule)

    resumed = Tiny(seed=9)
    optimizer = AdamW(resumed.parameters(), lr=0.01)
    schedule = warmup_cosine(optimizer, 3, 10)
    load_checkpoint(path, resumed, optimizer=optimizer, scheduler=schedule)
    assert optimizer.step_count == 5
    _train(resumed, optimizer, schedule, 1, 5)
    assert _same(straight, resumed)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_file_is_a_clear_error_and_model_unchanged(tmp_path, damage):
    path = tmp_path / "model.npz"
    save_checkpoint(path, Tiny(seed=0))
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        middle = len(data) // 3
        data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
    elif damage == "garbage":
        data = b"not a checkpoint at all" * 10
    else:
        data = b""
    path.write_bytes(data)
    model = Tiny(seed=3)
    before = model.state_dict()
    with pytest.raises(ValueError, match="model.npz"):
        load_checkpoint(path, model)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_wrong_shapes_and_unknown_keys_name_them_all(tmp_path):
    path = tmp_path / "wide.npz"
    save_checkpoint(path, Tiny(width=4))
    model = Tiny(width=3)
    before = model.state_dict()
    with pytest.raises(ValueError) as error:
        load_checkpoint(path, model)
    message = str(error.value)
    assert "wide.npz" in message
    for key in ("linear.weight", "linear.bias", "norm.weight", "head.weight"):
        assert key in message
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())

    class Bigger(Tiny):
        def __init__(self):
            super().__init__()
            self.extra = Linear(2, 2, rng=0)

    save_checkpoint(path, Bigger())
    with pytest.raises(ValueError, match="unexpected key: extra.weight"):
        load_checkpoint(path, Tiny())
    with pytest.raises(ValueError, match="missing key: extra.bias"):
        load_checkpoint(_saved(tmp_path, Tiny()), Bigger())


def _saved(folder, model):
    path = folder / "small.npz"
    save_checkpoint(path, model)
    return path


def test_optimizer_mismatch_leaves_model_and_optimizer_unchanged(tmp_path):
    saved_model = Tiny(seed=0)
    saved_optimizer = AdamW([{"params": list(saved_model.parameters())[:2]},
                             {"params": list(saved_model.parameters())[2:]}])
    path = tmp_path / "two_groups.npz"
    save_checkpoint(path, saved_model, optimizer=saved_optimizer)
    model = Tiny(seed=1)
    optimizer = AdamW(model.parameters())
    before = model.state_dict()
    with pytest.raises(ValueError, match="param_groups"):
        load_checkpoint(path, model, optimizer=optimizer)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.step_count == 0 and optimizer.state == {}


def test_failed_save_leaves_no_temporary_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save_checkpoint(path, Tiny(seed=0), config={"ok": True})
    with pytest.raises(TypeError, match="config"):
        save_checkpoint(path, Tiny(seed=1), config={"bad": object()})

    class Exploding(Tiny):
        def state_dict(self):
            state = super().state_dict()
            state["boom"] = np.array([object()], dtype=object)  # np.savez refuses to write it without pickle
            return state

    with pytest.raises(ValueError):
        save_checkpoint(path, Exploding())
    assert os.listdir(tmp_path) == ["model.npz"]

    def dies_halfway(file, **arrays):  # a crash (disk full, interrupt) after part of the file is written
        file.write(b"PK\x03\x04 partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", dies_halfway)
    with pytest.raises(OSError, match="space"):
        save_checkpoint(path, Tiny(seed=1))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"]
    assert read_checkpoint(path)["config"] == {"ok": True}


def test_missing_file_and_foreign_npz(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere.npz", Tiny())
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weight=np.ones(3))
    with pytest.raises(ValueError, match="foreign.npz"):
        load_checkpoint(foreign, Tiny())


def test_float64_model_loads_float32_checkpoint_cast(tmp_path):
    path = tmp_path / "f32.npz"
    model = Tiny(seed=0)
    save_checkpoint(path, model)
    wide = Tiny(seed=2).to_dtype(np.float64)
    load_checkpoint(path, wide)
    assert wide.linear.weight.dtype == np.float64
    np.testing.assert_array_equal(wide.linear.weight.data, model.linear.weight.data.astype(np.float64))

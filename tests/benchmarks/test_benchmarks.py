"""The benchmark script runs end to end (``--quick``: tiny sizes) and writes its tables. No timing is asserted.

The GPU mode (``--device cuda``) runs here on the test-only fake CuPy of ``tests/backend/fake_cupy.py``, with
PyTorch on the CPU under the explicit ``--allow-cpu-reference``; without CuPy it must exit 2 and say so.
"""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "run.py")
sys.path.insert(0, ROOT)

from benchmarks.run import RATE_COLUMNS, TIME_COLUMNS  # noqa: E402
from benchmarks.workloads import (QUICK_SIZE, SEED, SIZES, WORKLOADS, encoder_layer_flops,  # noqa: E402
                                  matmul_flops)


def _table_header_cells(text: str):
    """The cells of every markdown table header line (the line above a |---| separator)."""
    lines = text.splitlines()
    return [[cell.strip() for cell in lines[i - 1].strip("|").split("|")]
            for i, line in enumerate(lines) if i > 0 and line.startswith("|---")]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from reference import require

    require("torch")   # the script compares against PyTorch: skip (or fail under NT_REQUIRE_REFERENCES=1)
    out = tmp_path_factory.mktemp("bench")
    markdown, raw = out / "x.md", out / "x.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--markdown", str(markdown), "--json", str(raw)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    return proc, markdown, raw


def test_quick_run_exits_zero(quick_run):
    proc, markdown, raw = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert markdown.exists() and raw.exists()


def test_every_workload_appears_or_says_why_not(quick_run):
    proc, markdown, raw = quick_run
    text = markdown.read_text()
    rows = {row["workload"]: row for row in json.loads(raw.read_text())["rows"]}
    for name in (name for name, w in WORKLOADS.items() if "cpu" in w.devices):
        assert f"| {name} | {QUICK_SIZE.name} |" in text, name
        assert name in proc.stdout
        assert name in rows
        row = rows[name]
        assert not row["error"], row["error"]
        if row["skip"]:
            assert "skipped:" in text and row["skip"] in text
        else:
            assert "ours fwd" in row["times_s"] and "torch fwd" in row["times_s"]
            if WORKLOADS[name].training:
                assert "ours f+b" in row["times_s"] and "torch f+b" in row["times_s"]


def test_markdown_has_the_columns_and_the_machine(quick_run):
    _, markdown, _ = quick_run
    text = markdown.read_text()
    headers = _table_header_cells(text)
    assert TIME_COLUMNS in headers
    assert RATE_COLUMNS in headers
    for needed in ("ours fwd ms", "torch fwd ms", "fwd ratio", "ours f+b ms", "torch f+b ms", "f+b ratio",
                   "ours GFLOP/s f+b", "ours % floor", "ours traced MB", "ours RSS MB", "torch RSS MB"):
        assert any(needed in header for header in headers), needed
    assert "Machine:" in text and "NumPy" in text and "PyTorch" in text
    assert "Thread pools" in text and "Matmul floor" in text


def test_memory_subprocess_reports_json():
    proc = subprocess.run([sys.executable, SCRIPT, "--memory", "layernorm", QUICK_SIZE.name, "ours"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) >= {"traced_mb", "rss_mb"}
    assert result["traced_mb"] > 0


def test_unknown_workload_is_refused():
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--workloads", "nonsense"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "--workloads" in proc.stderr and "nonsense" in proc.stderr


def test_flop_counts_by_hand():
    """The counts at the standard size, written out product by product."""
    s = SIZES["standard"]
    B, T, d, h, ff = s.B, s.T, s.d, s.h, s.ff
    qkv = 2 * (B * T) * (3 * d) * d
    scores = 2 * (B * h) * T * T * (d // h)
    mix = 2 * (B * h) * T * (d // h) * T
    out = 2 * (B * T) * d * d
    ffn = 2 * (B * T) * ff * d + 2 * (B * T) * d * ff
    assert encoder_layer_flops(B, T, d, h, ff) == qkv + scores + mix + out + ffn
    assert WORKLOADS["sdpa"].flops(s) == scores + mix
    assert WORKLOADS["mha"].flops(s) == qkv + scores + mix + out
    assert WORKLOADS["feedforward"].flops(s) == ffn
    assert WORKLOADS["layernorm"].flops(s) == 0
    assert matmul_flops(3, 5, 7, batch=2) == 2 * 2 * 3 * 5 * 7


# ------------------------------------------------------------------------------------------- GPU mode

FAKE_CUPY_DIR = os.path.join(ROOT, "tests", "backend")


class _FakePool:
    """cupy.get_default_memory_pool()'s surface: a pool that grows by 1 MiB on each read of its size."""

    def __init__(self):
        self.total = 0

    def free_all_blocks(self):
        pass

    def used_bytes(self):
        return self.total

    def total_bytes(self):
        self.total += 2**20
        return self.total


@pytest.fixture
def fake_gpu(monkeypatch):
    """The fake CuPy as ``cupy``, with the device surface the benchmark uses (synchronize, name, memory pool),
    and torch reporting no CUDA, so that the reference has to be allowed onto the CPU explicitly."""
    from reference import require

    torch = require("torch")
    monkeypatch.syspath_prepend(FAKE_CUPY_DIR)
    import fake_cupy

    syncs = []

    class Device:
        def synchronize(self):
            syncs.append(1)

    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=lambda index: {"name": b"Fake GPU 0"})
    with fake_cupy.install() as cupy:
        if not hasattr(cupy, "copyto"):                       # cupy.copyto, which the fake may lack
            def copyto(dst, src, casting="same_kind", where=True):
                np.copyto(dst._data, fake_cupy._unwrap(src), casting=casting, where=fake_cupy._unwrap(where))

            monkeypatch.setattr(cupy, "copyto", copyto, raising=False)
        monkeypatch.setattr(cupy, "cuda", types.SimpleNamespace(runtime=runtime, Device=Device))
        monkeypatch.setattr(cupy, "get_default_memory_pool", lambda pool=_FakePool(): pool, raising=False)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        yield fake_cupy, syncs


def test_gpu_workloads_keep_our_arrays_on_the_device(fake_gpu):
    """Built for "cuda", each of our workloads computes on device arrays (the fake refuses any NumPy call on
    them, so a host/device mix fails here) and returns a device array."""
    fake_cupy, _ = fake_gpu
    for name, workload in WORKLOADS.items():
        if workload.available():
            continue
        bench = workload.build("ours", QUICK_SIZE, SEED, device="cuda")
        for call in (bench.forward, bench.step):
            if call is not None:
                out = call()
                assert isinstance(out, fake_cupy.ndarray), f"{name}: got {type(out).__name__}"


def test_gpu_quick_run_with_fake_cupy(fake_gpu, tmp_path, capsys):
    from benchmarks.run import GPU_RATE_COLUMNS, main

    _, syncs = fake_gpu
    markdown, raw = tmp_path / "gpu.md", tmp_path / "gpu.json"
    code = main(["--device", "cuda", "--quick", "--allow-cpu-reference", "--markdown", str(markdown),
                 "--json", str(raw)])
    captured = capsys.readouterr()
    assert code == 0, captured.out[-3000:] + captured.err[-3000:]
    assert syncs, "the device was never synchronized before reading the clock"
    assert "--allow-cpu-reference" in captured.err
    text = markdown.read_text()
    assert "Fake GPU 0" in text and "CuPy" in text and "PyTorch ran on the CPU" in text
    headers = _table_header_cells(text)
    assert TIME_COLUMNS in headers and GPU_RATE_COLUMNS in headers
    rows = {row["workload"]: row for row in json.loads(raw.read_text())["rows"]}
    expected = [name for name, w in WORKLOADS.items() if "cuda" in w.devices]
    assert {"translator", "translator_clip", "bert_finetune"} <= set(expected)
    for name in expected:
        assert f"| {name} | {QUICK_SIZE.name} |" in text, name
        row = rows[name]
        assert not row["error"], (name, row["error"])
        if row["skip"]:
            continue
        assert "ours fwd" in row["times_s"] and "torch fwd" in row["times_s"]
        if WORKLOADS[name].training:
            assert "ours f+b" in row["times_s"] and "torch f+b" in row["times_s"]
        assert row["memory"]["ours"]["peak_mb"] > 0                       # from the pool's high-water mark
        assert "unavailable" in row["memory"]["torch"]                    # torch on the CPU: no device counter
    assert "omitted (-) where PyTorch runs on the CPU" in text


def test_gpu_mode_refuses_torch_on_cpu_without_the_flag(fake_gpu, capsys):
    from benchmarks.run import main

    assert main(["--device", "cuda", "--quick", "--workloads", "layernorm"]) == 2
    err = capsys.readouterr().err
    assert "torch.cuda.is_available() is False" in err and "--allow-cpu-reference" in err


def test_gpu_mode_without_cupy_exits_2(monkeypatch, capsys):
    from benchmarks.run import main

    monkeypatch.setitem(sys.modules, "cupy", None)        # `import cupy` raises ImportError
    assert main(["--device", "cuda", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda needs CuPy, which is not installed" in err


def test_gpu_mode_without_cupy_exits_2_from_the_command_line():
    from benchmarks.run import open_cuda

    if open_cuda(allow_cpu_reference=True)[0] is not None:
        pytest.skip("CuPy and a GPU are present here")
    proc = subprocess.run([sys.executable, SCRIPT, "--device", "cuda", "--quick"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "--device cuda" in proc.stderr and ("CuPy" in proc.stderr or "PyTorch" in proc.stderr)

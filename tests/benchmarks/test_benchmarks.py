"""The benchmark script runs end to end (``--quick``: tiny sizes) and writes its report, the long-sequence table
and plot and the README tables; its parts (interleaved rounds, the paired ratio, the memory of one step, the
load warning) do what they say. No timing is asserted.

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

from benchmarks import run  # noqa: E402
from benchmarks.workloads import (  # noqa: E402
    LONG_IMPLS,
    QUICK_LONG_LENGTHS,
    QUICK_SIZE,
    SEED,
    SIZES,
    WORKLOADS,
    Bench,
    encoder_layer_flops,
    matmul_flops,
)

#: "" where the memory of one step can be measured (Linux: fork, /proc/self/clear_refs), else the reason
MEMORY_UNSUPPORTED = run.memory_supported()
MEMORY = not MEMORY_UNSUPPORTED

README_STUB = """# A project

## Performance

<!-- benchmarks/run.py: ratios -->
an old table
<!-- benchmarks/run.py: end ratios -->

Long sequences:

<!-- benchmarks/run.py: long sequences -->
<!-- benchmarks/run.py: end long sequences -->

The end.
"""


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
    paths = {"markdown": out / "x.md", "json": out / "x.json", "plot": out / "long.png", "readme": out / "README.md"}
    paths["readme"].write_text(README_STUB)
    command = [sys.executable, SCRIPT, "--quick"] + [f"--{key}={path}" for key, path in paths.items()]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
    return proc, paths


def test_quick_run_exits_zero_and_writes_everything(quick_run):
    proc, paths = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for path in paths.values():
        assert path.exists() and path.stat().st_size > 0, path
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_workload_is_timed_in_rounds_and_measured(quick_run):
    proc, paths = quick_run
    text = paths["markdown"].read_text()
    rows = {row["workload"]: row for row in json.loads(paths["json"].read_text())["rows"]}
    for name in (name for name, w in WORKLOADS.items() if "cpu" in w.devices):
        assert f"| {name} | {QUICK_SIZE.name} |" in text, name
        assert name in proc.stdout
        row = rows[name]
        assert not row["error"], row["error"]
        if row["skip"]:
            assert "skipped:" in text and row["skip"] in text
            continue
        modes = ("fwd", "f+b") if WORKLOADS[name].training else ("fwd",)
        for impl in ("ours", "torch"):
            for mode in modes:
                assert len(row["times_s"][f"{impl} {mode}"]) == 1       # --quick: one round
        if MEMORY:
            assert all(row["memory"][impl]["rss_mb"] >= 0 for impl in ("ours", "torch")), row["memory"]
            assert row["memory"]["ours"]["traced_mb"] > 0               # the step allocates arrays


def test_report_names_the_machine_and_has_the_tables(quick_run):
    _, paths = quick_run
    text = paths["markdown"].read_text()
    headers = _table_header_cells(text)
    assert run.TIME_COLUMNS in headers
    assert run.RATE_COLUMNS + run.CPU_MEMORY_COLUMNS in headers
    assert run.LONG_COLUMNS in headers
    assert "Machine:" in text and "usable cores" in text and "NumPy" in text and "PyTorch" in text
    assert "Load average" in text and "Matmul floor" in text and "## Long sequences" in text


def test_long_sequence_rows(quick_run):
    _, paths = quick_run
    long_rows = json.loads(paths["json"].read_text())["long"]
    assert [row["T"] for row in long_rows] == list(QUICK_LONG_LENGTHS)
    for row in long_rows:
        assert not row["error"], row["error"]
        assert set(row["times_s"]) == set(LONG_IMPLS)
        if MEMORY:
            assert set(row["memory"]) == set(LONG_IMPLS)
            assert all(row["memory"][impl]["rss_mb"] >= 0 for impl in LONG_IMPLS)
    text = paths["markdown"].read_text()
    for T in QUICK_LONG_LENGTHS:
        assert f"\n| T={T} | " in text


def test_progress_lines_with_an_estimate_of_the_time_left(quick_run):
    proc, _ = quick_run
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) >= len(WORKLOADS) and all("elapsed, about" in line and "left |" in line for line in lines)
    assert lines[-1].split("]")[0].split("/")[0].strip("[ ") == lines[-1].split("]")[0].split("/")[1]


def test_readme_tables_go_between_their_markers(quick_run):
    _, paths = quick_run
    text = paths["readme"].read_text()
    assert "an old table" not in text
    assert text.startswith("# A project") and text.rstrip().endswith("The end.")
    ratios = text.split(run.README_TABLES["ratios"][0])[1].split(run.README_TABLES["ratios"][1])[0]
    assert "Measured on" in ratios and "| one encoder layer (post-norm) |" in ratios
    long_part = text.split(run.README_TABLES["long"][0])[1].split(run.README_TABLES["long"][1])[0]
    assert run.LONG_COLUMNS[:-1] in _table_header_cells(long_part)


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="--readme"):
        run.update_readme(str(readme), {"ratios": "| a |"})
    assert readme.read_text() == "# no markers\n"


def test_rounds_alternate_between_the_callables():
    calls = []
    samples = run.time_interleaved({"ours": lambda: calls.append("ours"), "torch": lambda: calls.append("torch")},
                                   repeats=3, warmup=2, min_sample=0.0)
    assert calls == ["ours", "ours", "torch", "torch"] + ["ours", "torch"] * 3
    assert {name: len(v) for name, v in samples.items()} == {"ours": 3, "torch": 3}


def test_ratio_is_the_median_of_paired_rounds():
    assert run.ratio_stats([2.0, 3.0, 10.0], [1.0, 1.0, 4.0]) == (2.5, 2.0, 3.0)


def test_load_warning():
    quiet = {"load_before": (0.4, 0.5, 0.5), "cores_usable": 2}
    busy = {"load_before": (3.1, 2.0, 1.0), "cores_usable": 2}
    assert run.busy_warning(quiet) == ""
    assert "3.1" in run.busy_warning(busy) and "noisy" in run.busy_warning(busy)


def test_memory_of_a_step_is_not_hidden_by_a_larger_peak_while_building():
    """Building takes 200 MB in 1 MB arrays and frees them (the allocator keeps such memory for reuse, and it
    stays resident), the step then holds 40 MB in 1 MB arrays: the step's 40 MB must show. Neither the growth
    of the process's high-water mark nor the resident memory without handing freed memory back would see it."""
    if MEMORY_UNSUPPORTED:
        pytest.skip(MEMORY_UNSUPPORTED)

    def build():
        big = np.ones(16 * 2**20 // 8)            # freeing a 16 MB block raises glibc's threshold for heap blocks
        del big
        scratch = [np.ones(2**20 // 8) for _ in range(200)]
        pin = np.ones(2**20 // 8)                  # allocated after the scratch, kept: the heap cannot shrink
        del scratch

        def step():
            held = [np.ones(2**20 // 8) for _ in range(40)]
            return sum(float(a[0]) for a in held) + float(pin[0])

        return Bench(step, step)

    result = run.measure_memory(build, "ours", warm=lambda: None)
    assert 38 <= result["rss_mb"] <= 60, result
    assert 39 <= result["traced_mb"] <= 42, result


def test_memory_child_failure_is_reported():
    if MEMORY_UNSUPPORTED:
        pytest.skip(MEMORY_UNSUPPORTED)

    def build():
        raise RuntimeError("no such model")

    assert "no such model" in run.measure_memory(build, "ours", warm=lambda: None)["error"]


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
        pool = _FakePool()
        monkeypatch.setattr(cupy, "get_default_memory_pool", lambda: pool, raising=False)
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
    _, syncs = fake_gpu
    markdown, raw = tmp_path / "gpu.md", tmp_path / "gpu.json"
    code = run.main(["--device", "cuda", "--quick", "--allow-cpu-reference", "--markdown", str(markdown),
                     "--json", str(raw)])
    captured = capsys.readouterr()
    assert code == 0, captured.out[-3000:] + captured.err[-3000:]
    assert syncs, "the device was never synchronized before reading the clock"
    assert "--allow-cpu-reference" in captured.err
    text = markdown.read_text()
    assert "Fake GPU 0" in text and "CuPy" in text and "PyTorch ran on the CPU" in text
    headers = _table_header_cells(text)
    assert run.TIME_COLUMNS in headers and run.RATE_COLUMNS + run.GPU_MEMORY_COLUMNS in headers
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


def test_gpu_mode_refuses_torch_on_cpu_without_the_flag(fake_gpu, capsys):
    assert run.main(["--device", "cuda", "--quick", "--workloads", "layernorm"]) == 2
    err = capsys.readouterr().err
    assert "torch.cuda.is_available() is False" in err and "--allow-cpu-reference" in err


def test_gpu_mode_without_cupy_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)        # `import cupy` raises ImportError
    assert run.main(["--device", "cuda", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda needs CuPy, which is not installed" in err


def test_gpu_mode_without_cupy_exits_2_from_the_command_line():
    if run.open_cuda(allow_cpu_reference=True)[0] is not None:
        pytest.skip("CuPy and a GPU are present here")
    proc = subprocess.run([sys.executable, SCRIPT, "--device", "cuda", "--quick"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "--device cuda" in proc.stderr and ("CuPy" in proc.stderr or "PyTorch" in proc.stderr)

"""The benchmark script runs end to end (``--quick``: tiny sizes) and writes its tables. No timing is asserted."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "run.py")
sys.path.insert(0, ROOT)

from benchmarks.run import RATE_COLUMNS, TIME_COLUMNS  # noqa: E402
from benchmarks.workloads import QUICK_SIZE, SIZES, WORKLOADS, encoder_layer_flops, matmul_flops  # noqa: E402


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
    for name in WORKLOADS:
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

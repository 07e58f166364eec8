"""The precision script runs end to end (``--quick``), writes its table with every row, and every float64 error
it prints is below 1e-8, the bar of the float64 comparisons with PyTorch in the tests."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "precision.py")
sys.path.insert(0, ROOT)

from benchmarks.precision import ROW_NAMES  # noqa: E402

FLOAT64_BAR = 1e-8
OPTIONAL_ROWS = {  # need transformers (and the checkpoint package)
    "BertModel (all-MiniLM-L6-v2)", "rope (transformers)", "SwiGLUFeedForward (LlamaMLP)",
    "GroupedQueryAttention (LlamaAttention)",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from reference import require

    require("torch")  # the script compares against PyTorch: skip (or fail under NT_REQUIRE_REFERENCES=1)
    markdown = tmp_path_factory.mktemp("precision") / "p.md"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, SCRIPT, "--quick", "--markdown", str(markdown)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)
    return proc, markdown


def table_rows(text: str) -> dict:
    """row name -> its cells, from the markdown table (the lines after the |---| separator)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_quick_run_exits_zero_and_writes_the_table(quick_run):
    proc, markdown = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert markdown.exists()
    assert "max|ours - torch| / max|torch|" in proc.stdout


def test_every_row_is_present(quick_run):
    proc, markdown = quick_run
    rows = table_rows(markdown.read_text(encoding="utf-8"))
    assert list(rows) == ROW_NAMES
    for name in ROW_NAMES:
        assert name in proc.stdout, name
    for name in ("linear", "scaled dot-product attention", "cross-entropy", "MultiheadAttention cross",
                 "TransformerEncoderLayer pre-norm", "Transformer", "VisionTransformer", "GPT"):
        assert name in rows


def test_every_float64_error_is_below_the_test_bar(quick_run):
    from reference import references_required

    _, markdown = quick_run
    rows = table_rows(markdown.read_text(encoding="utf-8"))
    for name, (e64, tensor64, e32, tensor32, count) in rows.items():
        if e64 == "skipped":
            assert name in OPTIONAL_ROWS, f"{name}: skipped ({tensor64})"
            assert not references_required(), f"{name}: skipped under NT_REQUIRE_REFERENCES ({tensor64})"
            continue
        assert float(e64) < FLOAT64_BAR, f"{name}: float64 error {e64} at {tensor64}"
        assert float(e32) < 1e-3, f"{name}: float32 error {e32} at {tensor32}"
        assert int(count) >= 2  # the output and at least one gradient

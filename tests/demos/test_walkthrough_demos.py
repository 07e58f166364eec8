"""The walkthrough demos 01-05 and 09 run end to end in --quick mode, save their pictures and print sane results."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]
DEMOS = ROOT / "demos"


def run_demo(name, out):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(DEMOS / f"{name}.py"), "--quick", "--out", str(out), "--seed", "0"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert re.search(rf"\d+ pictures? saved to {re.escape(os.path.abspath(out))}", result.stdout)
    return result.stdout


def result_line(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("result:")]
    assert lines, "the demo printed no 'result:' line"
    return lines[-1]


def assert_pictures(out, names):
    for name in names:
        path = Path(out) / name
        assert path.is_file() and path.stat().st_size > 1000, f"missing or empty picture {path}"


def test_01_one_hot(tmp_path):
    stdout = run_demo("01_one_hot", tmp_path)
    assert_pictures(tmp_path, ["one_hot_matrix.png"])
    assert "lookup equals one-hot product: True" in result_line(stdout)


def test_02_markov_chain(tmp_path):
    stdout = run_demo("02_markov_chain", tmp_path)
    assert_pictures(tmp_path, ["transition_matrix.png"])
    line = result_line(stdout)
    assert "rows sum to 1: True" in line and "same prediction for singular and plural subject: True" in line


def test_03_embeddings(tmp_path):
    stdout = run_demo("03_embeddings", tmp_path)
    assert_pictures(tmp_path, ["embedding_similarity.png", "embedding_loss.png"])
    match = re.search(r"final loss ([\d.]+) \(start ([\d.]+)\); noun-noun cosine ([+-][\d.]+) vs noun-other "
                      r"([+-][\d.]+)", result_line(stdout))
    final, start, within, across = map(float, match.groups())
    assert final < 0.8 * start  # it learned something
    assert within > across      # nouns ended up closer to each other than to other words


def test_04_positional_encoding(tmp_path):
    stdout = run_demo("04_positional_encoding", tmp_path)
    assert_pictures(tmp_path, ["positional_encoding.png", "position_similarity.png"])
    line = result_line(stdout)
    assert "PE[0].PE[0] = 16.000" in line and "shift invariant: True" in line


def test_05_attention(tmp_path):
    stdout = run_demo("05_attention", tmp_path)
    assert_pictures(tmp_path, ["attention_weights.png", "attention_causal.png", "attention_padding.png",
                               "attention_heads.png", "head_view.png"])
    line = result_line(stdout)
    assert "'it' attends most to 'cat': True" in line and "head 0 looks at the word before: True" in line
    assert "weight on future words 0.0;" in line and line.endswith("weight on padding 0.0")
    assert "the <pad> positions are queries too" in stdout


def test_06b_feedforward_layernorm(tmp_path):
    stdout = run_demo("06b_feedforward_layernorm", tmp_path)
    assert_pictures(tmp_path, ["06b_feedforward_hidden.png", "06b_layernorm.png", "06b_norm_first_gradients.png"])
    match = re.search(r"per-position True; residual cosine ([+-][\d.]+) vs ([+-][\d.]+); layer norm std "
                      r"([\d.]+)-([\d.]+); loss after \d+ steps post-norm ([\d.]+), pre-norm ([\d.]+)",
                      result_line(stdout))
    kept, alone, low, high, post, pre = map(float, match.groups())
    assert kept > 0.8 > abs(alone)                  # the residual keeps the word's direction
    assert abs(low - 1) < 1e-3 and abs(high - 1) < 1e-3  # every token normalized to unit spread
    assert 0.0 <= pre and 0.0 <= post


def test_09_gradcheck(tmp_path):
    stdout = run_demo("09_gradcheck", tmp_path)
    assert_pictures(tmp_path, ["gradcheck_errors.png"])
    assert "WRONG" in stdout  # the broken backward is reported
    assert "    | gradient check failed:\n    | gradient  worst relative error" in stdout  # the whole message
    match = re.search(r"correct layer max error ([\d.e+-]+) \(ok: True\); broken layer max error ([\d.e+-]+) "
                      r"\(ok: False\)", result_line(stdout))
    assert match and float(match.group(1)) < 1e-6 < float(match.group(2))

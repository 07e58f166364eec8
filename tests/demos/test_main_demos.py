"""The main demos (translate, 06-08) run end to end in --quick mode, save their pictures and print sane metrics."""
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]
DEMOS = ROOT / "demos"


def run_demo(name, out, *options, quick=True, expect_ok=True):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    command = [sys.executable, str(DEMOS / f"{name}.py"), "--out", str(out), "--seed", "0", *options]
    if quick:
        command.append("--quick")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if expect_ok:
        assert result.returncode == 0, f"{name} {options} failed:\n{result.stdout}\n{result.stderr}"
    return result


def metric(stdout, label):
    """The number printed after ``label:`` on its line (the last such line)."""
    values = re.findall(rf"^\s*{re.escape(label)}:\s*([-+\d.eE]+)\s*$", stdout, flags=re.MULTILINE)
    assert values, f"the demo printed no '{label}: <number>' line:\n{stdout}"
    value = float(values[-1])
    assert math.isfinite(value)
    return value


def assert_pictures(out, names):
    for name in names:
        path = Path(out) / name
        assert path.is_file() and path.stat().st_size > 1000, f"missing or empty picture {path}"


def assert_finished(stdout, out):
    assert f"pictures saved to {os.path.abspath(out)}" in stdout


def test_translate_trains_saves_and_translates(tmp_path):
    stdout = run_demo("translate", tmp_path).stdout
    assert_finished(stdout, tmp_path)
    assert_pictures(tmp_path, ["translate_loss.png", "translate_cross_attention_layer1.png",
                               "translate_cross_attention_heads.png"])
    for label in ("held-out exact match", "held-out token accuracy", "held-out exact match (beam)"):
        assert 0.0 <= metric(stdout, label) <= 1.0
    assert 0.0 <= metric(stdout, "held-out BLEU") <= 100.0
    assert "'the red car is fast' ->" in stdout
    for name in ("translator.npz", "vocab_en.json", "vocab_fr.json"):
        assert (tmp_path / name).is_file()
    # the saved model translates a new sentence without training again
    result = run_demo("translate", tmp_path, "--translate", "the small dog sleeps", quick=False)
    assert "English:              the small dog sleeps" in result.stdout
    assert re.search(r"French \(greedy\):\s+\S", result.stdout)
    assert re.search(r"French \(beam of 4\):", result.stdout)
    assert "step" not in result.stdout  # no training happened


def test_translate_without_checkpoint_says_so(tmp_path):
    result = run_demo("translate", tmp_path / "empty", "--translate", "the dog sleeps", quick=False,
                      expect_ok=False)
    assert result.returncode == 1
    assert "No trained translator" in result.stdout and "python demos/translate.py" in result.stdout


def test_translate_on_a_tab_separated_corpus(tmp_path):
    corpus = tmp_path / "pairs.txt"
    lines = ["Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)",
             "Hi.\tSalut !", "Run!\tCours !", "I see.\tJe vois.", "I won!\tJ'ai gagné !", "Be nice.\tSois gentil.",
             "Call me.\tAppelle-moi.", "Come in.\tEntrez !", "Get out!\tSortez !", "Go away.\tVa-t'en !",
             "I'm sad.\tJe suis triste.", "Thank you.\tMerci.", "We lost.\tNous avons perdu.",
             "Who won?\tQui a gagné ?", "Wait!\tAttends !", ""]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "out"
    stdout = run_demo("translate", out, "--pairs", str(corpus), "--steps", "15").stdout
    assert_finished(stdout, out)
    assert f"from the corpus {corpus}" in stdout
    assert 0.0 <= metric(stdout, "held-out exact match") <= 1.0
    assert_pictures(out, ["translate_loss.png", "translate_cross_attention_heads.png"])


def test_06_multihead_attention(tmp_path):
    stdout = run_demo("06_multihead_attention", tmp_path).stdout
    assert_finished(stdout, tmp_path)
    assert_pictures(tmp_path, ["06_heads.png", "06_head_view.png", "06_loss.png"])
    match = re.search(r"multihead accuracy \(before, after\): ([\d.]+) ([\d.]+)", stdout)
    assert match and all(0.0 <= float(v) <= 1.0 for v in match.groups())
    assert "weights (4, 10, 10)" in stdout  # per-head weights: (heads, query, key)


def test_07_vit_digits(tmp_path):
    stdout = run_demo("07_vit_digits", tmp_path).stdout
    assert_finished(stdout, tmp_path)
    assert_pictures(tmp_path, ["07_patches.png", "07_loss.png", "07_cls_attention.png"])
    assert 0.0 <= metric(stdout, "test accuracy") <= 1.0


def test_08_sentiment(tmp_path):
    stdout = run_demo("08_sentiment", tmp_path, "--freeze", "1").stdout
    assert_finished(stdout, tmp_path)
    assert_pictures(tmp_path, ["08_loss.png", "08_attention.png"])
    assert 0.0 <= metric(stdout, "test accuracy") <= 1.0
    assert 0.0 <= metric(stdout, "test F1") <= 1.0
    assert "--freeze 1: the embeddings and the first 1 encoder layer keep their random initial values" in stdout


def test_08_sentiment_reads_an_imdb_folder(tmp_path):
    reviews = {"pos": ["A wonderful, moving film.<br />Loved it.", "Great acting and a superb plot."],
               "neg": ["Dull and far too long.", "The worst script I have seen.<br />Avoid."]}
    for split in ("train", "test"):
        for label, texts in reviews.items():
            folder = tmp_path / "aclImdb" / split / label
            folder.mkdir(parents=True)
            for number, text in enumerate(texts):
                (folder / f"{number}_{7 if label == 'pos' else 2}.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    stdout = run_demo("08_sentiment", out, "--imdb", str(tmp_path / "aclImdb")).stdout
    assert_finished(stdout, out)
    assert "IMDb reviews" in stdout and "4 for training, 4 for the test" in stdout
    assert 0.0 <= metric(stdout, "test accuracy") <= 1.0

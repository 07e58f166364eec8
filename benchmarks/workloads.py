"""The benchmark workloads: each builds our implementation or its PyTorch twin on the same inputs and weights.

A :class:`Workload` has ``build(impl, size, seed, device="cpu")`` -> :class:`Bench`, whose ``forward()`` runs
the forward pass (for the training workloads: forward + loss) and whose ``step()`` runs forward + backward (the
whole training step with the AdamW update for the models), or is None for inference. ``impl`` is ``"ours"`` or
``"torch"``; the twin is built from our ``state_dict`` (the model twins come from ``tests/twins.py``, the same
ones the tests use), so both compute the same function. PyTorch is imported only for ``"torch"``, so that a
memory measurement of ours never loads it. ``device``: where the arrays live; ours on ``"cuda"`` is built on
the host from the same seed, then moved with ``model.to("cuda")`` and ``to_device``.

``flops(size)`` counts the matrix-product FLOPs of one forward pass, ``2 * M * N * K`` per product; elementwise
work (softmax, GELU, layer norm, masks, the optimizer) is not counted. A backward computes two products of each
forward product's size, so forward + backward = 3 x forward. Attention is counted dense (the full T x S scores).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 1234


@dataclass(frozen=True)
class Size:
    """One problem size: batch B, positions T, model width d, heads h, feed-forward width ff."""

    name: str
    B: int
    T: int
    d: int
    h: int
    ff: int
    vocab: int = 1000         # translator vocabularies
    bert_vocab: int = 30522   # BERT's WordPiece vocabulary (MiniLM's)
    layers: int = 2           # translator: encoder and decoder layers each; ViT: encoder layers
    bert_layers: int = 6      # MiniLM-L6


SIZES = {
    "small": Size("small", B=8, T=64, d=128, h=4, ff=512),
    "standard": Size("standard", B=16, T=128, d=256, h=8, ff=1024),
    "minilm": Size("minilm", B=8, T=128, d=384, h=12, ff=1536),
}
QUICK_SIZE = Size("tiny", B=2, T=8, d=16, h=2, ff=32, vocab=50, bert_vocab=100, layers=1, bert_layers=1)

#: the long-sequence benchmark: one encoder layer's training step at B=1, d=256, h=8 and these lengths
LONG_LENGTHS = (128, 512, 2048, 8192)
QUICK_LONG_LENGTHS = (16, 64)
LONG_IMPLS = ("ours full", "ours blocked", "torch")


def long_size(T: int, quick: bool = False) -> Size:
    return Size(f"T={T}", B=1, T=T, d=16 if quick else 256, h=2 if quick else 8, ff=32 if quick else 1024)


@dataclass
class Bench:
    """The callables that are timed. ``step`` is None for inference-only workloads."""

    forward: Callable[[], object]
    step: Callable[[], object] | None
    note: str = ""


@dataclass
class Workload:
    name: str
    description: str
    build: Callable[..., Bench]
    flops: Callable[[Size], int]
    training: bool = True                              # step() exists
    available: Callable[[], str | None] = field(default=lambda: None)  # None, or the reason to skip
    step_flops: Callable[[Size], int] | None = None    # FLOPs of step(); None: 3 x forward
    devices: tuple = ("cpu", "cuda")                   # the modes that run it by default

    def flops_step(self, size: Size) -> int:
        return 3 * self.flops(size) if self.step_flops is None else self.step_flops(size)


# ------------------------------------------------------------------------------------------- FLOP counts

def matmul_flops(M: int, N: int, K: int, batch: int = 1) -> int:
    """FLOPs of ``batch`` products (M, K) @ (K, N): one multiply and one add per term."""
    return 2 * batch * M * N * K


def attention_core_flops(B: int, H: int, T: int, S: int, Dh: int) -> int:
    """``Q K^T`` (T, Dh) @ (Dh, S) and ``P V`` (T, S) @ (S, Dh), per batch and head."""
    return matmul_flops(T, S, Dh, B * H) + matmul_flops(T, Dh, S, B * H)


def mha_flops(B: int, T: int, S: int, d: int, h: int) -> int:
    """Q projection (B*T, d) @ (d, d), K and V projections (B*S, d) @ (d, 2d), the attention core, output
    projection (B*T, d) @ (d, d)."""
    return (matmul_flops(B * T, d, d) + matmul_flops(B * S, 2 * d, d) + attention_core_flops(B, h, T, S, d // h)
            + matmul_flops(B * T, d, d))


def ff_flops(B: int, T: int, d: int, ff: int) -> int:
    """(B*T, d) @ (d, ff) and (B*T, ff) @ (ff, d)."""
    return matmul_flops(B * T, ff, d) + matmul_flops(B * T, d, ff)


def encoder_layer_flops(B: int, T: int, d: int, h: int, ff: int) -> int:
    return mha_flops(B, T, T, d, h) + ff_flops(B, T, d, ff)


def decoder_layer_flops(B: int, T: int, S: int, d: int, h: int, ff: int) -> int:
    return mha_flops(B, T, T, d, h) + mha_flops(B, T, S, d, h) + ff_flops(B, T, d, ff)


# ------------------------------------------------------------------------------------------- shared builders

def _torch():
    import torch
    return torch


def _twins():
    """tests/twins.py, the PyTorch twins of the models that the tests use."""
    folder = os.path.join(ROOT, "tests")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import twins
    return twins


def _to_torch(array, requires_grad: bool = False, device: str = "cpu"):
    """A torch copy of a host array on ``device``; a float one is a leaf that records its gradient if asked."""
    tensor = _torch().from_numpy(np.ascontiguousarray(array).copy()).to(device)
    return tensor.requires_grad_(requires_grad) if array.dtype.kind == "f" else tensor


def _on(device: str, arrays):
    """Our host arrays on ``device`` (a list; unchanged for "cpu")."""
    if device == "cpu":
        return list(arrays)
    from numpy_transformer.backend import to_device
    return [to_device(a, device) for a in arrays]


def _load_twin(twin, ours, device: str):
    """Load our state dict into the torch twin (strict: every key and shape must match) and move it."""
    torch = _torch()
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()}, strict=True)
    return twin.to(device)


def _random(seed: int, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


def _layer_bench(impl: str, device: str, ours, make_twin, inputs, dout, call) -> Bench:
    """forward and forward+backward of one layer, ours or its torch twin, on host ``inputs`` (float ones are
    differentiated) with upstream gradient ``dout``; ``call(module, *inputs)`` runs the layer (the same code
    for both)."""
    if impl == "ours":
        if device != "cpu":
            ours.to(device)
        inputs, (dout,) = _on(device, inputs), _on(device, [dout])

        def step():
            ours.zero_grad()
            out = call(ours, *inputs)
            ours.backward(dout)
            return out

        return Bench(lambda: call(ours, *inputs), step)
    twin = _load_twin(make_twin(_torch()), ours, device)
    tensors = [_to_torch(x, True, device) for x in inputs]
    tdout = _to_torch(dout, device=device)
    leaves = [p for p in twin.parameters()] + [t for t in tensors if t.requires_grad]

    def tstep():
        for leaf in leaves:
            leaf.grad = None
        out = call(twin, *tensors)
        out.backward(tdout)
        return out

    return Bench(lambda: call(twin, *tensors), tstep)


def _training_bench(impl: str, device: str, ours, twin, batch, ours_loss, torch_loss, lr=1e-4, clip=None) -> Bench:
    """A model's training step: forward, loss, backward, (clip,) AdamW over the parameters that train.

    ``ours_loss(model, *batch)`` -> (loss, dlogits) and ``torch_loss(twin, *batch)`` -> loss; ``twin`` is the
    torch model holding our weights (ignored for ours)."""
    if impl == "ours":
        from numpy_transformer.optim import AdamW, clip_grad_norm_
        if device != "cpu":
            ours.to(device)
        batch = _on(device, batch)
        params = [p for p in ours.parameters() if p.requires_grad]
        optimizer = AdamW(params, lr=lr)

        def step():
            optimizer.zero_grad()
            loss, dlogits = ours_loss(ours, *batch)
            ours.backward(dlogits)
            if clip is not None:
                clip_grad_norm_(params, clip)
            optimizer.step()
            return loss

        return Bench(lambda: ours_loss(ours, *batch)[0], step)
    torch = _torch()
    twin = twin.to(device)
    batch = [_to_torch(a, a.dtype.kind == "f", device) for a in batch]
    params = [p for p in twin.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)

    def tstep():
        optimizer.zero_grad()
        for tensor in batch:
            tensor.grad = None
        loss = torch_loss(twin, *batch)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        return loss

    return Bench(lambda: torch_loss(twin, *batch), tstep)


def _cross_entropy(logits, labels):
    """Our mean cross-entropy over (N, C) logits and its gradient: (loss, dlogits)."""
    from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward
    loss, cache = cross_entropy_forward(logits, labels)
    return loss, cross_entropy_backward(1.0, cache)


# ------------------------------------------------------------------------------------------- layers

def _build_sdpa(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    """The functional pair, causal, on (B, h, T, Dh) arrays, against F.scaled_dot_product_attention."""
    q, k, v, dout = _random(seed, *[(s.B, s.h, s.T, s.d // s.h)] * 4)
    if impl == "ours":
        from numpy_transformer.functional.attention import (
            scaled_dot_product_attention_backward,
            scaled_dot_product_attention_forward,
        )
        q, k, v, dout = _on(device, (q, k, v, dout))

        def step():
            out, _, cache = scaled_dot_product_attention_forward(q, k, v, is_causal=True)
            scaled_dot_product_attention_backward(dout, cache)
            return out

        return Bench(lambda: scaled_dot_product_attention_forward(q, k, v, is_causal=True)[0], step)
    torch = _torch()
    tq, tk, tv = (_to_torch(a, True, device) for a in (q, k, v))
    tdout = _to_torch(dout, device=device)

    def call():
        return torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)

    def tstep():
        for x in (tq, tk, tv):
            x.grad = None
        out = call()
        out.backward(tdout)
        return out

    return Bench(call, tstep)


def _build_mha(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.nn.attention import MultiheadAttention
    ours = MultiheadAttention(s.d, s.h, dropout=0.0, batch_first=True, rng=seed)
    x, dout = _random(seed, (s.B, s.T, s.d), (s.B, s.T, s.d))
    return _layer_bench(impl, device, ours, lambda t: t.nn.MultiheadAttention(s.d, s.h, batch_first=True), [x],
                        dout, lambda m, x: m(x, x, x, need_weights=False)[0])


def _build_layernorm(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.nn.layers import LayerNorm
    ours = LayerNorm(s.d)
    x, dout, gamma, beta = _random(seed, (s.B, s.T, s.d), (s.B, s.T, s.d), (s.d,), (s.d,))
    ours.weight.data[...], ours.bias.data[...] = 1 + 0.2 * gamma, 0.2 * beta
    return _layer_bench(impl, device, ours, lambda t: t.nn.LayerNorm(s.d), [x], dout, lambda m, x: m(x))


def _build_ff(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    """Linear(d, ff) - GELU (exact) - Linear(ff, d); a ModuleList has nn.Sequential's keys ``0.*``, ``2.*``."""
    from numpy_transformer.nn.layers import GELU, Linear
    from numpy_transformer.nn.module import ModuleList

    class FeedForward(ModuleList):
        def forward(self, inp):
            for layer in self:
                inp = layer(inp)
            return inp

        def backward(self, dinp):
            for layer in reversed(list(self)):
                dinp = layer.backward(dinp)
            return dinp

    ours = FeedForward([Linear(s.d, s.ff, rng=seed), GELU(), Linear(s.ff, s.d, rng=seed + 1)])
    x, dout = _random(seed, (s.B, s.T, s.d), (s.B, s.T, s.d))
    return _layer_bench(impl, device, ours,
                        lambda t: t.nn.Sequential(t.nn.Linear(s.d, s.ff), t.nn.GELU(), t.nn.Linear(s.ff, s.d)),
                        [x], dout, lambda m, x: m(x))


def _build_encoder_layer(impl: str, s: Size, seed: int, device: str = "cpu", attention: str = "auto") -> Bench:
    """Post-norm, ReLU; ``attention`` chooses how ours computes the scores (the long-sequence benchmark)."""
    from numpy_transformer.nn.transformer import TransformerEncoderLayer
    ours = TransformerEncoderLayer(s.d, s.h, dim_feedforward=s.ff, dropout=0.0, batch_first=True, rng=seed)
    ours.self_attn.attention = attention
    x, dout = _random(seed, (s.B, s.T, s.d), (s.B, s.T, s.d))
    return _layer_bench(impl, device, ours,
                        lambda t: t.nn.TransformerEncoderLayer(s.d, s.h, s.ff, dropout=0.0, batch_first=True),
                        [x], dout, lambda m, x: m(x))


def build_long(impl: str, s: Size, seed: int) -> Bench:
    """The long-sequence rows: ``impl`` is one of ``LONG_IMPLS``."""
    if impl == "torch":
        return _build_encoder_layer("torch", s, seed)
    return _build_encoder_layer("ours", s, seed, attention=impl.split()[1])


def _build_decoder_layer(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    """Causal self-attention (a (T, T) bool mask) + cross-attention to a memory of T positions."""
    from numpy_transformer.functional.attention import causal_mask
    from numpy_transformer.nn.transformer import TransformerDecoderLayer
    ours = TransformerDecoderLayer(s.d, s.h, dim_feedforward=s.ff, dropout=0.0, batch_first=True, rng=seed)
    x, memory, dout = _random(seed, *[(s.B, s.T, s.d)] * 3)
    return _layer_bench(impl, device, ours,
                        lambda t: t.nn.TransformerDecoderLayer(s.d, s.h, s.ff, dropout=0.0, batch_first=True),
                        [x, memory, causal_mask(s.T, s.T)], dout, lambda m, x, mem, mask: m(x, mem, tgt_mask=mask))


# ------------------------------------------------------------------------------------------- models

TRANSLATOR_CLIP_NORM = 1.0
VIT_PATCH, VIT_CHANNELS, VIT_CLASSES = 4, 3, 10
BERT_FROZEN_LAYERS = 2     # the embeddings and the first two encoder layers are frozen
BERT_LABELS = 2


def _build_translator(impl: str, s: Size, seed: int, device: str = "cpu", clip: float | None = None) -> Bench:
    """Random ids in [1, V), the last quarter of every second sequence padded; label smoothing 0."""
    from numpy_transformer.models.translator import Seq2SeqTransformer
    ours = Seq2SeqTransformer(s.vocab, s.vocab, d_model=s.d, nhead=s.h, num_encoder_layers=s.layers,
                              num_decoder_layers=s.layers, dim_feedforward=s.ff, dropout=0.0,
                              max_len=max(s.T, 16), pad_id=0, rng=seed)
    rng = np.random.default_rng(seed)
    src, tgt = rng.integers(1, s.vocab, (s.B, s.T)), rng.integers(1, s.vocab, (s.B, s.T + 1))
    src[1::2, -s.T // 4:] = tgt[1::2, -s.T // 4:] = 0
    batch = [src, tgt[:, :-1].copy(), tgt[:, 1:].copy()]
    twin = None if impl == "ours" else _twins().translator_twin(_torch(), ours)

    def torch_loss(m, src, tgt_in, tgt_out):
        logits = m(src, tgt_in)
        return _torch().nn.functional.cross_entropy(logits.reshape(-1, s.vocab), tgt_out.reshape(-1), ignore_index=0)

    return _training_bench(impl, device, ours, twin, batch, lambda m, src, tgt_in, tgt_out: m.loss(m(src, tgt_in),
                           tgt_out), torch_loss, clip=clip)


def _build_translator_clip(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    return _build_translator(impl, s, seed, device, clip=TRANSLATOR_CLIP_NORM)


def _translator_flops(s: Size) -> int:
    """``layers`` encoder layers + ``layers`` decoder layers + the generator (B*T, d) @ (d, V)."""
    return (s.layers * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff)
            + s.layers * decoder_layer_flops(s.B, s.T, s.T, s.d, s.h, s.ff) + matmul_flops(s.B * s.T, s.vocab, s.d))


def _vit_grid(s: Size):
    """A patch grid of T patches: 8 rows (2 for tiny sizes) of T/rows columns."""
    rows = 8 if s.T % 8 == 0 and s.T >= 64 else 2
    return rows, s.T // rows


def _build_vit(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    """Patch 4, T patches + a class token, ``layers`` pre-norm GELU layers; the image gradient is computed."""
    from numpy_transformer.models.vit import VisionTransformer
    rows, cols = _vit_grid(s)
    image_size = (rows * VIT_PATCH, cols * VIT_PATCH)
    ours = VisionTransformer(image_size, VIT_PATCH, in_channels=VIT_CHANNELS, num_classes=VIT_CLASSES,
                             d_model=s.d, nhead=s.h, num_layers=s.layers, dim_feedforward=s.ff, dropout=0.0,
                             rng=seed)
    (images,) = _random(seed, (s.B, VIT_CHANNELS) + image_size)
    labels = np.random.default_rng(seed).integers(0, VIT_CLASSES, s.B)
    twin = None if impl == "ours" else _twins().vit_twin(_torch(), ours)
    return _training_bench(impl, device, ours, twin, [images, labels],
                           lambda m, images, labels: _cross_entropy(m(images), labels),
                           lambda m, images, labels: _torch().nn.functional.cross_entropy(m(images), labels))


def _vit_flops(s: Size) -> int:
    """Patch projection (B*N, C*P*P) @ (C*P*P, d), ``layers`` encoder layers over N+1 tokens, head (B, d) @ (d, 10)."""
    rows, cols = _vit_grid(s)
    N = rows * cols
    return (matmul_flops(s.B * N, s.d, VIT_CHANNELS * VIT_PATCH * VIT_PATCH)
            + s.layers * encoder_layer_flops(s.B, N + 1, s.d, s.h, s.ff) + matmul_flops(s.B, VIT_CLASSES, s.d))


def _bert_available() -> str | None:
    """The PyTorch side of the BERT rows is transformers.BertModel: skip them, saying why, without it."""
    try:
        import transformers  # noqa: F401
    except ImportError as error:
        return f"transformers is not installed ({error}); pip install transformers"
    return None


def _bert(s: Size, seed: int):
    """Our random-weight BertModel of the size, and a batch: ids (B, T) with every second sequence ending in
    padding, its attention mask and the segment ids."""
    from numpy_transformer.models.bert import BertConfig, BertModel
    config = BertConfig(vocab_size=s.bert_vocab, hidden_size=s.d, num_hidden_layers=s.bert_layers,
                        num_attention_heads=s.h, intermediate_size=s.ff, max_position_embeddings=max(512, s.T),
                        type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, s.bert_vocab, (s.B, s.T))
    attention_mask = np.ones((s.B, s.T), dtype=np.int64)
    attention_mask[1::2, -s.T // 4:] = 0
    ids[attention_mask == 0] = 0
    return BertModel(config, rng=seed), [ids, attention_mask, np.zeros((s.B, s.T), dtype=np.int64)]


def _bert_twin(ours):
    """transformers.BertModel (no pooler: ours returns last_hidden_state only) holding our weights."""
    torch = _torch()
    import transformers
    c = ours.config
    config = transformers.BertConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                                     num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                                     intermediate_size=c.intermediate_size,
                                     max_position_embeddings=c.max_position_embeddings, type_vocab_size=2,
                                     hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    twin = transformers.BertModel(config, add_pooling_layer=False)
    result = twin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.hf_state_dict().items()}, strict=False)
    left = [k for k in list(result.missing_keys) + list(result.unexpected_keys) if not k.endswith("position_ids")]
    if left:
        raise KeyError(f"transformers.BertModel does not take our hf_state_dict: {left[:4]}")
    return twin, f"transformers {transformers.__version__}"


def _build_bert(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    """Inference: ours in eval mode under ``no_grad()`` (no backward caches), the twin under
    ``torch.inference_mode`` (its default attention)."""
    ours, batch = _bert(s, seed)
    ours.eval()
    if impl == "ours":
        from numpy_transformer import no_grad
        if device != "cpu":
            ours.to(device)
        ids, mask, types = _on(device, batch)

        def forward():
            with no_grad():
                return ours(ids, attention_mask=mask, token_type_ids=types)

        return Bench(forward, None)
    torch = _torch()
    twin, version = _bert_twin(ours)
    twin = twin.to(device).eval()
    ids, mask, types = (_to_torch(a, device=device) for a in batch)

    def forward():
        with torch.inference_mode():
            return twin(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state

    return Bench(forward, None, f"{version}, attention {getattr(twin.config, '_attn_implementation', '?')}")


def _bert_flops(s: Size) -> int:
    """``bert_layers`` encoder layers (MiniLM: 6); embeddings are gathers, no pooler. Inference only."""
    return s.bert_layers * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff)


def _finetune_size(s: Size) -> Size:
    """The size with at least one trainable layer above the frozen ones (the tiny size has 1 BERT layer)."""
    return replace(s, bert_layers=max(s.bert_layers, BERT_FROZEN_LAYERS + 1))


def _build_bert_finetune(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    """BertClassifier (mean pooling, head D -> 2) on a random-weight BertModel: embeddings and the first
    ``BERT_FROZEN_LAYERS`` layers frozen, AdamW (lr 2e-5) over the rest."""
    from numpy_transformer.models.bert import BertClassifier
    s = _finetune_size(s)
    bert, batch = _bert(s, seed)
    ours = BertClassifier(bert, num_labels=BERT_LABELS, pooling="mean", dropout=0.0, rng=seed + 1)
    ours.freeze_embeddings_and_layers(BERT_FROZEN_LAYERS)
    batch.append(np.random.default_rng(seed + 2).integers(0, BERT_LABELS, s.B))
    twin = note = None
    if impl == "torch":
        torch = _torch()
        nn = torch.nn

        class Finetune(nn.Module):
            """The BERT twin under a mean-pooling head, frozen like ours."""

            def __init__(self):
                super().__init__()
                self.bert, self.note = _bert_twin(ours.bert)
                self.head = _load_twin(nn.Linear(s.d, BERT_LABELS), ours.classifier, "cpu")
                self.bert.embeddings.requires_grad_(False)
                for layer in self.bert.encoder.layer[:BERT_FROZEN_LAYERS]:
                    layer.requires_grad_(False)

            def forward(self, ids, mask, types):
                hidden = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)                  # (B, T, 1)
                return self.head((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9))  # (B, D) -> (B, 2)

        twin = Finetune().train()
        note = twin.note
    bench = _training_bench(impl, device, ours, twin, batch,
                            lambda m, ids, mask, types, labels: _cross_entropy(m(ids, mask, types), labels),
                            lambda m, ids, mask, types, labels: _torch().nn.functional.cross_entropy(
                                m(ids, mask, types), labels), lr=2e-5)
    bench.note = note or ""
    return bench


def _bert_finetune_flops(s: Size) -> int:
    """Forward: the encoder layers (at least 3) and the head (B, d) @ (d, 2)."""
    s = _finetune_size(s)
    return s.bert_layers * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff) + matmul_flops(s.B, BERT_LABELS, s.d)


def _bert_finetune_step_flops(s: Size) -> int:
    """Forward + the backward of the trainable layers and the head only (2 x their forward)."""
    s = _finetune_size(s)
    trainable = (s.bert_layers - BERT_FROZEN_LAYERS) * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff)
    return _bert_finetune_flops(s) + 2 * (trainable + matmul_flops(s.B, BERT_LABELS, s.d))


# ------------------------------------------------------------------------------------------- registry

WORKLOADS = {w.name: w for w in [
    Workload("sdpa", "scaled dot-product attention, causal (functional pair vs F.scaled_dot_product_attention)",
             _build_sdpa, lambda s: attention_core_flops(s.B, s.h, s.T, s.T, s.d // s.h)),
    Workload("mha", "multi-head self-attention block (nn.MultiheadAttention)", _build_mha,
             lambda s: mha_flops(s.B, s.T, s.T, s.d, s.h)),
    Workload("layernorm", "layer norm over d (nn.LayerNorm)", _build_layernorm, lambda s: 0),
    Workload("feedforward", "Linear(d, ff) - GELU (exact) - Linear(ff, d)", _build_ff,
             lambda s: ff_flops(s.B, s.T, s.d, s.ff)),
    Workload("encoder_layer", "post-norm TransformerEncoderLayer (relu)", _build_encoder_layer,
             lambda s: encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff)),
    Workload("decoder_layer", "post-norm TransformerDecoderLayer, causal self-attention + cross-attention",
             _build_decoder_layer, lambda s: decoder_layer_flops(s.B, s.T, s.T, s.d, s.h, s.ff)),
    Workload("translator", "Seq2SeqTransformer training step (fwd, loss, bwd, AdamW), layers enc + dec, vocab",
             _build_translator, _translator_flops),
    Workload("vit", "VisionTransformer training step (fwd, loss, bwd, AdamW), patch 4, T patches",
             _build_vit, _vit_flops),
    Workload("bert", "BertModel inference (MiniLM config at size minilm: 6 layers, vocab 30522)",
             _build_bert, _bert_flops, training=False, available=_bert_available),
    Workload("bert_finetune", "BertClassifier fine-tuning step (fwd, loss, bwd, AdamW), embeddings + first 2 "
             "layers frozen, mean pooling, 2 labels", _build_bert_finetune, _bert_finetune_flops,
             available=_bert_available, step_flops=_bert_finetune_step_flops),
    Workload("translator_clip", "Seq2SeqTransformer training step with clip_grad_norm_(1.0) (fwd, loss, bwd, "
             "clip, AdamW)", _build_translator_clip, _translator_flops, devices=("cuda",)),
]}

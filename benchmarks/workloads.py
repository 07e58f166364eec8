"""The benchmark workloads: each builds our implementation or its PyTorch twin on the same inputs and weights.

A workload is a :class:`Workload` with

- ``build(impl, size, seed, device="cpu")`` -> :class:`Bench` whose ``forward()`` runs the forward pass and
  whose ``step()`` runs forward + backward (+ the optimizer step for the training workloads), or is None for
  an inference-only workload. ``impl`` is ``"ours"`` or ``"torch"``; the torch twin is built from our
  ``state_dict`` so that both compute the same function. PyTorch is imported only for ``"torch"``, so that a
  memory measurement of our code never loads it. ``device`` is where the arrays live: for ``"ours"``,
  ``"cpu"`` (NumPy) or ``"cuda"`` (CuPy: the model is built on the host with the same seed, then moved with
  ``model.to("cuda")`` and the inputs with ``to_device``); for ``"torch"``, a torch device (``"cpu"``,
  ``"cuda"``). Every model and input is built on the host first, so both devices compute the same function.
- ``flops(size)`` -> the matrix-product FLOPs of one forward pass, counted analytically (see
  :func:`matmul_flops` and each workload's docstring): ``2 * M * N * K`` per product (one multiply and one
  add per term). Elementwise work (softmax, GELU, layer norm, masks, the optimizer) is not counted, so a
  workload whose time goes there shows a low rate. A backward pass computes two products of the forward's
  sizes for each forward product (the input gradient and the weight gradient, or ``dQ``/``dK`` and
  ``dP``/``dV`` in attention), so forward + backward = 3 x forward.

``devices`` names the modes whose default workload list has the workload (``translator_clip`` is timed only
in the GPU mode by default; any workload can still be asked for by name in either mode).

Dense counts: the causal attention is counted as the full ``T x T`` score matrix, which is what both
implementations compute on CPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

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
    build: Callable[[str, Size, int], Bench]
    flops: Callable[[Size], int]
    training: bool = True      # step() exists
    available: Callable[[], str | None] = field(default=lambda: None)  # None, or the reason to skip
    step_flops: Callable[[Size], int] | None = None   # FLOPs of step(); None: 3 x forward
    devices: tuple = ("cpu", "cuda")                  # the modes that run it by default

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


# ------------------------------------------------------------------------------------------- helpers

def _torch():
    import torch
    return torch


def _to_torch(array, requires_grad: bool = False, device: str = "cpu"):
    torch = _torch()
    tensor = torch.from_numpy(np.ascontiguousarray(array).copy())
    if device != "cpu":
        tensor = tensor.to(device)                              # a leaf on the device, then requires_grad
    return tensor.requires_grad_(requires_grad) if array.dtype.kind == "f" else tensor


def _on(device: str, *arrays):
    """Our host arrays on ``device`` (``to_device`` to CuPy for "cuda"; unchanged for "cpu")."""
    if device == "cpu":
        return arrays if len(arrays) > 1 else arrays[0]
    from numpy_transformer.backend import to_device
    moved = tuple(to_device(a, device) for a in arrays)
    return moved if len(moved) > 1 else moved[0]


def _module_on(module, device: str):
    """Our module on ``device`` (``module.to("cuda")``); a no-op for "cpu"."""
    return module if device == "cpu" else module.to(device)


def _load_twin(twin, ours_module) -> None:
    """Load our state dict into the torch twin (strict: every key and shape must match)."""
    torch = _torch()
    state = {k: torch.from_numpy(np.array(v)) for k, v in ours_module.state_dict().items()}
    twin.load_state_dict(state, strict=True)


def _rng(seed: int):
    return np.random.default_rng(seed)


def _torch_module_bench(module, inputs, call, dout):
    """forward / forward+backward of a torch module on leaf tensors ``inputs`` (the ones that need grad)."""
    params = [p for p in module.parameters()]

    def forward():
        return call()

    def step():
        for p in params:
            p.grad = None
        for x in inputs:
            x.grad = None
        out = call()
        out.backward(dout)
        return out

    return Bench(forward, step)


def _ours_module_bench(module, call, backward, dout):
    def forward():
        return call()

    def step():
        module.zero_grad()
        out = call()
        backward(dout)
        return out

    return Bench(forward, step)


# ------------------------------------------------------------------------------------------- SDPA

def _build_sdpa(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    rng = _rng(seed)
    Dh = s.d // s.h
    q, k, v, dout = (rng.standard_normal((s.B, s.h, s.T, Dh)).astype(np.float32) for _ in range(4))
    if impl == "ours":
        q, k, v, dout = _on(device, q, k, v, dout)
        from numpy_transformer.functional.attention import (
            scaled_dot_product_attention_backward, scaled_dot_product_attention_forward)

        def forward():
            return scaled_dot_product_attention_forward(q, k, v, is_causal=True)[0]

        def step():
            out, _, cache = scaled_dot_product_attention_forward(q, k, v, is_causal=True)
            scaled_dot_product_attention_backward(dout, cache)
            return out

        return Bench(forward, step)
    torch = _torch()
    tq, tk, tv = (_to_torch(a, True, device) for a in (q, k, v))
    tdout = _to_torch(dout, device=device)
    F = torch.nn.functional

    def call():
        return F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)

    def step():
        for x in (tq, tk, tv):
            x.grad = None
        out = call()
        out.backward(tdout)
        return out

    return Bench(call, step)


def _sdpa_flops(s: Size) -> int:
    """``Q K^T`` and ``P V`` over (B, h) with head width d/h: 4 * B * T^2 * d."""
    return attention_core_flops(s.B, s.h, s.T, s.T, s.d // s.h)


# ------------------------------------------------------------------------------------------- MHA

def _build_mha(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.nn.attention import MultiheadAttention
    rng = _rng(seed)
    x = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    dout = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    ours = MultiheadAttention(s.d, s.h, dropout=0.0, batch_first=True, rng=seed)
    if impl == "ours":
        _module_on(ours, device)
        x, dout = _on(device, x, dout)
        return _ours_module_bench(ours, lambda: ours(x, x, x, need_weights=False)[0], ours.backward, dout)
    torch = _torch()
    twin = torch.nn.MultiheadAttention(s.d, s.h, dropout=0.0, batch_first=True)
    _load_twin(twin, ours)
    twin.to(device)
    tx = _to_torch(x, True, device)
    return _torch_module_bench(twin, [tx], lambda: twin(tx, tx, tx, need_weights=False)[0],
                               _to_torch(dout, device=device))


def _mha_flops(s: Size) -> int:
    """Fused QKV projection (B*T, d) @ (d, 3d), attention core 4*B*T^2*d, output projection (B*T, d) @ (d, d)."""
    return mha_flops(s.B, s.T, s.T, s.d, s.h)


# ------------------------------------------------------------------------------------------- LayerNorm

def _build_layernorm(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.nn.layers import LayerNorm
    rng = _rng(seed)
    x = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    dout = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    ours = LayerNorm(s.d)
    ours.weight.data[...] = rng.uniform(0.5, 1.5, s.d).astype(np.float32)
    ours.bias.data[...] = rng.uniform(-0.5, 0.5, s.d).astype(np.float32)
    if impl == "ours":
        _module_on(ours, device)
        x, dout = _on(device, x, dout)
        return _ours_module_bench(ours, lambda: ours(x), ours.backward, dout)
    torch = _torch()
    twin = torch.nn.LayerNorm(s.d)
    _load_twin(twin, ours)
    twin.to(device)
    tx = _to_torch(x, True, device)
    return _torch_module_bench(twin, [tx], lambda: twin(tx), _to_torch(dout, device=device))


# ------------------------------------------------------------------------------------------- feed-forward

def _build_ff(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.nn.layers import GELU, Linear
    from numpy_transformer.nn.module import ModuleList
    rng = _rng(seed)
    x = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    dout = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)

    class FeedForward(ModuleList):
        """Linear(d, ff) - GELU - Linear(ff, d); a ModuleList has nn.Sequential's keys ``0.*`` and ``2.*``."""

        def forward(self, inp):
            for layer in self:
                inp = layer(inp)
            return inp

        def backward(self, dinp):
            for layer in reversed(list(self)):
                dinp = layer.backward(dinp)
            return dinp

    ours = FeedForward([Linear(s.d, s.ff, rng=seed), GELU(), Linear(s.ff, s.d, rng=seed + 1)])
    if impl == "ours":
        _module_on(ours, device)
        x, dout = _on(device, x, dout)
        return _ours_module_bench(ours, lambda: ours(x), ours.backward, dout)
    torch = _torch()
    nn = torch.nn
    twin = nn.Sequential(nn.Linear(s.d, s.ff), nn.GELU(), nn.Linear(s.ff, s.d))
    _load_twin(twin, ours)
    twin.to(device)
    tx = _to_torch(x, True, device)
    return _torch_module_bench(twin, [tx], lambda: twin(tx), _to_torch(dout, device=device))


def _ff_flops(s: Size) -> int:
    """(B*T, d) @ (d, ff) and (B*T, ff) @ (ff, d): 4 * B * T * d * ff."""
    return ff_flops(s.B, s.T, s.d, s.ff)


# ------------------------------------------------------------------------------------------- layers

def _build_encoder_layer(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.nn.transformer import TransformerEncoderLayer
    rng = _rng(seed)
    x = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    dout = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    ours = TransformerEncoderLayer(s.d, s.h, dim_feedforward=s.ff, dropout=0.0, batch_first=True, rng=seed)
    if impl == "ours":
        _module_on(ours, device)
        x, dout = _on(device, x, dout)
        return _ours_module_bench(ours, lambda: ours(x), ours.backward, dout)
    torch = _torch()
    twin = torch.nn.TransformerEncoderLayer(s.d, s.h, dim_feedforward=s.ff, dropout=0.0, batch_first=True)
    _load_twin(twin, ours)
    twin.to(device)
    tx = _to_torch(x, True, device)
    return _torch_module_bench(twin, [tx], lambda: twin(tx), _to_torch(dout, device=device))


def _encoder_layer_flops(s: Size) -> int:
    """Self-attention block (as ``mha``) + feed-forward (as ``feedforward``)."""
    return encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff)


def _build_decoder_layer(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.functional.attention import causal_mask
    from numpy_transformer.nn.transformer import TransformerDecoderLayer
    rng = _rng(seed)
    x = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    memory = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    dout = rng.standard_normal((s.B, s.T, s.d)).astype(np.float32)
    ours = TransformerDecoderLayer(s.d, s.h, dim_feedforward=s.ff, dropout=0.0, batch_first=True, rng=seed)
    if impl == "ours":
        _module_on(ours, device)
        x, memory, dout, mask = _on(device, x, memory, dout, causal_mask(s.T, s.T))  # mask (T, T) True = NOT
        return _ours_module_bench(ours, lambda: ours(x, memory, tgt_mask=mask), ours.backward, dout)
    torch = _torch()
    twin = torch.nn.TransformerDecoderLayer(s.d, s.h, dim_feedforward=s.ff, dropout=0.0, batch_first=True)
    _load_twin(twin, ours)
    twin.to(device)
    tx, tmem = _to_torch(x, True, device), _to_torch(memory, True, device)
    tmask = torch.from_numpy(causal_mask(s.T, s.T)).to(device)
    return _torch_module_bench(twin, [tx, tmem], lambda: twin(tx, tmem, tgt_mask=tmask),
                               _to_torch(dout, device=device))


def _decoder_layer_flops(s: Size) -> int:
    """Causal self-attention + cross-attention to a memory of S = T positions + feed-forward."""
    return decoder_layer_flops(s.B, s.T, s.T, s.d, s.h, s.ff)


# ------------------------------------------------------------------------------------------- translator

def _translator_batch(s: Size, seed: int, pad_id: int = 0):
    """Random ids in [1, V) with the last quarter of every second sequence padded."""
    rng = _rng(seed)
    src = rng.integers(1, s.vocab, (s.B, s.T))
    tgt = rng.integers(1, s.vocab, (s.B, s.T + 1))
    src[1::2, -s.T // 4:] = pad_id
    tgt[1::2, -s.T // 4:] = pad_id
    return src, tgt[:, :-1].copy(), tgt[:, 1:].copy()


TRANSLATOR_CLIP_NORM = 1.0


def _build_translator(impl: str, s: Size, seed: int, device: str = "cpu", clip: float | None = None) -> Bench:
    """The training step; with ``clip``, the gradients' global norm is clipped to it before AdamW's update."""
    from numpy_transformer.models.translator import Seq2SeqTransformer
    from numpy_transformer.optim import AdamW, clip_grad_norm_
    ours = Seq2SeqTransformer(s.vocab, s.vocab, d_model=s.d, nhead=s.h, num_encoder_layers=s.layers,
                              num_decoder_layers=s.layers, dim_feedforward=s.ff, dropout=0.0,
                              max_len=max(s.T, 16), pad_id=0, rng=seed)
    src, tgt_in, tgt_out = _translator_batch(s, seed)
    if impl == "ours":
        _module_on(ours, device)
        src, tgt_in, tgt_out = _on(device, src, tgt_in, tgt_out)
        optimizer = AdamW(ours.parameters(), lr=1e-4)

        def forward():
            logits = ours(src, tgt_in)
            return ours.loss(logits, tgt_out)[0]

        def step():
            optimizer.zero_grad()
            logits = ours(src, tgt_in)
            loss, dlogits = ours.loss(logits, tgt_out)
            ours.backward(dlogits)
            if clip is not None:
                clip_grad_norm_(ours.parameters(), clip)
            optimizer.step()
            return loss

        return Bench(forward, step)

    torch = _torch()
    nn = torch.nn
    from numpy_transformer.functional.positional import sinusoidal_table

    class TorchTranslator(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed = nn.Embedding(s.vocab, s.d, padding_idx=0)
            self.tgt_embed = nn.Embedding(s.vocab, s.d, padding_idx=0)
            self.transformer = nn.Transformer(s.d, s.h, s.layers, s.layers, s.ff, dropout=0.0, batch_first=True)
            self.generator = nn.Linear(s.d, s.vocab)
            self.register_buffer("pe", torch.from_numpy(sinusoidal_table(max(s.T, 16), s.d)), persistent=False)

        def forward(self, src_ids, tgt_ids):
            T = tgt_ids.shape[1]
            scale = math.sqrt(s.d)
            src_x = self.src_embed(src_ids) * scale + self.pe[:src_ids.shape[1]]
            tgt_x = self.tgt_embed(tgt_ids) * scale + self.pe[:T]
            src_pad, tgt_pad = src_ids == 0, tgt_ids == 0
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tgt_ids.device), diagonal=1)
            h = self.transformer(src_x, tgt_x, tgt_mask=causal, src_key_padding_mask=src_pad,
                                 tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
            return self.generator(h)

    twin = TorchTranslator()
    _load_twin(twin, ours)
    twin.to(device)
    optimizer = torch.optim.AdamW(twin.parameters(), lr=1e-4)
    tsrc, ttgt_in, ttgt_out = (_to_torch(a, device=device) for a in (src, tgt_in, tgt_out))

    def tforward():
        logits = twin(tsrc, ttgt_in)
        return nn.functional.cross_entropy(logits.reshape(-1, s.vocab), ttgt_out.reshape(-1), ignore_index=0)

    def tstep():
        optimizer.zero_grad()
        loss = tforward()
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(twin.parameters(), clip)
        optimizer.step()
        return loss

    return Bench(tforward, tstep)


def _build_translator_clip(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    return _build_translator(impl, s, seed, device, clip=TRANSLATOR_CLIP_NORM)


def _translator_flops(s: Size) -> int:
    """``layers`` encoder layers + ``layers`` decoder layers + the generator (B*T, d) @ (d, V)."""
    return (s.layers * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff)
            + s.layers * decoder_layer_flops(s.B, s.T, s.T, s.d, s.h, s.ff)
            + matmul_flops(s.B * s.T, s.vocab, s.d))


# ------------------------------------------------------------------------------------------- ViT

VIT_PATCH = 4
VIT_CHANNELS = 3
VIT_CLASSES = 10


def _vit_grid(s: Size):
    """A patch grid of T patches: 8 rows (2 for tiny sizes) of T/rows columns."""
    rows = 8 if s.T % 8 == 0 and s.T >= 64 else 2
    return rows, s.T // rows


def _build_vit(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward
    from numpy_transformer.models.vit import VisionTransformer
    from numpy_transformer.optim import AdamW
    rows, cols = _vit_grid(s)
    image_size = (rows * VIT_PATCH, cols * VIT_PATCH)
    ours = VisionTransformer(image_size, VIT_PATCH, in_channels=VIT_CHANNELS, num_classes=VIT_CLASSES,
                             d_model=s.d, nhead=s.h, num_layers=s.layers, dim_feedforward=s.ff, dropout=0.0,
                             rng=seed)
    rng = _rng(seed)
    images = rng.standard_normal((s.B, VIT_CHANNELS) + image_size).astype(np.float32)
    labels = rng.integers(0, VIT_CLASSES, s.B)
    if impl == "ours":
        _module_on(ours, device)
        images, labels = _on(device, images, labels)
        optimizer = AdamW(ours.parameters(), lr=1e-4)

        def forward():
            return cross_entropy_forward(ours(images), labels)[0]

        def step():
            optimizer.zero_grad()
            loss, cache = cross_entropy_forward(ours(images), labels)
            ours.backward(cross_entropy_backward(1.0, cache))
            optimizer.step()
            return loss

        return Bench(forward, step)

    torch = _torch()
    nn = torch.nn

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(VIT_CHANNELS, s.d, VIT_PATCH, stride=VIT_PATCH)

    class TorchViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = PatchEmbed()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, s.d))
            self.pos_embed = nn.Parameter(torch.zeros(1, rows * cols + 1, s.d))
            layer = nn.TransformerEncoderLayer(s.d, s.h, s.ff, dropout=0.0, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, s.layers, norm=nn.LayerNorm(s.d),
                                                 enable_nested_tensor=False)
            self.head = nn.Linear(s.d, VIT_CLASSES)

        def forward(self, x):
            x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
            return self.head(self.encoder(x)[:, 0])

    twin = TorchViT()
    _load_twin(twin, ours)
    twin.to(device)
    optimizer = torch.optim.AdamW(twin.parameters(), lr=1e-4)
    timages, tlabels = _to_torch(images, True, device), _to_torch(labels, device=device)

    def tforward():
        return nn.functional.cross_entropy(twin(timages), tlabels)

    def tstep():
        optimizer.zero_grad()
        timages.grad = None
        loss = tforward()
        loss.backward()
        optimizer.step()
        return loss

    return Bench(tforward, tstep)


def _vit_flops(s: Size) -> int:
    """Patch projection (B*N, C*P*P) @ (C*P*P, d), ``layers`` encoder layers over N+1 tokens, head (B, d) @ (d, 10)."""
    rows, cols = _vit_grid(s)
    N = rows * cols
    return (matmul_flops(s.B * N, s.d, VIT_CHANNELS * VIT_PATCH * VIT_PATCH)
            + s.layers * encoder_layer_flops(s.B, N + 1, s.d, s.h, s.ff)
            + matmul_flops(s.B, VIT_CLASSES, s.d))


# ------------------------------------------------------------------------------------------- BERT

def _bert_available() -> str | None:
    """The PyTorch side of the BERT rows is transformers.BertModel: skip them, saying why, without it."""
    try:
        import transformers  # noqa: F401
    except ImportError as error:
        return f"transformers is not installed ({error}); pip install transformers"
    return None


def _bert_config_kwargs(s: Size) -> dict:
    return dict(vocab_size=s.bert_vocab, hidden_size=s.d, num_hidden_layers=s.bert_layers, num_attention_heads=s.h,
                intermediate_size=s.ff, max_position_embeddings=max(512, s.T), type_vocab_size=2,
                hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _bert_batch(s: Size, seed: int):
    """Random ids (B, T) with every second sequence ending in padding, its attention mask and segment ids."""
    rng = _rng(seed)
    ids = rng.integers(1, s.bert_vocab, (s.B, s.T))
    attention_mask = np.ones((s.B, s.T), dtype=np.int64)
    attention_mask[1::2, -s.T // 4:] = 0                            # every second sequence ends in padding
    ids[attention_mask == 0] = 0
    token_type_ids = np.zeros((s.B, s.T), dtype=np.int64)
    return ids, attention_mask, token_type_ids


def _bert_twin(s: Size, ours, device: str):
    """transformers.BertModel (no pooler: ours returns last_hidden_state only) holding our weights."""
    torch = _torch()
    import transformers
    twin = transformers.BertModel(transformers.BertConfig(**_bert_config_kwargs(s)), add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in ours.hf_state_dict().items()}
    result = twin.load_state_dict(state, strict=False)
    left = [k for k in list(result.missing_keys) + list(result.unexpected_keys) if not k.endswith("position_ids")]
    if left:
        raise KeyError(f"transformers.BertModel does not take our hf_state_dict: {left[:4]}")
    return twin.to(device), transformers.__version__


def _build_bert(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    from numpy_transformer.models.bert import BertConfig, BertModel
    ours = BertModel(BertConfig(**_bert_config_kwargs(s)), rng=seed).eval()
    ids, attention_mask, token_type_ids = _bert_batch(s, seed)
    if impl == "ours":
        _module_on(ours, device)
        ids, attention_mask, token_type_ids = _on(device, ids, attention_mask, token_type_ids)
        return Bench(lambda: ours(ids, attention_mask=attention_mask, token_type_ids=token_type_ids), None)
    torch = _torch()
    twin, version = _bert_twin(s, ours, device)
    twin.eval()
    tids, tmask, ttypes = (_to_torch(a, device=device) for a in (ids, attention_mask, token_type_ids))

    def forward():
        with torch.inference_mode():
            return twin(input_ids=tids, attention_mask=tmask, token_type_ids=ttypes).last_hidden_state

    return Bench(forward, None, f"transformers {version}, "
                               f"attention {getattr(twin.config, '_attn_implementation', '?')}")


def _bert_flops(s: Size) -> int:
    """``bert_layers`` encoder layers (MiniLM: 6); embeddings are gathers, no pooler. Inference only."""
    return s.bert_layers * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff)


# ------------------------------------------------------------------------------------------- BERT fine-tuning

BERT_FROZEN_LAYERS = 2     # the embeddings and the first two encoder layers are frozen
BERT_LABELS = 2


def _finetune_size(s: Size) -> Size:
    """The size with at least one trainable layer above the frozen ones (the tiny size has 1 BERT layer)."""
    from dataclasses import replace
    return replace(s, bert_layers=max(s.bert_layers, BERT_FROZEN_LAYERS + 1))


def _build_bert_finetune(impl: str, s: Size, seed: int, device: str = "cpu") -> Bench:
    """BertClassifier (mean pooling, head D -> 2) on a random-weight BertModel: embeddings and the first
    ``BERT_FROZEN_LAYERS`` layers frozen, AdamW over the rest; step = forward, cross-entropy, backward, AdamW."""
    from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward
    from numpy_transformer.models.bert import BertClassifier, BertConfig, BertModel
    from numpy_transformer.optim import AdamW
    s = _finetune_size(s)
    ours = BertClassifier(BertModel(BertConfig(**_bert_config_kwargs(s)), rng=seed), num_labels=BERT_LABELS,
                          pooling="mean", dropout=0.0, rng=seed + 1)
    ours.freeze_embeddings_and_layers(BERT_FROZEN_LAYERS)
    ids, attention_mask, token_type_ids = _bert_batch(s, seed)
    labels = _rng(seed + 2).integers(0, BERT_LABELS, s.B)
    if impl == "ours":
        _module_on(ours, device)
        ids, attention_mask, token_type_ids, labels = _on(device, ids, attention_mask, token_type_ids, labels)
        optimizer = AdamW([p for p in ours.parameters() if p.requires_grad], lr=2e-5)

        def forward():
            logits = ours(ids, attention_mask, token_type_ids)
            return cross_entropy_forward(logits, labels)[0]

        def step():
            optimizer.zero_grad()
            loss, cache = cross_entropy_forward(ours(ids, attention_mask, token_type_ids), labels)
            ours.backward(cross_entropy_backward(1.0, cache))
            optimizer.step()
            return loss

        return Bench(forward, step)

    torch = _torch()
    nn = torch.nn
    bert, version = _bert_twin(s, ours.bert, device)
    head = nn.Linear(s.d, BERT_LABELS)
    _load_twin(head, ours.classifier)
    head.to(device)
    bert.train()
    bert.embeddings.requires_grad_(False)
    for layer in bert.encoder.layer[:BERT_FROZEN_LAYERS]:
        layer.requires_grad_(False)
    trainable = [p for p in list(bert.parameters()) + list(head.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-5)
    tids, tmask, ttypes, tlabels = (_to_torch(a, device=device) for a in (ids, attention_mask, token_type_ids, labels))
    weights = tmask.unsqueeze(-1).to(torch.float32)                 # (B, T, 1)

    def tforward():
        hidden = bert(input_ids=tids, attention_mask=tmask, token_type_ids=ttypes).last_hidden_state
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, T, D) -> (B, D)
        return nn.functional.cross_entropy(head(pooled), tlabels)

    def tstep():
        optimizer.zero_grad()
        loss = tforward()
        loss.backward()
        optimizer.step()
        return loss

    return Bench(tforward, tstep, f"transformers {version}")


def _bert_finetune_flops(s: Size) -> int:
    """Forward: the encoder layers (at least 3) and the head (B, d) @ (d, 2)."""
    s = _finetune_size(s)
    return s.bert_layers * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff) + matmul_flops(s.B, BERT_LABELS, s.d)


def _bert_finetune_step_flops(s: Size) -> int:
    """Forward + the backward of the trainable layers and the head only (2 x their forward): the backward pass
    stops above the frozen layers."""
    s = _finetune_size(s)
    trainable = (s.bert_layers - BERT_FROZEN_LAYERS) * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff)
    return _bert_finetune_flops(s) + 2 * (trainable + matmul_flops(s.B, BERT_LABELS, s.d))


# ------------------------------------------------------------------------------------------- registry

WORKLOADS = {w.name: w for w in [
    Workload("sdpa", "scaled dot-product attention, causal (functional pair vs F.scaled_dot_product_attention)",
             _build_sdpa, _sdpa_flops),
    Workload("mha", "multi-head self-attention block (nn.MultiheadAttention)", _build_mha, _mha_flops),
    Workload("layernorm", "layer norm over d (nn.LayerNorm)", _build_layernorm, lambda s: 0),
    Workload("feedforward", "Linear(d, ff) - GELU - Linear(ff, d)", _build_ff, _ff_flops),
    Workload("encoder_layer", "post-norm TransformerEncoderLayer (relu)", _build_encoder_layer,
             _encoder_layer_flops),
    Workload("decoder_layer", "post-norm TransformerDecoderLayer, causal self-attention + cross-attention",
             _build_decoder_layer, _decoder_layer_flops),
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

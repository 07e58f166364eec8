"""The grading cases of each exercise: inputs, the forward call, and the PyTorch twin of the forward.

Each case builds fresh random float64 inputs with every dimension a different size (so that a transposition
cannot hide), calls the student's forward pass, and then the grader checks the student's backward pass against
float64 central differences (:func:`numpy_transformer.gradcheck.gradcheck`) and, when PyTorch is installed,
against ``torch.autograd`` in float64 (tight) and float32 (loose). Masks, odd sizes, a batch of 1 and fully
masked rows are among the cases, as in the project's own tests.

A case's ``torch`` function receives the torch module, the inputs as tensors (the differentiated ones with
``requires_grad``) and the cache of the student's forward pass (for the dropout mask that was drawn), and
returns the output tensor.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    """One way of calling a forward/backward pair."""

    label: str
    forward: str                              # the forward function's name, in the same file
    make: Callable[[np.random.Generator], list]  # rng -> positional inputs (float64 arrays, ints ...)
    names: tuple                              # a name for each positional input
    grads: tuple                              # for each value the backward returns: an input's name, or None
    kwargs: dict = field(default_factory=dict)  # keyword arguments of the forward
    torch: Callable | None = None             # (torch, inputs as tensors, cache) -> output tensor
    finite_differences: bool = True           # False where the backward is defined to differ (a padding row)


def _away_from_zero(x: np.ndarray) -> np.ndarray:
    """Shift values away from 0, where ReLU has its kink and a finite difference would straddle it."""
    return x + np.sign(x) * 0.2


def _attention_torch(torch, inputs, cache, mask=None, is_causal=False):
    q, k, v = inputs[:3]
    scores = (q * cache["scale"]) @ k.transpose(-1, -2)
    if mask is not None:
        scores = scores.masked_fill(torch.as_tensor(mask), -math.inf)
    if is_causal:
        T, S = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool).triu(1), -math.inf)
    weights = torch.softmax(scores, dim=-1)
    if cache.get("keep_scale") is not None:
        weights = weights * torch.as_tensor(cache["keep_scale"])
    return weights @ v


def _padding_mask(rng) -> np.ndarray:
    """A key padding mask (B=2, 1, 1, S=5): True at padding, no row fully masked."""
    mask = np.zeros((2, 1, 1, 5), dtype=bool)
    mask[0, ..., 3:] = True
    mask[1, ..., 4:] = True
    return mask


def _fully_masked_row() -> np.ndarray:
    """(T=3, S=4), True = may not attend: query 1 may attend to nothing."""
    mask = np.zeros((3, 4), dtype=bool)
    mask[1] = True
    mask[2, 0] = True
    return mask


def _feedforward_torch(activation):
    def run(torch, inputs, cache):
        x, w1, b1, w2, b2 = inputs
        hidden = torch.nn.functional.linear(x, w1, b1)
        if activation == "relu":
            hidden = torch.relu(hidden)
        else:
            hidden = torch.nn.functional.gelu(hidden, approximate="none" if activation == "gelu" else "tanh")
        mask = cache["dropout"]["mask"]
        if mask is not None:
            hidden = hidden * torch.as_tensor(mask)
        return torch.nn.functional.linear(hidden, w2, b2)
    return run


def _normal(*shape):
    return lambda rng: [rng.standard_normal(shape)]


def _cross_entropy_targets(rng) -> np.ndarray:
    targets = rng.integers(0, 5, size=(2, 3))
    targets[0, 1] = -100                                       # an ignored (padding) position
    return targets


def _swiglu_torch(torch, inputs, cache):
    x, w_gate, w_up, w_down, b_gate, b_up, b_down = inputs
    linear = torch.nn.functional.linear
    return linear(torch.nn.functional.silu(linear(x, w_gate, b_gate)) * linear(x, w_up, b_up), w_down, b_down)


def _rope_torch(torch, inputs, cache):
    x, cos, sin = inputs
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def _gqa_torch(is_causal):
    def run(torch, inputs, cache):
        q, k, v = inputs[:3]
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = (q * cache["attention"]["scale"]) @ k.transpose(-1, -2)
        if is_causal:                                          # the T queries are the last T of S positions
            T, S = scores.shape[-2:]
            scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool).triu(S - T + 1), -math.inf)
        return torch.softmax(scores, dim=-1) @ v
    return run


CASES: dict[str, list[Case]] = {
    "linear_backward": [
        Case("x (2, 3, 4), weight (5, 4), bias", "linear_forward",
             lambda rng: [rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)],
             ("x", "weight", "bias"), ("x", "weight", "bias"),
             torch=lambda torch, t, cache: torch.nn.functional.linear(*t)),
        Case("one vector x (4,), weight (3, 4), no bias", "linear_forward",
             lambda rng: [rng.standard_normal(4), rng.standard_normal((3, 4)), None],
             ("x", "weight", "bias"), ("x", "weight", None),
             torch=lambda torch, t, cache: torch.nn.functional.linear(t[0], t[1])),
    ],
    "relu_backward": [
        Case("x (3, 4)", "relu_forward", lambda rng: [_away_from_zero(rng.standard_normal((3, 4)))],
             ("x",), ("x",), torch=lambda torch, t, cache: torch.relu(t[0])),
    ],
    "gelu_backward": [
        Case(f'x (2, 5), approximate="{mode}"', "gelu_forward", _normal(2, 5), ("x",), ("x",),
             kwargs={"approximate": mode},
             torch=lambda torch, t, cache, mode=mode: torch.nn.functional.gelu(t[0], approximate=mode))
        for mode in ("none", "tanh")
    ],
    "activation_backward": [
        Case(f'x (3, 2), name="{name}"', "activation_forward",
             lambda rng: [_away_from_zero(rng.standard_normal((3, 2)))], ("x",), ("x",), kwargs={"name": name},
             torch=lambda torch, t, cache, name=name: (
                 torch.relu(t[0]) if name == "relu"
                 else torch.nn.functional.gelu(t[0], approximate="none" if name == "gelu" else "tanh")))
        for name in ("relu", "gelu", "gelu_tanh")
    ],
    "softmax_backward": [
        Case(f"x (2, 3, 4) along axis {axis}", "softmax_forward", lambda rng: [2 * rng.standard_normal((2, 3, 4))],
             ("x",), ("x",), kwargs={"axis": axis},
             torch=lambda torch, t, cache, axis=axis: torch.softmax(t[0], dim=axis))
        for axis in (-1, 0, 1)
    ] + [
        Case("x (3, 4) with a row that is all -inf", "softmax_forward",
             lambda rng: [np.where(np.arange(3)[:, None] == 1, -np.inf, rng.standard_normal((3, 4)))],
             ("x",), ("x",)),
    ],
    "log_softmax_backward": [
        Case(f"x (2, 3, 4) along axis {axis}", "log_softmax_forward", lambda rng: [2 * rng.standard_normal((2, 3, 4))],
             ("x",), ("x",), kwargs={"axis": axis},
             torch=lambda torch, t, cache, axis=axis: torch.log_softmax(t[0], dim=axis))
        for axis in (-1, 1)
    ],
    "embedding_backward": [
        Case("ids (2, 4) with repeated ids, weight (5, 3)", "embedding_forward",
             lambda rng: [np.array([[0, 3, 3, 1], [4, 3, 0, 0]]), rng.standard_normal((5, 3))],
             ("ids", "weight"), ("weight",),
             torch=lambda torch, t, cache: torch.nn.functional.embedding(t[0], t[1])),
        Case("ids (2, 3), weight (6, 2), padding_idx=2", "embedding_forward",
             lambda rng: [np.array([[2, 1, 2], [5, 2, 1]]), rng.standard_normal((6, 2))],
             ("ids", "weight"), ("weight",), kwargs={"padding_idx": 2},
             torch=lambda torch, t, cache: torch.nn.functional.embedding(t[0], t[1], padding_idx=2),
             finite_differences=False),
    ],
    "positional_encoding_backward": [
        Case("x (2, 3, 4) at offset 2", "positional_encoding_forward",
             lambda rng: [rng.standard_normal((2, 3, 4)), _sinusoidal(7, 4)],
             ("x", "table"), ("x",), kwargs={"offset": 2},
             torch=lambda torch, t, cache: t[0] + t[1][2:5]),
    ],
    "scaled_dot_product_attention_backward": [
        Case("q (2, 2, 3, 4), k (2, 2, 5, 4), v (2, 2, 5, 6), no mask", "scaled_dot_product_attention_forward",
             lambda rng: [rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 5, 4)),
                          rng.standard_normal((2, 2, 5, 6))],
             ("q", "k", "v"), ("q", "k", "v"), torch=_attention_torch),
        Case("key padding mask (2, 1, 1, 5)", "scaled_dot_product_attention_forward",
             lambda rng: [rng.standard_normal((2, 1, 3, 2)), rng.standard_normal((2, 1, 5, 2)),
                          rng.standard_normal((2, 1, 5, 3)), _padding_mask(rng)],
             ("q", "k", "v", "mask"), ("q", "k", "v"),
             torch=lambda torch, t, cache: _attention_torch(torch, t, cache, mask=t[3])),
        Case("causal, batch of 1, head width 1", "scaled_dot_product_attention_forward",
             lambda rng: [rng.standard_normal((1, 4, 1)), rng.standard_normal((1, 4, 1)),
                          rng.standard_normal((1, 4, 3))],
             ("q", "k", "v"), ("q", "k", "v"), kwargs={"is_causal": True},
             torch=lambda torch, t, cache: _attention_torch(torch, t, cache, is_causal=True)),
        Case("a query whose keys are all masked (its gradient is zero)", "scaled_dot_product_attention_forward",
             lambda rng: [rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 4, 2)),
                          rng.standard_normal((2, 4, 3)), _fully_masked_row()],
             ("q", "k", "v", "mask"), ("q", "k", "v")),
        Case("dropout p = 0.3", "scaled_dot_product_attention_forward",
             lambda rng: [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)),
                          rng.standard_normal((2, 5, 2))],
             ("q", "k", "v"), ("q", "k", "v"), kwargs={"dropout_p": 0.3, "rng": 7}, torch=_attention_torch),
    ],
    "blocked_attention_backward": [
        Case("q (2, 5, 3), k (2, 7, 3), v (2, 7, 2) in blocks of 2 queries and 3 keys, key padding",
             "blocked_attention_forward",
             lambda rng: [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 7, 3)),
                          rng.standard_normal((2, 7, 2)), np.arange(7) >= np.array([[[6]], [[4]]])],
             ("q", "k", "v", "mask"), ("q", "k", "v"), kwargs={"query_block": 2, "key_block": 3},
             torch=lambda torch, t, cache: _attention_torch(torch, t, cache, mask=t[3])),
        Case("causal, T = S = 5, blocks of 2", "blocked_attention_forward",
             lambda rng: [rng.standard_normal((1, 2, 5, 2)), rng.standard_normal((1, 2, 5, 2)),
                          rng.standard_normal((1, 2, 5, 3))],
             ("q", "k", "v"), ("q", "k", "v"), kwargs={"is_causal": True, "query_block": 2, "key_block": 2},
             torch=lambda torch, t, cache: _attention_torch(torch, t, cache, is_causal=True)),
    ],
    "split_heads_backward": [
        Case("x (2, 3, 6) into 3 heads", "split_heads_forward", lambda rng: [rng.standard_normal((2, 3, 6)), 3],
             ("x", "num_heads"), ("x",),
             torch=lambda torch, t, cache: t[0].reshape(2, 3, 3, 2).transpose(1, 2)),
    ],
    "merge_heads_backward": [
        Case("x (2, 4, 3, 2): 4 heads of width 2", "merge_heads_forward", _normal(2, 4, 3, 2), ("x",), ("x",),
             torch=lambda torch, t, cache: t[0].transpose(1, 2).reshape(2, 3, 8)),
    ],
    "layernorm_backward": [
        Case("x (2, 3, 5), random gamma and beta", "layernorm_forward",
             lambda rng: [rng.standard_normal((2, 3, 5)) * 2 + 1, rng.standard_normal(5), rng.standard_normal(5)],
             ("x", "gamma", "beta"), ("x", "gamma", "beta"),
             torch=lambda torch, t, cache: torch.nn.functional.layer_norm(t[0], (5,), t[1], t[2], 1e-5)),
        Case("one row x (4,)", "layernorm_forward",
             lambda rng: [rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)],
             ("x", "gamma", "beta"), ("x", "gamma", "beta"),
             torch=lambda torch, t, cache: torch.nn.functional.layer_norm(t[0], (4,), t[1], t[2], 1e-5)),
    ],
    "dropout_backward": [
        Case("x (3, 4), p = 0.4", "dropout_forward", _normal(3, 4), ("x",), ("x",), kwargs={"p": 0.4, "rng": 3},
             torch=lambda torch, t, cache: t[0] * torch.as_tensor(cache["mask"])),
        Case("evaluation (training=False)", "dropout_forward", _normal(2, 3), ("x",), ("x",),
             kwargs={"p": 0.4, "training": False}, torch=lambda torch, t, cache: t[0] * 1),
    ],
    "feedforward_backward": [
        Case(f'x (2, 3, 4), F = 6, activation="{activation}"' + (", dropout p = 0.25" if p else ""),
             "feedforward_forward",
             lambda rng: [rng.standard_normal((2, 3, 4)), rng.standard_normal((6, 4)), rng.standard_normal(6),
                          rng.standard_normal((4, 6)), rng.standard_normal(4)],
             ("x", "w1", "b1", "w2", "b2"), ("x", "w1", "b1", "w2", "b2"),
             kwargs={"activation": activation, "dropout_p": p, "rng": 5},
             torch=_feedforward_torch(activation))
        for activation, p in (("gelu", 0.25), ("relu", 0.0))
    ],
    "patchify_backward": [
        Case("images (2, 3, 4, 6), patch 2", "patchify_forward", lambda rng: [rng.standard_normal((2, 3, 4, 6)), 2],
             ("images", "patch_size"), ("images",),
             torch=lambda torch, t, cache: torch.nn.functional.unfold(t[0], 2, stride=2).transpose(1, 2)),
    ],
    "unpatchify_backward": [
        Case("patches (2, 6, 12) into images (3, 4, 6), patch 2", "unpatchify_forward",
             lambda rng: [rng.standard_normal((2, 6, 12)), (3, 4, 6), 2],
             ("patches", "image_shape", "patch_size"), ("patches",),
             torch=lambda torch, t, cache: torch.nn.functional.fold(t[0].transpose(1, 2), (4, 6), 2, stride=2)),
    ],
    "cross_entropy_backward": [
        Case(f"logits (2, 3, 5), one ignored target, label_smoothing {eps}", "cross_entropy_forward",
             lambda rng: [rng.standard_normal((2, 3, 5)) * 2, _cross_entropy_targets(rng)],
             ("logits", "targets"), ("logits",), kwargs={"label_smoothing": eps},
             torch=lambda torch, t, cache, eps=eps: torch.nn.functional.cross_entropy(
                 t[0].reshape(-1, 5), t[1].reshape(-1), ignore_index=-100, label_smoothing=eps))
        for eps in (0.0, 0.1)
    ],
    "mean_pooling_backward": [
        Case("hidden (2, 4, 3), the second sentence padded after 2 tokens", "mean_pooling_forward",
             lambda rng: [rng.standard_normal((2, 4, 3)), np.array([[1, 1, 1, 1], [1, 1, 0, 0]])],
             ("hidden", "attention_mask"), ("hidden",),
             torch=lambda torch, t, cache: (t[0] * t[1][..., None]).sum(1)
             / t[1].sum(1, keepdim=True).clamp(min=1e-9)),
    ],
    "l2_normalize_backward": [
        Case("x (3, 4)", "l2_normalize_forward", _normal(3, 4), ("x",), ("x",),
             torch=lambda torch, t, cache: torch.nn.functional.normalize(t[0], dim=-1)),
    ],
    "rmsnorm_backward": [
        Case("x (2, 3, 5), random weight", "rmsnorm_forward",
             lambda rng: [rng.standard_normal((2, 3, 5)) + 0.5, rng.standard_normal(5)],
             ("x", "weight"), ("x", "weight"), kwargs={"eps": 1e-6},
             torch=lambda torch, t, cache: torch.nn.functional.rms_norm(t[0], (5,), t[1], 1e-6)),
        Case("one row x (4,), no weight", "rmsnorm_forward", lambda rng: [rng.standard_normal(4), None],
             ("x", "weight"), ("x", None), kwargs={"eps": 1e-6},
             torch=lambda torch, t, cache: torch.nn.functional.rms_norm(t[0], (4,), None, 1e-6)),
    ],
    "silu_backward": [
        Case("x (3, 4)", "silu_forward", lambda rng: [2 * rng.standard_normal((3, 4))], ("x",), ("x",),
             torch=lambda torch, t, cache: torch.nn.functional.silu(t[0])),
    ],
    "swiglu_backward": [
        Case("x (2, 3, 4), F = 6, biases" if bias else "x (3, 4), F = 5, no biases", "swiglu_forward",
             lambda rng, bias=bias: (
                 [rng.standard_normal((2, 3, 4)), rng.standard_normal((6, 4)), rng.standard_normal((6, 4)),
                  rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal(4)]
                 if bias else
                 [rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 4)),
                  rng.standard_normal((4, 5)), None, None, None]),
             ("x", "w_gate", "w_up", "w_down", "b_gate", "b_up", "b_down"),
             ("x", "w_gate", "w_up", "w_down") + (("b_gate", "b_up", "b_down") if bias else (None, None, None)),
             torch=_swiglu_torch)
        for bias in (True, False)
    ],
    "rope_backward": [
        Case("x (2, 2, 3, 6) at positions 0..2", "rope_forward",
             lambda rng: [rng.standard_normal((2, 2, 3, 6)), *_rope_tables(3, 6)],
             ("x", "cos", "sin"), ("x",), torch=_rope_torch),
    ],
    "grouped_query_attention_backward": [
        Case("4 query heads over 2 key/value heads", "grouped_query_attention_forward",
             lambda rng: [rng.standard_normal((2, 4, 3, 2)), rng.standard_normal((2, 2, 5, 2)),
                          rng.standard_normal((2, 2, 5, 3))],
             ("q", "k", "v"), ("q", "k", "v"), torch=_gqa_torch(False)),
        Case("3 query heads over 1 (multi-query), causal, T = 2 after S - T earlier positions",
             "grouped_query_attention_forward",
             lambda rng: [rng.standard_normal((1, 3, 2, 4)), rng.standard_normal((1, 1, 5, 4)),
                          rng.standard_normal((1, 1, 5, 2))],
             ("q", "k", "v"), ("q", "k", "v"), kwargs={"is_causal": True}, torch=_gqa_torch(True)),
    ],
}


def _rope_tables(length: int, head_dim: int):
    from ..functional.rope import rope_tables

    return rope_tables(np.arange(length), head_dim, dtype=np.float64)


def _sinusoidal(length: int, width: int) -> np.ndarray:
    from ..functional.positional import sinusoidal_table

    return sinusoidal_table(length, width, dtype=np.float64)


def cases_for(function: str) -> list[Case]:
    """The cases of one exercise; an exercise without cases is a project bug, reported by the grader."""
    return CASES.get(function, [])

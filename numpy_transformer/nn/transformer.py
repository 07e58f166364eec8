r"""The Transformer of "Attention Is All You Need" as layers: ``torch.nn.Transformer`` and its parts.

An encoder layer is two residual sub-blocks, self-attention and a position-wise feed-forward network, each
followed (post-norm, the paper's and torch's default) or preceded (``norm_first=True``, pre-norm) by a
layer norm:

    post-norm                                         pre-norm (norm_first=True)
    x = norm1(x + sa_block(x))                        x = x + sa_block(norm1(x))
    x = norm2(x + ff_block(x))                        x = x + ff_block(norm2(x))

    sa_block(x) = dropout1(self_attn(x, x, x))
    ff_block(x) = dropout2(linear2(dropout(activation(linear1(x)))))

A decoder layer has a third sub-block between the two, cross-attention from the target to the encoder's
output ``memory`` (``mha_block(x, memory) = dropout2(multihead_attn(x, memory, memory))``; the decoder's
feed-forward block then ends with ``dropout3`` and ``norm3``). :class:`TransformerEncoder` and
:class:`TransformerDecoder` stack $N$ copies of a layer and add an optional final norm;
:class:`Transformer` is the encoder-decoder pair with final norms on both.

Names, constructor arguments and their defaults, ``forward`` signatures, mask conventions and ``state_dict``
keys are ``torch.nn``'s, so a torch model's weights load here unchanged and back, and code written for
``torch.nn`` runs unchanged. That includes ``batch_first=False`` by default: the sequences are (S, B, D)
and (T, B, D), positions first, unless ``batch_first=True`` says (B, S, D); a 2-D (S, D) input is one
unbatched sequence. Every sub-layer but attention works on the last axis alone, so the layers pass their
inputs on in the layout they came in, and the attention modules (built with the layer's ``batch_first``)
read it (see :mod:`numpy_transformer.nn.attention`). The stacks take the layout from their layer, as in
torch. The masks are the same in both layouts: padding masks (B, S), attention masks (T, S) or (B*H, T, S).

Backward. Each ``backward`` is the ``forward`` read from the bottom up, and each step names the forward
line it undoes. Two facts of the chain rule do all the work:

- a residual $y = x + f(x)$ sends the upstream gradient both ways: $dx = dy + f'(x)^\top dy$;
- the memory is read by the cross-attention of EVERY decoder layer, so its gradient is the sum over the
  layers (:meth:`TransformerDecoder.backward`), and in :class:`Transformer` that sum flows into the encoder.

Self-attention passes the same array as query, key and value, so its backward returns the whole input
gradient in the first slot (see :mod:`numpy_transformer.nn.attention`).

Shapes (written batch-first): src (B, S, D), tgt (B, T, D), memory (B, S, D); F the feed-forward width.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..backend import array_module_for, as_dtype, seeded_generator
from ..checks import check_choice, check_float, check_ndim, check_positive_int, check_probability
from ..functional.activations import ACTIVATIONS, activation_backward, activation_forward
from .attention import KVCache, MultiheadAttention
from .layers import Dropout, LayerNorm, Linear
from .module import Module, ModuleList

__all__ = [
    "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder", "TransformerDecoder",
    "Transformer",
]


# ---------------------------------------------------------------------------------------------- helpers

def _check_sequence(name: str, x, d_model: int, batch_first: bool, batch: int | None = None) -> tuple:
    """``x`` must be a float sequence of width ``d_model``: (B, positions, D) when ``batch_first``, else
    (positions, B, D), or (positions, D) unbatched; with batch size ``batch`` when given.

    Returns ``(B, positions)``, B = None for an unbatched sequence.
    """
    check_float(name, x)
    batched = "(B, positions, d_model)" if batch_first else "(positions, B, d_model)"
    check_ndim(name, x, (2, 3), f"{batched} (batch_first={batch_first}) or (positions, d_model) unbatched")
    if x.shape[-1] != d_model:
        raise ValueError(f"{name}: got shape {tuple(x.shape)}; expected last axis d_model = {d_model}")
    if x.ndim == 2:
        B, length = None, x.shape[0]
    else:
        B, length = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    if batch is not None and B != batch:
        raise ValueError(f"{name}: got shape {tuple(x.shape)}; expected batch size {batch} (the batch number of "
                         "src and tgt must be equal; batched and unbatched inputs do not mix)")
    return B, length


def _padding_shape(B, length) -> tuple:
    """The shape of a key padding mask: (B, positions), or (positions,) for an unbatched sequence."""
    return (length,) if B is None else (B, length)


def _check_mask(name: str, mask, allowed: list[tuple[int, ...]]) -> None:
    """A mask passed to a layer must have one of the ``allowed`` shapes (checked here to name the argument)."""
    if mask is None:
        return
    if not hasattr(mask, "shape"):
        raise TypeError(f"{name}: got {type(mask).__name__}; expected a bool or float array")
    if tuple(mask.shape) not in allowed:
        shown = " or ".join(str(s) for s in allowed)
        raise ValueError(f"{name}: got shape {tuple(mask.shape)}; expected {shown}")


def _causal_flag(name: str, value) -> bool:
    """torch's ``is_causal`` arguments are bool or None (None = False: no mask is built)."""
    if value is None:
        return False
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: got {type(value).__name__}; expected a bool or None")
    return bool(value)


def _residual(block_out, x):
    """``block_out + x``, written into ``block_out``: the output (or gradient) of a sub-block, an array the layer
    made itself and nothing else holds, so the residual sum needs no fresh array. ``x`` is never changed."""
    block_out += x
    return block_out


def _input_gradient(grads):
    """The gradient of an attention's query input (self-attention puts the whole of it in slot 0)."""
    return grads[0]


def _memory_gradient(grads):
    """The gradient of the memory passed as both key and value (slot 1, or slots 1 and 2 when separate)."""
    _, dkey, dvalue = grads
    return dkey if dvalue is None else dkey + dvalue


def _independent_random_streams(module: Module, generator) -> None:
    """Give every dropout of ``module`` its own random stream, spawned from ``generator``.

    A deep copy also copies a seeded Generator, so without this every copied layer would drop the same
    entries (torch's layers all draw from one global stream).
    """
    for sub in module.modules():
        if isinstance(sub, Dropout):
            sub.rng = generator.spawn(1)[0]
            sub._generator = None
        elif isinstance(sub, MultiheadAttention):
            sub._generator = generator.spawn(1)[0]
            sub._device_generator = None


def _check_stack_args(name: str, layer, kind: str, num_layers, norm) -> None:
    """The arguments of an encoder or decoder stack: a layer Module, a positive count, a norm Module or None."""
    if not isinstance(layer, Module):
        raise TypeError(f"{name}: got {type(layer).__name__}; expected a Module (a {kind})")
    check_positive_int("num_layers", num_layers)
    if norm is not None and not isinstance(norm, Module):
        raise TypeError(f"norm: got {type(norm).__name__}; expected a Module (a LayerNorm) or None")


def _clones(layer: Module, num_layers: int, generator) -> ModuleList:
    """``num_layers`` deep copies of ``layer``: the SAME initial weights in each, as torch's ``_get_clones``."""
    layers = ModuleList()
    for _ in range(num_layers):
        clone = copy.deepcopy(layer)
        _independent_random_streams(clone, generator)
        layers.append(clone)
    return layers


class _SharedBlocks:
    """The two sub-blocks both layer kinds have, with their backward passes:

    - self-attention ``sa_block(x) = dropout1(self_attn(x, x, x))``;
    - feed-forward ``ff_block(x) = final_dropout(linear2(dropout(activation(linear1(x)))))``, where the final
      dropout is ``dropout2`` in the encoder layer and ``dropout3`` in the decoder layer (torch's names).
    """

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal, cache=None, need_weights=False):
        """Returns ``(dropout1(self_attn(x, x, x)), weights)``; weights (B, H, T, S) or None."""
        x, weights = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                    need_weights=need_weights, average_attn_weights=False, is_causal=is_causal,
                                    cache=cache)
        return self.dropout1(x), weights

    def _sa_block_backward(self, dout):
        # forward: return self.dropout1(x)
        dx = self.dropout1.backward(dout)
        # forward: x = self.self_attn(x, x, x, ...)[0]; the whole gradient of the shared x is in slot 0
        return _input_gradient(self.self_attn.backward(dx))

    def _ff_block(self, x, final_dropout: Dropout):
        h = self.linear1(x)                                      # (B, T, D) -> (B, T, F)
        h, self._activation_cache = activation_forward(h, self.activation)  # (B, T, F)
        h = self.dropout(h)                                      # (B, T, F)
        h = self.linear2(h)                                      # (B, T, F) -> (B, T, D)
        return final_dropout(h)                                  # (B, T, D)

    def _ff_block_backward(self, dout, final_dropout: Dropout):
        # forward: return final_dropout(h)
        dh = final_dropout.backward(dout)                        # (B, T, D)
        # forward: h = self.linear2(h)
        dh = self.linear2.backward(dh)                           # (B, T, D) -> (B, T, F)
        # forward: h = self.dropout(h)
        dh = self.dropout.backward(dh)                           # (B, T, F)
        # forward: h = activation(h)
        dh = activation_backward(dh, self._cached("_activation_cache"))  # (B, T, F)
        # forward: h = self.linear1(x)
        return self.linear1.backward(dh)                         # (B, T, F) -> (B, T, D)


def _check_layer_args(d_model, nhead, dim_feedforward, dropout, activation, batch_first) -> None:
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first: got {batch_first!r}; expected True or False")
    check_positive_int("d_model", d_model)
    check_positive_int("nhead", nhead)
    if d_model % nhead != 0:
        raise ValueError(f"nhead: got {nhead}; expected a divisor of d_model = {d_model} (num_heads must divide "
                         "the model width)")
    check_positive_int("dim_feedforward", dim_feedforward)
    check_probability("dropout", dropout)
    check_choice("activation", activation, ACTIVATIONS)


# ---------------------------------------------------------------------------------------------- layers

class TransformerEncoderLayer(_SharedBlocks, Module):
    """Self-attention and feed-forward, each in a residual with a layer norm (``torch.nn.TransformerEncoderLayer``).

    Inputs:
        d_model: D; nhead: H (divides D); dim_feedforward: F; dropout: every dropout's probability
        activation: ``"relu"``, ``"gelu"`` (exact, erf) or ``"gelu_tanh"`` (the tanh approximation, GPT-2's
            ``gelu_new``; not a torch option); layer_norm_eps: the norms' eps
        batch_first: False (torch's default): src (S, B, D); True: (B, S, D); norm_first: pre-norm instead of
            post-norm
        bias: biases in every Linear, attention projection and LayerNorm
        dtype: parameter dtype; rng: int seed, Generator or None (weights and dropout masks)

    Sub-modules (torch's keys): ``self_attn``, ``linear1`` (F, D), ``dropout``, ``linear2`` (D, F),
    ``norm1``, ``norm2``, ``dropout1``, ``dropout2``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        _check_layer_args(d_model, nhead, dim_feedforward, dropout, activation, batch_first)
        generator = seeded_generator(rng)
        self.d_model, self.nhead = d_model, nhead
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype, rng=generator)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype, rng=generator)
        self.dropout = Dropout(dropout, rng=generator)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype, rng=generator)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout, rng=generator)
        self.dropout2 = Dropout(dropout, rng=generator)
        self.activation = activation
        self._activation_cache = None

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False, *,
                cache: KVCache | None = None, need_weights: bool = False):
        """src (S, B, D), or (B, S, D) with batch_first, or (S, D) unbatched -> the same shape.

        Inputs:
            src: (S, B, D), (B, S, D) with batch_first, or (S, D)
            src_mask: None, (S, S) or (B*H, S, S); bool True = may NOT attend, or float added
            src_key_padding_mask: None or (B, S) ((S,) unbatched); bool True = padding, or float added
            is_causal: with ``src_mask`` None, build the causal mask (torch needs the mask as well)
            cache: None, or the self-attention's :class:`~numpy_transformer.nn.attention.KVCache` with P
                earlier positions (decoding, inference only): ``src`` holds only the new positions, and the
                masks cover all P + S keys: ``src_mask`` (S, P+S), ``src_key_padding_mask`` (B, P+S)
            need_weights: also return the self-attention probabilities of every head

        Returns:
            out: (B, S, D), or ``(out, weights)`` with weights (B, H, S, P+S) when ``need_weights``
        """
        B, S = _check_sequence("src", src, self.d_model, self.self_attn.batch_first)
        keys = S + (0 if cache is None else len(cache))              # the cached positions are keys too
        _check_mask("src_mask", src_mask, [(S, keys), ((B or 1) * self.nhead, S, keys)])
        _check_mask("src_key_padding_mask", src_key_padding_mask, [_padding_shape(B, keys)])
        masks = (src_mask, src_key_padding_mask, _causal_flag("is_causal", is_causal), cache, need_weights)
        # Plainly x = x + block(x): each sum is written into the block's output, a fresh array of this layer's
        # own (``_residual``), never into src
        x = src
        if self.norm_first:
            attended, weights = self._sa_block(self.norm1(x), *masks)
            x = _residual(attended, x)
            x = _residual(self._ff_block(self.norm2(x), self.dropout2), x)
        else:
            attended, weights = self._sa_block(x, *masks)
            x = self.norm1(_residual(attended, x))
            x = self.norm2(_residual(self._ff_block(x, self.dropout2), x))
        return (x, weights) if need_weights else x

    def backward(self, dout):
        """dout (B, S, D) -> dsrc (B, S, D); adds into every parameter's ``.grad``."""
        # Plainly dx = dsum + dblock: each sum is written into the block's gradient, a fresh array of this
        # layer's own (``_residual``), never into dout
        if self.norm_first:
            # forward: x = x + self._ff_block(self.norm2(x))
            dx = _residual(self.norm2.backward(self._ff_block_backward(dout, self.dropout2)), dout)
            # forward: x = x + self._sa_block(self.norm1(x), ...)
            dx = _residual(self.norm1.backward(self._sa_block_backward(dx)), dx)
        else:
            # forward: x = self.norm2(x + self._ff_block(x))
            dsum = self.norm2.backward(dout)
            dx = _residual(self._ff_block_backward(dsum, self.dropout2), dsum)
            # forward: x = self.norm1(x + self._sa_block(x, ...))
            dsum = self.norm1.backward(dx)
            dx = _residual(self._sa_block_backward(dsum), dsum)
        return dx


class TransformerDecoderLayer(_SharedBlocks, Module):
    """Masked self-attention, cross-attention to the memory and feed-forward (``torch.nn.TransformerDecoderLayer``).

    Arguments as :class:`TransformerEncoderLayer`. Sub-modules (torch's keys): ``self_attn``,
    ``multihead_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``norm3``,
    ``dropout1``, ``dropout2``, ``dropout3``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        _check_layer_args(d_model, nhead, dim_feedforward, dropout, activation, batch_first)
        generator = seeded_generator(rng)
        self.d_model, self.nhead = d_model, nhead
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype, rng=generator)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, dtype=dtype, rng=generator)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype, rng=generator)
        self.dropout = Dropout(dropout, rng=generator)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype, rng=generator)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout, rng=generator)
        self.dropout2 = Dropout(dropout, rng=generator)
        self.dropout3 = Dropout(dropout, rng=generator)
        self.activation = activation
        self._activation_cache = None

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False, *,
                cache: KVCache | None = None, memory_cache: KVCache | None = None, need_weights: bool = False):
        """tgt (T, B, D), memory (S, B, D) -> (T, B, D); batch-first (B, T, D) with batch_first; (T, D) unbatched.

        Inputs:
            tgt_mask: None, (T, T) or (B*H, T, T); memory_mask: None, (T, S) or (B*H, T, S)
                (bool True = may NOT attend, or float added)
            tgt_key_padding_mask: None or (B, T); memory_key_padding_mask: None or (B, S) (unbatched: (T,), (S,))
            tgt_is_causal / memory_is_causal: with the matching mask None, build the causal mask
            cache: None, or the self-attention's :class:`~numpy_transformer.nn.attention.KVCache` with P
                earlier target positions (decoding): ``tgt`` holds the new positions only, ``tgt_mask`` is
                (T, P+T) and ``tgt_key_padding_mask`` (B, P+T)
            memory_cache: None, or a ``KVCache(static=True)`` for the cross-attention: the memory's keys
                and values are projected on the first call and reused after
            need_weights: also return the self- and cross-attention probabilities of every head

        Returns:
            out: (B, T, D), or ``(out, self_weights (B, H, T, P+T), cross_weights (B, H, T, S))`` when
            ``need_weights``
        """
        batch_first = self.self_attn.batch_first
        B, T = _check_sequence("tgt", tgt, self.d_model, batch_first)
        _, S = _check_sequence("memory", memory, self.d_model, batch_first, batch=B)
        BH = (B or 1) * self.nhead
        keys = T + (0 if cache is None else len(cache))              # the cached positions are keys too
        _check_mask("tgt_mask", tgt_mask, [(T, keys), (BH, T, keys)])
        _check_mask("memory_mask", memory_mask, [(T, S), (BH, T, S)])
        _check_mask("tgt_key_padding_mask", tgt_key_padding_mask, [_padding_shape(B, keys)])
        _check_mask("memory_key_padding_mask", memory_key_padding_mask, [_padding_shape(B, S)])
        self_masks = (tgt_mask, tgt_key_padding_mask, _causal_flag("tgt_is_causal", tgt_is_causal), cache,
                      need_weights)
        memory_masks = (memory_mask, memory_key_padding_mask, _causal_flag("memory_is_causal", memory_is_causal),
                        memory_cache, need_weights)
        # Plainly x = x + block(x), each sum written into the block's own output (``_residual``)
        x = tgt
        if self.norm_first:
            attended, self_weights = self._sa_block(self.norm1(x), *self_masks)
            x = _residual(attended, x)
            attended, cross_weights = self._mha_block(self.norm2(x), memory, *memory_masks)
            x = _residual(attended, x)
            x = _residual(self._ff_block(self.norm3(x), self.dropout3), x)
        else:
            attended, self_weights = self._sa_block(x, *self_masks)
            x = self.norm1(_residual(attended, x))
            attended, cross_weights = self._mha_block(x, memory, *memory_masks)
            x = self.norm2(_residual(attended, x))
            x = self.norm3(_residual(self._ff_block(x, self.dropout3), x))
        return (x, self_weights, cross_weights) if need_weights else x

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal, cache=None, need_weights=False):
        """Returns ``(dropout2(multihead_attn(x, memory, memory)), weights)``; weights (B, H, T, S) or None."""
        x, weights = self.multihead_attn(x, memory, memory, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                         need_weights=need_weights, average_attn_weights=False,
                                         is_causal=is_causal, cache=cache)
        return self.dropout2(x), weights

    def _mha_block_backward(self, dout):
        """Returns (dx, dmemory)."""
        # forward: return self.dropout2(x)
        dx = self.dropout2.backward(dout)
        # forward: x = self.multihead_attn(x, memory, memory, ...)[0]
        grads = self.multihead_attn.backward(dx)
        return _input_gradient(grads), _memory_gradient(grads)

    def backward(self, dout):
        """dout (B, T, D) -> (dtgt (B, T, D), dmemory (B, S, D)); adds into every parameter's ``.grad``."""
        # Plainly dx = dsum + dblock, each sum written into the block's own gradient (``_residual``)
        if self.norm_first:
            # forward: x = x + self._ff_block(self.norm3(x))
            dx = _residual(self.norm3.backward(self._ff_block_backward(dout, self.dropout3)), dout)
            # forward: x = x + self._mha_block(self.norm2(x), memory, ...)
            dquery, dmemory = self._mha_block_backward(dx)
            dx = _residual(self.norm2.backward(dquery), dx)
            # forward: x = x + self._sa_block(self.norm1(x), ...)
            dx = _residual(self.norm1.backward(self._sa_block_backward(dx)), dx)
        else:
            # forward: x = self.norm3(x + self._ff_block(x))
            dsum = self.norm3.backward(dout)
            dx = _residual(self._ff_block_backward(dsum, self.dropout3), dsum)
            # forward: x = self.norm2(x + self._mha_block(x, memory, ...))
            dsum = self.norm2.backward(dx)
            dquery, dmemory = self._mha_block_backward(dsum)
            dx = _residual(dquery, dsum)
            # forward: x = self.norm1(x + self._sa_block(x, ...))
            dsum = self.norm1.backward(dx)
            dx = _residual(self._sa_block_backward(dsum), dsum)
        return dx, dmemory


# ---------------------------------------------------------------------------------------------- stacks

class TransformerEncoder(Module):
    """``num_layers`` copies of an encoder layer and an optional final norm (``torch.nn.TransformerEncoder``).

    As in torch, every layer starts as a deep copy of ``encoder_layer``: the same initial weights in each
    (independent parameters from then on). Each copy gets its own dropout random stream.
    ``state_dict`` keys: ``layers.0.self_attn.in_proj_weight`` ..., ``norm.weight``, ``norm.bias``.
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None, rng=None):
        super().__init__()
        _check_stack_args("encoder_layer", encoder_layer, "TransformerEncoderLayer", num_layers, norm)
        self.layers = _clones(encoder_layer, num_layers, seeded_generator(rng))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """src -> memory, both in the layer's layout ((S, B, D), or (B, S, D) with batch_first); the masks are
        passed to every layer."""
        is_causal = _causal_flag("is_causal", is_causal)
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        if self.norm is not None:
            output = self.norm(output)
        return output

    def backward(self, dout):
        """dout -> dsrc, in the layout of src."""
        doutput = dout
        if self.norm is not None:
            # forward: output = self.norm(output)
            doutput = self.norm.backward(doutput)
        for layer in reversed(list(self.layers)):
            # forward: output = layer(output, ...)
            doutput = layer.backward(doutput)
        return doutput


class TransformerDecoder(Module):
    """``num_layers`` copies of a decoder layer and an optional final norm (``torch.nn.TransformerDecoder``).

    Every layer reads the same ``memory``, so :meth:`backward` returns the memory gradient summed over all
    layers. Copies as in :class:`TransformerEncoder`.
    """

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None, rng=None):
        super().__init__()
        _check_stack_args("decoder_layer", decoder_layer, "TransformerDecoderLayer", num_layers, norm)
        self.layers = _clones(decoder_layer, num_layers, seeded_generator(rng))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal: bool = False):
        """tgt, memory -> output in the layout of tgt (the layer's: (T, B, D), or (B, T, D) with batch_first);
        the masks are passed to every layer."""
        tgt_is_causal = _causal_flag("tgt_is_causal", tgt_is_causal)
        memory_is_causal = _causal_flag("memory_is_causal", memory_is_causal)
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            output = self.norm(output)
        return output

    def backward(self, dout):
        """dout (B, T, D) -> (dtgt (B, T, D), dmemory (B, S, D)), dmemory summed over every layer."""
        doutput = dout
        if self.norm is not None:
            # forward: output = self.norm(output)
            doutput = self.norm.backward(doutput)
        dmemory = None
        for layer in reversed(list(self.layers)):
            # forward: output = layer(output, memory, ...); every layer reads the same memory
            doutput, dmemory_layer = layer.backward(doutput)
            dmemory = dmemory_layer if dmemory is None else dmemory + dmemory_layer
        return doutput, dmemory


# ---------------------------------------------------------------------------------------------- model

class Transformer(Module):
    """The encoder-decoder Transformer (``torch.nn.Transformer``).

    ``encoder`` = :class:`TransformerEncoder` with a final ``LayerNorm`` (``encoder.norm``), ``decoder`` =
    :class:`TransformerDecoder` with ``decoder.norm``. After construction every parameter with more than
    one axis is re-drawn Xavier-uniform, as torch's ``_reset_parameters`` does (so the layers no longer
    share their initial weights). There are no embeddings and no output projection: inputs are vectors,
    (S, B, D) and (T, B, D) by default, (B, S, D) and (B, T, D) with ``batch_first=True`` (as in torch), or
    unbatched (S, D) and (T, D); the output has the layout of ``tgt``.
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        check_positive_int("num_encoder_layers", num_encoder_layers)
        check_positive_int("num_decoder_layers", num_decoder_layers)
        generator = seeded_generator(rng)
        layer_args = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                          layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first,
                          bias=bias, dtype=dtype, rng=generator)
        encoder_layer = TransformerEncoderLayer(d_model, nhead, **layer_args)
        encoder_norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.encoder = TransformerEncoder(encoder_layer, num_encoder_layers, encoder_norm, rng=generator)
        decoder_layer = TransformerDecoderLayer(d_model, nhead, **layer_args)
        decoder_norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.decoder = TransformerDecoder(decoder_layer, num_decoder_layers, decoder_norm, rng=generator)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, bool(batch_first)
        self._reset_parameters(generator)

    def _reset_parameters(self, generator) -> None:
        r"""Xavier-uniform for every parameter with more than one axis.

        $U(-b, b)$ with $b = \sqrt{6 / (n_{in} + n_{out})}$, $n$ the fan-in and fan-out.
        """
        for _, param in self.named_parameters():
            if len(param.shape) > 1:
                fan_out, fan_in = param.shape[0], param.shape[1]
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                param.data[...] = generator.uniform(-bound, bound, param.shape).astype(param.dtype)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        """src (S, B, D), tgt (T, B, D) -> (T, B, D); with batch_first (B, S, D), (B, T, D) -> (B, T, D).

        Inputs (torch's):
            src_mask: (S, S) or (B*H, S, S); tgt_mask: (T, T) or (B*H, T, T); memory_mask: (T, S) or
                (B*H, T, S); bool True = may NOT attend, or float added to the scores
            src_key_padding_mask: (B, S); tgt_key_padding_mask: (B, T); memory_key_padding_mask: (B, S);
                bool True = padding, or float added
            src_is_causal, tgt_is_causal, memory_is_causal: with the matching mask None, build the causal mask
        """
        B, _ = _check_sequence("src", src, self.d_model, self.batch_first)
        _check_sequence("tgt", tgt, self.d_model, self.batch_first, batch=B)
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    def backward(self, dout):
        """dout (B, T, D) -> (dsrc (B, S, D), dtgt (B, T, D)); adds into every parameter's ``.grad``."""
        # forward: output = self.decoder(tgt, memory, ...)
        dtgt, dmemory = self.decoder.backward(dout)
        # forward: memory = self.encoder(src, ...)
        dsrc = self.encoder.backward(dmemory)
        return dsrc, dtgt

    @staticmethod
    def generate_square_subsequent_mask(sz: int, dtype=np.float32, device: str = "cpu"):
        """The causal mask as torch builds it: a float (sz, sz) array, ``-inf`` above the diagonal, 0 elsewhere."""
        check_positive_int("sz", sz)
        xp = array_module_for(device)  # built where it will be used: no host-to-device copy
        return xp.triu(xp.full((sz, sz), -xp.inf, dtype=as_dtype(dtype)), k=1)  # (sz, sz)

r"""A GPT-style decoder-only language model: predict each next token from the tokens before it.

Forward (GPT-2's layout, "pre-norm": each block normalizes its input before attention and feed-forward):

$$
\begin{aligned}
x &= \mathrm{dropout}(E[\text{ids}] + P[\text{positions}]) && (B, T) \to (B, T, D) \\
x &= x + \mathrm{SelfAttention}(\mathrm{LN}_1(x), \text{causal}) && \text{per block} \\
x &= x + \mathrm{FeedForward}(\mathrm{LN}_2(x)) && \\
\text{logits} &= \mathrm{LN}_f(x)\, E^\top && (B, T, V)
\end{aligned}
$$

Each block is a :class:`~numpy_transformer.nn.TransformerEncoderLayer` with ``norm_first=True`` and the causal
mask: without a memory to read, an encoder layer that may not look ahead is exactly a GPT block. GPT-2
itself loads into this class (:meth:`GPT.from_pretrained`, see :mod:`numpy_transformer.io.huggingface`): its
blocks use ``activation="gelu_tanh"`` (GPT-2's ``gelu_new``) and have no dropout after the activation,
which is why this model sets that one dropout to 0.

Positions are ``0..T-1`` unless ``position_ids`` say otherwise; an ``attention_mask`` (B, T) (1 = token,
0 = padding) masks the padding out of every attention as a key. When generating, the positions come from
the mask (the number of real tokens before each token), so that a left-padded prompt starts at position 0,
as ``transformers``' ``generate`` does.

Tied weights. The embedding matrix $E$ (V, D) is used twice, as the lookup table and as the output
projection, so its gradient is the sum of the scatter-add from the lookup and $d\mathrm{logits}^\top h$
from the projection (both add into the same ``Parameter.grad``).

Generation. :meth:`GPT.generate` calls :func:`~numpy_transformer.models.generation.generate`, which relies on
two methods (the generation protocol): :meth:`GPT.new_caches` gives one empty
:class:`~numpy_transformer.nn.attention.KVCache` per block, and :meth:`GPT.next_token_logits` runs the new
tokens through the SAME blocks, each reading and extending its cache: a causal model's keys and values at
positions $< t$ do not change when token $t$ is appended, so one step costs $O(t)$, not $O(t^2)$, and gives
the logits of recomputing the whole prefix (tested to 1e-10 in float64).
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, seeded_generator
from ..checks import check_integer, check_ndim, check_positive_int
from ..functional.linear import linear_backward, linear_forward
from ..nn.attention import KVCache
from ..nn.layers import Dropout, Embedding, LayerNorm
from ..nn.module import Module, ModuleList
from ..nn.transformer import TransformerEncoderLayer
from .generation import CausalLM, positions_from_mask
from .outputs import ModelOutput, run_layers

__all__ = ["GPT"]


class GPT(CausalLM, Module):
    """Decoder-only Transformer language model with tied input/output embeddings.

    Inputs:
        vocab_size: V
        d_model, nhead, num_layers, dim_feedforward: D, H, number of blocks, F (default 4D)
        dropout: on the embeddings, the attention weights and each block's two residual branches
            (training mode only)
        max_len: the longest sequence (the learned position table has this many rows)
        activation: ``"gelu"`` (exact), ``"gelu_tanh"`` (GPT-2's ``gelu_new``) or ``"relu"``
        layer_norm_eps: the eps of every LayerNorm
        dtype, rng: parameter dtype and the seed / Generator of the initialisation and dropout

    State dict keys: ``wte.weight`` (V, D), ``wpe.weight`` (max_len, D), ``blocks.{i}.*`` (torch's
    ``TransformerEncoderLayer`` keys), ``ln_f.weight``, ``ln_f.bias``.
    """

    def __init__(self, vocab_size: int, d_model: int = 768, nhead: int = 12, num_layers: int = 12,
                 dim_feedforward: int | None = None, dropout: float = 0.1, max_len: int = 1024,
                 activation: str = "gelu", layer_norm_eps: float = 1e-5, dtype=np.float32, rng=None):
        super().__init__()
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("d_model", d_model)
        check_positive_int("num_layers", num_layers)
        check_positive_int("max_len", max_len)
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        rng = seeded_generator(rng)
        self.vocab_size, self.d_model, self.nhead, self.max_len = vocab_size, d_model, nhead, max_len
        self.wte = Embedding(vocab_size, d_model, dtype=dtype, rng=rng)
        self.wte.weight.data[...] *= 0.02                          # GPT-2's N(0, 0.02^2) initialisation
        self.wpe = Embedding(max_len, d_model, dtype=dtype, rng=rng)
        self.wpe.weight.data[...] *= 0.02
        self.drop = Dropout(dropout, rng=rng)
        self.blocks = ModuleList()
        for _ in range(num_layers):
            block = TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                                            activation=activation, layer_norm_eps=layer_norm_eps,
                                            batch_first=True, norm_first=True, dtype=dtype, rng=rng)
            block.dropout.p = 0.0                                   # GPT-2 has no dropout after the activation
            self.blocks.append(block)
        self.ln_f = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self._head_cache = None
        self._positions_shape = None

    # ----------------------------------------------------------------------------------- forward
    def _check_ids(self, ids, past: int = 0, attention_mask=None) -> None:
        """``ids`` must be integer (B, T) with 1 <= ``past`` + T <= ``max_len``; a mask (B, past + T)."""
        check_integer("ids", ids)
        check_ndim("ids", ids, 2, "(B, T)")
        if ids.shape[1] == 0 or past + ids.shape[1] > self.max_len:
            raise ValueError(f"ids: got {ids.shape[1]} positions after {past}; expected between 1 and "
                             f"max_len = {self.max_len} in all")
        if attention_mask is not None:
            expected = (ids.shape[0], past + ids.shape[1])
            if tuple(attention_mask.shape) != expected:
                raise ValueError(f"attention_mask: got shape {tuple(attention_mask.shape)}; expected {expected} "
                                 "(B, cached + new positions)")

    def _run(self, ids, attention_mask=None, caches=None, output_hidden_states=False, output_attentions=False,
             position_ids=None):
        """The blocks on ``ids`` (B, T) after ``len(caches[0])`` cached positions -> (h, hidden, attentions)."""
        xp = get_array_module(ids)
        past = 0 if caches is None else len(caches[0])
        self._check_ids(ids, past, attention_mask)
        if position_ids is None:
            position_ids = xp.arange(past, past + ids.shape[1])       # (T,)
        elif tuple(position_ids.shape) != tuple(ids.shape):
            raise ValueError(f"position_ids: got shape {tuple(position_ids.shape)}; expected {tuple(ids.shape)}")
        positions = position_ids                                    # (T,) or (B, T)
        x = self.wte(ids) + self.wpe(positions)                     # (B, T, D) + (T, D) or (B, T, D)
        x = self.drop(x)                                            # (B, T, D)
        padding = None if attention_mask is None else attention_mask == 0  # (B, P+T) True = padding
        x, hidden, attentions, _ = run_layers(self.blocks, x, output_hidden_states, output_attentions, caches,
                                              is_causal=True, src_key_padding_mask=padding)  # (B, T, D)
        h = self.ln_f(x)                                            # (B, T, D)
        if hidden is not None:
            hidden[-1] = h                                          # transformers' convention: the last one normed
        self._positions_shape = positions.shape
        return h, hidden, attentions

    def forward(self, ids, attention_mask=None, output_hidden_states: bool = False,
                output_attentions: bool = False, position_ids=None):
        """Next-token scores at every position.

        Inputs:
            ids: int (B, T), T <= max_len
            attention_mask: None, or (B, T) 1 = token, 0 = padding (masked out as keys)
            position_ids: None (0..T-1), or int (B, T)
            output_hidden_states, output_attentions: also return every block's states / attention
                probabilities (see :mod:`numpy_transformer.models.outputs`)

        Returns:
            logits: (B, T, V); ``logits[:, t]`` scores the token at position t + 1. With either flag, a
            :class:`~numpy_transformer.models.outputs.ModelOutput` holding them as ``output``.
        """
        h, hidden, attentions = self._run(ids, attention_mask, None, output_hidden_states, output_attentions,
                                          position_ids)
        logits, self._head_cache = linear_forward(h, self.wte.weight.data)  # (B, T, D) @ (D, V) -> (B, T, V)
        if output_hidden_states or output_attentions:
            return ModelOutput(logits, None if hidden is None else tuple(hidden),
                               None if attentions is None else tuple(attentions))
        return logits

    def backward(self, dlogits):
        """Add every parameter's gradient; token ids have no gradient, so this returns None.

        Inputs:
            dlogits: (B, T, V)
        """
        cache = self._cached("_head_cache")
        # forward: logits = h @ wte.weight^T (the tied output projection)
        learn = self.wte.weight.requires_grad
        dh, dweight, _ = linear_backward(dlogits, cache, need_weight_grad=learn)  # (B, T, D), (V, D)
        if learn:
            self.wte.weight.accumulate_grad(dweight)
        # forward: h = ln_f(x)
        dx = self.ln_f.backward(dh)                                 # (B, T, D)
        # forward: x = block(x, causal mask), block by block
        for block in reversed(list(self.blocks)):
            dx = block.backward(dx)                                 # (B, T, D)
        # forward: x = drop(wte(ids) + wpe(positions))
        dx = self.drop.backward(dx)                                 # (B, T, D)
        if self.wpe.weight.requires_grad:
            # positions (T,) were broadcast over the batch; (B, T) positions were not
            self.wpe.backward(dx.sum(axis=0) if len(self._positions_shape) == 1 else dx)
        if learn:
            self.wte.backward(dx)                                   # the lookup's scatter-add joins dweight
        return None

    # ----------------------------------------------------------------------------------- generation
    def new_caches(self, batch_size: int | None = None) -> list:
        """One empty :class:`~numpy_transformer.nn.attention.KVCache` per block (the generation protocol)."""
        return [KVCache() for _ in self.blocks]

    def next_token_logits(self, ids, caches=None, attention_mask=None):
        """Scores (B, V) of the token after ``ids`` (the generation protocol; inference only).

        Inputs:
            ids: int (B, t): the new tokens when ``caches`` are given (the earlier ones are cached), else the
                whole sequence
            caches: None, or the list from :meth:`new_caches`, extended in place
            attention_mask: None, or (B, cached + t) 1 = token, 0 = padding; the positions are then counted
                over the real tokens (a left-padded prompt starts at 0), as ``transformers``' ``generate``
        """
        past = 0 if caches is None else len(caches[0])
        positions = None if attention_mask is None else positions_from_mask(attention_mask, past)  # (B, t)
        h, _, _ = self._run(ids, attention_mask, caches, position_ids=positions)  # (B, t, D)
        logits, _ = linear_forward(h[:, -1], self.wte.weight.data)  # (B, D) @ (D, V) -> (B, V)
        return logits

    # ----------------------------------------------------------------------------------- pictures
    def attention_weights(self, ids, layer: int = -1, attention_mask=None):
        """Causal self-attention weights (B, H, T, T) of block ``layer`` for the tokens ``ids`` (B, T).

        Runs in eval mode (training mode is restored afterwards); every block's weights at once come from
        ``forward(ids, output_attentions=True).attentions``.
        """
        index = range(len(self.blocks))[layer]
        was_training = self.training
        self.eval()
        try:
            return self.forward(ids, attention_mask, output_attentions=True).attentions[index]
        finally:
            self.train(was_training)

    # ----------------------------------------------------------------------------------- Hugging Face
    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32) -> GPT:
        """A GPT-2 (``GPT2LMHeadModel`` or ``GPT2Model``) from a local Hugging Face folder, in eval mode.

        See :mod:`numpy_transformer.io.huggingface`; nothing is downloaded.
        """
        from ..io.huggingface import load_pretrained

        return load_pretrained(folder, dtype=dtype, model_class=cls)

r"""A GPT-style decoder-only language model: predict each next token from the tokens before it.

Forward (GPT-2's layout, "pre-norm": each block normalizes its input before attention and feed-forward):

    x = E[ids] + P[0:T]                                  (B, T) -> (B, T, D), learned positions
    x = x + SelfAttention(LN1(x), causal mask)           per block, repeated num_layers times
    x = x + FeedForward_gelu(LN2(x))
    h = LN_f(x)                                          (B, T, D)
    logits = h E^T                                       (B, T, V), the output projection IS the embedding

Each block is a :class:`~numpy_transformer.nn.TransformerEncoderLayer` with ``norm_first=True``,
``activation="gelu"`` and the causal mask: without a memory to read, an encoder layer that may not look ahead
is exactly a GPT block.

Tied weights. The embedding matrix $E$ (V, D) is used twice, as the lookup table and as the output
projection, so its gradient is the sum of the scatter-add from the lookup and $d\mathrm{logits}^\top h$ from
the projection (both add into the same ``Parameter.grad``).

Generation with a key/value cache. A causal model's keys and values at positions ``< t`` do not change when
token ``t`` is appended, so decoding one token needs only the new token's query, key and value: per layer,
``q, k, v = LN1(x_new) W_in^T + b_in``, the new ``k, v`` are appended to that layer's cache (B, H, P, Dh),
and the new query attends to all cached keys. The cost of a step is then linear, not quadratic, in the
length so far, and the logits equal those of recomputing the whole prefix (tested to 1e-10 in float64).
``use_cache=False`` recomputes the whole prefix at every step.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, seeded_generator
from ..checks import check_integer, check_ndim, check_positive_int
from ..functional.attention import causal_mask, scaled_dot_product_attention_forward
from ..functional.embedding import embedding_forward
from ..functional.feedforward import feedforward_forward
from ..functional.heads import merge_heads_forward, split_heads_forward
from ..functional.layernorm import layernorm_forward
from ..functional.linear import linear_backward, linear_forward
from ..functional.losses import cross_entropy_backward, cross_entropy_forward
from ..functional.softmax import softmax_forward
from ..nn.layers import Embedding, LayerNorm, PositionalEncoding
from ..nn.module import Module, ModuleList
from ..nn.transformer import TransformerEncoderLayer

__all__ = ["GPT"]


class GPT(Module):
    """Decoder-only Transformer language model with tied input/output embeddings.

    Inputs:
        vocab_size: V
        d_model, nhead, num_layers, dim_feedforward: D, H, number of blocks, F
        dropout: on the embeddings, attention weights, and inside each block (training mode only)
        max_len: the longest sequence (the learned position table has this many rows)
        dtype, rng: parameter dtype and the seed / Generator of the initialisation and dropout

    State dict keys: ``wte.weight`` (V, D), ``wpe.weight`` (max_len, D), ``blocks.{i}.*`` (torch's
    ``TransformerEncoderLayer`` keys), ``ln_f.weight``, ``ln_f.bias``.
    """

    def __init__(self, vocab_size: int, d_model: int = 768, nhead: int = 12, num_layers: int = 12,
                 dim_feedforward: int | None = None, dropout: float = 0.1, max_len: int = 1024,
                 dtype=np.float32, rng=None):
        super().__init__()
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("d_model", d_model)
        check_positive_int("num_layers", num_layers)
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        rng = seeded_generator(rng)
        self.vocab_size, self.d_model, self.nhead, self.max_len = vocab_size, d_model, nhead, max_len
        self.wte = Embedding(vocab_size, d_model, dtype=dtype, rng=rng)
        self.wte.weight.data[...] *= 0.02                          # GPT-2's N(0, 0.02^2) initialisation
        self.wpe = PositionalEncoding(d_model, max_len=max_len, kind="learned", dropout=dropout, dtype=dtype,
                                      rng=rng)
        self.blocks = ModuleList([
            TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                                    activation="gelu", batch_first=True, norm_first=True, dtype=dtype, rng=rng)
            for _ in range(num_layers)
        ])
        self.ln_f = LayerNorm(d_model, dtype=dtype)
        self._head_cache = None

    # ----------------------------------------------------------------------------------- training
    def _check_ids(self, ids, past: int = 0) -> None:
        """``ids`` must be integer (B, T) with 1 <= ``past`` + T <= ``max_len``."""
        check_integer("ids", ids)
        check_ndim("ids", ids, 2, "(B, T)")
        if ids.shape[1] == 0 or past + ids.shape[1] > self.max_len:
            raise ValueError(f"ids: got {ids.shape[1]} positions after {past}; expected between 1 and "
                             f"max_len = {self.max_len} in all")

    def forward(self, ids):
        """Next-token scores at every position.

        Inputs:
            ids: int (B, T), T <= max_len

        Returns:
            logits: (B, T, V); ``logits[:, t]`` scores the token at position t + 1
        """
        self._check_ids(ids)
        xp = get_array_module(ids)
        T = ids.shape[1]
        x = self.wte(ids)                                           # (B, T) -> (B, T, D)
        x = self.wpe(x)                                             # (B, T, D) + (T, D), then dropout
        mask = causal_mask(T, T, xp)                                # (T, T) True = future
        for block in self.blocks:
            x = block(x, src_mask=mask)                             # (B, T, D)
        h = self.ln_f(x)                                            # (B, T, D)
        logits, self._head_cache = linear_forward(h, self.wte.weight.data)  # (B, T, D) @ (D, V) -> (B, T, V)
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
        # forward: x = wpe(x)
        dx = self.wpe.backward(dx)                                  # (B, T, D)
        # forward: x = wte(ids); the lookup's scatter-add joins the projection's gradient
        if learn:
            self.wte.backward(dx)
        return None

    def loss(self, logits, targets, ignore_index: int = -100):
        """Mean next-token cross-entropy and its gradient.

        Inputs:
            logits: (B, T, V) from :meth:`forward`; targets: int (B, T), usually ``ids[:, 1:]`` against
            ``logits[:, :-1]``; positions equal to ``ignore_index`` do not count

        Returns:
            loss: 0-d array; dlogits: (B, T, V)
        """
        loss, cache = cross_entropy_forward(logits, targets, ignore_index=ignore_index)
        return loss, cross_entropy_backward(1.0, cache)

    # ----------------------------------------------------------------------------------- generation
    def _block_step(self, block, x, cache):
        """One block on the new positions ``x`` (B, t, D), reading and extending ``cache`` = [k, v] or [].

        The same arithmetic as the block's forward (pre-norm, gelu), but the attention reads the cached keys
        and values of the earlier positions. Inference only: nothing is kept for a backward pass.
        """
        attn = block.self_attn
        H, D = attn.num_heads, attn.embed_dim
        past = cache[0].shape[2] if cache else 0
        xp = get_array_module(x)
        bias = None if attn.in_proj_bias is None else attn.in_proj_bias.data

        # x = x + SelfAttention(LN1(x))
        h, _ = layernorm_forward(x, block.norm1.weight.data, block.norm1.bias.data, block.norm1.eps)  # (B, t, D)
        qkv, _ = linear_forward(h, attn.in_proj_weight.data, bias)  # (B, t, D) -> (B, t, 3D)
        q, _ = split_heads_forward(qkv[..., :D], H)                 # (B, t, D) -> (B, H, t, Dh)
        k, _ = split_heads_forward(qkv[..., D:2 * D], H)            # (B, H, t, Dh)
        v, _ = split_heads_forward(qkv[..., 2 * D:], H)             # (B, H, t, Dh)
        if cache:
            k = xp.concatenate([cache[0], k], axis=2)               # (B, H, P, Dh) + (B, H, t, Dh) -> (B, H, P+t, Dh)
            v = xp.concatenate([cache[1], v], axis=2)               # (B, H, P+t, Dh)
        cache[:] = [k, v]
        t = x.shape[1]
        # query i sits at absolute position past + i and may see keys j <= past + i
        future = xp.arange(past + t)[None, :] > (past + xp.arange(t))[:, None]  # (t, P+t) True = may NOT attend
        heads, _, _ = scaled_dot_product_attention_forward(q, k, v, mask=future)  # (B, H, t, Dh)
        merged, _ = merge_heads_forward(heads)                      # (B, H, t, Dh) -> (B, t, D)
        out_bias = None if attn.out_proj.bias is None else attn.out_proj.bias.data
        attended, _ = linear_forward(merged, attn.out_proj.weight.data, out_bias)  # (B, t, D)
        x = x + attended                                            # (B, t, D)

        # x = x + FeedForward(LN2(x))
        h, _ = layernorm_forward(x, block.norm2.weight.data, block.norm2.bias.data, block.norm2.eps)  # (B, t, D)
        b1 = None if block.linear1.bias is None else block.linear1.bias.data
        b2 = None if block.linear2.bias is None else block.linear2.bias.data
        fed, _ = feedforward_forward(h, block.linear1.weight.data, b1, block.linear2.weight.data, b2,
                                     activation="gelu")             # (B, t, D)
        return x + fed                                              # (B, t, D)

    def _cached_logits(self, ids, caches, past: int):
        """Logits (B, t, V) of new tokens ``ids`` (B, t) at positions past..past+t-1, extending ``caches``."""
        x, _ = embedding_forward(ids, self.wte.weight.data)         # (B, t) -> (B, t, D)
        x = x + self.wpe.weight.data[past:past + ids.shape[1]]     # (B, t, D) + (t, D)
        for block, cache in zip(self.blocks, caches):
            x = self._block_step(block, x, cache)                   # (B, t, D)
        h, _ = layernorm_forward(x, self.ln_f.weight.data, self.ln_f.bias.data, self.ln_f.eps)  # (B, t, D)
        logits, _ = linear_forward(h, self.wte.weight.data)         # (B, t, D) -> (B, t, V)
        return logits

    @staticmethod
    def _sample(logits, temperature: float, top_k, generator):
        """Draw one token per row of ``logits`` (B, V): argmax when temperature is 0, else a sample."""
        xp = get_array_module(logits)
        if temperature == 0:
            return xp.argmax(logits, axis=-1)                       # (B,)
        scaled = logits / temperature                               # (B, V)
        if top_k is not None and top_k < scaled.shape[-1]:
            kth = xp.sort(scaled, axis=-1)[:, -top_k][:, None]       # (B, 1) the k-th largest score
            scaled = xp.where(scaled < kth, -xp.inf, scaled)         # (B, V) keep the k best
        probs, _ = softmax_forward(scaled, axis=-1)                 # (B, V)
        u = generator.random((probs.shape[0], 1)).astype(probs.dtype)  # (B, 1) uniform in [0, 1)
        # inverse transform: the first token whose cumulative probability exceeds u
        index = (xp.cumsum(probs, axis=-1) <= u).sum(axis=-1)       # (B,)
        return xp.minimum(index, probs.shape[-1] - 1)

    def generate(self, ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None, rng=None,
                 use_cache: bool = True, return_logits: bool = False):
        """Continue each prompt by ``max_new_tokens`` tokens (the whole batch at once).

        Inputs:
            ids: int (B, T0) the prompts
            max_new_tokens: how many tokens to append; T0 + max_new_tokens <= max_len
            temperature: divides the logits before sampling; 0 means greedy (always the most probable)
            top_k: sample only among the k most probable tokens (None: all)
            rng: int seed, Generator or None
            use_cache: decode incrementally with per-layer key/value caches (True) or recompute the whole
                prefix at each step (False); both give the same logits
            return_logits: also return the logits each new token was drawn from

        Returns:
            ids: int (B, T0 + max_new_tokens)
            logits: (B, max_new_tokens, V), only when ``return_logits``
        """
        self._check_ids(ids)
        check_positive_int("max_new_tokens", max_new_tokens)
        if ids.shape[1] + max_new_tokens > self.max_len:
            raise ValueError(f"max_new_tokens: got {max_new_tokens}; expected at most max_len - T0 = "
                             f"{self.max_len - ids.shape[1]}")
        if not isinstance(temperature, (int, float, np.floating)) or temperature < 0:
            raise ValueError(f"temperature: got {temperature!r}; expected a number >= 0")
        if top_k is not None:
            check_positive_int("top_k", top_k)
        xp = get_array_module(ids)
        generator = seeded_generator(rng, xp)
        was_training = self.training
        self.eval()
        try:
            steps = []
            caches = [[] for _ in self.blocks]
            if use_cache:
                last = self._cached_logits(ids, caches, 0)[:, -1]    # (B, V) after the prompt
            else:
                last = self.forward(ids)[:, -1]                      # (B, V)
            for step in range(max_new_tokens):
                steps.append(last)
                token = self._sample(last, temperature, top_k, generator).astype(ids.dtype)  # (B,)
                ids = xp.concatenate([ids, token[:, None]], axis=1)  # (B, T) -> (B, T+1)
                if step == max_new_tokens - 1:
                    break
                if use_cache:
                    last = self._cached_logits(ids[:, -1:], caches, ids.shape[1] - 1)[:, -1]  # (B, V)
                else:
                    last = self.forward(ids)[:, -1]                  # (B, V)
            if return_logits:
                return ids, xp.stack(steps, axis=1)                 # (B, n, V)
            return ids
        finally:
            self.train(was_training)

    # ----------------------------------------------------------------------------------- pictures
    def attention_weights(self, ids, layer: int = -1):
        """Causal self-attention weights (B, H, T, T) of block ``layer`` for the tokens ``ids`` (B, T)."""
        self._check_ids(ids)
        xp = get_array_module(ids)
        was_training = self.training
        self.eval()
        try:
            T = ids.shape[1]
            index = range(len(self.blocks))[layer]
            x = self.wpe(self.wte(ids))                             # (B, T, D)
            mask = causal_mask(T, T, xp)
            for i, block in enumerate(self.blocks):
                if i == index:
                    h = block.norm1(x)                              # (B, T, D)
                    _, weights = block.self_attn(h, h, h, attn_mask=mask, need_weights=True,
                                                 average_attn_weights=False)  # (B, H, T, T)
                    return weights
                x = block(x, src_mask=mask)
        finally:
            self.train(was_training)

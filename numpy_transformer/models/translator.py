r"""An encoder-decoder Transformer that translates one token sequence into another ("Attention Is All You Need").

The source ids ``(B, S)`` and the target ids shifted right ``(B, T)`` (they start with ``bos_id``) are
embedded, scaled by $\sqrt{D}$ (so that the $N(0, 1)$ embeddings and the unit-size sinusoidal positions are of
comparable size), given sinusoidal positions, and passed through the layers of a
:class:`~numpy_transformer.nn.Transformer` (run here layer by layer, the loop of its encoder and decoder written
out, so that each layer's states and attentions can be recorded).
A final Linear (the "generator") turns each decoder output vector into scores over the target vocabulary:

    src   = PE(E_src[src_ids] * sqrt(D))                       (B, S, D)
    tgt   = PE(E_tgt[tgt_in_ids] * sqrt(D))                    (B, T, D)
    h     = Transformer(src, tgt, causal tgt mask, padding masks)  (B, T, D)
    logits = h W_gen^T + b_gen                                 (B, T, V)

Padding. Token ``pad_id`` marks padding in both sequences: the key padding masks ``src_ids == pad_id`` and
``tgt_in_ids == pad_id`` keep every query from attending to a pad token, and the loss ignores targets equal to
``pad_id``. The decoder also gets the causal mask, so position ``t`` sees only target positions ``<= t``.
``bos_id`` must differ from ``pad_id``, since a masked first target token would leave nothing to attend to.

Weight tying (``tie_weights=True``, as in the paper) makes the target embedding and the generator share one
``(V, D)`` Parameter. The state dict then holds it under both names (as torch does), ``parameters()`` lists it
once, and the backward pass adds both gradients into it: the generator's $dW = d\mathrm{logits}^\top h$ and the
embedding's scatter-add of ``d tgt``.

Backward is the forward read upwards: the generator's backward, the decoder's final norm and its layers
in reverse (the memory's gradient summed over every layer that read it), the encoder's norm and layers in
reverse, then each embedding's scale and scatter-add.

Decoding (inference; the model is switched to eval mode for the call and back afterwards):

- Both decoders run the source through the encoder once, then feed the decoder ONE new target token per
  step: each decoder layer keeps a :class:`~numpy_transformer.nn.attention.KVCache` of its self-attention's
  keys and values (:meth:`Seq2SeqTransformer.new_caches`) and a static one of the memory's keys and values
  for its cross-attention, so a step costs O(t), not the O(t^2) of re-running the whole prefix, through the
  same decoder layers that training uses.
- :meth:`Seq2SeqTransformer.greedy_decode` picks the most probable next token for every sequence of the batch
  at once, one decoding step at a time, until every sequence has produced ``eos_id`` or ``max_len`` tokens.
- :meth:`Seq2SeqTransformer.beam_search` keeps the ``beam_width`` best partial translations per source
  sentence. Hypotheses are ranked by their summed log-probability divided by a length penalty ``lp(n)``
  (``n`` = number of generated tokens, EOS included):

  * ``length_penalty_kind="gnmt"`` (Wu et al. 2016, Google's NMT): ``lp(n) = ((5 + n) / 6) ** alpha``
  * ``length_penalty_kind="power"``: ``lp(n) = n ** alpha``

  With ``alpha = length_penalty = 0`` both are 1 and the score is the plain log-probability. A finished
  hypothesis stays in the beam with its score frozen. With ``beam_width=1`` the search is greedy decoding.

Neither decoder ever emits ``pad_id`` (its score is set to ``-inf``): padding is not a word.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module, seeded_generator
from ..checks import check_choice, check_integer, check_ndim, check_positive_int, check_probability
from ..functional.attention import causal_mask
from ..functional.losses import cross_entropy_backward, cross_entropy_forward
from ..functional.softmax import log_softmax_forward
from ..grad_mode import no_grad
from ..nn.attention import KVCache
from ..nn.layers import Embedding, Linear, PositionalEncoding
from ..nn.module import Module
from ..nn.transformer import Transformer
from .outputs import ModelOutput, run_layers

__all__ = ["Seq2SeqTransformer", "length_penalty_factor"]


def length_penalty_factor(lengths, alpha: float, kind: str = "gnmt", dtype=np.float64):
    """The length penalty ``lp(n)`` that divides a hypothesis' summed log-probability.

    Inputs:
        lengths: integer array (...) of generated lengths n >= 1 (EOS counted)
        alpha: the exponent; 0 gives 1 (no penalty)
        kind: ``"gnmt"`` for ``((5 + n) / 6) ** alpha`` (Wu et al. 2016) or ``"power"`` for ``n ** alpha``
        dtype: the float dtype of the result

    Returns:
        lp: float array (...)
    """
    check_choice("kind", kind, ("gnmt", "power"))
    n = lengths.astype(dtype)
    if kind == "gnmt":
        return ((5.0 + n) / 6.0) ** alpha
    return n ** alpha


def _as_tuple(items):
    return None if items is None else tuple(items)


class Seq2SeqTransformer(Module):
    """Encoder-decoder Transformer translator (token ids in, next-token logits out).

    Inputs:
        src_vocab_size, tgt_vocab_size: vocabulary sizes
        d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout, activation,
            norm_first: as in :class:`~numpy_transformer.nn.Transformer`
        max_len: the longest sequence the sinusoidal position table covers
        pad_id: the padding token (masked in attention and ignored by the loss), same id in both vocabularies
        tie_weights: share the target embedding with the generator (needs nothing but equal shapes (V, D))
        label_smoothing: default label smoothing of :meth:`loss`
        dtype, rng: parameter dtype and the seed / Generator of the initialisation and dropout

    State dict keys: ``src_embed.weight``, ``tgt_embed.weight``, ``transformer.*`` (torch's
    ``nn.Transformer`` keys), ``generator.weight``, ``generator.bias``.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, d_model: int = 512, nhead: int = 8,
                 num_encoder_layers: int = 6, num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str = "relu", norm_first: bool = False, max_len: int = 5000,
                 pad_id: int = 0, tie_weights: bool = False, label_smoothing: float = 0.0,
                 dtype=np.float32, rng=None):
        super().__init__()
        check_positive_int("src_vocab_size", src_vocab_size)
        check_positive_int("tgt_vocab_size", tgt_vocab_size)
        check_positive_int("d_model", d_model)
        check_probability("label_smoothing", label_smoothing)
        if not isinstance(pad_id, (int, np.integer)) or not 0 <= pad_id < min(src_vocab_size, tgt_vocab_size):
            raise ValueError(f"pad_id: got {pad_id!r}; expected an id in [0, {min(src_vocab_size, tgt_vocab_size)})")
        rng = seeded_generator(rng)
        self.d_model = d_model
        self.pad_id = int(pad_id)
        self.label_smoothing = float(label_smoothing)
        self.embed_scale = math.sqrt(d_model)  # a Python float: keeps the embeddings' dtype

        self.src_embed = Embedding(src_vocab_size, d_model, padding_idx=pad_id, dtype=dtype, rng=rng)
        self.tgt_embed = Embedding(tgt_vocab_size, d_model, padding_idx=pad_id, dtype=dtype, rng=rng)
        # two position modules (no parameters, each with its dropout): each keeps the cache of its own sequence
        self.src_positional = PositionalEncoding(d_model, max_len=max_len, kind="sinusoidal", dropout=dropout,
                                                 dtype=dtype, rng=rng)
        self.tgt_positional = PositionalEncoding(d_model, max_len=max_len, kind="sinusoidal", dropout=dropout,
                                                 dtype=dtype, rng=rng)
        self.transformer = Transformer(
            d_model=d_model, nhead=nhead, num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers, dim_feedforward=dim_feedforward, dropout=dropout,
            activation=activation, batch_first=True, norm_first=norm_first, dtype=dtype, rng=rng,
        )
        self.generator = Linear(d_model, tgt_vocab_size, dtype=dtype, rng=rng)
        self.tie_weights = bool(tie_weights)
        if self.tie_weights:
            self.generator.weight = self.tgt_embed.weight  # one Parameter, two uses: gradients add

    # ----------------------------------------------------------------------------------- pieces
    def _check_ids(self, name: str, ids, vocab_size: int) -> None:
        """``ids`` must be an integer (B, positions) array with at least one position."""
        check_integer(name, ids)
        check_ndim(name, ids, 2, "(B, positions)")
        if ids.shape[1] == 0:
            raise ValueError(f"{name}: got shape {tuple(ids.shape)}; expected at least one position")

    def _embed(self, ids, embed: Embedding, positional: PositionalEncoding):
        """``dropout(E[ids] * sqrt(D) + PE)``: ids (B, L) -> (B, L, D)."""
        x = embed(ids) * self.embed_scale                           # (B, L) -> (B, L, D)
        return positional(x)                                        # (B, L, D), positions and dropout

    def _embed_backward(self, dx, embed: Embedding, positional: PositionalEncoding) -> None:
        # forward: return positional(x)
        dx = positional.backward(dx)                                # (B, L, D)
        # forward: x = embed(ids) * sqrt(D)
        if embed.weight.requires_grad:
            embed.backward(dx * self.embed_scale)

    def _masks(self, src_ids, tgt_ids):
        xp = get_array_module(src_ids)
        src_padding = src_ids == self.pad_id                         # (B, S) True = padding
        tgt_padding = tgt_ids == self.pad_id                         # (B, T)
        tgt_mask = causal_mask(tgt_ids.shape[1], tgt_ids.shape[1], xp)  # (T, T) True = future
        return src_padding, tgt_padding, tgt_mask

    # ----------------------------------------------------------------------------------- training
    def forward(self, src_ids, tgt_in_ids, output_hidden_states: bool = False, output_attentions: bool = False):
        """Next-token scores for every target position.

        Inputs:
            src_ids: int (B, S) source tokens, padded with ``pad_id``
            tgt_in_ids: int (B, T) target tokens shifted right (``bos_id`` first), padded with ``pad_id``
            output_hidden_states, output_attentions: also return every layer's states / attention
                probabilities (see :mod:`numpy_transformer.models.outputs`: ``encoder_*`` for the encoder,
                ``hidden_states``, ``attentions`` and ``cross_attentions`` for the decoder)

        Returns:
            logits: (B, T, V_tgt), or a :class:`~numpy_transformer.models.outputs.ModelOutput` with either flag
        """
        self._check_ids("src_ids", src_ids, self.src_embed.weight.shape[0])
        self._check_ids("tgt_in_ids", tgt_in_ids, self.tgt_embed.weight.shape[0])
        if src_ids.shape[0] != tgt_in_ids.shape[0]:
            raise ValueError(f"tgt_in_ids: got batch {tgt_in_ids.shape[0]}; expected {src_ids.shape[0]} "
                             "(the batch of src_ids)")
        src_padding, tgt_padding, tgt_mask = self._masks(src_ids, tgt_in_ids)
        src = self._embed(src_ids, self.src_embed, self.src_positional)  # (B, S, D)
        tgt = self._embed(tgt_in_ids, self.tgt_embed, self.tgt_positional)  # (B, T, D)
        # the Transformer's forward, written out layer by layer so that each layer can be recorded
        encoder, decoder = self.transformer.encoder, self.transformer.decoder
        flags = (output_hidden_states, output_attentions)
        memory, enc_hidden, enc_attentions, _ = run_layers(encoder.layers, src, *flags,
                                                           src_key_padding_mask=src_padding)  # (B, S, D)
        memory = encoder.norm(memory)                               # (B, S, D)
        hidden, dec_hidden, dec_attentions, cross = run_layers(
            decoder.layers, tgt, *flags, memory=memory, tgt_mask=tgt_mask, tgt_key_padding_mask=tgt_padding,
            memory_key_padding_mask=src_padding)                    # (B, T, D)
        hidden = decoder.norm(hidden)                               # (B, T, D)
        logits = self.generator(hidden)                             # (B, T, D) -> (B, T, V)
        if output_hidden_states or output_attentions:
            return ModelOutput(logits, hidden_states=_as_tuple(dec_hidden), attentions=_as_tuple(dec_attentions),
                               encoder_hidden_states=_as_tuple(enc_hidden),
                               encoder_attentions=_as_tuple(enc_attentions), cross_attentions=_as_tuple(cross))
        return logits

    def backward(self, dlogits):
        """Add the gradient of every parameter; token ids have no gradient, so this returns None.

        Inputs:
            dlogits: (B, T, V_tgt) gradient of the loss with respect to the logits of the last forward
        """
        encoder, decoder = self.transformer.encoder, self.transformer.decoder
        # forward: logits = generator(hidden)
        dhidden = self.generator.backward(dlogits)                  # (B, T, V) -> (B, T, D)
        # forward: hidden = decoder.norm(hidden)
        dtgt = decoder.norm.backward(dhidden)                       # (B, T, D)
        # forward: hidden = layer(hidden, memory, ...), layer by layer; every layer reads the same memory
        dmemory = None
        for layer in reversed(list(decoder.layers)):
            dtgt, dmemory_layer = layer.backward(dtgt)              # (B, T, D), (B, S, D)
            dmemory = dmemory_layer if dmemory is None else dmemory + dmemory_layer
        # forward: memory = encoder.norm(memory)
        dsrc = encoder.norm.backward(dmemory)                       # (B, S, D)
        # forward: memory = layer(memory, ...), layer by layer
        for layer in reversed(list(encoder.layers)):
            dsrc = layer.backward(dsrc)                             # (B, S, D)
        # forward: tgt = embed(tgt_in_ids), src = embed(src_ids)
        self._embed_backward(dtgt, self.tgt_embed, self.tgt_positional)
        self._embed_backward(dsrc, self.src_embed, self.src_positional)
        return None

    def loss(self, logits, tgt_out_ids, label_smoothing: float | None = None):
        """Mean cross-entropy over non-padding targets, and its gradient.

        Inputs:
            logits: (B, T, V) from :meth:`forward`
            tgt_out_ids: int (B, T) the targets (the target sequence shifted left); ``pad_id`` is ignored
            label_smoothing: overrides the model's default when given

        Returns:
            loss: 0-d array, ``torch.nn.functional.cross_entropy(..., ignore_index=pad_id,
                label_smoothing=...)``
            dlogits: (B, T, V) its gradient, ready for :meth:`backward`
        """
        smoothing = self.label_smoothing if label_smoothing is None else label_smoothing
        loss, cache = cross_entropy_forward(logits, tgt_out_ids, ignore_index=self.pad_id,
                                            label_smoothing=smoothing)
        return loss, cross_entropy_backward(1.0, cache)

    # ----------------------------------------------------------------------------------- inference pieces
    def encode(self, src_ids):
        """The encoder's output: ``memory`` (B, S, D) and the source padding mask (B, S)."""
        self._check_ids("src_ids", src_ids, self.src_embed.weight.shape[0])
        src_padding = src_ids == self.pad_id                         # (B, S)
        src = self._embed(src_ids, self.src_embed, self.src_positional)  # (B, S, D)
        memory = self.transformer.encoder(src, src_key_padding_mask=src_padding)  # (B, S, D)
        return memory, src_padding

    def decode(self, tgt_ids, memory, src_padding):
        """Scores of the next token after each prefix of ``tgt_ids`` (B, T) given ``memory`` (B, S, D)."""
        xp = get_array_module(memory)
        T = tgt_ids.shape[1]
        tgt = self._embed(tgt_ids, self.tgt_embed, self.tgt_positional)  # (B, T, D)
        hidden = self.transformer.decoder(tgt, memory, tgt_mask=causal_mask(T, T, xp),
                                          memory_key_padding_mask=src_padding)  # (B, T, D)
        return self.generator(hidden)                               # (B, T, V)

    def new_caches(self, batch_size: int | None = None) -> list:
        """Per decoder layer, a pair: a :class:`~numpy_transformer.nn.attention.KVCache` for its
        self-attention and a static one for its cross-attention (the memory's keys and values)."""
        return [(KVCache(), KVCache(static=True)) for _ in self.transformer.decoder.layers]

    def _next_log_probs(self, new_tokens, memory, src_padding, caches):
        """Log-probabilities (rows, V) of the token after the cached ones and ``new_tokens`` (rows, t).

        The decoder layers read and extend ``caches`` (from :meth:`new_caches`); inference only.
        """
        past = len(caches[0][0])
        x = self.tgt_embed(new_tokens) * self.embed_scale           # (rows, t) -> (rows, t, D)
        x = self.tgt_positional(x, offset=past)                      # positions past..past+t-1
        for layer, (cache, memory_cache) in zip(self.transformer.decoder.layers, caches, strict=True):
            x = layer(x, memory, memory_key_padding_mask=src_padding, tgt_is_causal=True, cache=cache,
                      memory_cache=memory_cache)                     # (rows, t, D)
        x = self.transformer.decoder.norm(x[:, -1:])                 # (rows, 1, D)
        log_probs, _ = log_softmax_forward(self.generator(x)[:, 0], axis=-1)  # (rows, V)
        return log_probs

    def _inference(self):
        """Switch to eval mode; returns the mode to restore."""
        was_training = self.training
        self.eval()
        return was_training

    def score(self, src_ids, tgt_ids):
        """Summed log-probability of each target ``tgt_ids`` (B, L) given ``src_ids`` (B, S).

        ``tgt_ids`` starts with ``bos_id``; every later token is scored except ``pad_id`` (the padding after
        EOS), so this is the log-probability that :meth:`beam_search` ranks by. Returns float (B,).
        """
        was_training = self._inference()
        try:
            xp = get_array_module(src_ids)
            memory, src_padding = self.encode(src_ids)
            logits = self.decode(tgt_ids[:, :-1], memory, src_padding)  # (B, L-1, V)
            log_probs, _ = log_softmax_forward(logits, axis=-1)       # (B, L-1, V)
            targets = tgt_ids[:, 1:]                                  # (B, L-1)
            picked = xp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # (B, L-1)
            return xp.where(targets == self.pad_id, 0.0, picked).sum(axis=1)  # (B,)
        finally:
            self.train(was_training)

    # ----------------------------------------------------------------------------------- decoding
    def _check_decode_args(self, src_ids, max_len, bos_id, eos_id):
        """The source ids, a positive ``max_len``, and ``bos_id`` / ``eos_id`` in the target vocabulary."""
        self._check_ids("src_ids", src_ids, self.src_embed.weight.shape[0])
        check_positive_int("max_len", max_len)
        vocab = self.tgt_embed.weight.shape[0]
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
            if not isinstance(value, (int, np.integer)) or not 0 <= value < vocab:
                raise ValueError(f"{name}: got {value!r}; expected a token id in [0, {vocab})")
        if bos_id == self.pad_id:
            raise ValueError(f"bos_id: got {bos_id}; expected an id different from pad_id = {self.pad_id}")

    @no_grad()
    def greedy_decode(self, src_ids, max_len: int, bos_id: int, eos_id: int):
        """Translate by always taking the most probable next token (whole batch at once).

        Inputs:
            src_ids: int (B, S)
            max_len: most tokens generated after ``bos_id`` (EOS included)
            bos_id, eos_id: start and end tokens

        Returns:
            ids: int (B, 1 + n) starting with ``bos_id``, n <= max_len; after a sequence's EOS its row holds
            ``pad_id``. Decoding stops as soon as every sequence has produced EOS.
        """
        self._check_decode_args(src_ids, max_len, bos_id, eos_id)
        was_training = self._inference()
        try:
            xp = get_array_module(src_ids)
            B = src_ids.shape[0]
            memory, src_padding = self.encode(src_ids)                # (B, S, D), (B, S)
            tokens = xp.full((B, 1), bos_id, dtype=src_ids.dtype)      # (B, 1)
            finished = xp.zeros(B, dtype=bool)                         # (B,)
            caches = self.new_caches(B)
            for _ in range(max_len):
                log_probs = self._next_log_probs(tokens[:, -1:], memory, src_padding, caches)  # (B, V)
                log_probs[:, self.pad_id] = -xp.inf                    # padding is never generated
                next_token = xp.argmax(log_probs, axis=-1).astype(tokens.dtype)  # (B,)
                next_token = xp.where(finished, self.pad_id, next_token)  # (B,) pad after EOS
                tokens = xp.concatenate([tokens, next_token[:, None]], axis=1)  # (B, t) -> (B, t+1)
                finished = finished | (next_token == eos_id)           # (B,)
                if bool(finished.all()):
                    break
            return tokens
        finally:
            self.train(was_training)

    @no_grad()
    def beam_search(self, src_ids, beam_width: int = 4, max_len: int = 50, length_penalty: float = 0.0,
                    bos_id: int = 1, eos_id: int = 2, length_penalty_kind: str = "gnmt"):
        """Translate by beam search, ``beam_width`` hypotheses per source sentence (whole batch at once).

        At each step every live hypothesis is extended by every token; among the ``K * V`` candidates of a
        sentence the ``K`` with the best score ``log P / lp(n)`` survive (see the module docstring for
        ``lp``). A hypothesis that produced EOS keeps its score and is extended only by ``pad_id`` at no
        cost. The search stops when every hypothesis has finished or ``max_len`` tokens were generated.

        Inputs:
            src_ids: int (B, S) (a single sentence is (1, S))
            beam_width: K >= 1; K = 1 is greedy decoding
            max_len: most tokens generated after ``bos_id``
            length_penalty: alpha >= 0 (0: rank by plain log-probability)
            bos_id, eos_id: start and end tokens
            length_penalty_kind: ``"gnmt"`` ``((5 + n) / 6) ** alpha`` or ``"power"`` ``n ** alpha``

        Returns:
            ids: int (B, 1 + n) the best hypothesis per sentence, ``bos_id`` first, ``pad_id`` after EOS
            scores: float (B,) its score ``log P / lp(n)`` (the plain log-probability when alpha = 0)
        """
        self._check_decode_args(src_ids, max_len, bos_id, eos_id)
        check_positive_int("beam_width", beam_width)
        check_choice("length_penalty_kind", length_penalty_kind, ("gnmt", "power"))
        if not isinstance(length_penalty, (int, float, np.floating, np.integer)) or length_penalty < 0:
            raise ValueError(f"length_penalty: got {length_penalty!r}; expected a number >= 0")
        alpha = float(length_penalty)
        was_training = self._inference()
        try:
            xp = get_array_module(src_ids)
            B, K = src_ids.shape[0], beam_width
            memory, src_padding = self.encode(src_ids)                # (B, S, D), (B, S)
            memory = xp.repeat(memory, K, axis=0)                      # (B, S, D) -> (B*K, S, D)
            src_padding = xp.repeat(src_padding, K, axis=0)            # (B, S) -> (B*K, S)
            tokens = xp.full((B, K, 1), bos_id, dtype=src_ids.dtype)   # (B, K, 1)
            log_p = xp.zeros((B, K), dtype=memory.dtype)               # (B, K) summed log-probabilities
            log_p[:, 1:] = -xp.inf                                     # K identical starts: keep only one
            finished = xp.zeros((B, K), dtype=bool)                    # (B, K)
            lengths = xp.zeros((B, K), dtype=np.int64)                 # (B, K) generated tokens, EOS included
            batch_index = xp.arange(B)[:, None]                        # (B, 1)
            caches = self.new_caches(B * K)
            for _ in range(max_len):
                step = self._next_log_probs(tokens[:, :, -1].reshape(B * K, 1), memory, src_padding,
                                            caches)                    # (B*K, V)
                V = step.shape[-1]
                step = step.reshape(B, K, V)                           # (B*K, V) -> (B, K, V)
                step[..., self.pad_id] = -xp.inf                       # live hypotheses never emit pad
                # a finished hypothesis continues only with pad, at no cost
                step = xp.where(finished[..., None], -xp.inf, step)    # (B, K, V)
                step[..., self.pad_id] = xp.where(finished, 0.0, step[..., self.pad_id])
                candidates = log_p[..., None] + step                   # (B, K, 1) + (B, K, V) -> (B, K, V)
                new_lengths = lengths + (~finished)                    # (B, K)
                penalty = length_penalty_factor(new_lengths, alpha, length_penalty_kind, step.dtype)  # (B, K)
                ranked = (candidates / penalty[..., None]).reshape(B, K * V)  # (B, K*V)
                best = xp.argsort(-ranked, axis=1, kind="stable")[:, :K]  # (B, K) flat candidate indices
                beam, token = best // V, best % V                      # (B, K) each
                log_p = candidates.reshape(B, K * V)[batch_index, best]  # (B, K)
                tokens = xp.concatenate([tokens[batch_index, beam], token[..., None].astype(tokens.dtype)],
                                        axis=2)                        # (B, K, t) -> (B, K, t+1)
                lengths = new_lengths[batch_index, beam]               # (B, K)
                finished = finished[batch_index, beam] | (token == eos_id)  # (B, K)
                if bool(finished.all()):
                    break
                # each surviving hypothesis continues from the cached keys and values of the one it extends;
                # the static memory caches need no reordering (a sentence's K rows hold the same memory)
                rows = (batch_index * K + beam).reshape(B * K)        # (B*K,) rows of the caches to keep
                for cache, _ in caches:
                    cache.reorder(rows)
            penalty = length_penalty_factor(xp.maximum(lengths, 1), alpha, length_penalty_kind, log_p.dtype)
            final = log_p / penalty                                    # (B, K)
            best = xp.argmax(final, axis=1)                            # (B,)
            return tokens[xp.arange(B), best], final[xp.arange(B), best]
        finally:
            self.train(was_training)

    # ----------------------------------------------------------------------------------- pictures
    def cross_attention_weights(self, src_ids, tgt_in_ids, layer: int = -1):
        """The cross-attention weights of one decoder layer (default the last), per head.

        Runs the model in eval mode on ``src_ids`` (B, S) and ``tgt_in_ids`` (B, T) and returns the weights
        (B, H, T, S) with which each target position of decoder layer ``layer`` reads the source tokens
        (each row sums to 1 over the non-padding source tokens). Average over axis 1 for one picture per
        sentence. Every layer's at once: ``forward(..., output_attentions=True).cross_attentions``.
        """
        index = range(len(self.transformer.decoder.layers))[layer]
        was_training = self._inference()
        try:
            return self.forward(src_ids, tgt_in_ids, output_attentions=True).cross_attentions[index]
        finally:
            self.train(was_training)

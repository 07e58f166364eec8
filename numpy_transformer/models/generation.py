r"""Generation: continue a prompt one token at a time, for every decoder-only model, with one loop.

**The protocol.** A model can be generated from when it has

- ``new_caches(batch_size)``: a list of fresh, empty caches, one per attention layer (usually one
  :class:`~numpy_transformer.nn.attention.KVCache` each);
- ``next_token_logits(ids, caches=None, attention_mask=None)``: the scores (B, V) of the token that follows.
  With ``caches`` the ids (B, t) are only the NEW tokens: the P tokens before them are already in the
  caches (P = ``len(caches[0])``, the position of the first new token), and the call appends the new
  tokens' keys and values. With ``caches=None`` the ids are the whole sequence, recomputed from scratch.
  ``attention_mask`` (B, P + t), 1 = token and 0 = padding, covers everything seen so far (prompts of
  different lengths are padded on the LEFT, so that every row's next token goes in the same column);
  the model derives its positions from it (position = number of real tokens before, as ``transformers``);
- ``max_len``: the longest sequence it can see, or None.

:class:`~numpy_transformer.models.gpt.GPT` (and so every GPT-2 loaded into it) and
:class:`~numpy_transformer.models.llama.LlamaForCausalLM` (rotary positions applied to the keys before they are
cached, fewer key/value heads) follow the protocol; a new decoder family only has to provide the same three
things to be generated from by :func:`generate`. :class:`CausalLM` gives such a model its ``generate`` method
and its next-token ``loss``.

**Choosing the next token** from the scores ``z`` (B, V), in this order (``transformers``' order):

1. temperature: ``z / tau``; ``tau = 0`` means greedy, ``argmax z`` (ties: the lowest id);
2. top-k: keep the k highest scores, set the others to ``-inf``;
3. top-p (nucleus): sort the probabilities ``p = softmax(z)`` from high to low and keep the smallest
   prefix whose mass reaches p: token i survives when the mass strictly before it is below p;
4. sample from ``softmax`` of what is left, by inverse transform: draw ``u ~ U[0, 1)`` and take the first
   token whose cumulative probability exceeds ``u``.

``eos_token_id``: a sequence that produced it is finished and continues with ``pad_token_id`` (the EOS id
when no pad is given); generation stops when every sequence is finished, as ``transformers`` does.

Decoding runs under ``no_grad()`` (as ``transformers``' ``generate`` runs under ``torch.no_grad()``): nothing
is differentiated through it, so no layer keeps the caches of a backward pass.

Shapes: B sequences, T0 prompt positions, V vocabulary.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, seeded_generator
from ..checks import check_float, check_integer, check_ndim, check_positive_int
from ..functional.losses import cross_entropy_backward, cross_entropy_forward
from ..functional.softmax import softmax_forward
from ..grad_mode import no_grad

__all__ = ["generate", "sample_next_token", "filter_logits", "positions_from_mask"]


def positions_from_mask(attention_mask, past: int = 0):
    """The positions (B, T) of the last T columns of ``attention_mask`` (B, P+T): the real tokens before each.

    A left-padded row then starts at position 0 at its first real token, as ``transformers``' ``generate``
    counts (``cumsum(mask) - 1``, padding at 0). A model of the protocol calls it in ``next_token_logits``.

    Inputs:
        attention_mask: (B, P+T) 1 = token, 0 = padding; past: P, the positions already in the caches

    Returns:
        positions: int (B, T)
    """
    xp = get_array_module(attention_mask)
    real = attention_mask != 0                                   # (B, P+T)
    counted = xp.cumsum(real, axis=1) - 1                        # (B, P+T) real tokens before each
    return xp.where(real, counted, 0)[:, past:]                  # (B, T); padding sits at position 0


def _check_sampling(temperature, top_k, top_p) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)) \
            or temperature < 0:
        raise ValueError(f"temperature: got {temperature!r}; expected a number >= 0 (0 = greedy)")
    if top_k is not None:
        check_positive_int("top_k", top_k)
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float, np.floating))
                              or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p: got {top_p!r}; expected None or a probability in (0, 1]")


def filter_logits(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None):
    """Scores ready for sampling: divided by the temperature, with the tokens top-k / top-p drop set to -inf.

    Inputs:
        logits: (B, V) float; temperature > 0; top_k: None or k >= 1; top_p: None or p in (0, 1]

    Returns:
        scores: (B, V), a new array
    """
    check_float("logits", logits)
    check_ndim("logits", logits, 2, "(B, V)")
    _check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        raise ValueError("temperature: got 0; expected > 0 here (0 means greedy: take the argmax)")
    xp = get_array_module(logits)
    minus_inf = xp.asarray(-np.inf, dtype=logits.dtype)
    scores = logits / logits.dtype.type(temperature)             # (B, V)
    V = scores.shape[-1]
    if top_k is not None and top_k < V:
        kth = xp.sort(scores, axis=-1)[:, V - top_k][:, None]    # (B, 1) the k-th highest score
        scores = xp.where(scores < kth, minus_inf, scores)       # (B, V) ties with the k-th stay
    if top_p is not None and top_p < 1.0:
        descending = -xp.sort(-scores, axis=-1)                  # (B, V) high to low
        probs, _ = softmax_forward(descending, axis=-1)          # (B, V)
        before = xp.cumsum(probs, axis=-1) - probs               # (B, V) mass strictly before each token
        kept = (before < top_p).sum(axis=-1, keepdims=True)      # (B, 1) >= 1: the first is always kept
        lowest = xp.take_along_axis(descending, kept - 1, axis=-1)  # (B, 1) the lowest score kept
        scores = xp.where(scores < lowest, minus_inf, scores)    # (B, V)
    return scores


def sample_next_token(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                      generator=None):
    """One token per row of ``logits`` (B, V): the argmax when ``temperature`` is 0, else a draw.

    Inputs:
        logits: (B, V); temperature, top_k, top_p: see the module docstring
        generator: a Generator of the logits' array module (used only when sampling)

    Returns:
        tokens: int (B,)
    """
    check_float("logits", logits)
    check_ndim("logits", logits, 2, "(B, V)")
    _check_sampling(temperature, top_k, top_p)
    xp = get_array_module(logits)
    if temperature == 0:
        return xp.argmax(logits, axis=-1)                        # (B,)
    scores = filter_logits(logits, temperature, top_k, top_p)    # (B, V)
    probs, _ = softmax_forward(scores, axis=-1)                  # (B, V); dropped tokens have 0
    cumulative = xp.cumsum(probs, axis=-1)                       # (B, V)
    u = generator.random((probs.shape[0], 1)).astype(probs.dtype)  # (B, 1) in [0, 1)
    u *= cumulative[:, -1:]                                      # the total may round below 1
    index = (cumulative <= u).sum(axis=-1)                       # (B,) the first token whose cumulative exceeds u
    return xp.minimum(index, probs.shape[-1] - 1)


def _check_generate_args(model, ids, max_new_tokens, attention_mask, eos_token_id, pad_token_id) -> None:
    for name in ("new_caches", "next_token_logits"):
        if not callable(getattr(model, name, None)):
            raise TypeError(f"model: got {type(model).__name__}, which has no {name}(); expected a decoder that "
                            "follows the generation protocol (new_caches, next_token_logits, max_len)")
    check_integer("ids", ids)
    check_ndim("ids", ids, 2, "(B, T0)")
    if ids.shape[1] == 0:
        raise ValueError(f"ids: got shape {tuple(ids.shape)}; expected at least one prompt token per row")
    check_positive_int("max_new_tokens", max_new_tokens)
    limit = getattr(model, "max_len", None)
    if limit is not None and ids.shape[1] + max_new_tokens > limit:
        raise ValueError(f"max_new_tokens: got {max_new_tokens}; expected at most max_len - T0 = "
                         f"{limit - ids.shape[1]} (the model sees at most {limit} positions)")
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(ids.shape):
        raise ValueError(f"attention_mask: got shape {tuple(attention_mask.shape)}; expected {tuple(ids.shape)} "
                         "(the shape of ids)")
    for name, value in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise TypeError(f"{name}: got {value!r}; expected an int token id or None")


@no_grad()
def generate(model, ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, rng=None, attention_mask=None, eos_token_id: int | None = None,
             pad_token_id: int | None = None, use_cache: bool = True, return_logits: bool = False):
    """Continue each prompt of ``ids`` by up to ``max_new_tokens`` tokens, the whole batch at once.

    Inputs:
        model: a decoder following the protocol of the module docstring
        ids: int (B, T0) the prompts (left-padded when their lengths differ, with ``attention_mask``)
        max_new_tokens: how many tokens to append
        temperature: 0 for greedy decoding, else the sampling temperature
        top_k, top_p: sample only among the k best / within the nucleus of mass p (None: no limit)
        rng: int seed, Generator or None (sampling only)
        attention_mask: None, or (B, T0) 1 = token, 0 = padding
        eos_token_id, pad_token_id: stop a sequence at EOS and fill it with pad afterwards
        use_cache: decode with the per-layer key/value caches (True) or recompute the whole sequence at every
            step (False); both give the same tokens and logits
        return_logits: also return the scores each new token was chosen from

    Returns:
        ids: int (B, T0 + n), n <= max_new_tokens (fewer only when every sequence has ended with EOS)
        logits: (B, n, V), only when ``return_logits``
    """
    _check_generate_args(model, ids, max_new_tokens, attention_mask, eos_token_id, pad_token_id)
    _check_sampling(temperature, top_k, top_p)
    xp = get_array_module(ids)
    generator = seeded_generator(rng, xp) if temperature > 0 else None
    if eos_token_id is not None and pad_token_id is None:
        pad_token_id = eos_token_id
    was_training = model.training
    model.eval()
    try:
        B = ids.shape[0]
        caches = model.new_caches(B) if use_cache else None
        mask = attention_mask
        logits = model.next_token_logits(ids, caches, mask)     # (B, V) after the prompt
        finished = xp.zeros(B, dtype=bool) if eos_token_id is not None else None  # (B,)
        chosen_from = []
        for step in range(max_new_tokens):
            chosen_from.append(logits)
            token = sample_next_token(logits, temperature, top_k, top_p, generator).astype(ids.dtype)  # (B,)
            if finished is not None:
                token = xp.where(finished, ids.dtype.type(pad_token_id), token)  # (B,) pad after EOS
                finished = finished | (token == eos_token_id)
            ids = xp.concatenate([ids, token[:, None]], axis=1)  # (B, T) -> (B, T+1)
            if mask is not None:
                mask = xp.concatenate([mask, xp.ones((B, 1), dtype=mask.dtype)], axis=1)  # (B, T+1)
            if step == max_new_tokens - 1 or (finished is not None and bool(finished.all())):
                break
            new = ids[:, -1:] if use_cache else ids              # (B, 1) with caches, else (B, T+1)
            logits = model.next_token_logits(new, caches, mask)  # (B, V)
        if return_logits:
            return ids, xp.stack(chosen_from, axis=1)            # (B, n, V)
        return ids
    finally:
        model.train(was_training)


class CausalLM:
    """What every decoder-only model here shares on top of the protocol above, which each writes for its own
    layers: the next-token loss and :meth:`generate`. A base class of GPT and LlamaForCausalLM."""

    def loss(self, logits, targets, ignore_index: int = -100):
        """Mean next-token cross-entropy and its gradient.

        Inputs:
            logits: (B, T, V) from ``forward``; targets: int (B, T), usually ``ids[:, 1:]`` against
            ``logits[:, :-1]``; positions equal to ``ignore_index`` do not count

        Returns:
            loss: 0-d array; dlogits: (B, T, V)
        """
        loss, cache = cross_entropy_forward(logits, targets, ignore_index=ignore_index)
        return loss, cross_entropy_backward(1.0, cache)

    def generate(self, ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, rng=None, attention_mask=None, eos_token_id: int | None = None,
                 pad_token_id: int | None = None, use_cache: bool = True, return_logits: bool = False):
        """Continue each prompt; see :func:`generate` (temperature 0: greedy; ``use_cache=False`` recomputes
        the whole prefix at every step, for comparison)."""
        return generate(self, ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, rng=rng,
                        attention_mask=attention_mask, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                        use_cache=use_cache, return_logits=return_logits)

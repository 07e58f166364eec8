r"""A Llama-style decoder-only language model: today's decoder block, stacked, with a hand-written backward.

Forward (Hugging Face's ``LlamaForCausalLM``; every block a :class:`~numpy_transformer.nn.LlamaDecoderLayer`):

$$
\begin{aligned}
x &= E[\text{ids}] && (B, T) \to (B, T, D) \text{, no position vector} \\
x &= x + \mathrm{GQA}(\mathrm{RMSNorm}_1(x), \text{causal, RoPE}) && \text{per block} \\
x &= x + \mathrm{SwiGLU}(\mathrm{RMSNorm}_2(x)) && \\
\text{logits} &= \mathrm{RMSNorm}_f(x)\, W^\top && (B, T, V)
\end{aligned}
$$

where $W$ is ``lm_head.weight`` (V, D), or the embedding table $E$ itself when the output is tied
(``tie_word_embeddings``). Set beside :class:`~numpy_transformer.models.gpt.GPT` (GPT-2's block, the 2017
Transformer made pre-norm), the differences are all inside the block: positions enter as rotations of the
queries and keys (so the model has no table of positions and no longest sequence), RMSNorm replaces
LayerNorm, the feed-forward is gated, key/value heads are shared by groups of query heads, and nothing has a
bias.

**Names.** :class:`LlamaForCausalLM` holds ``model`` (:class:`LlamaModel`: ``embed_tokens``, ``layers``,
``norm``) and ``lm_head``, so every ``state_dict`` key is the one ``transformers`` writes
(``model.layers.0.self_attn.q_proj.weight`` ...), and :mod:`numpy_transformer.io.huggingface` copies the
tensors of a folder without renaming any. A tied model has no ``lm_head`` (``save_pretrained`` writes none).

**Backward** is the forward read upwards: the output projection (its weight gradient $d\text{logits}^\top h$),
the final norm, the blocks in reverse, then the lookup's scatter-add into $E$. When the output is tied, $E$
receives both, the scatter-add and the projection's gradient, summed in its one ``.grad``. Frozen parts are not
visited: the backward stops at the lowest block that still learns (or at the embedding).

**Decoding and positions.** Each block's attention keeps one
:class:`~numpy_transformer.nn.attention.KVCache` of its keys AFTER their rotation, so a cached key never has
to be turned again; the new tokens are rotated at positions ``len(cache)`` onwards. ``generate`` works
unchanged through :meth:`LlamaForCausalLM.new_caches` and :meth:`LlamaForCausalLM.next_token_logits` (the
protocol of :mod:`numpy_transformer.models.generation`); with an ``attention_mask`` the positions are counted
over each row's real tokens, as ``transformers``' ``generate`` does. (Since RoPE makes every score depend only
on the distance between two positions, shifting a whole row changes nothing: counting the padding or not gives
the same logits, up to rounding.)

Shapes: B batch, T positions, D hidden size, H query heads, Hkv key/value heads, Dh head width, F
intermediate size, V vocabulary.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..backend import seeded_generator
from ..checks import check_integer, check_ndim, check_probability
from ..functional.linear import linear_backward, linear_forward
from ..nn.attention import KVCache
from ..nn.layers import Embedding, Linear
from ..nn.modern import LlamaDecoderLayer, RMSNorm
from ..nn.module import Module, ModuleList
from .generation import CausalLM, positions_from_mask
from .outputs import ModelOutput, run_layers

__all__ = ["LlamaConfig", "LlamaModel", "LlamaForCausalLM"]


# ---------------------------------------------------------------------------------------------- config

#: config.json keys whose presence asks for something this library does not compute, and why
_REFUSED_KEYS = {
    "quantization_config": "quantized weights are not supported; save the model unquantized",
}


def _rope_settings(values: dict) -> float:
    """The RoPE base of a config dict; refuses any setting that would rotate differently (naming the key).

    ``transformers`` 5 writes ``rope_parameters = {"rope_type": "default", "rope_theta": ...}``; older folders
    have ``rope_theta`` and ``rope_scaling`` (null) at the top level. Both are read.
    """
    theta = values.get("rope_theta")
    scaling = values.get("rope_scaling")
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else scaling
        if kind != "default" or set(scaling) - {"rope_type", "type", "rope_theta"}:
            raise ValueError(f"rope_scaling: got {scaling!r}; expected null (rotary embeddings with scaled or "
                             "interpolated frequencies, such as Llama 3's or YaRN, are not computed here)")
        theta = scaling.get("rope_theta", theta)
    parameters = values.get("rope_parameters")
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise ValueError(f"rope_parameters: got {parameters!r}; expected an object with rope_type and rope_theta")
        kind = parameters.get("rope_type", "default")
        if kind != "default":
            raise ValueError(f"rope_parameters.rope_type: got {kind!r}; expected 'default' (rotary embeddings with "
                             "scaled or interpolated frequencies, such as Llama 3's or YaRN, are not computed here)")
        extra = sorted(set(parameters) - {"rope_type", "rope_theta"})
        if extra:
            raise ValueError(f"rope_parameters.{extra[0]}: got {parameters[extra[0]]!r}; expected no such setting "
                             "(only the default rotary embedding with rope_theta is computed here)")
        theta = parameters.get("rope_theta", theta)
    partial = values.get("partial_rotary_factor")
    if partial is not None and partial != 1.0:
        raise ValueError(f"partial_rotary_factor: got {partial!r}; expected 1.0 (every feature of a head rotates)")
    return 10000.0 if theta is None else theta


@dataclass
class LlamaConfig:
    """The numbers that fix a Llama's shape: the fields of a Hugging Face ``LlamaConfig`` that matter here.

    The defaults are ``transformers``' (Llama 2 7B's sizes). ``num_key_value_heads`` None means H (multi-head
    attention); ``head_dim`` None means D / H.
    """

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    tie_word_embeddings: bool = False
    pad_token_id: int | None = None

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and isinstance(self.num_attention_heads, (int, np.integer)) \
                and self.num_attention_heads > 0:
            self.head_dim = self.hidden_size // self.num_attention_heads
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "max_position_embeddings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: got {value!r}; expected a positive integer")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_key_value_heads: got {self.num_key_value_heads}; expected a divisor of "
                             f"num_attention_heads = {self.num_attention_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim: got {self.head_dim}; expected an even head width (RoPE rotates pairs)")
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act: got {self.hidden_act!r}; expected 'silu' (the SwiGLU block of Llama; "
                             "other gates are not computed here)")
        for name in ("rms_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name}: got {value!r}; expected a number >= 0")
        if isinstance(self.rope_theta, bool) or not isinstance(self.rope_theta, (int, float)) \
                or not self.rope_theta > 0:
            raise ValueError(f"rope_theta: got {self.rope_theta!r}; expected a positive number")
        check_probability("attention_dropout", self.attention_dropout)
        for name in ("attention_bias", "mlp_bias", "tie_word_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: got {getattr(self, name)!r}; expected true or false")
        if self.pad_token_id is not None and (isinstance(self.pad_token_id, bool)
                                              or not isinstance(self.pad_token_id, (int, np.integer))
                                              or not 0 <= self.pad_token_id < self.vocab_size):
            raise ValueError(f"pad_token_id: got {self.pad_token_id!r}; expected None or an id in "
                             f"[0, {self.vocab_size})")

    @classmethod
    def from_dict(cls, values: dict) -> LlamaConfig:
        """The config of a ``config.json`` dict. Unknown keys that change nothing computed (``architectures``,
        ``bos_token_id``, ``dtype``, ``pretraining_tp`` ...) are ignored; a setting this library would compute
        differently (rope scaling, another activation, quantization) is refused with its key named."""
        for key, why in _REFUSED_KEYS.items():
            if values.get(key) is not None:
                raise ValueError(f"{key}: got {values[key]!r}; {why}")
        known = {f.name for f in fields(cls)} - {"rope_theta"}
        chosen = {k: v for k, v in values.items() if k in known}
        return cls(**chosen, rope_theta=_rope_settings(values))

    def to_dict(self) -> dict:
        return asdict(self)


def _initialize(model: Module, std: float, generator) -> None:
    """Hugging Face's initialization: every linear weight and the embedding N(0, std), biases 0, norms 1."""
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.data[...] = 0
        elif "norm" not in name:
            param.data[...] = (std * generator.standard_normal(param.shape)).astype(param.dtype)


def _learns(module: Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


# ---------------------------------------------------------------------------------------------- models

class LlamaModel(Module):
    """The Llama decoder without its output projection (Hugging Face's ``LlamaModel``).

    Inputs:
        config: a :class:`LlamaConfig`
        dtype: parameter dtype (float32; float64 for gradient checks)
        rng: int seed, Generator or None: the initial weights (N(0, initializer_range)) and attention dropout

    Sub-modules (Hugging Face's keys): ``embed_tokens`` (V, D) (with ``padding_idx = pad_token_id``),
    ``layers.{i}`` (:class:`~numpy_transformer.nn.LlamaDecoderLayer`), ``norm`` (the final RMSNorm).
    """

    def __init__(self, config: LlamaConfig, dtype=np.float32, rng=None):
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config: got {type(config).__name__}; expected a LlamaConfig")
        generator = seeded_generator(rng)
        self.config = config
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id,
                                      dtype=dtype, rng=generator)
        self.layers = ModuleList([
            LlamaDecoderLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                              config.num_key_value_heads, head_dim=config.head_dim, rope_theta=config.rope_theta,
                              rms_norm_eps=config.rms_norm_eps, attention_bias=config.attention_bias,
                              mlp_bias=config.mlp_bias, attention_dropout=config.attention_dropout, dtype=dtype,
                              rng=generator)
            for _ in range(config.num_hidden_layers)])
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, dtype=dtype)
        _initialize(self, config.initializer_range, generator)
        if config.pad_token_id is not None:
            self.embed_tokens.weight.data[config.pad_token_id] = 0
        self._cache = None

    def _check_ids(self, ids, past: int, attention_mask) -> None:
        """``ids`` integer (B, T), T >= 1; a mask (B, past + T)."""
        check_integer("input_ids", ids)
        check_ndim("input_ids", ids, 2, "(B, T)")
        if ids.shape[1] == 0:
            raise ValueError(f"input_ids: got shape {tuple(ids.shape)}, no positions; expected T >= 1 tokens")
        if attention_mask is not None:
            expected = (ids.shape[0], past + ids.shape[1])
            if tuple(attention_mask.shape) != expected:
                raise ValueError(f"attention_mask: got shape {tuple(attention_mask.shape)}; expected {expected} "
                                 "(B, cached + new positions)")

    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states: bool = False,
                output_attentions: bool = False, *, caches: list | None = None):
        """The final normed hidden states (Hugging Face's ``last_hidden_state``).

        Inputs:
            input_ids: int (B, T)
            attention_mask: None, or (B, P+T) 1 = token, 0 = padding (masked out as keys)
            position_ids: None (``P..P+T-1``), or int (T,) or (B, T): the positions the rotations use
            output_hidden_states, output_attentions: also return every block's states / attention
                probabilities (see :mod:`numpy_transformer.models.outputs`)
            caches: None, or one :class:`~numpy_transformer.nn.attention.KVCache` per block holding P earlier
                positions (decoding, inference only): ``input_ids`` are then only the new tokens

        Returns:
            hidden: (B, T, D); with either flag a :class:`~numpy_transformer.models.outputs.ModelOutput`
        """
        past = 0 if caches is None else len(caches[0])
        self._check_ids(input_ids, past, attention_mask)
        padding = None if attention_mask is None else attention_mask == 0  # (B, P+T) True = padding
        x = self.embed_tokens(input_ids)                            # (B, T) -> (B, T, D)
        x, hidden, attentions, _ = run_layers(self.layers, x, output_hidden_states, output_attentions, caches,
                                              key_padding_mask=padding, position_ids=position_ids)  # (B, T, D)
        h = self.norm(x)                                            # (B, T, D)
        self._cache = caches is None                                # decoding with caches keeps nothing for backward
        if output_hidden_states or output_attentions:
            if hidden is not None:
                hidden[-1] = h                                      # transformers' convention: the last one normed
            return ModelOutput(h, None if hidden is None else tuple(hidden),
                               None if attentions is None else tuple(attentions))
        return h

    def backward(self, dhidden):
        """dhidden (B, T, D) -> None; adds into the ``.grad`` of every parameter that learns.

        Blocks below the lowest one that learns (and the embedding, when frozen) are not visited at all.
        """
        if not self.__dict__.get("_cache"):
            raise RuntimeError("LlamaModel.backward: called before forward (or after decoding with caches, which "
                               "is inference only); run forward first")
        layers = list(self.layers)
        embedding_learns = _learns(self.embed_tokens)
        learning = [i for i, layer in enumerate(layers) if _learns(layer)]
        lowest = 0 if embedding_learns else (learning[0] if learning else len(layers))
        # forward: h = norm(x)
        dx = self.norm.backward(dhidden)                            # (B, T, D)
        for index in range(len(layers) - 1, lowest - 1, -1):
            # forward: x = layer(x, key_padding_mask=padding, position_ids=position_ids)
            dx = layers[index].backward(dx)                         # (B, T, D)
        if embedding_learns:
            # forward: x = embed_tokens(input_ids): a scatter-add into the rows that were read
            self.embed_tokens.backward(dx)
        return None

    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32) -> LlamaModel:
        """A ``LlamaModel`` from a local Hugging Face folder (of a ``LlamaModel`` or the decoder of a
        ``LlamaForCausalLM``), in eval mode; see :mod:`numpy_transformer.io.huggingface`."""
        from ..io.huggingface import load_pretrained

        return load_pretrained(folder, dtype=dtype, model_class=cls)


class LlamaForCausalLM(CausalLM, Module):
    """A Llama decoder with its output projection: next-token scores (Hugging Face's ``LlamaForCausalLM``).

    Inputs:
        config: a :class:`LlamaConfig` (``tie_word_embeddings``: the output projection is ``embed_tokens``)
        dtype, rng: parameter dtype; the seed / Generator of the initialization and dropout

    Sub-modules: ``model`` (:class:`LlamaModel`) and, when not tied, ``lm_head`` (V, D) without bias.
    ``max_len`` is None: rotary positions have no table, so no sequence is too long to compute (the config's
    ``max_position_embeddings`` says how long the sequences were in training).
    """

    max_len = None

    def __init__(self, config: LlamaConfig, dtype=np.float32, rng=None):
        super().__init__()
        generator = seeded_generator(rng)
        self.config = config
        self.model = LlamaModel(config, dtype=dtype, rng=generator)
        if not config.tie_word_embeddings:
            self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False, dtype=dtype, rng=generator)
            _initialize(self.lm_head, config.initializer_range, generator)
        self._head_cache = None

    @property
    def output_weight(self):
        """The (V, D) Parameter of the output projection: ``lm_head.weight``, or ``embed_tokens.weight`` if tied."""
        return self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight

    @property
    def num_layers(self) -> int:
        return len(self.model.layers)

    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states: bool = False,
                output_attentions: bool = False):
        """Next-token scores at every position.

        Inputs: as :meth:`LlamaModel.forward`.

        Returns:
            logits: (B, T, V); ``logits[:, t]`` scores the token at position t + 1. With either flag, a
            :class:`~numpy_transformer.models.outputs.ModelOutput` holding them as ``output``.
        """
        record = output_hidden_states or output_attentions
        out = self.model(input_ids, attention_mask, position_ids, output_hidden_states, output_attentions)
        h = out.output if record else out                            # (B, T, D)
        logits, self._head_cache = linear_forward(h, self.output_weight.data)  # (B, T, D) @ (D, V) -> (B, T, V)
        if record:
            out.output = logits
            return out
        return logits

    def backward(self, dlogits):
        """Add every learning parameter's gradient; token ids have no gradient, so this returns None.

        Inputs:
            dlogits: (B, T, V)
        """
        cache = self.__dict__.get("_head_cache")
        if cache is None:
            raise RuntimeError("LlamaForCausalLM.backward: called before forward (or after next_token_logits, "
                               "decoding, which is inference only); run forward first")
        weight = self.output_weight
        # forward: logits = h @ W^T, W = lm_head.weight (or embed_tokens.weight, tied)
        dh, dweight, _ = linear_backward(dlogits, cache, need_weight_grad=weight.requires_grad)  # (B, T, D), (V, D)
        if weight.requires_grad:
            weight.accumulate_grad(dweight)                         # tied: the lookup's scatter-add joins it below
        # forward: h = model(input_ids, ...)
        self.model.backward(dh)
        return None

    # ----------------------------------------------------------------------------------- generation
    def new_caches(self, batch_size: int | None = None) -> list:
        """One empty :class:`~numpy_transformer.nn.attention.KVCache` per block (the generation protocol)."""
        return [KVCache() for _ in self.model.layers]

    def next_token_logits(self, ids, caches=None, attention_mask=None):
        """Scores (B, V) of the token after ``ids`` (the generation protocol; inference only).

        Inputs:
            ids: int (B, t): the new tokens when ``caches`` are given (the earlier ones are cached, their keys
                already rotated), else the whole sequence
            caches: None, or the list from :meth:`new_caches`, extended in place
            attention_mask: None, or (B, cached + t) 1 = token, 0 = padding; the positions are then counted
                over the real tokens (a left-padded prompt starts at 0), as ``transformers``' ``generate``
        """
        past = 0 if caches is None else len(caches[0])
        positions = None if attention_mask is None else positions_from_mask(attention_mask, past)  # (B, t)
        self._head_cache = None                                     # decoding keeps nothing for backward
        h = self.model(ids, attention_mask, positions, caches=caches)  # (B, t, D)
        logits, _ = linear_forward(h[:, -1], self.output_weight.data)  # (B, D) @ (D, V) -> (B, V)
        return logits

    # ----------------------------------------------------------------------------------- Hugging Face
    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32) -> LlamaForCausalLM:
        """A ``LlamaForCausalLM`` from a local Hugging Face folder, in eval mode. Nothing is downloaded; a
        config asking for what is not computed here (rope scaling, ...) is refused with the key named. See
        :mod:`numpy_transformer.io.huggingface`."""
        from ..io.huggingface import load_pretrained

        return load_pretrained(folder, dtype=dtype, model_class=cls)

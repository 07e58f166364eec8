r"""BERT (Devlin et al., 2019) as the library's own layers, loadable from a Hugging Face checkpoint.

BERT is an encoder-only Transformer. A batch of token ids becomes vectors by adding three learned tables,
then goes through $N$ post-norm encoder layers:

    x = LayerNorm(word[ids] + position[0..T-1] + token_type[type_ids])      (B, T) -> (B, T, D)
    x = dropout(x)
    for each layer:                                                          (B, T, D) -> (B, T, D)
        x = norm1(x + dropout1(self_attn(x, x, x, key_padding_mask)))
        x = norm2(x + dropout2(linear2(gelu(linear1(x)))))
    last_hidden_state = x

A BERT layer IS ``torch.nn.TransformerEncoderLayer`` with ``activation="gelu"`` (exact, erf),
``norm_first=False`` and ``layer_norm_eps=1e-12``; only the names of the weights differ. So
:class:`BertModel` builds its encoder from :class:`~numpy_transformer.nn.TransformerEncoderLayer` and
:meth:`BertModel.from_pretrained` renames the Hugging Face tensors on loading:

==============================================  =============================================
Hugging Face (``bert.`` prefix optional)         ours
==============================================  =============================================
``embeddings.word_embeddings.weight`` ...       ``embeddings.word_embeddings.weight`` ...
``encoder.layer.i.attention.self.query``        ``encoder.layers.i.self_attn.in_proj_weight``
``... .key``, ``... .value`` (weight, bias)     (rows [q; k; v], likewise ``in_proj_bias``)
``encoder.layer.i.attention.output.dense``      ``encoder.layers.i.self_attn.out_proj``
``encoder.layer.i.attention.output.LayerNorm``  ``encoder.layers.i.norm1``
``encoder.layer.i.intermediate.dense``          ``encoder.layers.i.linear1``
``encoder.layer.i.output.dense``                ``encoder.layers.i.linear2``
``encoder.layer.i.output.LayerNorm``            ``encoder.layers.i.norm2``
==============================================  =============================================

(``pooler.*`` is not used: the sentence embedding is the mean of the token vectors, and the classifier
has its own head.) One difference in training mode only: torch's encoder layer has a dropout after the
activation that BERT lacks; :class:`BertModel` sets its probability to 0, so both drop the same places.

Sentence embeddings (sentence-transformers' ``all-MiniLM-L6-v2``) are the mean of the token vectors over the
real (non-padding) tokens, scaled to unit length:

$$
m_b = \frac{\sum_t a_{bt} h_{bt}}{\max(\sum_t a_{bt}, 10^{-9})}, \qquad
e_b = \frac{m_b}{\max(\lVert m_b \rVert_2, 10^{-12})}
$$

Backward of the two, with upstream gradient $g$:

- mean pooling is linear in $h$: $dh_{bt} = a_{bt}\, g_b / \sum_t a_{bt}$ (padding positions get zero);
- normalization: with $n = \lVert m \rVert_2$ above the floor, $\partial e / \partial m = (I - e e^\top) / n$, so
  $dm = (g - e\, (e \cdot g)) / n$ (the part of $g$ along $e$ only changes the length, which is divided
  out); below the floor the map is $m / \epsilon$, linear, and $dm = g / \epsilon$.

Backward through BERT is the forward read upwards: the encoder layers in reverse, then the embeddings,
whose LayerNorm gradient is scatter-added into the rows of the three tables that were read. Frozen parts
(:meth:`BertClassifier.freeze_embeddings_and_layers`) are skipped: the backward stops at the lowest
layer that still learns.

Shapes: B batch, T positions, D hidden size, H heads, F intermediate size, V vocabulary, C classes.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..backend import get_array_module, seeded_generator, to_numpy
from ..checks import (
    check_choice,
    check_float,
    check_integer,
    check_ndim,
    check_probability,
    check_upstream,
    upstream_spec,
)
from ..io.safetensors import load_safetensors, safetensors_header
from ..nn.layers import Dropout, Embedding, LayerNorm, Linear
from ..nn.module import Module
from ..nn.transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "BertConfig", "BertEmbeddings", "BertModel", "BertClassifier",
    "mean_pooling_forward", "mean_pooling_backward", "l2_normalize_forward", "l2_normalize_backward",
    "sentence_embeddings", "encode_sentences", "hf_to_ours_names",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


# ---------------------------------------------------------------------------------------------- config

@dataclass
class BertConfig:
    """The numbers that fix a BERT's shape (the fields of a Hugging Face ``config.json`` that matter here)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0
    initializer_range: float = 0.02

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: got {value!r}; expected a positive integer")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"num_attention_heads: got {self.num_attention_heads}; expected a divisor of "
                             f"hidden_size = {self.hidden_size}")
        if self.hidden_act != "gelu":
            raise ValueError(f"hidden_act: got {self.hidden_act!r}; expected 'gelu' (the exact, erf GELU; "
                             "other activations are not supported)")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise ValueError(f"layer_norm_eps: got {self.layer_norm_eps!r}; expected a positive number")
        check_probability("hidden_dropout_prob", self.hidden_dropout_prob)
        check_probability("attention_probs_dropout_prob", self.attention_probs_dropout_prob)
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id: got {self.pad_token_id!r}; expected None or an id in "
                             f"[0, {self.vocab_size})")

    @classmethod
    def from_dict(cls, values: dict) -> "BertConfig":
        """Take the known fields of a ``config.json`` dict; ignore the rest (``architectures``, ...)."""
        known = {f.name for f in fields(cls)}
        position_kind = values.get("position_embedding_type", "absolute")
        if position_kind != "absolute":
            raise ValueError(f"position_embedding_type: got {position_kind!r}; expected 'absolute'")
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_json_file(cls, path) -> "BertConfig":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config: the file {path} does not exist; expected a BERT config.json")
        with open(path, encoding="utf-8") as handle:
            try:
                values = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"config: {path} is not valid JSON ({error})") from None
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- pooling

def mean_pooling_forward(hidden, attention_mask):
    """Average the token vectors of each sequence over its real tokens (sentence-transformers' mean pooling).

    Inputs:
        hidden: (B, T, D) float token vectors
        attention_mask: (B, T) 1 = real token, 0 = padding (int, bool or float)

    Returns:
        out: (B, D)
        cache: ``weights`` (B, T, 1) = mask / count, the factor each token vector was multiplied by, and
            ``out_spec`` (the shape and dtype of out)
    """
    check_float("hidden", hidden)
    check_ndim("hidden", hidden, 3, "(B, T, D)")
    if tuple(attention_mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"attention_mask: got shape {tuple(attention_mask.shape)}; expected "
                         f"{tuple(hidden.shape[:2])} (B, T of hidden)")
    mask = attention_mask.astype(hidden.dtype)[..., None]       # (B, T) -> (B, T, 1)
    count = mask.sum(axis=1, keepdims=True)                      # (B, 1, 1)
    count = count.clip(1e-9, None)                               # an all-padding row gives 0, not nan
    weights = mask / count                                       # (B, T, 1)
    out = (hidden * weights).sum(axis=1)                         # (B, T, D) -> (B, D)
    return out, {"weights": weights, "out_spec": upstream_spec(out)}


def mean_pooling_backward(dout, cache):
    """dout (B, D) -> dhidden (B, T, D); padding positions get zero."""
    check_upstream("dout", dout, cache["out_spec"])
    # forward: out = sum_t hidden[:, t] * weights[:, t]
    return dout[:, None, :] * cache["weights"]                   # (B, D) -> (B, T, D)


def l2_normalize_forward(x, eps: float = 1e-12):
    """Scale each row to unit length: ``y = x / max(||x||, eps)`` (torch's ``F.normalize(x, dim=-1)``).

    Inputs:
        x: (..., D) float

    Returns:
        y: (..., D)
        cache: ``y``, ``denom`` (..., 1) = max(||x||, eps) and ``above`` (..., 1) bool ||x|| > eps
    """
    check_float("x", x)
    xp = get_array_module(x)
    norm = xp.sqrt((x * x).sum(axis=-1, keepdims=True))          # (..., 1)
    above = norm > eps
    denom = xp.maximum(norm, eps).astype(x.dtype, copy=False)    # (..., 1)
    y = x / denom
    return y, {"y": y, "denom": denom, "above": above}


def l2_normalize_backward(dout, cache):
    """dout (..., D) -> dx (..., D): ``(g - y (y . g)) / n`` where the norm was above eps, else ``g / eps``."""
    y, denom, above = cache["y"], cache["denom"], cache["above"]
    check_upstream("dout", dout, upstream_spec(y))
    # forward: y = x / max(||x||, eps); the norm's own gradient only where ||x|| > eps
    along = (dout * y).sum(axis=-1, keepdims=True) * above       # (..., 1)
    return (dout - y * along) / denom


# ---------------------------------------------------------------------------------------------- modules

def _check_ids(name: str, ids, batch_shape=None):
    check_integer(name, ids)
    check_ndim(name, ids, 2, "(B, T)")
    if ids.shape[1] == 0:  # refused, as by Hugging Face's BertModel: a tokenized text holds [CLS] and [SEP] at least
        raise ValueError(f"{name}: got shape {tuple(ids.shape)}, no positions; expected T >= 1 tokens")
    if batch_shape is not None and tuple(ids.shape) != tuple(batch_shape):
        raise ValueError(f"{name}: got shape {tuple(ids.shape)}; expected {tuple(batch_shape)} (the shape of "
                         "input_ids)")


class BertEmbeddings(Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout (Hugging Face's names).

    Sub-modules: ``word_embeddings`` (V, D) with ``padding_idx = pad_token_id``, ``position_embeddings``
    (max_position_embeddings, D), ``token_type_embeddings`` (type_vocab_size, D), ``LayerNorm``, ``dropout``.
    """

    def __init__(self, config: BertConfig, dtype=np.float32, rng=None):
        super().__init__()
        generator = seeded_generator(rng)
        D = config.hidden_size
        self.config = config
        self.word_embeddings = Embedding(config.vocab_size, D, padding_idx=config.pad_token_id, dtype=dtype,
                                         rng=generator)
        self.position_embeddings = Embedding(config.max_position_embeddings, D, dtype=dtype, rng=generator)
        self.token_type_embeddings = Embedding(config.type_vocab_size, D, dtype=dtype, rng=generator)
        self.LayerNorm = LayerNorm(D, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob, rng=generator)

    def forward(self, input_ids, token_type_ids=None):
        """input_ids (B, T) int, token_type_ids (B, T) int or None (all 0) -> (B, T, D)."""
        _check_ids("input_ids", input_ids)
        xp = get_array_module(input_ids)
        B, T = input_ids.shape
        if T > self.config.max_position_embeddings:
            raise ValueError(f"input_ids: got {T} positions; expected at most max_position_embeddings = "
                             f"{self.config.max_position_embeddings}")
        if token_type_ids is None:
            token_type_ids = xp.zeros((B, T), dtype=input_ids.dtype)
        _check_ids("token_type_ids", token_type_ids, (B, T))
        words = self.word_embeddings(input_ids)                  # (B, T) -> (B, T, D)
        positions = self.position_embeddings(xp.arange(T))       # (T,) -> (T, D), the same for every sequence
        types = self.token_type_embeddings(token_type_ids)       # (B, T) -> (B, T, D)
        x = words + positions + types                            # (B, T, D)
        x = self.LayerNorm(x)
        return self.dropout(x)

    def backward(self, dout):
        """dout (B, T, D); scatter-adds into the three tables. Returns None (ids have no gradient)."""
        # forward: return self.dropout(x)
        dx = self.dropout.backward(dout)
        # forward: x = self.LayerNorm(x)
        dx = self.LayerNorm.backward(dx)                         # (B, T, D)
        # forward: x = words + positions + types; positions were broadcast over the batch
        self.word_embeddings.backward(dx)
        if self.position_embeddings.weight.requires_grad:
            self.position_embeddings.backward(dx.sum(axis=0))    # (B, T, D) -> (T, D)
        self.token_type_embeddings.backward(dx)
        return None


def _learns(module: Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def hf_to_ours_names(config: BertConfig) -> "dict[str, tuple[str, ...]]":
    """Our ``state_dict`` key -> the Hugging Face tensor name(s) it is made of (without a ``bert.`` prefix).

    ``in_proj_weight`` / ``in_proj_bias`` are three names (query, key, value) stacked along axis 0.
    """
    names = {}
    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        names[f"embeddings.{table}.weight"] = (f"embeddings.{table}.weight",)
    for kind in ("weight", "bias"):
        names[f"embeddings.LayerNorm.{kind}"] = (f"embeddings.LayerNorm.{kind}",)
    for i in range(config.num_hidden_layers):
        ours, theirs = f"encoder.layers.{i}", f"encoder.layer.{i}"
        for kind, our_kind in (("weight", "in_proj_weight"), ("bias", "in_proj_bias")):
            names[f"{ours}.self_attn.{our_kind}"] = tuple(
                f"{theirs}.attention.self.{part}.{kind}" for part in ("query", "key", "value"))
        for our_part, their_part in (("self_attn.out_proj", "attention.output.dense"),
                                     ("norm1", "attention.output.LayerNorm"),
                                     ("linear1", "intermediate.dense"),
                                     ("linear2", "output.dense"),
                                     ("norm2", "output.LayerNorm")):
            for kind in ("weight", "bias"):
                names[f"{ours}.{our_part}.{kind}"] = (f"{theirs}.{their_part}.{kind}",)
    return names


class BertModel(Module):
    """The BERT encoder: :class:`BertEmbeddings` and a :class:`~numpy_transformer.nn.TransformerEncoder`.

    Inputs:
        config: a :class:`BertConfig`
        dtype: parameter dtype (float32, or float64 for gradient checks)
        rng: int seed, Generator or None: the initial weights (N(0, initializer_range), as BERT) and dropout

    ``forward(input_ids, attention_mask=None, token_type_ids=None)`` returns ``last_hidden_state`` (B, T, D).
    An input of no positions (T = 0) is refused with a named error (Hugging Face's BertModel fails there too).
    """

    def __init__(self, config: BertConfig, dtype=np.float32, rng=None):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config: got {type(config).__name__}; expected a BertConfig")
        generator = seeded_generator(rng)
        self.config = config
        self.embeddings = BertEmbeddings(config, dtype=dtype, rng=generator)
        layer = TransformerEncoderLayer(
            config.hidden_size, config.num_attention_heads, dim_feedforward=config.intermediate_size,
            dropout=config.hidden_dropout_prob, activation="gelu", layer_norm_eps=config.layer_norm_eps,
            batch_first=True, norm_first=False, dtype=dtype, rng=generator,
        )
        layer.self_attn.dropout = float(config.attention_probs_dropout_prob)
        layer.dropout.p = 0.0                                    # BERT has no dropout after the GELU
        self.encoder = TransformerEncoder(layer, config.num_hidden_layers, rng=generator)
        self._init_weights(generator)
        self._cache = None

    def _init_weights(self, generator) -> None:
        """BERT's initialization: weights N(0, initializer_range), biases 0, LayerNorm 1 and 0, pad row 0."""
        std = self.config.initializer_range
        for name, param in self.named_parameters():
            if name.endswith("bias"):
                param.data[...] = 0
            elif ".LayerNorm." not in name and ".norm" not in name:
                param.data[...] = (std * generator.standard_normal(param.shape)).astype(param.dtype)
        if self.config.pad_token_id is not None:
            self.embeddings.word_embeddings.weight.data[self.config.pad_token_id] = 0

    # ------------------------------------------------------------------ forward / backward

    @staticmethod
    def _padding_mask(attention_mask, input_ids):
        """attention_mask (B, T), 1 = token -> key_padding_mask (B, T) bool, True = padding (or None)."""
        if attention_mask is None:
            return None
        if tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(f"attention_mask: got shape {tuple(attention_mask.shape)}; expected "
                             f"{tuple(input_ids.shape)} (the shape of input_ids)")
        return attention_mask == 0                               # (B, T) bool

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        """Token vectors of the last layer.

        Inputs:
            input_ids: (B, T) int token ids
            attention_mask: (B, T) 1 = real token, 0 = padding; None = no padding
            token_type_ids: (B, T) int segment ids; None = all 0

        Returns:
            last_hidden_state: (B, T, D)
        """
        _check_ids("input_ids", input_ids)
        padding = self._padding_mask(attention_mask, input_ids)
        x = self.embeddings(input_ids, token_type_ids)           # (B, T) -> (B, T, D)
        # the layer loop is written here (not TransformerEncoder.forward) so that backward can stop early
        for layer in self.encoder.layers:
            x = layer(x, src_key_padding_mask=padding)           # (B, T, D)
        self._cache = True
        return x

    def backward(self, dhidden):
        """dhidden (B, T, D) -> None; adds into the ``.grad`` of every parameter that learns.

        Layers below the lowest one that learns (and the embeddings, when frozen) are not visited at all.
        """
        self._cached()
        layers = list(self.encoder.layers)
        learning = [i for i, layer in enumerate(layers) if _learns(layer)]
        embeddings_learn = _learns(self.embeddings)
        lowest = 0 if embeddings_learn else (learning[0] if learning else len(layers))
        dx = dhidden
        for index in range(len(layers) - 1, lowest - 1, -1):
            # forward: x = layer(x, src_key_padding_mask=padding)
            dx = layers[index].backward(dx)                      # (B, T, D)
        if embeddings_learn:
            # forward: x = self.embeddings(input_ids, token_type_ids)
            self.embeddings.backward(dx)
        return None

    def attention_weights(self, input_ids, attention_mask=None, token_type_ids=None, layer: int = 0):
        """The softmax attention probabilities of every head of encoder layer ``layer`` (0-based).

        Runs the model in evaluation mode up to that layer (training mode is restored afterwards).

        Returns:
            weights: (B, H, T, T); row t is how query token t spreads its attention over the keys
        """
        layers = list(self.encoder.layers)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < len(layers):
            raise ValueError(f"layer: got {layer!r}; expected an int in [0, {len(layers)})")
        _check_ids("input_ids", input_ids)
        padding = self._padding_mask(attention_mask, input_ids)
        was_training = self.training
        self.eval()
        try:
            x = self.embeddings(input_ids, token_type_ids)       # (B, T, D)
            for below in layers[:layer]:
                x = below(x, src_key_padding_mask=padding)
            _, weights = layers[layer].self_attn(x, x, x, key_padding_mask=padding, need_weights=True,
                                                 average_attn_weights=False)  # (B, H, T, T)
        finally:
            self.train(was_training)
        return weights

    # ------------------------------------------------------------------ Hugging Face checkpoints

    def hf_state_dict(self, prefix: str = "") -> "dict[str, np.ndarray]":
        """This model's weights under Hugging Face's ``BertModel`` names (the inverse of loading)."""
        state = self.state_dict()
        out = {}
        for ours, theirs in hf_to_ours_names(self.config).items():
            parts = np.split(state[ours], len(theirs), axis=0) if len(theirs) > 1 else [state[ours]]
            for name, part in zip(theirs, parts):
                out[prefix + name] = np.ascontiguousarray(part)
        return out

    def load_pretrained_weights(self, path) -> "BertModel":
        """Load a Hugging Face BERT ``model.safetensors`` into this model, all or nothing.

        Tensor names may carry a ``bert.`` prefix (a checkpoint of a model with a head) or not; tensors
        this model does not use (``pooler.*``, ``cls.*``, ``embeddings.position_ids``) are ignored.

        Raises:
            FileNotFoundError naming the file when it is missing; ValueError naming the file and every
            missing tensor and every tensor whose shape is wrong (got vs expected). On any error the model
            is unchanged.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path: the weights file {path} does not exist; expected a BERT "
                                    f"{WEIGHTS_NAME}")
        header = safetensors_header(path)
        mapping = hf_to_ours_names(self.config)
        prefix = ""
        if "embeddings.word_embeddings.weight" not in header and "bert.embeddings.word_embeddings.weight" in header:
            prefix = "bert."
        current = dict(self.named_parameters())
        problems, wanted = [], {}
        for ours, theirs in mapping.items():
            shape = current[ours].shape
            part_shape = (shape[0] // len(theirs),) + tuple(shape[1:])
            for name in theirs:
                stored = prefix + name
                if stored not in header:
                    problems.append(f"  missing tensor {stored!r} (for {ours}, expected shape {part_shape})")
                    continue
                got = tuple(header[stored]["shape"])
                if got != part_shape:
                    problems.append(f"  tensor {stored!r}: got shape {got}; expected {part_shape} "
                                    f"(for {ours}, from the config)")
                    continue
                wanted[stored] = ours
        if problems:
            raise ValueError(f"{path}: {len(problems)} problem(s) loading a BERT checkpoint; nothing was "
                             "loaded:\n" + "\n".join(problems))
        tensors = load_safetensors(path, names=list(wanted))
        state = {}
        for ours, theirs in mapping.items():
            parts = [tensors[prefix + name] for name in theirs]
            state[ours] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)  # [q; k; v] (3D, ...)
        self.load_state_dict(state)                              # casts to each parameter's dtype
        return self

    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32) -> "BertModel":
        """A BERT from a Hugging Face folder (``config.json`` and ``model.safetensors``), in eval mode.

        Nothing is downloaded: ``folder`` must be a local directory.
        """
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"folder: {folder} is not a directory; expected a folder holding "
                                    f"{CONFIG_NAME} and {WEIGHTS_NAME}")
        config = BertConfig.from_json_file(os.path.join(folder, CONFIG_NAME))
        weights = os.path.join(folder, WEIGHTS_NAME)
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"folder: the weights file {weights} does not exist; expected {WEIGHTS_NAME}")
        model = cls(config, dtype=dtype, rng=0)
        model.load_pretrained_weights(weights)
        return model.eval()


# ---------------------------------------------------------------------------------------------- sentences

def sentence_embeddings(model: BertModel, input_ids, attention_mask=None, token_type_ids=None,
                        normalize: bool = True):
    """Mean-pooled (and by default unit-length) sentence vectors: (B, T) ids -> (B, D)."""
    xp = get_array_module(input_ids)
    if attention_mask is None:
        attention_mask = xp.ones(input_ids.shape, dtype=np.int64)
    hidden = model(input_ids, attention_mask, token_type_ids)    # (B, T, D)
    pooled, _ = mean_pooling_forward(hidden, attention_mask)     # (B, T, D) -> (B, D)
    if normalize:
        pooled, _ = l2_normalize_forward(pooled)
    return pooled


def encode_sentences(model: BertModel, tokenizer, texts, batch_size: int = 32, max_length: int | None = 256,
                     normalize: bool = True) -> np.ndarray:
    """Sentence embeddings of a list of texts, in batches, as a NumPy (N, D) array (eval mode, no gradients).

    Inputs:
        model: a :class:`BertModel`; tokenizer: a callable like ``BertTokenizer``
        texts: a str or a list of N strings; max_length: longer texts are truncated
    """
    if isinstance(texts, str):
        texts = [texts]
    was_training = model.training
    model.eval()
    try:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=max_length)
            out.append(to_numpy(sentence_embeddings(model, batch["input_ids"], batch["attention_mask"],
                                                    batch.get("token_type_ids"), normalize=normalize)))
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, model.config.hidden_size), dtype=model.embeddings.LayerNorm.weight.dtype)
    return np.concatenate(out, axis=0)


# ---------------------------------------------------------------------------------------------- classifier

class BertClassifier(Module):
    """BERT, a pooled sentence vector, dropout and a linear head: ``logits = W dropout(pool(h)) + b``.

    Inputs:
        bert: a :class:`BertModel` (e.g. from :meth:`BertModel.from_pretrained`)
        num_labels: C
        pooling: ``"mean"`` (mean over the real tokens) or ``"cls"`` (the vector of the first token, [CLS])
        dropout: before the head (default: the model's ``hidden_dropout_prob``)
        rng: int seed, Generator or None: the head's initial weights and the dropout masks

    Sub-modules: ``bert``, ``dropout``, ``classifier`` (Linear D -> C).
    """

    def __init__(self, bert: BertModel, num_labels: int = 2, pooling: str = "mean", dropout=None, rng=None):
        super().__init__()
        if not isinstance(bert, BertModel):
            raise TypeError(f"bert: got {type(bert).__name__}; expected a BertModel")
        check_choice("pooling", pooling, ("mean", "cls"))
        if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
            raise ValueError(f"num_labels: got {num_labels!r}; expected a positive integer")
        generator = seeded_generator(rng)
        p = bert.config.hidden_dropout_prob if dropout is None else dropout
        dtype = bert.embeddings.LayerNorm.weight.dtype
        self.bert = bert
        self.pooling = pooling
        self.num_labels = int(num_labels)
        self.dropout = Dropout(p, rng=generator)
        self.classifier = Linear(bert.config.hidden_size, num_labels, dtype=dtype, rng=generator)
        self._cache = None

    @classmethod
    def from_pretrained(cls, folder, num_labels: int = 2, pooling: str = "mean", dtype=np.float32, dropout=None,
                        rng=None) -> "BertClassifier":
        return cls(BertModel.from_pretrained(folder, dtype=dtype), num_labels, pooling, dropout, rng)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        """(B, T) ids -> logits (B, C)."""
        xp = get_array_module(input_ids)
        if attention_mask is None:
            attention_mask = xp.ones(input_ids.shape, dtype=np.int64)
        hidden = self.bert(input_ids, attention_mask, token_type_ids)  # (B, T) -> (B, T, D)
        if self.pooling == "mean":
            pooled, pool_cache = mean_pooling_forward(hidden, attention_mask)  # (B, T, D) -> (B, D)
        else:
            pooled, pool_cache = hidden[:, 0], hidden.shape      # (B, T, D) -> (B, D), the [CLS] vector
        logits = self.classifier(self.dropout(pooled))           # (B, D) -> (B, C)
        self._cache = pool_cache
        return logits

    def backward(self, dlogits):
        """dlogits (B, C) -> None; adds into the ``.grad`` of every parameter that learns."""
        pool_cache = self._cached()
        # forward: logits = self.classifier(self.dropout(pooled))
        dpooled = self.dropout.backward(self.classifier.backward(dlogits))  # (B, C) -> (B, D)
        if not (_learns(self.bert)):
            return None
        if self.pooling == "mean":
            # forward: pooled = mean_pooling(hidden, attention_mask)
            dhidden = mean_pooling_backward(dpooled, pool_cache)  # (B, D) -> (B, T, D)
        else:
            # forward: pooled = hidden[:, 0]
            xp = get_array_module(dpooled)
            dhidden = xp.zeros(pool_cache, dtype=dpooled.dtype)  # (B, T, D)
            dhidden[:, 0] = dpooled
        # forward: hidden = self.bert(input_ids, attention_mask, token_type_ids)
        self.bert.backward(dhidden)
        return None

    def freeze_embeddings_and_layers(self, num_layers: int) -> "BertClassifier":
        """Freeze the embeddings and the first ``num_layers`` encoder layers; unfreeze everything else.

        Frozen parameters get no gradient (``grad`` stays None) and backward does not even visit the layers
        below the lowest one that learns.
        """
        total = self.bert.config.num_hidden_layers
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or not 0 <= num_layers <= total:
            raise ValueError(f"num_layers: got {num_layers!r}; expected an int in [0, {total}]")
        self.unfreeze()
        self.bert.embeddings.freeze()
        for layer in list(self.bert.encoder.layers)[:num_layers]:
            layer.freeze()
        for param in self.parameters():
            if not param.requires_grad:
                param.grad = None
        return self

    def attention_weights(self, tokenizer, text: str, layer: int = 0, head: int = 0):
        """The attention of head ``head`` of layer ``layer`` (both 0-based) for one text.

        Returns:
            weights: (T, T) NumPy array; tokens: the T tokens (with [CLS] and [SEP])
        """
        heads = self.bert.config.num_attention_heads
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < heads:
            raise ValueError(f"head: got {head!r}; expected an int in [0, {heads})")
        batch = tokenizer([text], padding=True, truncation=True)
        weights = self.bert.attention_weights(batch["input_ids"], batch["attention_mask"],
                                              batch.get("token_type_ids"), layer=layer)  # (1, H, T, T)
        tokens = tokenizer.convert_ids_to_tokens([int(i) for i in to_numpy(batch["input_ids"][0])])
        return to_numpy(weights[0, head]), tokens

r"""BERT (Devlin et al., 2019) as the library's own layers, loadable from a Hugging Face folder.

BERT is an encoder-only Transformer. A batch of token ids becomes vectors by adding three learned tables,
then goes through $N$ post-norm encoder layers:

$$
\begin{aligned}
x &= \mathrm{dropout}(\mathrm{LayerNorm}(W_{\text{word}}[\text{ids}] + W_{\text{pos}}[0..T-1]
      + W_{\text{type}}[\text{type ids}])) && (B, T) \to (B, T, D) \\
x &= \mathrm{norm}_1(x + \mathrm{dropout}_1(\mathrm{SelfAttention}(x, \text{key padding mask})))
      && \text{per layer} \\
x &= \mathrm{norm}_2(x + \mathrm{dropout}_2(\mathrm{linear}_2(\mathrm{gelu}(\mathrm{linear}_1(x))))) &&
\end{aligned}
$$

A BERT layer IS ``torch.nn.TransformerEncoderLayer`` with ``activation="gelu"`` (exact, erf),
``norm_first=False`` and ``layer_norm_eps=1e-12``; only the names of the weights differ. So
:class:`BertModel` builds its encoder from :class:`~numpy_transformer.nn.TransformerEncoderLayer`, and
:mod:`numpy_transformer.io.huggingface` (the one place that reads Hugging Face folders) maps the tensor
names on loading (the query, key and value weights stack into ``in_proj_weight``). One difference in
training mode only: torch's encoder layer has a dropout after the activation that BERT lacks;
:class:`BertModel` sets its probability to 0, so both drop the same places.

:class:`EncoderModel` is what BERT shares with DistilBERT (:mod:`numpy_transformer.models.distilbert`): the
layer loop with the padding mask, the record of every layer (``output_hidden_states`` /
``output_attentions``, :mod:`numpy_transformer.models.outputs`) and a backward that stops at the lowest
layer that still learns.

Sentence embeddings (sentence-transformers' ``all-MiniLM-L6-v2``) are the mean of the token vectors over the
real tokens, scaled to unit length: :mod:`numpy_transformer.functional.pooling`.

Backward through BERT is the forward read upwards: the encoder layers in reverse, then the embeddings,
whose LayerNorm gradient is scatter-added into the rows of the three tables that were read. Frozen parts
(:meth:`BertClassifier.freeze_embeddings_and_layers`) are skipped: the backward stops at the lowest
layer that still learns.

Shapes: B batch, T positions, D hidden size, H heads, F intermediate size, V vocabulary, C classes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..backend import get_array_module, seeded_generator, to_numpy
from ..checks import check_choice, check_integer, check_ndim, check_probability
from ..functional.pooling import l2_normalize_forward, mean_pooling_backward, mean_pooling_forward
from ..nn.layers import Dropout, Embedding, LayerNorm, Linear
from ..nn.module import Module
from ..nn.transformer import TransformerEncoder, TransformerEncoderLayer
from .outputs import ModelOutput, run_layers

__all__ = [
    "BertConfig", "BertEmbeddings", "EncoderModel", "BertModel", "BertClassifier", "EncoderClassifier",
    "sentence_embeddings", "encode_sentences",
]


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
    def from_dict(cls, values: dict) -> BertConfig:
        """Take the known fields of a ``config.json`` dict; ignore the rest (``architectures``, ...)."""
        known = {f.name for f in fields(cls)}
        position_kind = values.get("position_embedding_type", "absolute")
        if position_kind != "absolute":
            raise ValueError(f"position_embedding_type: got {position_kind!r}; expected 'absolute'")
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- modules

def _check_ids(name: str, ids, batch_shape=None):
    check_integer(name, ids)
    check_ndim(name, ids, 2, "(B, T)")
    if ids.shape[1] == 0:  # refused, as by Hugging Face's BertModel: a tokenized text holds [CLS] and [SEP] at least
        raise ValueError(f"{name}: got shape {tuple(ids.shape)}, no positions; expected T >= 1 tokens")
    if batch_shape is not None and tuple(ids.shape) != tuple(batch_shape):
        raise ValueError(f"{name}: got shape {tuple(ids.shape)}; expected {tuple(batch_shape)} (the shape of "
                         "input_ids)")


def _check_layer_index(layer, count: int) -> None:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < count:
        raise ValueError(f"layer: got {layer!r}; expected an int in [0, {count})")


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


class EncoderModel(Module):
    """Embeddings, then post-norm encoder layers with a key padding mask: what BERT and DistilBERT share.

    A subclass builds ``self.embeddings`` (a module whose ``forward(input_ids, *inputs)`` gives (B, T, D)
    and whose ``backward`` scatters into its tables), ``self.encoder`` (a
    :class:`~numpy_transformer.nn.TransformerEncoder` without a final norm) and ``self.config``, and says
    whether its embeddings read token types (``takes_token_types``).
    """

    takes_token_types = True

    @property
    def num_layers(self) -> int:
        return len(self.encoder.layers)

    @staticmethod
    def _padding_mask(attention_mask, input_ids):
        """attention_mask (B, T), 1 = token -> key_padding_mask (B, T) bool, True = padding (or None)."""
        if attention_mask is None:
            return None
        if tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(f"attention_mask: got shape {tuple(attention_mask.shape)}; expected "
                             f"{tuple(input_ids.shape)} (the shape of input_ids)")
        return attention_mask == 0                               # (B, T) bool

    def _encode(self, input_ids, attention_mask, embedding_inputs, output_hidden_states, output_attentions):
        """The forward pass of every encoder model: embeddings, then the layers; see :meth:`BertModel.forward`."""
        _check_ids("input_ids", input_ids)
        padding = self._padding_mask(attention_mask, input_ids)
        x = self.embeddings(input_ids, *embedding_inputs)        # (B, T) -> (B, T, D)
        # the layer loop is written here (not TransformerEncoder.forward) so that backward can stop early
        x, hidden, attentions, _ = run_layers(self.encoder.layers, x, output_hidden_states, output_attentions,
                                              src_key_padding_mask=padding)  # (B, T, D)
        self._cache = True
        if output_hidden_states or output_attentions:
            return ModelOutput(x, None if hidden is None else tuple(hidden),
                               None if attentions is None else tuple(attentions))
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
            # forward: x = self.embeddings(input_ids, ...)
            self.embeddings.backward(dx)
        return None

    def _inspect(self, layer: int, *inputs):
        """Attention (B, H, T, T) of encoder layer ``layer`` (0-based), run in eval mode."""
        _check_layer_index(layer, self.num_layers)
        was_training = self.training
        self.eval()
        try:
            return self.forward(*inputs, output_attentions=True).attentions[layer]
        finally:
            self.train(was_training)

    def hf_state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """This model's weights under Hugging Face's names (see :func:`numpy_transformer.io.to_hf_state_dict`)."""
        from ..io.huggingface import to_hf_state_dict

        return to_hf_state_dict(self, prefix=prefix)

    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32):
        """This model from a local Hugging Face folder (``config.json``, ``model.safetensors``), in eval mode.

        Nothing is downloaded; see :mod:`numpy_transformer.io.huggingface` for what is checked.
        """
        from ..io.huggingface import load_pretrained

        return load_pretrained(folder, dtype=dtype, model_class=cls)


class BertModel(EncoderModel):
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
        _init_weights(self, config.initializer_range, generator, config.pad_token_id)
        self._cache = None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states: bool = False,
                output_attentions: bool = False):
        """Token vectors of the last layer.

        Inputs:
            input_ids: (B, T) int token ids
            attention_mask: (B, T) 1 = real token, 0 = padding; None = no padding
            token_type_ids: (B, T) int segment ids; None = all 0
            output_hidden_states, output_attentions: also return the embeddings' output and every layer's
                output (L + 1 arrays (B, T, D)) / attention probabilities (L arrays (B, H, T, T))

        Returns:
            last_hidden_state: (B, T, D), or a :class:`~numpy_transformer.models.outputs.ModelOutput` holding it
            as ``output`` when either flag is set
        """
        return self._encode(input_ids, attention_mask, (token_type_ids,), output_hidden_states, output_attentions)

    def attention_weights(self, input_ids, attention_mask=None, token_type_ids=None, layer: int = 0):
        """The softmax attention probabilities of every head of encoder layer ``layer`` (0-based).

        Runs the model in evaluation mode (training mode is restored afterwards).

        Returns:
            weights: (B, H, T, T); row t is how query token t spreads its attention over the keys
        """
        return self._inspect(layer, input_ids, attention_mask, token_type_ids)


def _init_weights(model: Module, std: float, generator, pad_token_id) -> None:
    """BERT's initialization: weights N(0, std), biases 0, LayerNorm 1 and 0, the padding row 0."""
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.data[...] = 0
        elif ".LayerNorm." not in name and ".norm" not in name and "layer_norm" not in name:
            param.data[...] = (std * generator.standard_normal(param.shape)).astype(param.dtype)
    if pad_token_id is not None:
        model.embeddings.word_embeddings.weight.data[pad_token_id] = 0


# ---------------------------------------------------------------------------------------------- sentences

def _model_inputs(model: EncoderModel, batch: dict) -> tuple:
    """(input_ids, attention_mask[, token_type_ids]) of a tokenizer's batch, as the model takes them."""
    inputs = (batch["input_ids"], batch["attention_mask"])
    return inputs + (batch.get("token_type_ids"),) if model.takes_token_types else inputs


def sentence_embeddings(model: EncoderModel, input_ids, attention_mask=None, token_type_ids=None,
                        normalize: bool = True):
    """Mean-pooled (and by default unit-length) sentence vectors: (B, T) ids -> (B, D)."""
    xp = get_array_module(input_ids)
    if attention_mask is None:
        attention_mask = xp.ones(input_ids.shape, dtype=np.int64)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    hidden = model(*_model_inputs(model, batch))                 # (B, T, D)
    pooled, _ = mean_pooling_forward(hidden, attention_mask)     # (B, T, D) -> (B, D)
    if normalize:
        pooled, _ = l2_normalize_forward(pooled)
    return pooled


def encode_sentences(model: EncoderModel, tokenizer, texts, batch_size: int = 32, max_length: int | None = 256,
                     normalize: bool = True) -> np.ndarray:
    """Sentence embeddings of a list of texts, in batches, as a NumPy (N, D) array (eval mode, no gradients).

    Inputs:
        model: a :class:`BertModel` (or DistilBERT); tokenizer: a callable like ``BertTokenizer``
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
        return np.zeros((0, model.embeddings.LayerNorm.weight.shape[0]),
                        dtype=model.embeddings.LayerNorm.weight.dtype)
    return np.concatenate(out, axis=0)


# ---------------------------------------------------------------------------------------------- classifiers

class EncoderClassifier(Module):
    """What every classifier on an :class:`EncoderModel` shares: freezing the lower layers, and the
    attention of one head on a text. A subclass names its encoder model in ``encoder_model``."""

    encoder_model: EncoderModel

    def freeze_embeddings_and_layers(self, num_layers: int):
        """Freeze the embeddings and the first ``num_layers`` encoder layers; unfreeze everything else.

        Frozen parameters get no gradient (``grad`` stays None) and backward does not even visit the layers
        below the lowest one that learns.
        """
        total = self.encoder_model.num_layers
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) \
                or not 0 <= num_layers <= total:
            raise ValueError(f"num_layers: got {num_layers!r}; expected an int in [0, {total}]")
        self.unfreeze()
        self.encoder_model.embeddings.freeze()
        for layer in list(self.encoder_model.encoder.layers)[:num_layers]:
            layer.freeze()
        for param in self.parameters():
            if not param.requires_grad:
                param.grad = None
        return self

    def attention_weights(self, tokenizer, text: str, layer: int = 0, head: int = 0):
        """The attention of head ``head`` of layer ``layer`` (both 0-based, as the model indexes them).

        Returns:
            weights: (T, T) NumPy array; tokens: the T tokens (with [CLS] and [SEP])
        """
        model = self.encoder_model
        heads = model.encoder.layers[0].self_attn.num_heads
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < heads:
            raise ValueError(f"head: got {head!r}; expected an int in [0, {heads})")
        batch = tokenizer([text], padding=True, truncation=True)
        weights = model._inspect(layer, *_model_inputs(model, batch))  # (1, H, T, T)
        tokens = tokenizer.convert_ids_to_tokens([int(i) for i in to_numpy(batch["input_ids"][0])])
        return to_numpy(weights[0, head]), tokens


class BertClassifier(EncoderClassifier):
    """BERT, a pooled sentence vector, dropout and a linear head: ``logits = W dropout(pool(h)) + b``.

    Inputs:
        bert: a :class:`BertModel` (e.g. from :meth:`BertModel.from_pretrained`), or any :class:`EncoderModel`
        num_labels: C
        pooling: ``"mean"`` (mean over the real tokens) or ``"cls"`` (the vector of the first token, [CLS])
        dropout: before the head (default: the model's ``hidden_dropout_prob``, or 0.1)
        rng: int seed, Generator or None: the head's initial weights and the dropout masks

    Sub-modules: ``bert``, ``dropout``, ``classifier`` (Linear D -> C).
    """

    def __init__(self, bert: EncoderModel, num_labels: int = 2, pooling: str = "mean", dropout=None, rng=None):
        super().__init__()
        if not isinstance(bert, EncoderModel):
            raise TypeError(f"bert: got {type(bert).__name__}; expected a BertModel (or another EncoderModel)")
        check_choice("pooling", pooling, ("mean", "cls"))
        if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
            raise ValueError(f"num_labels: got {num_labels!r}; expected a positive integer")
        generator = seeded_generator(rng)
        p = getattr(bert.config, "hidden_dropout_prob", 0.1) if dropout is None else dropout
        dtype = bert.embeddings.LayerNorm.weight.dtype
        width = bert.embeddings.LayerNorm.weight.shape[0]
        self.bert = bert
        self.pooling = pooling
        self.num_labels = int(num_labels)
        self.dropout = Dropout(p, rng=generator)
        self.classifier = Linear(width, num_labels, dtype=dtype, rng=generator)
        self._cache = None

    @property
    def encoder_model(self) -> EncoderModel:
        return self.bert

    @classmethod
    def from_pretrained(cls, folder, num_labels: int = 2, pooling: str = "mean", dtype=np.float32, dropout=None,
                        rng=None) -> BertClassifier:
        return cls(BertModel.from_pretrained(folder, dtype=dtype), num_labels, pooling, dropout, rng)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        """(B, T) ids -> logits (B, C)."""
        xp = get_array_module(input_ids)
        if attention_mask is None:
            attention_mask = xp.ones(input_ids.shape, dtype=np.int64)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        hidden = self.bert(*_model_inputs(self.bert, batch))     # (B, T) -> (B, T, D)
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

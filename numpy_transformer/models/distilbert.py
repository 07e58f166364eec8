r"""DistilBERT (Sanh et al., 2019): BERT with half the layers, no token types, the same layer.

DistilBERT was trained to imitate BERT ("knowledge distillation") with every second layer removed. Its
layer is BERT's, a post-norm :class:`~numpy_transformer.nn.TransformerEncoderLayer` with the exact GELU and
``eps = 1e-12``; its embeddings drop BERT's token types:

$$
x = \mathrm{dropout}(\mathrm{LayerNorm}(W_{\text{word}}[\text{ids}] + W_{\text{pos}}[0..T-1]))
\qquad (B, T) \to (B, T, D)
$$

``sinusoidal_pos_embds=True`` fills the position table with the sinusoidal table of "Attention Is All You
Need" (:func:`~numpy_transformer.functional.positional.sinusoidal_table`) instead of random numbers; it is
stored (and loaded) like a learned table, and, as in ``transformers``, it still receives a gradient.

:class:`DistilBertForSequenceClassification` is the head of Hugging Face's class of the same name, which the
sentiment tutorial fine-tunes on IMDb: the [CLS] vector, a D x D ``pre_classifier``, ReLU, dropout and the
``classifier``:

$$
\text{logits} = W_c\, \mathrm{dropout}(\mathrm{relu}(W_p\, h_{:,0} + b_p)) + b_c
$$

Backward is that read upwards; the gradient enters the encoder at position 0 only.

Shapes: B batch, T positions, D ``dim``, F ``hidden_dim``, V vocabulary, C classes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..backend import get_array_module, seeded_generator
from ..checks import check_probability
from ..functional.activations import relu_backward, relu_forward
from ..functional.positional import sinusoidal_table
from ..nn.layers import Dropout, Embedding, LayerNorm, Linear
from ..nn.module import Module
from ..nn.transformer import TransformerEncoder, TransformerEncoderLayer
from .bert import EncoderClassifier, EncoderModel, _check_ids, _init_weights, _learns

__all__ = ["DistilBertConfig", "DistilBertEmbeddings", "DistilBertModel", "DistilBertForSequenceClassification"]

#: DistilBERT's LayerNorm eps (fixed in its code, not in its config)
LAYER_NORM_EPS = 1e-12


@dataclass
class DistilBertConfig:
    """The fields of a DistilBERT ``config.json`` that fix the model (Hugging Face's names and defaults)."""

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    initializer_range: float = 0.02
    seq_classif_dropout: float = 0.2
    pad_token_id: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "max_position_embeddings", "n_layers", "n_heads", "dim", "hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: got {value!r}; expected a positive integer")
        if self.dim % self.n_heads:
            raise ValueError(f"n_heads: got {self.n_heads}; expected a divisor of dim = {self.dim}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation: got {self.activation!r}; expected 'gelu' or 'relu'")
        for name in ("dropout", "attention_dropout", "seq_classif_dropout"):
            check_probability(name, getattr(self, name))
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id: got {self.pad_token_id!r}; expected None or an id in "
                             f"[0, {self.vocab_size})")

    @classmethod
    def from_dict(cls, values: dict) -> DistilBertConfig:
        """Take the known fields of a ``config.json`` dict; ignore the rest."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


class DistilBertEmbeddings(Module):
    """Word + position embeddings, LayerNorm and dropout (Hugging Face's names, no token types).

    Sub-modules: ``word_embeddings`` (V, D) with ``padding_idx = pad_token_id``, ``position_embeddings``
    (max_position_embeddings, D), ``LayerNorm``, ``dropout``.
    """

    def __init__(self, config: DistilBertConfig, dtype=np.float32, rng=None):
        super().__init__()
        generator = seeded_generator(rng)
        self.config = config
        self.word_embeddings = Embedding(config.vocab_size, config.dim, padding_idx=config.pad_token_id,
                                         dtype=dtype, rng=generator)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.dim, dtype=dtype,
                                             rng=generator)
        self.LayerNorm = LayerNorm(config.dim, eps=LAYER_NORM_EPS, dtype=dtype)
        self.dropout = Dropout(config.dropout, rng=generator)

    def forward(self, input_ids):
        """input_ids (B, T) int -> (B, T, D)."""
        _check_ids("input_ids", input_ids)
        xp = get_array_module(input_ids)
        T = input_ids.shape[1]
        if T > self.config.max_position_embeddings:
            raise ValueError(f"input_ids: got {T} positions; expected at most max_position_embeddings = "
                             f"{self.config.max_position_embeddings}")
        words = self.word_embeddings(input_ids)                  # (B, T) -> (B, T, D)
        positions = self.position_embeddings(xp.arange(T))       # (T,) -> (T, D)
        x = self.LayerNorm(words + positions)                    # (B, T, D)
        return self.dropout(x)

    def backward(self, dout):
        """dout (B, T, D); scatter-adds into both tables. Returns None."""
        # forward: return self.dropout(x)
        dx = self.dropout.backward(dout)
        # forward: x = self.LayerNorm(words + positions)
        dx = self.LayerNorm.backward(dx)                         # (B, T, D)
        self.word_embeddings.backward(dx)
        if self.position_embeddings.weight.requires_grad:
            self.position_embeddings.backward(dx.sum(axis=0))    # (B, T, D) -> (T, D), positions broadcast
        return None


class DistilBertModel(EncoderModel):
    """The DistilBERT encoder: :class:`DistilBertEmbeddings` and a
    :class:`~numpy_transformer.nn.TransformerEncoder` of post-norm layers.

    Inputs:
        config: a :class:`DistilBertConfig`; dtype: parameter dtype; rng: seed, Generator or None

    ``forward(input_ids, attention_mask=None)`` returns ``last_hidden_state`` (B, T, D).
    """

    takes_token_types = False

    def __init__(self, config: DistilBertConfig, dtype=np.float32, rng=None):
        super().__init__()
        if not isinstance(config, DistilBertConfig):
            raise TypeError(f"config: got {type(config).__name__}; expected a DistilBertConfig")
        generator = seeded_generator(rng)
        self.config = config
        self.embeddings = DistilBertEmbeddings(config, dtype=dtype, rng=generator)
        layer = TransformerEncoderLayer(config.dim, config.n_heads, dim_feedforward=config.hidden_dim,
                                        dropout=config.dropout, activation=config.activation,
                                        layer_norm_eps=LAYER_NORM_EPS, batch_first=True, norm_first=False,
                                        dtype=dtype, rng=generator)
        layer.self_attn.dropout = float(config.attention_dropout)
        layer.dropout.p = 0.0                                    # no dropout after the activation
        self.encoder = TransformerEncoder(layer, config.n_layers, rng=generator)
        _init_weights(self, config.initializer_range, generator, config.pad_token_id)
        if config.sinusoidal_pos_embds:
            table = self.embeddings.position_embeddings.weight
            table.data[...] = sinusoidal_table(config.max_position_embeddings, config.dim, dtype=table.dtype)
        self._cache = None

    def forward(self, input_ids, attention_mask=None, output_hidden_states: bool = False,
                output_attentions: bool = False):
        """Token vectors of the last layer: (B, T) ids -> (B, T, D), or a
        :class:`~numpy_transformer.models.outputs.ModelOutput` with either flag (see :class:`BertModel`)."""
        return self._encode(input_ids, attention_mask, (), output_hidden_states, output_attentions)

    def attention_weights(self, input_ids, attention_mask=None, layer: int = 0):
        """The attention probabilities (B, H, T, T) of every head of layer ``layer`` (0-based), in eval mode."""
        return self._inspect(layer, input_ids, attention_mask)


class DistilBertForSequenceClassification(EncoderClassifier):
    """DistilBERT with Hugging Face's classification head on the [CLS] vector.

    Inputs:
        distilbert: a :class:`DistilBertModel`
        num_labels: C
        dropout: before the classifier (default: the config's ``seq_classif_dropout``)
        rng: seed, Generator or None (the head's weights, N(0, initializer_range) as in ``transformers``)

    Sub-modules (Hugging Face's keys): ``distilbert``, ``pre_classifier`` (D -> D), ``dropout``,
    ``classifier`` (D -> C).
    """

    def __init__(self, distilbert: DistilBertModel, num_labels: int = 2, dropout=None, rng=None):
        super().__init__()
        if not isinstance(distilbert, DistilBertModel):
            raise TypeError(f"distilbert: got {type(distilbert).__name__}; expected a DistilBertModel")
        if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
            raise ValueError(f"num_labels: got {num_labels!r}; expected a positive integer")
        config = distilbert.config
        generator = seeded_generator(rng)
        dtype = distilbert.embeddings.LayerNorm.weight.dtype
        self.distilbert = distilbert
        self.num_labels = int(num_labels)
        self.pre_classifier = Linear(config.dim, config.dim, dtype=dtype, rng=generator)
        self.dropout = Dropout(config.seq_classif_dropout if dropout is None else dropout, rng=generator)
        self.classifier = Linear(config.dim, num_labels, dtype=dtype, rng=generator)
        for head in (self.pre_classifier, self.classifier):
            head.weight.data[...] = (config.initializer_range
                                     * generator.standard_normal(head.weight.shape)).astype(dtype)
            head.bias.data[...] = 0
        self._cache = None

    @property
    def encoder_model(self) -> DistilBertModel:
        return self.distilbert

    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32) -> DistilBertForSequenceClassification:
        """From a local ``DistilBertForSequenceClassification`` folder, or from any DistilBERT folder without
        this head (``distilbert-base-uncased`` is a ``DistilBertForMaskedLM``): the encoder is loaded and the
        head starts from random weights, as in ``transformers``."""
        from ..io.huggingface import load_pretrained, read_config, weight_names

        if "classifier.weight" in weight_names(folder):
            return load_pretrained(folder, dtype=dtype, model_class=cls)
        labels = read_config(folder).get("id2label")
        num_labels = len(labels) if isinstance(labels, dict) and labels else 2
        return cls(DistilBertModel.from_pretrained(folder, dtype=dtype), num_labels, rng=0).eval()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states: bool = False,
                output_attentions: bool = False):
        """(B, T) ids -> logits (B, C). ``token_type_ids`` must be None: DistilBERT has no token types.

        With ``output_hidden_states`` / ``output_attentions``, a
        :class:`~numpy_transformer.models.outputs.ModelOutput` of the logits and the encoder's record.
        """
        if token_type_ids is not None:
            raise ValueError("token_type_ids: got an array; expected None (DistilBERT has no token types)")
        record = output_hidden_states or output_attentions
        encoded = self.distilbert(input_ids, attention_mask, output_hidden_states, output_attentions)
        hidden = encoded.output if record else encoded           # (B, T, D)
        cls = hidden[:, 0]                                       # (B, T, D) -> (B, D), the [CLS] vector
        pre = self.pre_classifier(cls)                           # (B, D)
        activated, relu_cache = relu_forward(pre)                # (B, D)
        logits = self.classifier(self.dropout(activated))        # (B, D) -> (B, C)
        self._cache = (relu_cache, hidden.shape)
        if record:
            encoded.output = logits
            return encoded
        return logits

    def backward(self, dlogits):
        """dlogits (B, C) -> None; adds into the ``.grad`` of every parameter that learns."""
        relu_cache, hidden_shape = self._cached()
        # forward: logits = self.classifier(self.dropout(activated))
        dactivated = self.dropout.backward(self.classifier.backward(dlogits))  # (B, C) -> (B, D)
        # forward: activated = relu(pre)
        dpre = relu_backward(dactivated, relu_cache)             # (B, D)
        # forward: pre = self.pre_classifier(cls)
        dcls = self.pre_classifier.backward(dpre)                # (B, D)
        if not _learns(self.distilbert):
            return None
        # forward: cls = hidden[:, 0]; the other positions are not read
        dhidden = get_array_module(dcls).zeros(hidden_shape, dtype=dcls.dtype)  # (B, T, D)
        dhidden[:, 0] = dcls
        self.distilbert.backward(dhidden)
        return None

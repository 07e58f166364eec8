"""A BERT-style sequence classifier: a Transformer encoder over token ids, pooled to one vector, then a Linear.

Forward:

    x = E[ids] + P[0:T]                         (B, T) -> (B, T, D), learned positions, dropout
    x = Encoder(x, key padding mask ids == pad) (B, T, D), post-norm layers (BERT's) unless norm_first
    v = x[:, 0]                                 pooling="cls": the first token (put a [CLS] id there, as BERT)
      | sum_t m_t x_t / sum_t m_t               pooling="mean": the mean over non-padding tokens, m = ids != pad
    logits = v W^T + b                          (B, num_classes)

Backward of the mean pooling: each non-padding position receives ``dv / count`` and padding positions zero.

Every layer's record. ``forward(ids, output_hidden_states=True, output_attentions=True)`` returns a
:class:`~numpy_transformer.models.outputs.ModelOutput` of the logits, what enters layer 0 and each layer's
output (L + 1 arrays (B, T, D), before the final norm of a ``norm_first`` encoder, as ViT's) and each layer's
attention probabilities (L arrays (B, H, T, T)), as every model here does; the forward pass is the usual one,
so ``backward`` works after it.

Fine-tuning only the top. :meth:`TransformerClassifier.freeze_bottom` freezes the embeddings and the first
``n`` encoder layers. Their gradients are then not computed at all: the backward pass stops at the lowest
layer that still has a trainable parameter (nothing below it needs a gradient), which also saves the time of
the frozen layers' backward passes.

State dict keys: ``tok_embed.weight`` (V, D), ``pos_embed.weight`` (max_len, D), ``encoder.layers.{i}.*``
(``encoder.norm.*`` when norm_first), ``head.weight``, ``head.bias``.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module, seeded_generator
from ..checks import check_choice, check_integer, check_ndim, check_positive_int
from ..functional.losses import cross_entropy_backward, cross_entropy_forward
from ..nn.layers import Embedding, LayerNorm, Linear, PositionalEncoding
from ..nn.module import Module
from ..nn.transformer import TransformerEncoder, TransformerEncoderLayer
from .outputs import ModelOutput, run_layers

__all__ = ["TransformerClassifier"]


class TransformerClassifier(Module):
    """Transformer encoder classifier over token ids.

    Inputs:
        vocab_size, num_classes: sizes
        d_model, nhead, num_layers, dim_feedforward, dropout: the encoder's sizes
        max_len: the longest sequence (rows of the learned position table)
        pooling: ``"cls"`` (the first position's vector) or ``"mean"`` (mean over non-padding positions)
        pad_id: the padding id (masked in attention, left out of the mean)
        activation, norm_first: of the encoder layers (default gelu, post-norm as BERT); with
            ``norm_first=True`` the encoder ends with a final LayerNorm
        dtype, rng: parameter dtype and the seed / Generator of the initialisation and dropout
    """

    def __init__(self, vocab_size: int, num_classes: int, d_model: int = 64, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 128, dropout: float = 0.1, max_len: int = 512, pooling: str = "cls",
                 pad_id: int = 0, activation: str = "gelu", norm_first: bool = False, dtype=np.float32, rng=None):
        super().__init__()
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("num_classes", num_classes)
        check_choice("pooling", pooling, ("cls", "mean"))
        if not isinstance(pad_id, (int, np.integer)) or not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id: got {pad_id!r}; expected an id in [0, {vocab_size})")
        rng = seeded_generator(rng)
        self.pooling, self.pad_id, self.max_len = pooling, int(pad_id), max_len
        self.tok_embed = Embedding(vocab_size, d_model, padding_idx=pad_id, dtype=dtype, rng=rng)
        self.pos_embed = PositionalEncoding(d_model, max_len=max_len, kind="learned", dropout=dropout, dtype=dtype,
                                            rng=rng)
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                                        activation=activation, batch_first=True, norm_first=norm_first,
                                        dtype=dtype, rng=rng)
        norm = LayerNorm(d_model, dtype=dtype) if norm_first else None
        self.encoder = TransformerEncoder(layer, num_layers, norm=norm, rng=rng)
        self.head = Linear(d_model, num_classes, dtype=dtype, rng=rng)
        self._cache = None

    def _check_ids(self, ids) -> None:
        check_integer("ids", ids)
        check_ndim("ids", ids, 2, "(B, T)")
        if not 1 <= ids.shape[1] <= self.max_len:
            raise ValueError(f"ids: got {ids.shape[1]} positions; expected between 1 and max_len = {self.max_len}")

    def forward(self, ids, output_hidden_states: bool = False, output_attentions: bool = False):
        """Class scores.

        Inputs:
            ids: int (B, T), padded with ``pad_id`` (at least one non-padding token per row)
            output_hidden_states, output_attentions: also return what enters layer 0 and every layer's output
                (L + 1 arrays (B, T, D), before the final norm) / attention probabilities (L arrays
                (B, H, T, T)); see :mod:`numpy_transformer.models.outputs`

        Returns:
            logits: (B, num_classes), or a :class:`~numpy_transformer.models.outputs.ModelOutput` holding them
            as ``output`` with either flag
        """
        self._check_ids(ids)
        padding = ids == self.pad_id                                # (B, T) True = padding
        x = self.pos_embed(self.tok_embed(ids))                     # (B, T) -> (B, T, D)
        # the encoder's loop, written out so that each layer can be recorded (backward reads it upwards)
        x, hidden, attentions, _ = run_layers(self.encoder.layers, x, output_hidden_states, output_attentions,
                                              src_key_padding_mask=padding)  # (B, T, D)
        if self.encoder.norm is not None:
            x = self.encoder.norm(x)                                # (B, T, D), the final norm of pre-norm layers
        if self.pooling == "cls":
            pooled, weights = x[:, 0], None                         # (B, T, D) -> (B, D)
        else:
            keep = (~padding).astype(x.dtype)                       # (B, T) 1 = token, 0 = padding
            count = get_array_module(x).maximum(keep.sum(axis=1, keepdims=True), 1.0)  # (B, 1)
            weights = keep / count                                  # (B, T), each row sums to 1
            pooled = (x * weights[..., None]).sum(axis=1)           # (B, T, D) -> (B, D)
        self._cache = (x.shape, weights)
        logits = self.head(pooled)                                  # (B, D) -> (B, num_classes)
        if output_hidden_states or output_attentions:
            return ModelOutput(logits, None if hidden is None else tuple(hidden),
                               None if attentions is None else tuple(attentions))
        return logits

    def backward(self, dlogits):
        """Add the gradient of every trainable parameter; returns None (ids have no gradient).

        Inputs:
            dlogits: (B, num_classes)
        """
        shape, weights = self._cached()
        xp = get_array_module(dlogits)
        # forward: logits = head(pooled)
        dpooled = self.head.backward(dlogits)                       # (B, num_classes) -> (B, D)
        # forward: pooled = x[:, 0] or (x * weights).sum(axis=1)
        if weights is None:
            dx = xp.zeros(shape, dtype=dpooled.dtype)              # (B, T, D)
            dx[:, 0] = dpooled
        else:
            dx = dpooled[:, None, :] * weights[..., None]           # (B, 1, D) * (B, T, 1) -> (B, T, D)
        # forward: x = encoder.norm(x), when the layers are pre-norm
        if self.encoder.norm is not None:
            dx = self.encoder.norm.backward(dx)                     # (B, T, D)
        # forward: x = layer(x), layer by layer, read upwards, stopping where nothing below needs a gradient
        layers = list(self.encoder.layers)
        needed = self._lowest_trainable()
        for index in range(len(layers) - 1, -1, -1):
            if index < needed:
                return None
            dx = layers[index].backward(dx)                         # (B, T, D)
        # forward: x = pos_embed(tok_embed(ids))
        dx = self.pos_embed.backward(dx)                            # (B, T, D)
        if self.tok_embed.weight.requires_grad:
            self.tok_embed.backward(dx)
        return None

    def _lowest_trainable(self) -> int:
        """Index of the lowest encoder layer a gradient must reach: -1 when the embeddings still learn."""
        if any(p.requires_grad for p in self.tok_embed.parameters()) or any(
                p.requires_grad for p in self.pos_embed.parameters()):
            return -1
        for index, layer in enumerate(self.encoder.layers):
            if any(p.requires_grad for p in layer.parameters()):
                return index
        return len(self.encoder.layers)

    def freeze_bottom(self, n_layers: int) -> TransformerClassifier:
        """Freeze the embeddings and the first ``n_layers`` encoder layers (0 freezes the embeddings only)."""
        if isinstance(n_layers, bool) or not isinstance(n_layers, (int, np.integer)) or not (
                0 <= n_layers <= len(self.encoder.layers)):
            raise ValueError(f"n_layers: got {n_layers!r}; expected an int in [0, {len(self.encoder.layers)}]")
        self.tok_embed.freeze()
        self.pos_embed.freeze()
        for layer in list(self.encoder.layers)[:n_layers]:
            layer.freeze()
        return self

    def loss(self, logits, labels):
        """Mean cross-entropy of ``logits`` (B, num_classes) against int ``labels`` (B,); returns (loss, dlogits)."""
        loss, cache = cross_entropy_forward(logits, labels)
        return loss, cross_entropy_backward(1.0, cache)

    # ----------------------------------------------------------------------------------- pictures
    def attention_weights(self, ids, layer: int = -1, head: int | None = None):
        """Self-attention weights of encoder layer ``layer``: (B, H, T, T), or (B, T, T) for one ``head``.

        Runs in eval mode (training mode is restored afterwards); every layer's at once:
        ``forward(ids, output_attentions=True).attentions``.
        """
        index = range(len(self.encoder.layers))[layer]
        was_training = self.training
        self.eval()
        try:
            weights = self.forward(ids, output_attentions=True).attentions[index]  # (B, H, T, T)
        finally:
            self.train(was_training)
        return weights if head is None else weights[:, head]

"""The Vision Transformer (Dosovitskiy et al. 2020): an image is a sentence of patches.

Forward:

    x = PatchEmbed(images)                       (B, C, H, W) -> (B, N, D), N = (H/P)(W/P) patches
    x = [cls; x] + pos                           (B, N+1, D): a learned class token first, learned positions
    x = Encoder(x)                               pre-norm blocks (norm_first=True, gelu), then a final LayerNorm
    logits = Head(x[:, 0])                       (B, D) -> (B, num_classes), read from the class token only

The class token attends to every patch in every layer, so its final vector summarizes the image; its
attention weights over the patches (:meth:`VisionTransformer.cls_attention`) show where the model looks.

Backward, read upwards: the head's gradient enters the encoder at position 0 only (the patch outputs are not
read, so their gradient is zero); through the encoder; the position table's gradient is the sum over the
batch, the class token's the sum over the batch of position 0; the rest flows into the patch embedding and
back to the pixels.

State dict keys (those of a torch twin with ``Conv2d`` patches): ``patch_embed.proj.weight`` (D, C, P, P),
``patch_embed.proj.bias``, ``cls_token`` (1, 1, D), ``pos_embed`` (1, N+1, D), ``encoder.layers.{i}.*``,
``encoder.norm.*``, ``head.weight``, ``head.bias``.

Hugging Face's ViT (``ViTModel``, ``ViTForImageClassification``) is this model: its convolutional patch
embedding is ``patch_embed``, its ``layernorm_before`` / ``layernorm_after`` are each layer's ``norm1`` /
``norm2`` (pre-norm, with the config's ``layer_norm_eps``), its final ``layernorm`` is ``encoder.norm`` and
its ``classifier`` is ``head``. :meth:`VisionTransformer.from_pretrained` loads either
(:mod:`numpy_transformer.io.huggingface`); a ``ViTModel`` has no head (``num_classes=None``), and its
``pooler`` is not used. Images go in already preprocessed (resized and normalized as the model's
image processor does), as ``pixel_values`` (B, C, H, W).
"""
from __future__ import annotations

import numpy as np

from ..backend import as_dtype, get_array_module, seeded_generator
from ..checks import check_positive_int
from ..nn.layers import Dropout, LayerNorm, Linear, PatchEmbedding
from ..nn.module import Module, Parameter
from ..nn.transformer import TransformerEncoder, TransformerEncoderLayer
from .outputs import ModelOutput, run_layers

__all__ = ["VisionTransformer"]


class VisionTransformer(Module):
    """ViT classifier.

    Inputs:
        image_size: int or (H, W), divisible by ``patch_size``
        patch_size: P
        in_channels: C
        num_classes: number of output classes, or None for no head (forward then returns the final
            token vectors (B, N+1, D), as Hugging Face's ``ViTModel``)
        d_model, nhead, num_layers, dim_feedforward, dropout: the encoder's sizes
        activation: ``"gelu"`` (exact), ``"gelu_tanh"`` or ``"relu"``; layer_norm_eps: every LayerNorm's eps
        dtype, rng: parameter dtype and the seed / Generator of the initialisation and dropout
    """

    def __init__(self, image_size, patch_size: int, in_channels: int = 3, num_classes: int | None = 10,
                 d_model: int = 64, nhead: int = 4, num_layers: int = 4, dim_feedforward: int = 128,
                 dropout: float = 0.0, activation: str = "gelu", layer_norm_eps: float = 1e-5,
                 dtype=np.float32, rng=None):
        super().__init__()
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        check_positive_int("num_layers", num_layers)
        rng, dtype = seeded_generator(rng), as_dtype(dtype)
        self.patch_embed = PatchEmbedding(image_size, patch_size, in_channels, d_model, dtype=dtype, rng=rng)
        N = self.patch_embed.num_patches
        self.cls_token = Parameter((0.02 * rng.standard_normal((1, 1, d_model))).astype(dtype))
        self.pos_embed = Parameter((0.02 * rng.standard_normal((1, N + 1, d_model))).astype(dtype))
        self.pos_dropout = Dropout(dropout, rng=rng)
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                                        activation=activation, layer_norm_eps=layer_norm_eps, batch_first=True,
                                        norm_first=True, dtype=dtype, rng=rng)
        self.encoder = TransformerEncoder(layer, num_layers, norm=LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype),
                                          rng=rng)
        self.head = None if num_classes is None else Linear(d_model, num_classes, dtype=dtype, rng=rng)
        self.num_patches = N
        self._shape = None

    def _tokens(self, images):
        """Class token, patch vectors and positions: images (B, C, H, W) -> (B, N+1, D)."""
        xp = get_array_module(images)
        patches = self.patch_embed(images)                          # (B, C, H, W) -> (B, N, D)
        B, _, D = patches.shape
        cls = xp.broadcast_to(self.cls_token.data, (B, 1, D))       # (1, 1, D) -> (B, 1, D)
        x = xp.concatenate([cls, patches], axis=1)                  # (B, N+1, D)
        return self.pos_dropout(x + self.pos_embed.data)            # (B, N+1, D)

    def forward(self, images, output_hidden_states: bool = False, output_attentions: bool = False):
        """Class scores.

        Inputs:
            images: (B, C, H, W) float
            output_hidden_states, output_attentions: also return what enters layer 0 and every layer's output
                (L + 1 arrays (B, N+1, D), before the final norm) / attention probabilities (L arrays
                (B, H, N+1, N+1)); see :mod:`numpy_transformer.models.outputs`

        Returns:
            logits: (B, num_classes), or the final token vectors (B, N+1, D) without a head; a
            :class:`~numpy_transformer.models.outputs.ModelOutput` holding it with either flag
        """
        x = self._tokens(images)                                    # (B, N+1, D)
        x, hidden, attentions, _ = run_layers(self.encoder.layers, x, output_hidden_states, output_attentions)
        x = self.encoder.norm(x)                                    # (B, N+1, D), the final norm
        self._shape = x.shape
        out = x if self.head is None else self.head(x[:, 0])        # (B, D) -> (B, num_classes)
        if output_hidden_states or output_attentions:
            return ModelOutput(out, None if hidden is None else tuple(hidden),
                               None if attentions is None else tuple(attentions))
        return out

    def backward(self, dout):
        """dout (B, num_classes), or (B, N+1, D) without a head -> dimages (B, C, H, W); adds every
        parameter's gradient."""
        if self._shape is None:
            raise RuntimeError("VisionTransformer.backward: called before forward; run forward first")
        xp = get_array_module(dout)
        if self.head is None:
            dx = dout                                               # (B, N+1, D)
        else:
            # forward: logits = head(x[:, 0])
            dcls = self.head.backward(dout)                         # (B, num_classes) -> (B, D)
            dx = xp.zeros(self._shape, dtype=dcls.dtype)            # (B, N+1, D): patch outputs are not read
            dx[:, 0] = dcls
        # forward: x = encoder.norm(x)
        dx = self.encoder.norm.backward(dx)                         # (B, N+1, D)
        # forward: x = layer(x), layer by layer
        for layer in reversed(list(self.encoder.layers)):
            dx = layer.backward(dx)                                 # (B, N+1, D)
        # forward: x = dropout(concat([cls, patches]) + pos_embed)
        dx = self.pos_dropout.backward(dx)                          # (B, N+1, D)
        if self.pos_embed.requires_grad:
            self.pos_embed.accumulate_grad(dx.sum(axis=0, keepdims=True))  # (B, N+1, D) -> (1, N+1, D)
        if self.cls_token.requires_grad:
            self.cls_token.accumulate_grad(dx[:, :1].sum(axis=0, keepdims=True))  # (B, 1, D) -> (1, 1, D)
        # forward: patches = patch_embed(images)
        return self.patch_embed.backward(dx[:, 1:])                 # (B, N, D) -> (B, C, H, W)

    # ----------------------------------------------------------------------------------- pictures
    def attention_weights(self, images, layer: int = -1):
        """Self-attention weights (B, H, N+1, N+1) of encoder layer ``layer``; index 0 is the class token.

        Runs in eval mode (restored afterwards); every layer's at once:
        ``forward(images, output_attentions=True).attentions``.
        """
        index = range(len(self.encoder.layers))[layer]
        was_training = self.training
        self.eval()
        try:
            return self.forward(images, output_attentions=True).attentions[index]
        finally:
            self.train(was_training)

    def cls_attention(self, images, layer: int = -1, grid: bool = True):
        """How much the class token attends to each patch in layer ``layer``.

        Returns (B, H, N) weights over the patches (the class token's weight on itself left out), or
        (B, H, H/P, W/P) laid out on the patch grid when ``grid`` is True, ready for ``imshow``.
        """
        weights = self.attention_weights(images, layer)[:, :, 0, 1:]  # (B, H, N+1, N+1) -> (B, H, N)
        if not grid:
            return weights
        rows = self.patch_embed.image_size[0] // self.patch_embed.patch_size
        return weights.reshape(weights.shape[0], weights.shape[1], rows, -1)  # (B, H, H/P, W/P)

    # ----------------------------------------------------------------------------------- Hugging Face
    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32) -> VisionTransformer:
        """A ViT (``ViTForImageClassification`` or ``ViTModel``) from a local Hugging Face folder, in eval mode."""
        from ..io.huggingface import load_pretrained

        return load_pretrained(folder, dtype=dtype, model_class=cls)

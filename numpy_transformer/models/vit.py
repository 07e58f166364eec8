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
"""
from __future__ import annotations

import numpy as np

from ..backend import as_dtype, get_array_module, seeded_generator
from ..checks import check_positive_int
from ..nn.layers import Dropout, LayerNorm, Linear, PatchEmbedding
from ..nn.module import Module, Parameter
from ..nn.transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = ["VisionTransformer"]


class VisionTransformer(Module):
    """ViT classifier.

    Inputs:
        image_size: int or (H, W), divisible by ``patch_size``
        patch_size: P
        in_channels: C
        num_classes: number of output classes
        d_model, nhead, num_layers, dim_feedforward, dropout: the encoder's sizes
        dtype, rng: parameter dtype and the seed / Generator of the initialisation and dropout
    """

    def __init__(self, image_size, patch_size: int, in_channels: int = 3, num_classes: int = 10,
                 d_model: int = 64, nhead: int = 4, num_layers: int = 4, dim_feedforward: int = 128,
                 dropout: float = 0.0, dtype=np.float32, rng=None):
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("num_layers", num_layers)
        rng, dtype = seeded_generator(rng), as_dtype(dtype)
        self.patch_embed = PatchEmbedding(image_size, patch_size, in_channels, d_model, dtype=dtype, rng=rng)
        N = self.patch_embed.num_patches
        self.cls_token = Parameter((0.02 * rng.standard_normal((1, 1, d_model))).astype(dtype))
        self.pos_embed = Parameter((0.02 * rng.standard_normal((1, N + 1, d_model))).astype(dtype))
        self.pos_dropout = Dropout(dropout, rng=rng)
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                                        activation="gelu", batch_first=True, norm_first=True, dtype=dtype, rng=rng)
        self.encoder = TransformerEncoder(layer, num_layers, norm=LayerNorm(d_model, dtype=dtype), rng=rng)
        self.head = Linear(d_model, num_classes, dtype=dtype, rng=rng)
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

    def forward(self, images):
        """Class scores.

        Inputs:
            images: (B, C, H, W) float

        Returns:
            logits: (B, num_classes)
        """
        x = self._tokens(images)                                    # (B, N+1, D)
        x = self.encoder(x)                                         # (B, N+1, D), ends with the final norm
        self._shape = x.shape
        return self.head(x[:, 0])                                   # (B, D) -> (B, num_classes)

    def backward(self, dlogits):
        """dlogits (B, num_classes) -> dimages (B, C, H, W); adds every parameter's gradient."""
        if self._shape is None:
            raise RuntimeError("VisionTransformer.backward: called before forward; run forward first")
        xp = get_array_module(dlogits)
        # forward: logits = head(x[:, 0])
        dcls = self.head.backward(dlogits)                          # (B, num_classes) -> (B, D)
        dx = xp.zeros(self._shape, dtype=dcls.dtype)               # (B, N+1, D): patch outputs are not read
        dx[:, 0] = dcls
        # forward: x = encoder(x)
        dx = self.encoder.backward(dx)                              # (B, N+1, D)
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

        Runs in eval mode; inference only (it overwrites the caches of the last forward pass).
        """
        was_training = self.training
        self.eval()
        try:
            layers = self.encoder.layers
            index = range(len(layers))[layer]
            x = self._tokens(images)                                # (B, N+1, D)
            for i, block in enumerate(layers):
                if i == index:
                    h = block.norm1(x) if block.norm_first else x   # (B, N+1, D)
                    _, weights = block.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
                    return weights                                  # (B, H, N+1, N+1)
                x = block(x)
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

r"""What a model gives when asked for its insides: the hidden states and attentions of every layer.

Every model here takes ``output_hidden_states=False`` and ``output_attentions=False`` in its ``forward``, with
the meaning of Hugging Face's flags. Without them ``forward`` returns its usual array (hidden states,
logits); with either it returns a :class:`ModelOutput` whose ``output`` is that same array and whose other
fields hold one array per layer, layer 0 first:

- ``hidden_states``: L + 1 arrays (B, T, D): what the embeddings hand to layer 0, then the output of each
  layer. As in ``transformers``, a model that ends with a final norm (GPT-2) applies it to the last entry,
  and one whose final norm is part of the output (ViT's ``layernorm``) does not.
- ``attentions``: L arrays (B, H, T, S): each layer's attention probabilities, per head, before dropout
  (row t of head h: how query t spreads its attention over the S keys; rows sum to 1).

An encoder-decoder (the translator) fills ``encoder_hidden_states``, ``encoder_attentions``,
``hidden_states`` and ``attentions`` (its decoder's) and ``cross_attentions`` (L arrays (B, H, T, S), the
target positions reading the source).

The forward pass that records these is the ordinary one: it keeps its caches, so ``backward`` works after
it as after any forward.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ModelOutput", "run_layers"]


@dataclass
class ModelOutput:
    """The usual output of a model's forward, and the per-layer arrays asked for (None when not asked)."""

    output: Any
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    encoder_hidden_states: tuple | None = None
    encoder_attentions: tuple | None = None
    cross_attentions: tuple | None = None


def run_layers(layers, x, output_hidden_states: bool = False, output_attentions: bool = False, caches=None,
               memory=None, **layer_kwargs):
    """Run ``x`` through each layer in turn, recording what was asked.

    Inputs:
        layers: encoder layers (``layer(x, **layer_kwargs)``) or decoder layers (``layer(x, memory, ...)``)
        x: (B, T, D) the input of the first layer
        output_hidden_states, output_attentions: record the per-layer states / attention probabilities
        caches: None, or one cache per layer, passed as ``cache=`` (decoding)
        memory: (B, S, D) for decoder layers, else None
        layer_kwargs: masks etc., the same for every layer

    Returns:
        x: (B, T, D) the last layer's output
        hidden: None, or a list of L + 1 arrays (B, T, D) (the input, then each layer's output)
        attentions: None, or a list of L arrays (B, H, T, S) (self-attention)
        cross: None, or (decoder layers) a list of L arrays (B, H, T, S) (cross-attention)
    """
    memory_args = () if memory is None else (memory,)
    hidden = [x] if output_hidden_states else None
    attentions = [] if output_attentions else None
    cross = [] if output_attentions and memory is not None else None
    for index, layer in enumerate(layers):
        if caches is not None:
            layer_kwargs["cache"] = caches[index]
        if output_attentions:
            x, *weights = layer(x, *memory_args, need_weights=True, **layer_kwargs)  # (B, T, D), (B, H, T, S) ...
            attentions.append(weights[0])
            if cross is not None:
                cross.append(weights[1])
        else:
            x = layer(x, *memory_args, **layer_kwargs)              # (B, T, D)
        if output_hidden_states:
            hidden.append(x)
    return x, hidden, attentions, cross

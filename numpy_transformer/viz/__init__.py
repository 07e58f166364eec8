"""Pictures of what a Transformer computes: attention maps, positional encodings, training curves.

Needs matplotlib (``pip install matplotlib``); the rest of the library does not. Every function draws on a
given ``ax`` or on a new figure, titles and labels its axes, and saves a PNG when given ``path``.
"""
from .plots import (
    attention_heads_grid,
    attention_heatmap,
    head_view,
    loss_curve,
    patch_grid,
    positional_encoding_plot,
    save_figure,
    similarity_matrix,
)

__all__ = [
    "attention_heatmap",
    "attention_heads_grid",
    "head_view",
    "positional_encoding_plot",
    "loss_curve",
    "similarity_matrix",
    "patch_grid",
    "save_figure",
]

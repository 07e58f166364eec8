"""Pictures of what a Transformer computes: attention maps, positional encodings, training curves.

Needs matplotlib (``pip install matplotlib``); the rest of the library does not. Every function draws on a
given ``ax`` or on a new figure, titles and labels its axes, and saves a PNG when given ``path``.
"""
from .plots import (  # noqa: F401  (__all__: the same public names as plots)
    __all__,
    attention_heads_grid,
    attention_heatmap,
    head_view,
    loss_curve,
    patch_grid,
    positional_encoding_plot,
    save_figure,
    similarity_matrix,
)

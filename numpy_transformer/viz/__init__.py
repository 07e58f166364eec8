"""Pictures of what a Transformer computes: attention maps, positional encodings, training curves.

- ``plots``: matplotlib pictures (PNG). Needs matplotlib (``pip install matplotlib``); the rest of the library
  does not. Every function draws on a given ``ax`` or on a new figure, titles and labels its axes, and saves a
  PNG when given ``path``.
- ``html``: interactive attention views, each one self-contained HTML page (inline script and style, nothing
  fetched), for a browser or a notebook: :class:`HeadView`, :class:`ModelView`, :func:`encoder_decoder_view`,
  and :func:`head_view_html` / :func:`model_view_html` straight from a model, a tokenizer and a text.
"""
from . import html, plots
from .html import (  # noqa: F401
    AttentionSet,
    AttentionView,
    HeadView,
    ModelView,
    encoder_decoder_view,
    head_view_html,
    model_attention,
    model_view_html,
)
from .plots import (  # noqa: F401
    attention_heads_grid,
    attention_heatmap,
    head_view,
    loss_curve,
    patch_grid,
    positional_encoding_plot,
    save_figure,
    similarity_matrix,
)

__all__ = plots.__all__ + html.__all__

r"""Interactive attention views: each one self-contained HTML page, for a browser or a Jupyter notebook.

A multi-head attention layer gives, for each head $h$, a matrix $A^{(h)} \in [0, 1]^{T \times S}$ whose row
$t$ is how query token $t$ spreads its attention over the $S$ key tokens:

$$A^{(h)}_{ts} = \mathrm{softmax}_s\!\left(\frac{q^{(h)}_t \cdot k^{(h)}_s}{\sqrt{d_h}}\right),
\qquad \sum_s A^{(h)}_{ts} = 1 .$$

A model of $L$ layers holds $L \times H$ such matrices for every sentence it reads: too many to print, so these
pages let you look at them (after BertViz's head and model views):

- :class:`HeadView` shows one layer at a time: the query tokens in a left column, the key tokens in a right
  column and, for each head, a line from $t$ to $s$ in the head's colour with opacity $A^{(h)}_{ts}$. Heads
  toggle on and off; hovering a token (or clicking it, to pin it) keeps only its lines and names the token each
  head looks at most; a selector picks the layer.
- :class:`ModelView` shows every layer x head at once as small heatmaps (white = 0, the head's colour = 1);
  click one to enlarge it, with its tokens, and hover a cell to read its weight.
- Both pages hold both views (a button switches); the class only picks the one shown first. A page may hold
  several kinds of attention of one sentence, chosen from a menu: an encoder-decoder has the encoder's
  self-attention (source to source), the decoder's self-attention (target to target) and the
  cross-attention (each target position on the left, the source tokens on the right); see
  :func:`encoder_decoder_view`.
- :func:`head_view_html` and :func:`model_view_html` build the page straight from a model, a tokenizer and a
  text, for BERT, DistilBERT, the classifier, GPT (GPT-2 included) and the translator: :func:`model_attention`
  reads the weights from the per-layer record every model keeps, ``forward(..., output_attentions=True)``.

Layers and heads are numbered from 0, as the models index them (``attention_weights(layer=0)``).

The page. One HTML document with its script and style inline and a Content-Security-Policy that forbids
loading anything (no fonts, scripts or images from a network: it works offline and from a file). The weights
travel inside it as JSON in a ``<script type="application/json">`` block; every token is written into the
page as text (``textContent``), never as HTML, so a token such as ``</script>`` or ``<b>`` is shown as typed.
:meth:`AttentionView.save` writes the file atomically; in a notebook ``_repr_html_`` shows the page inside an
``<iframe srcdoc=...>``, so that several views in one notebook keep their element ids and styles apart.

Size. Each weight is stored as one byte, the nearest of 256 levels, $q = \mathrm{round}(255\,A)$, and the page
draws $q / 255$, which is within $1/510 \approx 0.002$ of the model's weight. Base64 makes that
$\frac{4}{3} L H T S$ bytes plus about 20 kB of page: a 6-layer, 12-head view of 128 tokens is about 1.6 MB.
The lines of the head view are drawn on a ``<canvas>`` rather than as SVG elements, because 128 tokens x 12
heads are up to 196,608 lines per layer, far beyond what a page of SVG elements redraws on every hover. Lines
of equal opacity are stroked together, 64 to a path, one device pixel wide (the width a browser draws fastest;
a token in focus gets wider lines); with no token in focus, weights below 0.01, invisible anyway, are left out.
"""
from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from importlib import resources

import numpy as np

from ..backend import to_numpy
from ..io.atomic import atomic_write

__all__ = [
    "AttentionSet",
    "AttentionView",
    "HeadView",
    "ModelView",
    "encoder_decoder_view",
    "model_attention",
    "head_view_html",
    "model_view_html",
]

#: the weights are stored as round(LEVELS * weight), one byte each
LEVELS = 255
#: weights may exceed [0, 1] by this much (float rounding in a softmax) and are then clipped
_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------- checks

def _host_array(name: str, x) -> np.ndarray:
    """``x`` (NumPy, CuPy or nested lists) as a float64 NumPy array, or a TypeError naming ``name``."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        x = to_numpy(x)
    try:
        array = np.asarray(x)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{name}: got a ragged nested list ({error}); expected an array") from None
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise TypeError(f"{name}: got dtype {array.dtype}; expected attention weights (floats in [0, 1])")
    return array.astype(np.float64)


def _check_layer(name: str, layer: np.ndarray) -> np.ndarray:
    """One layer as (H, T, S): (H, T, S) as it is, (1, H, T, S) (a batch of one) or (T, S) (one head)."""
    if layer.ndim == 4:
        if layer.shape[0] != 1:
            raise ValueError(f"{name}: got shape {layer.shape}, a batch of {layer.shape[0]}; expected (H, T, S) "
                             "or (1, H, T, S): one sequence (pick one with [b])")
        layer = layer[0]
    elif layer.ndim == 2:
        layer = layer[None]
    elif layer.ndim != 3:
        raise ValueError(f"{name}: got shape {layer.shape} ({layer.ndim}-D); expected (H, T, S) (heads, query "
                         "tokens, key tokens), (1, H, T, S) or (T, S)")
    return layer


def _check_attention(name: str, attention) -> np.ndarray:
    """Every layer's weights as one (L, H, T, S) float64 array, with named errors on a mismatch.

    ``attention``: a list (or tuple) of L layers, each (H, T, S), (1, H, T, S) or (T, S); or one array
    (L, H, T, S), (H, T, S) (one layer) or (T, S) (one layer, one head).
    """
    if isinstance(attention, (list, tuple)):
        if not attention:
            raise ValueError(f"{name}: got an empty list; expected one array (H, T, S) per layer")
        layers = []
        for index, item in enumerate(attention):
            layer = _check_layer(f"{name}[{index}]", _host_array(f"{name}[{index}]", item))
            if layers and layer.shape[0] != layers[0].shape[0]:
                raise ValueError(f"{name}[{index}]: got {layer.shape[0]} heads; expected {layers[0].shape[0]} "
                                 f"(the heads of {name}[0]): every layer must have the same heads")
            if layers and layer.shape != layers[0].shape:
                raise ValueError(f"{name}[{index}]: got shape {layer.shape}; expected {layers[0].shape} (heads, "
                                 f"query tokens, key tokens of {name}[0])")
            layers.append(layer)
        weights = np.stack(layers)                                   # L x (H, T, S) -> (L, H, T, S)
    else:
        weights = _host_array(name, attention)
        if weights.ndim == 4:
            pass
        elif weights.ndim in (2, 3):
            weights = _check_layer(name, weights)[None]              # -> (1, H, T, S)
        else:
            raise ValueError(f"{name}: got shape {weights.shape} ({weights.ndim}-D); expected (L, H, T, S) "
                             "(layers, heads, query tokens, key tokens), (H, T, S) or (T, S)")
    if 0 in weights.shape:
        raise ValueError(f"{name}: got shape {weights.shape} (layers, heads, query tokens, key tokens); "
                         "expected at least one of each")
    if not np.isfinite(weights).all():
        raise ValueError(f"{name}: got NaN or infinite values; expected attention weights in [0, 1]")
    low, high = float(weights.min()), float(weights.max())
    if low < -_TOLERANCE or high > 1 + _TOLERANCE:
        raise ValueError(f"{name}: got values from {low:.4g} to {high:.4g}; expected attention weights in "
                         "[0, 1] (softmax probabilities, not scores)")
    return np.clip(weights, 0.0, 1.0)


def _check_tokens(name: str, tokens, size: int, axis: str) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name}: got {type(tokens).__name__}; expected a list of {size} str tokens")
    for index, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"{name}[{index}]: got {type(token).__name__} {token!r}; expected a str")
    if len(tokens) != size:
        raise ValueError(f"{name}: got {len(tokens)} tokens; expected {size} (the {axis} of the attention)")
    return list(tokens)


# ---------------------------------------------------------------------------------------------- data

class AttentionSet:
    """One kind of attention over one sentence: every layer's and head's weights, and the tokens.

    Inputs:
        attention: a list of L arrays (H, T, S) (or (1, H, T, S), as the models return them for one sentence),
            or one array (L, H, T, S), (H, T, S) or (T, S); NumPy or CuPy; values in [0, 1]
        tokens: T labels of the queries (the left column)
        key_tokens: S labels of the keys (the right column); default ``tokens`` (self-attention)
        name: what the menu calls this attention, e.g. ``"cross-attention"``
        description: one line the page shows under the controls (what the two columns are)

    Attributes: ``name``, ``description``, ``weights`` (L, H, T, S) float64, ``query_tokens``, ``key_tokens``.
    """

    def __init__(self, attention, tokens, key_tokens=None, name: str = "self-attention", description: str = ""):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name: got {name!r}; expected a non-empty str")
        if not isinstance(description, str):
            raise TypeError(f"description: got {type(description).__name__}; expected a str")
        self.weights = _check_attention("attention", attention)     # (L, H, T, S)
        _, _, T, S = self.weights.shape
        self.query_tokens = _check_tokens("tokens", tokens, T, f"query axis (T = {T})")
        if key_tokens is None:
            if S != T:
                raise ValueError(f"key_tokens: got None; expected {S} key tokens (the attention has T = {T} "
                                 f"queries but S = {S} keys, so they are not the query tokens)")
            key_tokens = self.query_tokens
        self.key_tokens = _check_tokens("key_tokens", key_tokens, S, f"key axis (S = {S})")
        self.name, self.description = name, description

    @property
    def num_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def num_heads(self) -> int:
        return self.weights.shape[1]

    def levels(self) -> np.ndarray:
        """The weights as the page stores them: uint8 (L, H, T, S), ``round(255 * weight)``."""
        return np.rint(self.weights * LEVELS).astype(np.uint8)

    def _json(self) -> dict:
        return {
            "name": self.name, "description": self.description,
            "layers": self.num_layers, "heads": self.num_heads,
            "queries": self.query_tokens, "keys": self.key_tokens,
            "weights": base64.b64encode(self.levels().tobytes()).decode("ascii"),  # C order: (L, H, T, S)
        }

    def __repr__(self) -> str:
        L, H, T, S = self.weights.shape
        return f"AttentionSet({self.name!r}, layers={L}, heads={H}, queries={T}, keys={S})"


# ---------------------------------------------------------------------------------------------- page

def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _script_json(value) -> str:
    """JSON that is safe inside ``<script>``: ``<``, ``>`` and ``&`` escaped, so ``</script>`` cannot end it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# nothing may be fetched: no network, no file; the inline script and style are the whole page
_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
           "font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")


def _page(sets: list[AttentionSet], title: str, view: str) -> str:
    data = {"title": title, "view": view, "levels": LEVELS, "sets": [s._json() for s in sets]}
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_POLICY}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{_asset('attention_view.css')}</style>\n</head>\n"
        "<body>\n<div id=\"nt-view\" class=\"nt-view\"></div>\n"
        f"<script type=\"application/json\" id=\"nt-data\">{_script_json(data)}</script>\n"
        f"<script>\n{_asset('attention_view.js')}</script>\n</body>\n</html>\n"
    )


def _write_atomically(path: str, text: str) -> None:
    """Write ``text`` as UTF-8 through the project's atomic writer (:func:`~numpy_transformer.io.atomic.atomic_write`):
    ``path`` is replaced whole or not at all, with the usual permissions, and no temporary is left behind."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


class AttentionView:
    """A self-contained HTML page of one or more :class:`AttentionSet` s (see the module's docstring).

    Inputs:
        sets: an :class:`AttentionSet` or a list of them (the page's attention menu, in this order)
        title: the page's heading
        view: ``"head"`` or ``"model"``, the view shown first

    Attributes: ``html`` (the page, a str), ``sets``, ``title``, ``view``.
    """

    view = "head"

    def __init__(self, sets, title: str | None = None, view: str | None = None):
        sets = [sets] if isinstance(sets, AttentionSet) else list(sets) if isinstance(sets, (list, tuple)) else sets
        if not isinstance(sets, list) or not sets or not all(isinstance(s, AttentionSet) for s in sets):
            raise TypeError(f"sets: got {type(sets).__name__}; expected an AttentionSet or a non-empty list of them")
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise ValueError(f"sets: got the names {names}; expected each name once (they label the menu)")
        view = type(self).view if view is None else view
        if view not in ("head", "model"):
            raise ValueError(f"view: got {view!r}; expected 'head' or 'model'")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title: got {type(title).__name__}; expected a str")
        self.sets, self.view = sets, view
        self.title = title or ("Attention: " + ", ".join(names))
        self.html = _page(sets, self.title, view)

    def save(self, path) -> str:
        """Write the page to ``path`` (folders are created), atomically; returns the path as a str."""
        path = os.fspath(path)
        _write_atomically(path, self.html)
        return path

    def _iframe_height(self) -> int:
        if self.view == "model":
            rows = max(s.num_layers for s in self.sets)
            return int(min(900, 240 + 75 * rows))   # the enlarged square scrolls into view below
        tokens = max(max(len(s.query_tokens), len(s.key_tokens)) for s in self.sets)
        return int(min(720, 200 + 20 * tokens))

    def _repr_html_(self) -> str:
        """The page in an ``<iframe srcdoc>``: its own document, so ids and styles never meet another view's."""
        return (f"<iframe srcdoc=\"{html.escape(self.html, quote=True)}\" title=\"{html.escape(self.title)}\" "
                f"style=\"width: 100%; height: {self._iframe_height()}px; border: 1px solid #ddd;\"></iframe>")

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.title!r}, {len(self.html):,} characters, sets={self.sets!r})"


def _sets_from(attention, tokens, key_tokens, name) -> list[AttentionSet]:
    if isinstance(attention, AttentionSet) or (isinstance(attention, (list, tuple)) and attention
                                               and all(isinstance(a, AttentionSet) for a in attention)):
        if tokens is not None or key_tokens is not None:
            raise ValueError("tokens: got tokens beside AttentionSets; expected None (each set has its tokens)")
        return [attention] if isinstance(attention, AttentionSet) else list(attention)
    if tokens is None:
        raise ValueError("tokens: got None; expected the T query tokens of the attention")
    return [AttentionSet(attention, tokens, key_tokens, name=name)]


class HeadView(AttentionView):
    """Head view first: one layer, a line per head from each query token to each key token.

    >>> weights = bert(ids, output_attentions=True).attentions   # L arrays (1, H, T, T), ids (1, T)
    >>> HeadView(weights, tokens).save("head_view.html")

    Inputs:
        attention: as :class:`AttentionSet` (per-layer list or (L, H, T, S) array), or AttentionSet(s)
        tokens: T query tokens; key_tokens: S key tokens (default ``tokens``)
        title: the heading; name: the attention's name in the page (default ``"self-attention"``)
    """

    view = "head"

    def __init__(self, attention, tokens=None, key_tokens=None, *, title: str | None = None,
                 name: str = "self-attention"):
        super().__init__(_sets_from(attention, tokens, key_tokens, name), title=title, view=type(self).view)


class ModelView(HeadView):
    """Model view first: every layer x head as a small heatmap; click one to enlarge it. Inputs as HeadView."""

    view = "model"


def encoder_decoder_view(cross_attention, source_tokens, target_tokens, encoder_attention=None,
                         decoder_attention=None, *, title: str | None = None, view: str = "head") -> AttentionView:
    """The attention of an encoder-decoder: cross-attention, and the self-attention of either side.

    Inputs:
        cross_attention: per decoder layer (H, T, S) (or (L, H, T, S)): target position t reading source s
        source_tokens: S source tokens; target_tokens: T target (decoder) tokens
        encoder_attention: per encoder layer (H, S, S), or None
        decoder_attention: per decoder layer (H, T, T), or None
        view: ``"head"`` or ``"model"``, the view shown first

    Returns:
        an :class:`AttentionView` whose menu holds cross-attention first, then the encoder's and the decoder's
        self-attention when given
    """
    sets = [AttentionSet(cross_attention, target_tokens, source_tokens, name="cross-attention",
                         description="left: the target tokens (queries); right: the source tokens they read")]
    if encoder_attention is not None:
        sets.append(AttentionSet(encoder_attention, source_tokens, name="encoder self-attention",
                                 description="source tokens attending to source tokens"))
    if decoder_attention is not None:
        sets.append(AttentionSet(decoder_attention, target_tokens, name="decoder self-attention",
                                 description="target tokens attending to the target tokens before them"))
    return AttentionView(sets, title=title, view=view)


# ---------------------------------------------------------------------------------------------- models

def _recorded(model, run):
    """``run()`` (a forward pass asked for ``output_attentions=True``) in eval mode; the model's training mode is
    restored afterwards. Returns the :class:`~numpy_transformer.models.outputs.ModelOutput`."""
    was_training = model.training
    model.eval()
    try:
        return run()
    finally:
        model.train(was_training)


def _one_sequence(attentions) -> list:
    """The per-layer record of a batch of one, L arrays (1, H, T, S), as L NumPy arrays (H, T, S)."""
    return [to_numpy(layer)[0] for layer in attentions]


def _word_labels(tokenizer, words: list[str], ids) -> list[str]:
    """Each word as it is, marked when the vocabulary does not know it (it was read as <unk>)."""
    return [word if int(ids[k]) != tokenizer.unk_id else f"{word} (<unk>)" for k, word in enumerate(words)]


def model_attention(model, tokenizer, text: str, target_text: str | None = None,
                    max_tokens: int | None = None) -> list[AttentionSet]:
    """Every layer's and head's attention of ``model`` reading ``text``, as :class:`AttentionSet` s.

    The model runs one forward pass in eval mode (its training mode is restored) with ``output_attentions=True``,
    the per-layer record every model here keeps (:mod:`numpy_transformer.models.outputs`): the weights are
    those of its ``attentions`` (and, for the translator, ``encoder_attentions`` and ``cross_attentions``).

    Inputs:
        model and tokenizer, one of:
            - :class:`~numpy_transformer.models.bert.BertModel`, ``BertClassifier``,
              :class:`~numpy_transformer.models.distilbert.DistilBertModel` or
              ``DistilBertForSequenceClassification`` (a classifier shows its encoder), with a ``BertTokenizer``;
            - :class:`~numpy_transformer.models.TransformerClassifier`, with the ``WordTokenizer`` it was trained
              with (a ``<bos>`` is put first when it pools the first position, as ``demos/08_sentiment.py``);
            - :class:`~numpy_transformer.models.GPT`, with its ``CharTokenizer`` or ``WordTokenizer``, or (GPT-2)
              a :class:`~numpy_transformer.text.GPT2Tokenizer`, whose pieces are shown as the text they decode
              to (a piece that is white space only, or part of a character, as its byte symbols: ``Ġ``, ``Ċ``);
            - :class:`~numpy_transformer.models.Seq2SeqTransformer`, with a pair (source tokenizer, target
              tokenizer) of ``WordTokenizer`` s.
            (A Vision Transformer reads images, not text: give the ``attentions`` of its
            ``forward(images, output_attentions=True)`` to :class:`HeadView` with tokens such as
            ``["[class]", "patch 0", ...]``.)
        text: the sentence (for the translator, the source sentence)
        target_text: the translator's output to look at; default: the model's own greedy translation
        max_tokens: read at most this many tokens (special tokens included)

    Returns:
        the encoders, the classifier and GPT: one set (self-attention). The translator: ``[cross-attention,
        encoder self-attention, decoder self-attention]``, where each decoder position is labelled with the word
        it is producing (the decoder reads ``<bos> w1 .. wn`` and produces ``w1 .. wn <eos>``).
    """
    from ..models.bert import EncoderClassifier, EncoderModel
    from ..models.classifier import TransformerClassifier
    from ..models.gpt import GPT
    from ..models.translator import Seq2SeqTransformer

    if not isinstance(text, str):
        raise TypeError(f"text: got {type(text).__name__}; expected a str")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 2):
        raise ValueError(f"max_tokens: got {max_tokens!r}; expected None or an int >= 2")
    if isinstance(model, EncoderClassifier):
        model = model.encoder_model
    if isinstance(model, EncoderModel):
        return [_encoder_attention(model, tokenizer, text, max_tokens)]
    if isinstance(model, TransformerClassifier):
        return [_classifier_attention(model, tokenizer, text, max_tokens)]
    if isinstance(model, GPT):
        return [_gpt_attention(model, tokenizer, text, max_tokens)]
    if isinstance(model, Seq2SeqTransformer):
        return _translator_attention(model, tokenizer, text, target_text, max_tokens)
    raise TypeError(f"model: got {type(model).__name__}; expected a BertModel, BertClassifier, DistilBertModel, "
                    "DistilBertForSequenceClassification, TransformerClassifier, GPT or Seq2SeqTransformer")


def _encoder_attention(encoder, tokenizer, text, max_tokens) -> AttentionSet:
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens") or hasattr(tokenizer, "byte_decoder"):
        raise TypeError(f"tokenizer: got {type(tokenizer).__name__}; expected a BertTokenizer")
    batch = tokenizer([text], truncation=max_tokens is not None, max_length=max_tokens)
    inputs = (batch["input_ids"], batch["attention_mask"])
    if encoder.takes_token_types:                                            # BERT; DistilBERT has none
        inputs += (batch["token_type_ids"],)
    out = _recorded(encoder, lambda: encoder(*inputs, output_attentions=True))
    tokens = tokenizer.convert_ids_to_tokens([int(i) for i in batch["input_ids"][0]])
    return AttentionSet(_one_sequence(out.attentions), tokens, name="self-attention",
                        description="every token attending to every token")


def _classifier_attention(model, tokenizer, text, max_tokens) -> AttentionSet:
    if not hasattr(tokenizer, "batch_encode"):
        raise TypeError(f"tokenizer: got {type(tokenizer).__name__}; expected the model's WordTokenizer")
    first = model.pooling == "cls"
    limit = model.max_len if max_tokens is None else min(max_tokens, model.max_len)
    ids, lengths = tokenizer.batch_encode([text], add_bos=first, max_len=limit)
    ids = ids[:, :lengths[0]]                                                # (1, T), no padding
    if ids.shape[1] == 0:
        raise ValueError("text: got no tokens; expected at least one word")
    words = ([tokenizer.bos_token] if first else []) + tokenizer.split(text.lower() if tokenizer.lowercase else text)
    out = _recorded(model, lambda: model(ids, output_attentions=True))
    tokens = _word_labels(tokenizer, words[:ids.shape[1]], ids[0])
    return AttentionSet(_one_sequence(out.attentions), tokens, name="self-attention",
                        description="every token attending to every token")


def _byte_level_labels(tokenizer, ids) -> list[str]:
    """GPT-2's pieces as the text each decodes to; white space only, or part of a character: its byte symbols."""
    labels = []
    for piece_id in ids:
        text = tokenizer.decode([int(piece_id)])
        readable = text.strip() and "\ufffd" not in text
        labels.append(text if readable else tokenizer.convert_ids_to_tokens(int(piece_id)))
    return labels


def _gpt_attention(model, tokenizer, text, max_tokens) -> AttentionSet:
    limit = model.max_len if max_tokens is None else min(max_tokens, model.max_len)
    if hasattr(tokenizer, "byte_decoder"):                                   # GPT-2's byte-level BPE
        ids = np.array([tokenizer.encode(text)[:limit]], dtype=np.int64)     # (1, T)
        if ids.shape[1] == 0:
            raise ValueError("text: got no tokens; expected at least one character")
        tokens = _byte_level_labels(tokenizer, ids[0])
    elif hasattr(tokenizer, "batch_encode"):
        ids, lengths = tokenizer.batch_encode([text], max_len=limit)
        ids = ids[:, :lengths[0]]                                            # (1, T), no padding
        if ids.shape[1] == 0:
            raise ValueError("text: got no tokens; expected at least one")
        pieces = tokenizer.split(text.lower() if tokenizer.lowercase else text)[:ids.shape[1]]
        tokens = _word_labels(tokenizer, pieces, ids[0])
    else:
        raise TypeError(f"tokenizer: got {type(tokenizer).__name__}; expected a GPT2Tokenizer, or the model's "
                        "CharTokenizer or WordTokenizer")
    out = _recorded(model, lambda: model(ids, output_attentions=True))
    return AttentionSet(_one_sequence(out.attentions), tokens, name="causal self-attention",
                        description="each token attending to itself and the tokens before it")


def _translator_attention(model, tokenizers, text, target_text, max_tokens) -> list[AttentionSet]:
    if not (isinstance(tokenizers, (tuple, list)) and len(tokenizers) == 2
            and all(hasattr(t, "batch_encode") for t in tokenizers)):
        raise TypeError(f"tokenizer: got {type(tokenizers).__name__}; expected a pair (source tokenizer, target "
                        "tokenizer) for a Seq2SeqTransformer")
    source, target = tokenizers
    src, lengths = source.batch_encode([text], max_len=max_tokens)
    src = src[:, :lengths[0]]                                                # (1, S), no padding
    if src.shape[1] == 0:
        raise ValueError("text: got no tokens; expected at least one word")
    if target_text is None:
        longest = min(2 * src.shape[1] + 8, model.src_positional.max_len - 1)
        produced = model.greedy_decode(src, max_len=longest, bos_id=target.bos_id, eos_id=target.eos_id)[0]
        target_ids = [int(i) for i in to_numpy(produced)[1:]]                 # without <bos>
        if target.eos_id in target_ids:
            target_ids = target_ids[:target_ids.index(target.eos_id)]
    else:
        target_ids = target.encode(target_text)
    if max_tokens is not None:
        target_ids = target_ids[:max_tokens - 1]
    tgt_in = np.array([[target.bos_id] + target_ids], dtype=np.int64)       # (1, T): <bos> w1 .. wn
    out = _recorded(model, lambda: model(src, tgt_in, output_attentions=True))
    source_words = source.split(text.lower() if source.lowercase else text)[:src.shape[1]]
    source_tokens = _word_labels(source, source_words, src[0])
    read = [target.bos_token] + [target.itos[i] for i in target_ids]         # what the decoder reads
    producing = read[1:] + [target.eos_token]                                # what each position produces
    return [
        AttentionSet(_one_sequence(out.cross_attentions), producing, source_tokens, name="cross-attention",
                     description="left: the target word being produced; right: the source words it reads"),
        AttentionSet(_one_sequence(out.encoder_attentions), source_tokens, name="encoder self-attention",
                     description="source words attending to source words"),
        AttentionSet(_one_sequence(out.attentions), producing, read, name="decoder self-attention",
                     description="left: the target word being produced; right: the words read so far"),
    ]


def head_view_html(model, tokenizer, text: str, target_text: str | None = None, title: str | None = None,
                   max_tokens: int | None = None) -> HeadView:
    """A :class:`HeadView` of ``model`` reading ``text``; the arguments are those of :func:`model_attention`.

    >>> view = head_view_html(model=bert, tokenizer=tokenizer, text="The cat sat on the mat.")
    >>> view.save("head_view.html")          # or leave ``view`` last in a notebook cell
    """
    sets = model_attention(model, tokenizer, text, target_text=target_text, max_tokens=max_tokens)
    return HeadView(sets, title=title or f"{type(model).__name__}: \"{text[:80]}\"")


def model_view_html(model, tokenizer, text: str, target_text: str | None = None, title: str | None = None,
                    max_tokens: int | None = None) -> ModelView:
    """A :class:`ModelView` of ``model`` reading ``text``; the arguments are those of :func:`model_attention`."""
    sets = model_attention(model, tokenizer, text, target_text=target_text, max_tokens=max_tokens)
    return ModelView(sets, title=title or f"{type(model).__name__}: \"{text[:80]}\"")

"""Matplotlib pictures of the pieces of a Transformer.

Each function takes plain arrays (NumPy or CuPy; they are copied to the host), draws one picture, titles it
and labels its axes. It draws on ``ax`` when one is given, otherwise on a new figure, and returns the figure.
With ``path`` it also saves a PNG there (folders are created).

Figures are made with ``matplotlib.figure.Figure`` rather than ``pyplot``, so nothing here needs a display or
touches pyplot's global state; a figure shows in a notebook as it is, and is freed when it goes out of scope.

- :func:`attention_heatmap` -- one attention matrix (T, S), query tokens down the side, key tokens along the top.
- :func:`attention_heads_grid` -- every head of a layer (H, T, S), one panel each.
- :func:`head_view` -- lines from each query token (left) to the tokens it attends to (right), a panel per head.

Layers and heads are numbered from 0 in every title, as the models index them (``layer=0, head=0``).
- :func:`positional_encoding_plot` -- the sinusoidal table (T, D) as a heatmap.
- :func:`loss_curve` -- training (and validation) loss against step.
- :func:`similarity_matrix` -- a square matrix of similarities between labelled items.
- :func:`patch_grid` -- an image cut into the square patches a Vision Transformer reads.
- :func:`save_figure` -- save a figure as a PNG, creating folders.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from ..backend import to_numpy

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


def _new_axes(ax, figsize):
    """Return ``(figure, ax)``: the given axes and its figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot(1, 1, 1)


def _host(name: str, x, ndim: Sequence[int]):
    """``x`` as a NumPy float array with one of the allowed numbers of axes."""
    x = np.asarray(to_numpy(x) if hasattr(x, "dtype") else x, dtype=np.float64)
    if x.ndim not in tuple(ndim):
        want = " or ".join(str(n) for n in ndim)
        raise ValueError(f"{name}: got shape {x.shape} ({x.ndim}-D); expected {want}-D")
    return x


def _check_tokens(name: str, tokens, size: int, axis_name: str):
    if tokens is None:
        return None
    tokens = [str(t) for t in tokens]
    if len(tokens) != size:
        raise ValueError(f"{name}: got {len(tokens)} tokens; expected {size} (the {axis_name} of weights)")
    return tokens


def _text_color(image, value) -> str:
    """Black or white, whichever reads better on the colour ``image`` gives ``value``."""
    red, green, blue, _ = image.cmap(image.norm(value))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue  # the perceived brightness of the cell
    return "black" if luminance > 0.5 else "white"


def _tick_labels(ax, cols, rows, key_tokens, query_tokens, fontsize=None):
    """Token labels on both axes; the column labels are turned only when they would otherwise collide."""
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    if key_tokens is not None:
        # about 0.6 of the font size per character, against the width of one column
        column_inches = ax.figure.get_size_inches()[0] * ax.get_position().width / max(1, cols)
        char_inches = 0.6 * (fontsize or 10) / 72
        long = max((len(t) for t in key_tokens), default=0) * char_inches > 0.9 * column_inches
        ax.set_xticklabels(key_tokens, rotation=60 if long else 0, ha="right" if long else "center",
                           rotation_mode="anchor", fontsize=fontsize)
    if query_tokens is not None:
        ax.set_yticklabels(query_tokens, fontsize=fontsize)


def save_figure(fig, path) -> str:
    """Save ``fig`` to ``path`` (PNG unless the suffix says otherwise), creating missing folders.

    Returns the path as a string.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def attention_heatmap(weights, query_tokens=None, key_tokens=None, title="Attention weights", ax=None,
                      path=None, annotate=None, cmap="viridis", ignored_rows=None,
                      ignored_label="output discarded"):
    """Heatmap of one attention matrix: row t is how query token t spreads its attention over the keys.

    Inputs:
        weights: (T, S) attention probabilities (each row sums to 1, or 0 for a fully masked row)
        query_tokens: T labels for the rows (the tokens asking), or None for positions
        key_tokens: S labels for the columns (the tokens looked at); default: query_tokens when S == T
        title: the picture's title
        ax: draw here instead of on a new figure
        path: save a PNG here
        annotate: write each weight in its cell (default: when the matrix is at most 12 x 12)
        ignored_rows: T booleans (or row indices): rows whose output nothing uses (the queries of padding
            tokens, say); they are drawn grey, without numbers, and labelled ``ignored_label``

    Returns:
        the matplotlib figure
    """
    weights = _host("weights", weights, (2,))
    rows, cols = weights.shape
    query_tokens = _check_tokens("query_tokens", query_tokens, rows, "rows (T)")
    if key_tokens is None and query_tokens is not None and cols == rows:
        key_tokens = query_tokens
    key_tokens = _check_tokens("key_tokens", key_tokens, cols, "columns (S)")
    ignored = np.zeros(rows, dtype=bool)
    if ignored_rows is not None:
        chosen = np.asarray(to_numpy(ignored_rows) if hasattr(ignored_rows, "dtype") else ignored_rows)
        if chosen.dtype == bool:
            if chosen.shape != (rows,):
                raise ValueError(f"ignored_rows: got shape {chosen.shape}; expected ({rows},) booleans")
            ignored = chosen
        else:
            ignored[chosen.astype(int)] = True
    side = max(3.5, 0.45 * max(rows, cols) + 2.0)
    fig, ax = _new_axes(ax, (side + 1.0, side))

    import matplotlib

    shown = np.where(ignored[:, None], np.nan, weights)             # (T, S): ignored rows become "no value"
    colours = (matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap).with_extremes(bad="#d9d9d9")
    image = ax.imshow(shown, cmap=colours, vmin=0.0, vmax=max(1e-12, float(np.nanmax(shown, initial=0.0))),
                      aspect="auto")
    fig.colorbar(image, ax=ax, label="attention weight")
    if query_tokens is not None and ignored.any():
        query_tokens = [f"{t} ({ignored_label})" if ignored[i] else t for i, t in enumerate(query_tokens)]
    _tick_labels(ax, cols, rows, key_tokens, query_tokens)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    if annotate is None:
        annotate = max(rows, cols) <= 12
    if annotate:
        for (i, j), value in np.ndenumerate(weights):
            if not ignored[i]:
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=_text_color(image, value))
    return _finish(fig, path)


def attention_heads_grid(weights, tokens=None, key_tokens=None, title="Attention of every head", path=None,
                         columns=None, cmap="viridis", head_titles=None, layer=None):
    """One heatmap per head, side by side, on a shared colour scale with one colour bar.

    Heads are numbered from 0, as the model indexes them.

    Inputs:
        weights: (H, T, S) attention probabilities of one layer for one sentence
        tokens: T labels of the queries (and of the keys when S == T)
        key_tokens: S labels of the keys, when they differ from ``tokens`` (cross-attention)
        columns: panels per row (default: up to 4)
        head_titles: H panel titles (default "head 0", "head 1", ...); say there what each head does
        layer: the layer's index, put in front of each default panel title ("layer 1, head 0")

    Returns:
        the matplotlib figure
    """
    from matplotlib.figure import Figure

    weights = _host("weights", weights, (3,))
    heads, rows, cols = weights.shape
    tokens = _check_tokens("tokens", tokens, rows, "rows (T)")
    if key_tokens is None and tokens is not None and cols == rows:
        key_tokens = tokens
    key_tokens = _check_tokens("key_tokens", key_tokens, cols, "columns (S)")
    if head_titles is None:
        head_titles = [(f"layer {layer}, " if layer is not None else "") + f"head {h}" for h in range(heads)]
    head_titles = _check_tokens("head_titles", head_titles, heads, "heads (H)")
    columns = columns or min(heads, 4)
    grid_rows = math.ceil(heads / columns)
    panel = max(3.0, 0.36 * max(rows, cols) + 1.4)
    fig = Figure(figsize=(panel * columns + 1.2, panel * grid_rows + 0.9), layout="constrained")
    axes = fig.subplots(grid_rows, columns, squeeze=False)
    top = max(1e-12, float(weights.max()))
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        image = ax.imshow(weights[h], cmap=cmap, vmin=0.0, vmax=top, aspect="equal")
        ax.set_title(head_titles[h], fontsize=10)
        _tick_labels(ax, cols, rows, key_tokens if key_tokens is not None else [str(j) for j in range(cols)],
                     tokens if tokens is not None else [str(i) for i in range(rows)], fontsize=9)
        if h % columns == 0:
            ax.set_ylabel("query")
        if h // columns == grid_rows - 1 or h + columns >= heads:
            ax.set_xlabel("key")
    fig.colorbar(image, ax=axes, label="attention weight", shrink=0.9, aspect=30, pad=0.01)
    fig.suptitle(title)
    return _finish(fig, path)


def head_view(weights, tokens, key_tokens=None, head=None, title="Who attends to whom", ax=None, path=None,
              threshold=0.05, columns=None, head_titles=None):
    """Lines from each query token (left column) to each key token (right column) it attends to.

    A line's width and opacity grow with the attention weight, so a glance shows where each word looks.
    Several heads get one panel each, side by side (heads numbered from 0, as the model indexes them), so
    that no head hides another; ``head`` picks one of them.

    Inputs:
        weights: (T, S) or (H, T, S) attention probabilities
        tokens: T labels of the queries (left)
        key_tokens: S labels of the keys (right); default ``tokens``
        head: draw only this head of an (H, T, S) array
        threshold: weights below this are not drawn
        columns: panels per row when several heads are drawn (default: up to 4)
        head_titles: one title per drawn panel (default "head 0", "head 1", ...)
        ax: draw here (one head only)

    Returns:
        the matplotlib figure
    """
    weights = _host("weights", weights, (2, 3))
    if weights.ndim == 2:
        weights, numbers = weights[None], [None]
    else:
        numbers = list(range(weights.shape[0]))
    if head is not None:
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < weights.shape[0]:
            raise ValueError(f"head: got {head!r}; expected an index in [0, {weights.shape[0]})")
        weights, numbers = weights[head:head + 1], [int(head)]
    heads, rows, cols = weights.shape
    tokens = _check_tokens("tokens", tokens, rows, "rows (T)")
    key_tokens = _check_tokens("key_tokens", key_tokens if key_tokens is not None else tokens, cols,
                               "columns (S)")
    if head_titles is None:
        head_titles = [None if n is None else f"head {n}" for n in numbers]
    head_titles = list(head_titles)
    if len(head_titles) != heads:
        raise ValueError(f"head_titles: got {len(head_titles)} titles; expected {heads} (one per panel)")
    height = max(3.0, 0.4 * max(rows, cols) + 1.2)
    if heads > 1 and ax is not None:
        raise ValueError(f"ax: got one axes for {heads} heads; pass head=... or leave ax out")
    if ax is None:
        from matplotlib.figure import Figure

        columns = columns or min(heads, 4)
        grid_rows = math.ceil(heads / columns)
        fig = Figure(figsize=(3.4 * columns + 0.4, height * grid_rows + 0.6), layout="constrained")
        panels = list(fig.subplots(grid_rows, columns, squeeze=False).flat)
    else:
        fig, panels = ax.figure, [ax]
    for h, panel in enumerate(panels):
        if h >= heads:
            panel.axis("off")
            continue
        colour = f"C{numbers[h] % 10}" if numbers[h] is not None else "C0"
        # Row i of the left column sits at height -i, so the sentence reads top to bottom.
        for (i, j), value in np.ndenumerate(weights[h]):
            if value >= threshold:
                panel.plot([0.0, 1.0], [-i, -j], color=colour, alpha=min(1.0, 0.15 + 0.85 * value),
                           linewidth=0.5 + 4.0 * value, solid_capstyle="round")
        for i, token in enumerate(tokens):
            panel.text(-0.05, -i, token, ha="right", va="center", fontsize=10)
        for j, token in enumerate(key_tokens):
            panel.text(1.05, -j, token, ha="left", va="center", fontsize=10)
        panel.set_xlim(-0.75, 1.75)
        panel.set_ylim(-max(rows, cols) + 0.5, 0.8)
        panel.set_xticks([0.0, 1.0])
        panel.set_xticklabels(["query", "key"])
        panel.set_yticks([])
        for side in ("left", "right", "top"):
            panel.spines[side].set_visible(False)
        if head_titles[h]:
            panel.set_title(head_titles[h], color=colour if heads > 1 else "black", fontsize=10)
    if heads > 1 or ax is None:
        fig.suptitle(title)
    else:
        panels[0].set_title(title)
    return _finish(fig, path)


def positional_encoding_plot(table, title="Sinusoidal positional encoding", ax=None, path=None, cmap="RdBu"):
    """Heatmap of a positional-encoding table: one row per position, one column per feature.

    Inputs:
        table: (T, D) encodings, e.g. ``sinusoidal_table(T, D)``

    Returns:
        the matplotlib figure
    """
    table = _host("table", table, (2,))
    fig, ax = _new_axes(ax, (8.0, 4.5))
    image = ax.imshow(table, cmap=cmap, vmin=-1.0, vmax=1.0, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="value")
    ax.set_xlabel("feature index (even: sin, odd: cos; frequency falls to the right)")
    ax.set_ylabel("position")
    ax.set_title(title)
    return _finish(fig, path)


def loss_curve(steps, losses, val_steps=None, val=None, title="Training loss", ylabel="loss", ax=None,
               path=None, log_scale=False, accuracy_steps=None, accuracy=None, accuracy_label="test accuracy",
               train_label="train", val_label="validation", smooth=None, reference=None):
    """Loss (or any metric) against training step, with an optional validation curve and accuracy curve.

    Inputs:
        steps: N step numbers; losses: N values
        val_steps, val: M step numbers and M validation values (``val_steps`` defaults to ``steps``)
        train_label, val_label: their names in the legend (say what the validation set is)
        smooth: a window W: draw the raw values faintly and their running mean over W steps on top (per-batch
            losses are noisy; the mean shows the trend)
        reference: a list of ``(value, label)`` horizontal lines, e.g. ``[(math.log(V), "guessing: ln V")]``
        log_scale: a logarithmic y axis
        accuracy_steps, accuracy: K step numbers and K accuracies in [0, 1], drawn against a second y axis
            on the right (an accuracy and a loss do not share a scale)

    Returns:
        the matplotlib figure
    """
    steps = _host("steps", steps, (1,))
    losses = _host("losses", losses, (1,))
    if steps.shape != losses.shape:
        raise ValueError(f"losses: got {losses.shape[0]} values; expected {steps.shape[0]} (one per step)")
    fig, ax = _new_axes(ax, (6.4, 4.2))
    if smooth is not None:
        if isinstance(smooth, bool) or not isinstance(smooth, (int, np.integer)) or smooth < 1:
            raise ValueError(f"smooth: got {smooth!r}; expected a window of at least 1 step")
        window = min(int(smooth), len(losses))
        ax.plot(steps, losses, color="C0", alpha=0.25, linewidth=0.8, label=f"{train_label}, each step")
        running = np.convolve(losses, np.ones(window) / window, mode="valid")  # (N - W + 1,)
        ax.plot(steps[window - 1:], running, color="C0", linewidth=2.0,
                label=f"{train_label}, mean of {window} steps")
    else:
        ax.plot(steps, losses, label=train_label, color="C0")
    if val is not None:
        val = _host("val", val, (1,))
        val_steps = steps if val_steps is None else _host("val_steps", val_steps, (1,))
        if val_steps.shape != val.shape:
            raise ValueError(f"val: got {val.shape[0]} values; expected {val_steps.shape[0]} (one per val step)")
        ax.plot(val_steps, val, label=val_label, color="C1", marker="o", markersize=3)
    for value, label in reference or []:
        ax.axhline(float(value), color="gray", linestyle="--", linewidth=1.0, label=label)
    with_accuracy = accuracy is not None and len(accuracy) > 0
    if val is not None or smooth is not None or reference:
        # a falling loss leaves the top right free; with an accuracy climbing there, the bottom left
        ax.legend(fontsize=8, loc="lower left" if with_accuracy else "upper right")
    if with_accuracy:
        accuracy = _host("accuracy", accuracy, (1,))
        accuracy_steps = _host("accuracy_steps", accuracy_steps, (1,))
        if accuracy_steps.shape != accuracy.shape:
            raise ValueError(f"accuracy: got {accuracy.shape[0]} values; expected {accuracy_steps.shape[0]} "
                             "(one per accuracy step)")
        right = ax.twinx()
        right.plot(accuracy_steps, accuracy, color="C2", marker="o", markersize=3, label=accuracy_label)
        right.set_ylabel(accuracy_label, color="C2")
        right.set_ylim(0.0, 1.0)
        right.legend(loc="center right", fontsize=8)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def similarity_matrix(matrix, labels, col_labels=None, title="Cosine similarity", ax=None, path=None,
                      cmap="RdBu_r", vmin=-1.0, vmax=1.0, annotate=None, groups=None, xlabel=None, ylabel=None):
    """Heatmap of pairwise similarities (e.g. cosine similarity of word embeddings).

    Inputs:
        matrix: (N, M) similarities, usually square
        labels: N row labels; col_labels: M column labels (default ``labels``)
        vmin, vmax: colour range (cosine similarity lives in [-1, 1])
        annotate: write each value in its cell, black or white, whichever reads on the cell's colour
            (default: when the matrix is at most 12 x 12)
        groups: sizes of consecutive groups of rows (and columns), e.g. ``[4, 3, 4]``; lines separate them
        xlabel, ylabel: axis titles (default none: the labels say what the rows are)

    Returns:
        the matplotlib figure
    """
    matrix = _host("matrix", matrix, (2,))
    rows, cols = matrix.shape
    labels = _check_tokens("labels", labels, rows, "rows")
    col_labels = _check_tokens("col_labels", col_labels if col_labels is not None else labels, cols, "columns")
    side = max(3.5, 0.45 * max(rows, cols) + 2.0)
    fig, ax = _new_axes(ax, (side + 1.0, side))
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, label="similarity")
    _tick_labels(ax, cols, rows, col_labels, labels)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    if groups is not None:
        sizes = [int(g) for g in groups]
        if any(g < 1 for g in sizes) or sum(sizes) != rows:
            raise ValueError(f"groups: got sizes {sizes}; expected positive sizes that add up to {rows}")
        for edge in np.cumsum(sizes)[:-1]:
            ax.axhline(edge - 0.5, color="black", linewidth=1.5)
            if cols == rows:
                ax.axvline(edge - 0.5, color="black", linewidth=1.5)
    if annotate is None:
        annotate = max(rows, cols) <= 12
    if annotate:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=_text_color(image, value))
    return _finish(fig, path)


def patch_grid(image, patch_size, title=None, ax=None, path=None, number=True, cmap="gray", grid_color="yellow"):
    """An image with the grid of ``patch_size`` x ``patch_size`` patches a Vision Transformer cuts it into.

    Patches are numbered in row-major order, the order of ``patchify_forward``'s N axis.

    Inputs:
        image: (H, W) grey, or (C, H, W) with C = 1 or 3 (channels first, as the library stores images)
        patch_size: P; H and W must be multiples of P
        number: write each patch's index in its corner
        cmap: the colour map of a grey image ("gray": high values bright; "gray_r": dark ink on white paper)
        grid_color: the colour of the patch borders

    Returns:
        the matplotlib figure
    """
    image = _host("image", image, (2, 3))
    if image.ndim == 3:
        if image.shape[0] not in (1, 3):
            raise ValueError(f"image: got shape {image.shape}; expected (H, W) or (C, H, W) with C = 1 or 3")
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    height, width = image.shape[:2]
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise ValueError(f"patch_size: got {patch_size!r}; expected a positive integer")
    if height % patch_size or width % patch_size:
        raise ValueError(f"patch_size: got {patch_size}; expected a divisor of both H={height} and W={width}")
    if image.ndim == 3:  # colours: scale into [0, 1] for imshow
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    fig, ax = _new_axes(ax, (5.0, 5.0))
    ax.imshow(image, cmap=cmap if image.ndim == 2 else None, interpolation="nearest")
    for edge in range(0, width + 1, patch_size):
        ax.axvline(edge - 0.5, color=grid_color, linewidth=1.2)
    for edge in range(0, height + 1, patch_size):
        ax.axhline(edge - 0.5, color=grid_color, linewidth=1.2)
    per_row = width // patch_size
    count = per_row * (height // patch_size)
    if number and count <= 256:
        for index in range(count):
            r, c = divmod(index, per_row)
            ax.text(c * patch_size, r * patch_size, str(index), color="white", fontsize=7, ha="left", va="top",
                    bbox=dict(facecolor="black", alpha=0.75, pad=0.8, linewidth=0))
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    if title is None:
        title = f"{count} patches of {patch_size}x{patch_size} pixels"
    ax.set_title(title)
    return _finish(fig, path)

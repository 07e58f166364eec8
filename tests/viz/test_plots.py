"""Every plot function draws and writes a non-empty PNG; bad shapes fail with the argument's name."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from numpy_transformer import viz  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000


@pytest.mark.parametrize("name, draw", [
    ("heatmap", lambda rng, p: viz.attention_heatmap(_softmax(rng.normal(size=(4, 5))), list("abcd"), list("vwxyz"),
                                                     path=p)),
    ("heads", lambda rng, p: viz.attention_heads_grid(_softmax(rng.normal(size=(3, 4, 4))), list("abcd"), path=p)),
    ("head_view", lambda rng, p: viz.head_view(_softmax(rng.normal(size=(2, 4, 4))), list("abcd"), path=p)),
    ("head_view_2d", lambda rng, p: viz.head_view(_softmax(rng.normal(size=(3, 5))), list("abc"), list("vwxyz"),
                                                  path=p)),
    ("positional", lambda rng, p: viz.positional_encoding_plot(rng.uniform(-1, 1, size=(20, 8)), path=p)),
    ("loss", lambda rng, p: viz.loss_curve(np.arange(10), rng.uniform(size=10), val_steps=[0, 5, 9],
                                           val=[1.0, 0.5, 0.4], path=p)),
    ("loss_accuracy", lambda rng, p: viz.loss_curve(np.arange(10), rng.uniform(size=10), accuracy_steps=[3, 9],
                                                    accuracy=[0.5, 0.9], path=p)),
    ("similarity", lambda rng, p: viz.similarity_matrix(rng.uniform(-1, 1, size=(3, 3)), ["a", "b", "c"], path=p)),
    ("patches_gray", lambda rng, p: viz.patch_grid(rng.uniform(size=(8, 12)), 4, path=p)),
    ("patches_rgb", lambda rng, p: viz.patch_grid(rng.uniform(size=(3, 8, 8)), 2, path=p)),
])
def test_each_plot_writes_a_png(tmp_path, rng, name, draw):
    path = tmp_path / "nested" / f"{name}.png"  # save_figure creates the folder
    fig = draw(rng, path)
    _assert_png(path)
    assert fig.axes and fig.axes[0].get_title() or fig.get_suptitle()


def test_draws_on_a_given_axes(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    axes = fig.subplots(1, 2)
    assert viz.attention_heatmap(np.full((2, 2), 0.5), ["a", "b"], ax=axes[0]) is fig
    viz.loss_curve([1, 2, 3], [3.0, 2.0, 1.0], ax=axes[1])
    assert axes[0].get_xlabel() and axes[1].get_ylabel() == "loss"
    _assert_png(Path(viz.save_figure(fig, tmp_path / "both.png")))


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="weights"):
        viz.attention_heatmap(np.ones(3))
    with pytest.raises(ValueError, match="query_tokens"):
        viz.attention_heatmap(np.ones((2, 2)), ["a"])
    with pytest.raises(ValueError, match="patch_size"):
        viz.patch_grid(np.ones((6, 6)), 4)
    with pytest.raises(ValueError, match="losses"):
        viz.loss_curve([1, 2], [1.0])
    with pytest.raises(ValueError, match="accuracy"):
        viz.loss_curve([1, 2], [1.0, 0.5], accuracy_steps=[1, 2], accuracy=[0.5])
    with pytest.raises(ValueError, match="ignored_rows"):
        viz.attention_heatmap(np.ones((2, 2)), ["a", "b"], ignored_rows=[True, False, True])
    with pytest.raises(ValueError, match="smooth"):
        viz.loss_curve([1, 2], [1.0, 0.5], smooth=0)
    with pytest.raises(ValueError, match="groups"):
        viz.similarity_matrix(np.eye(3), ["a", "b", "c"], groups=[1, 1])
    with pytest.raises(ValueError, match="head_titles"):
        viz.attention_heads_grid(np.ones((2, 2, 2)) / 2, ["a", "b"], head_titles=["only one"])


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_head_view_gives_each_head_its_own_panel_numbered_from_0():
    weights = _softmax(np.random.default_rng(0).normal(size=(3, 4, 4)))
    fig = viz.head_view(weights, list("abcd"))
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["head 0", "head 1", "head 2"]          # no head hidden under another
    fig = viz.head_view(weights, list("abcd"), head=2)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["head 2"]
    with pytest.raises(ValueError, match="head"):
        viz.head_view(weights, list("abcd"), head=3)
    from matplotlib.figure import Figure

    with pytest.raises(ValueError, match="ax"):
        viz.head_view(weights, list("abcd"), ax=Figure().subplots())


def test_heads_grid_has_one_colour_bar_and_titles_per_head():
    weights = _softmax(np.random.default_rng(1).normal(size=(4, 3, 3)))
    fig = viz.attention_heads_grid(weights, list("xyz"), layer=1)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"layer 1, head {h}" for h in range(4)]
    assert len(fig.axes) == 5  # four panels and one shared colour bar
    fig = viz.attention_heads_grid(weights, list("xyz"), head_titles=["a", "b", "c", "d"])
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["a", "b", "c", "d"]


def test_heatmap_greys_out_ignored_rows_and_numbers_read_on_their_cells():
    weights = np.array([[0.9, 0.1, 0.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    fig = viz.attention_heatmap(weights, ["a", "b", "<pad>"], ["a", "b", "<pad>"], ignored_rows=[False, False, True])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "<pad> (output discarded)"]
    assert len(ax.texts) == 6  # no numbers in the discarded row
    colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert colours["0.90"] == "black" and colours["0.00"] == "white"  # viridis: yellow top, dark purple bottom


def test_similarity_numbers_are_legible_and_groups_are_separated():
    matrix = np.array([[1.0, 0.0, -0.9], [0.0, 1.0, 0.2], [-0.9, 0.2, 1.0]])
    fig = viz.similarity_matrix(matrix, ["dog", "cat", "red"], groups=[2, 1], annotate=True)
    ax = fig.axes[0]
    colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert colours["1.00"] == "white" and colours["0.00"] == "black"  # white on dark red, black on white
    assert ax.get_xlabel() == "" and ax.get_ylabel() == ""              # no "item"
    assert len(ax.lines) == 2                                           # one horizontal, one vertical separator
    assert all(t.get_rotation() == 0 for t in ax.get_xticklabels())     # short labels stay upright


def test_loss_curve_smooths_and_draws_reference_levels():
    losses = 3.0 + np.random.default_rng(2).normal(size=50)
    fig = viz.loss_curve(np.arange(50), losses, smooth=10, reference=[(np.log(20), "guessing: ln V")],
                         val_steps=[0, 49], val=[3.0, 2.5], val_label="held-out sentences")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["train, each step", "train, mean of 10 steps", "held-out sentences", "guessing: ln V"]
    running = fig.axes[0].lines[1].get_ydata()
    assert len(running) == 41 and np.isclose(running[0], losses[:10].mean())

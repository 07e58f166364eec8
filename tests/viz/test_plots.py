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

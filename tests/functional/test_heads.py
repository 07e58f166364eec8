"""Split / merge heads: round trips, finite differences, torch's view/transpose, views not copies, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.heads import (
    merge_heads_backward,
    merge_heads_forward,
    split_heads_backward,
    split_heads_forward,
)
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch


@pytest.mark.parametrize("B, T, H, Dh", [(2, 3, 4, 5), (1, 1, 3, 2), (3, 2, 5, 1), (2, 4, 1, 3)])
def test_split_then_merge_is_identity(rng, B, T, H, Dh):
    x = rng.standard_normal((B, T, H * Dh))
    heads, _ = split_heads_forward(x, H)
    assert heads.shape == (B, H, T, Dh)
    merged, _ = merge_heads_forward(heads)
    np.testing.assert_array_equal(merged, x)
    # head h owns features h*Dh ... (h+1)*Dh - 1
    np.testing.assert_array_equal(heads[:, H - 1], x[..., (H - 1) * Dh:])


@pytest.mark.parametrize("B, T, H, Dh", [(2, 3, 4, 5), (1, 1, 3, 2), (3, 2, 5, 1)])
def test_heads_match_finite_differences(rng, B, T, H, Dh):
    x = rng.standard_normal((B, T, H * Dh))
    gradcheck(split_heads_forward, split_heads_backward, [x], names=["x"], kwargs={"num_heads": H}).assert_ok()
    y = rng.standard_normal((B, H, T, Dh))
    gradcheck(merge_heads_forward, merge_heads_backward, [y], names=["x"]).assert_ok()


@pytest.mark.parametrize("dtype", DTYPES)
def test_heads_match_torch(rng, torch, dtype):
    B, T, H, Dh = 2, 3, 4, 5
    x = rng.standard_normal((B, T, H * Dh)).astype(dtype)
    dheads = rng.standard_normal((B, H, T, Dh)).astype(dtype)
    heads, cache = split_heads_forward(x, H)
    dx = split_heads_backward(dheads, cache)
    tx = to_torch(x, requires_grad=True)
    theads = tx.view(B, T, H, Dh).transpose(1, 2)
    theads.backward(to_torch(dheads))
    assert heads.dtype == dx.dtype == np.dtype(dtype)
    assert_close(heads, theads, what="split out")
    assert_close(dx, tx.grad, what="split dx")

    y = rng.standard_normal((B, H, T, Dh)).astype(dtype)
    dmerged = rng.standard_normal((B, T, H * Dh)).astype(dtype)
    merged, cache = merge_heads_forward(y)
    dy = merge_heads_backward(dmerged, cache)
    ty = to_torch(y, requires_grad=True)
    tmerged = ty.transpose(1, 2).reshape(B, T, H * Dh)
    tmerged.backward(to_torch(dmerged))
    assert_close(merged, tmerged, what="merge out")
    assert_close(dy, ty.grad, what="merge dx")


def test_split_heads_and_merge_backward_are_views(rng):
    x = rng.standard_normal((2, 3, 12))
    heads, cache = split_heads_forward(x, 4)
    assert np.shares_memory(heads, x)
    merged, merge_cache = merge_heads_forward(heads)
    dx = merge_heads_backward(merged, merge_cache)
    assert np.shares_memory(dx, merged)


def test_heads_bad_input_names_argument(rng):
    x = rng.standard_normal((2, 3, 10))
    with pytest.raises(ValueError, match="num_heads"):
        split_heads_forward(x, 3)
    with pytest.raises(ValueError, match="num_heads"):
        split_heads_forward(x, 0)
    with pytest.raises(ValueError, match="x"):
        split_heads_forward(x[0], 2)
    with pytest.raises(ValueError, match="x"):
        merge_heads_forward(x)
    with pytest.raises(TypeError, match="x"):
        merge_heads_forward([[1.0]])

"""Embedding: finite differences, PyTorch (repeated ids, padding_idx), bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.embedding import embedding_backward, embedding_forward
from numpy_transformer.gradcheck import gradcheck, numerical_gradient, relative_error
from reference import DTYPES, assert_close, to_torch


def test_embedding_matches_finite_differences(rng):
    ids = np.array([[1, 2, 4, 1], [0, 4, 4, 2], [6, 1, 0, 3]])  # repeated ids, and id 5 never used
    weight = rng.standard_normal((7, 3))
    report = gradcheck(lambda w: embedding_forward(ids, w), embedding_backward, [weight], names=["weight"])
    report.assert_ok()


def test_embedding_padding_idx_matches_finite_differences_off_the_padding_row(rng):
    ids = np.array([[1, 2, 4, 1], [0, 4, 4, 2], [6, 1, 0, 3]])
    weight = rng.standard_normal((7, 3))
    dout = rng.standard_normal((3, 4, 3))
    out, cache = embedding_forward(ids, weight, padding_idx=2)
    dweight = embedding_backward(dout, cache)
    numerical = numerical_gradient(lambda: embedding_forward(ids, weight, padding_idx=2)[0], weight, dout)
    # the padding row is held constant (torch.nn.Embedding's rule): zero gradient although it is used
    np.testing.assert_array_equal(dweight[2], 0)
    assert np.abs(numerical[2]).max() > 0
    keep = np.arange(7) != 2
    assert relative_error(dweight[keep], numerical[keep]) < 1e-6


def test_embedding_padding_rows_match_finite_differences_elsewhere(rng):
    ids = np.array([[1, 2, 4, 1], [0, 4, 4, 2]])
    weight = rng.standard_normal((6, 3))
    dout = rng.standard_normal((2, 4, 3))
    _, cache = embedding_forward(ids, weight, padding_idx=4)
    dweight = embedding_backward(dout, cache)
    _, cache_free = embedding_forward(ids, weight)
    dweight_free = embedding_backward(dout, cache_free)
    # the only difference padding makes is the zeroed row
    expected = dweight_free.copy()
    expected[4] = 0
    np.testing.assert_array_equal(dweight, expected)
    # the free gradient is the scatter-add of dout rows, written as a sum per id
    for v in range(6):
        np.testing.assert_allclose(dweight_free[v], dout[ids == v].sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 3, -2])
def test_embedding_matches_torch(rng, torch, dtype, padding_idx):
    ids = rng.integers(0, 9, size=(4, 6))
    ids[0, :3] = 3  # make sure the padding id and repeats occur
    ids[1, 1] = 7
    weight = rng.standard_normal((9, 5)).astype(dtype)
    dout = rng.standard_normal((4, 6, 5)).astype(dtype)

    out, cache = embedding_forward(ids, weight, padding_idx=padding_idx)
    dweight = embedding_backward(dout, cache)

    tweight = to_torch(weight, requires_grad=True)
    tout = torch.nn.functional.embedding(to_torch(ids), tweight, padding_idx=padding_idx)
    tout.backward(to_torch(dout))
    assert out.dtype == dweight.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dweight, tweight.grad, what="dweight")


@pytest.mark.parametrize("ids_shape", [(), (1,), (5,), (2, 3, 4)])
def test_embedding_any_id_shape(rng, ids_shape):
    ids = rng.integers(0, 4, size=ids_shape)
    weight = rng.standard_normal((4, 3))
    out, cache = embedding_forward(ids, weight)
    assert out.shape == ids_shape + (3,)
    np.testing.assert_array_equal(out, weight[ids])
    dout = rng.standard_normal(out.shape)
    dweight = embedding_backward(dout, cache)
    np.testing.assert_allclose(dweight.sum(axis=0), dout.reshape(-1, 3).sum(axis=0), rtol=1e-12, atol=1e-12)


def test_embedding_bad_input_names_argument(rng):
    weight = rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match="ids"):
        embedding_forward(np.array([0, 5]), weight)
    with pytest.raises(ValueError, match="ids"):
        embedding_forward(np.array([[-1, 2]]), weight)
    with pytest.raises(TypeError, match="ids"):
        embedding_forward(np.array([0.0, 1.0]), weight)
    with pytest.raises(TypeError, match="weight"):
        embedding_forward(np.array([0, 1]), weight.astype(np.int64))
    with pytest.raises(ValueError, match="weight"):
        embedding_forward(np.array([0, 1]), rng.standard_normal(5))
    with pytest.raises(ValueError, match="padding_idx"):
        embedding_forward(np.array([0, 1]), weight, padding_idx=5)
    with pytest.raises(TypeError, match="padding_idx"):
        embedding_forward(np.array([0, 1]), weight, padding_idx=1.0)

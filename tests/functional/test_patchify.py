"""Patchify / unpatchify: finite differences, PyTorch unfold and Conv2d (float64 tight, float32 loose), bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.patchify import (
    patchify_backward,
    patchify_forward,
    unpatchify_backward,
    unpatchify_forward,
)
from numpy_transformer.gradcheck import gradcheck
from reference import DTYPES, assert_close, to_torch

# (B, C, H, W, P): every size different; a single patch; a batch of one; P = 1
SHAPES = [(2, 3, 4, 6, 2), (1, 3, 4, 4, 4), (1, 2, 6, 9, 3), (3, 2, 5, 7, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_patchify_matches_finite_differences(rng, shape):
    batch, channels, height, width, patch = shape
    images = rng.standard_normal((batch, channels, height, width))
    report = gradcheck(patchify_forward, patchify_backward, [images, patch], names=["images", "patch_size"])
    report.assert_ok()


@pytest.mark.parametrize("shape", SHAPES)
def test_unpatchify_matches_finite_differences(rng, shape):
    batch, channels, height, width, patch = shape
    count, size = (height // patch) * (width // patch), channels * patch * patch
    patches = rng.standard_normal((batch, count, size))
    report = gradcheck(
        unpatchify_forward,
        unpatchify_backward,
        [patches, (channels, height, width), patch],
        names=["patches", "image_shape", "patch_size"],
    )
    report.assert_ok()


def test_patchify_layout_by_hand():
    # patch (i, j), channel c, offset (u, v) holds images[b, c, i*P + u, j*P + v]
    images = np.arange(2 * 3 * 4 * 6, dtype=np.float64).reshape(2, 3, 4, 6)
    patches, _ = patchify_forward(images, 2)
    assert patches.shape == (2, 6, 12)
    b, i, j, c, u, v = 1, 1, 2, 2, 1, 0
    assert patches[b, i * 3 + j, c * 4 + u * 2 + v] == images[b, c, i * 2 + u, j * 2 + v]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_patchify_matches_torch_unfold(rng, torch, dtype, shape):
    batch, channels, height, width, patch = shape
    images = rng.standard_normal((batch, channels, height, width)).astype(dtype)
    patches, cache = patchify_forward(images, patch)
    dpatches = rng.standard_normal(patches.shape).astype(dtype)
    dimages = patchify_backward(dpatches, cache)

    timages = to_torch(images, requires_grad=True)
    tpatches = torch.nn.functional.unfold(timages, patch, stride=patch).transpose(1, 2)
    tpatches.backward(to_torch(dpatches))
    assert patches.dtype == dimages.dtype == np.dtype(dtype)
    assert_close(patches, tpatches, what="patches")
    assert_close(dimages, timages.grad, what="dimages")


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_on_patches_equals_conv2d(rng, torch, dtype):
    batch, channels, height, width, patch, width_out = 2, 3, 4, 6, 2, 5
    images = rng.standard_normal((batch, channels, height, width)).astype(dtype)
    weight = rng.standard_normal((width_out, channels * patch * patch)).astype(dtype)
    bias = rng.standard_normal(width_out).astype(dtype)

    patches, cache = patchify_forward(images, patch)
    out = patches @ weight.T + bias                                  # (B, N, D)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dweight = (dout.reshape(-1, width_out).T @ patches.reshape(-1, weight.shape[1]))
    dimages = patchify_backward(dout @ weight, cache)

    timages = to_torch(images, requires_grad=True)
    tweight = to_torch(weight.reshape(width_out, channels, patch, patch), requires_grad=True)
    tout = torch.nn.functional.conv2d(timages, tweight, to_torch(bias), stride=patch)  # (B, D, H/P, W/P)
    tout = tout.flatten(2).transpose(1, 2)                           # (B, N, D)
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    assert_close(dimages, timages.grad, what="dimages")
    assert_close(dweight, tweight.grad.reshape(width_out, -1), what="dweight")


@pytest.mark.parametrize("shape", SHAPES)
def test_unpatchify_inverts_patchify(rng, shape):
    batch, channels, height, width, patch = shape
    images = rng.standard_normal((batch, channels, height, width))
    patches, _ = patchify_forward(images, patch)
    back, _ = unpatchify_forward(patches, (channels, height, width), patch)
    np.testing.assert_array_equal(back, images)
    again, _ = patchify_forward(back, patch)
    np.testing.assert_array_equal(again, patches)


def test_patchify_float32_stays_float32(rng):
    images = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    patches, cache = patchify_forward(images, 2)
    assert patches.dtype == np.float32
    assert patchify_backward(patches, cache).dtype == np.float32


def test_patchify_bad_input_names_argument(rng):
    images = rng.standard_normal((2, 3, 4, 6))
    with pytest.raises(ValueError, match="patch_size"):
        patchify_forward(images, 4)   # divides H = 4, not W = 6
    with pytest.raises(ValueError, match="patch_size"):
        patchify_forward(images, 0)
    with pytest.raises(ValueError, match="images"):
        patchify_forward(images[0], 2)
    with pytest.raises(TypeError, match="images"):
        patchify_forward(images.astype(np.int64), 2)
    patches, _ = patchify_forward(images, 2)
    with pytest.raises(ValueError, match="patches"):
        unpatchify_forward(patches, (3, 4, 8), 2)
    with pytest.raises(ValueError, match="patch_size"):
        unpatchify_forward(patches, (3, 4, 6), 3)
    with pytest.raises(ValueError, match="image_shape"):
        unpatchify_forward(patches, (4, 6), 2)
    with pytest.raises(ValueError, match="patches"):
        unpatchify_forward(patches[0], (3, 4, 6), 2)

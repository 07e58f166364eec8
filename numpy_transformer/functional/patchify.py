r"""Cutting images into patch vectors (the first step of a Vision Transformer) and gluing them back.

An image of $C$ channels, $H$ rows and $W$ columns is cut into non-overlapping $P \times P$ squares. Each
square is flattened into one vector of length $C P^2$, and the squares are listed in row-major order (left to right,
then top to bottom), so the image becomes a sequence of $N = (H/P)(W/P)$ "tokens":

$$
\text{patches}[b,\; i \cdot (W/P) + j,\; c \cdot P^2 + u \cdot P + v]
    = \text{images}[b,\; c,\; i P + u,\; j P + v]
$$

for patch row $i$, patch column $j$, channel $c$ and offset $(u, v)$ inside the patch. Each vector is flattened in
(C, P, P) order, the order of a ``torch.nn.Conv2d`` weight, so a Linear layer with a ``weight`` of shape
(D, C*P*P) applied to the patches equals ``Conv2d(C, D, kernel_size=P, stride=P)`` with the weight
``weight.reshape(D, C, P, P)`` (its output flattened and transposed to (B, N, D)). The patches also equal
``torch.nn.functional.unfold(images, P, stride=P).transpose(1, 2)``.

The whole map is three array operations: split each spatial axis in two (a view), move the patch axes in
front of the channel axis (a transpose), and merge axes (one copy):

    (B, C, H, W) -> (B, C, H/P, P, W/P, P) -> (B, H/P, W/P, C, P, P) -> (B, N, C*P*P)

Backward. Patchify only moves numbers: every pixel lands in exactly one slot of exactly one patch, and
nothing is added or scaled. Its Jacobian is therefore a permutation matrix, and the gradient of a
permutation is the inverse permutation applied to the upstream gradient: the backward of patchify is
unpatchify of ``dpatches``, and the backward of unpatchify is patchify (derived in
``docs/derivations/patchify.md``). The cache keeps only the shapes needed to undo the reshapes.

Shapes: images (B, C, H, W), patches (B, N, C*P*P) with N = (H/P) * (W/P).
"""
from __future__ import annotations

import numbers

from ..backend import Array
from ..checks import check_float, check_ndim, check_positive_int, check_upstream, upstream_spec


def _check_patch_size(patch_size, height: int, width: int) -> None:
    check_positive_int("patch_size", patch_size)
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"patch_size: got {patch_size}; expected a divisor of both the image height {height} "
            f"and width {width}"
        )


def _images_to_patches(images: Array, patch_size: int) -> Array:
    """(B, C, H, W) -> (B, N, C*P*P); the forward of patchify and the backward of unpatchify."""
    batch, channels, height, width = images.shape
    rows, cols = height // patch_size, width // patch_size
    out = images.reshape(batch, channels, rows, patch_size, cols, patch_size)  # -> (B, C, H/P, P, W/P, P)
    out = out.transpose(0, 2, 4, 1, 3, 5)                                # -> (B, H/P, W/P, C, P, P)
    return out.reshape(batch, rows * cols, channels * patch_size * patch_size)  # -> (B, N, C*P*P)


def _patches_to_images(patches: Array, image_shape: tuple[int, int, int], patch_size: int) -> Array:
    """(B, N, C*P*P) -> (B, C, H, W); the forward of unpatchify and the backward of patchify."""
    batch = patches.shape[0]
    channels, height, width = image_shape
    rows, cols = height // patch_size, width // patch_size
    out = patches.reshape(batch, rows, cols, channels, patch_size, patch_size)  # -> (B, H/P, W/P, C, P, P)
    out = out.transpose(0, 3, 1, 4, 2, 5)                                # -> (B, C, H/P, P, W/P, P)
    return out.reshape(batch, channels, height, width)                   # -> (B, C, H, W)


def patchify_forward(images: Array, patch_size: int) -> tuple[Array, dict]:
    """Cut each image into non-overlapping ``patch_size`` x ``patch_size`` patches, one vector per patch.

    Inputs:
        images: (B, C, H, W) float array; H and W must be multiples of ``patch_size``
        patch_size: P, the side of a square patch

    Returns:
        patches: (B, N, C*P*P) with N = (H/P) * (W/P), patches in row-major order, each vector in
            (C, P, P) order
        cache: dict with ``image_shape`` (C, H, W), ``patch_size`` and ``out_spec`` (the shape and dtype of
            patches)
    """
    check_float("images", images)
    check_ndim("images", images, 4, "(B, C, H, W)")
    _, channels, height, width = images.shape
    _check_patch_size(patch_size, height, width)

    patches = _images_to_patches(images, patch_size)                    # (B, C, H, W) -> (B, N, C*P*P)
    cache = {"image_shape": (channels, height, width), "patch_size": patch_size, "out_spec": upstream_spec(patches)}
    return patches, cache


def patchify_backward(dpatches: Array, cache: dict) -> Array:
    """Gradient of :func:`patchify_forward`: put each patch gradient back where its pixels came from.

    Inputs:
        dpatches: (B, N, C*P*P) upstream gradient
        cache: from :func:`patchify_forward`

    Returns:
        dimages: (B, C, H, W)
    """
    check_upstream("dpatches", dpatches, cache["out_spec"])
    # EXERCISE: patchify only moved pixels around: put each patch gradient back where its pixels came from.
    # forward: patches = images -> (B, C, H/P, P, W/P, P) -> (B, H/P, W/P, C, P, P) -> (B, N, C*P*P);
    # a permutation of the pixels, so its gradient is the inverse permutation
    return _patches_to_images(dpatches, cache["image_shape"], cache["patch_size"])  # -> (B, C, H, W)
    # END EXERCISE


def unpatchify_forward(patches: Array, image_shape: tuple[int, int, int], patch_size: int) -> tuple[Array, dict]:
    """Glue patch vectors back into images: the inverse of :func:`patchify_forward`.

    Inputs:
        patches: (B, N, C*P*P) float array, patches in row-major order, each vector in (C, P, P) order
        image_shape: (C, H, W) of one image; H and W must be multiples of ``patch_size``
        patch_size: P, the side of a square patch

    Returns:
        images: (B, C, H, W)
        cache: dict with ``patch_size`` and ``out_spec`` (the shape and dtype of images)
    """
    check_float("patches", patches)
    check_ndim("patches", patches, 3, "(B, N, C*P*P)")
    sizes = tuple(image_shape)
    positive = all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes)
    if len(sizes) != 3 or not positive:
        raise ValueError(f"image_shape: got {image_shape!r}; expected (C, H, W), three positive integers")
    channels, height, width = (int(s) for s in sizes)
    _check_patch_size(patch_size, height, width)
    count = (height // patch_size) * (width // patch_size)
    size = channels * patch_size * patch_size
    if patches.shape[1:] != (count, size):
        raise ValueError(
            f"patches: got shape {tuple(patches.shape)}; expected (B, {count}, {size}) = (B, N, C*P*P) for "
            f"image_shape {(channels, height, width)} and patch_size {patch_size}"
        )

    images = _patches_to_images(patches, (channels, height, width), patch_size)  # (B, N, C*P*P) -> (B, C, H, W)
    cache = {"patch_size": patch_size, "out_spec": upstream_spec(images)}
    return images, cache


def unpatchify_backward(dimages: Array, cache: dict) -> Array:
    """Gradient of :func:`unpatchify_forward`: cut the image gradient into patches again.

    Inputs:
        dimages: (B, C, H, W) upstream gradient
        cache: from :func:`unpatchify_forward`

    Returns:
        dpatches: (B, N, C*P*P)
    """
    check_upstream("dimages", dimages, cache["out_spec"])
    # EXERCISE: unpatchify only moved pixels around: cut the image gradient into patches again.
    # forward: images = patches -> (B, H/P, W/P, C, P, P) -> (B, C, H/P, P, W/P, P) -> (B, C, H, W);
    # the inverse permutation is patchify
    return _images_to_patches(dimages, cache["patch_size"])             # (B, C, H, W) -> (B, N, C*P*P)
    # END EXERCISE

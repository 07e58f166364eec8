"""VisionTransformer: a torch twin with Conv2d patches (logits, loss, every gradient, the image gradient),
finite differences, class-token attention, checkpoints."""
import numpy as np
import pytest

from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.io.checkpoint import load_checkpoint, save_checkpoint
from numpy_transformer.models import VisionTransformer
from reference import assert_close
from twins import vit_twin


def make_twin(torch, model):
    """The ViT from torch.nn modules (Conv2d patches) with our state_dict loaded (``twins.vit_twin``)."""
    torch.backends.mha.set_fastpath_enabled(False)
    return vit_twin(torch, model)


def small_vit(dtype=np.float64, seed=0):
    return VisionTransformer((8, 12), 4, in_channels=3, num_classes=5, d_model=12, nhead=3, num_layers=2,
                             dim_feedforward=20, dropout=0.0, dtype=dtype, rng=seed)


def test_vit_matches_torch_twin(rng, torch):
    model = small_vit()
    twin = make_twin(torch, model)
    images = rng.standard_normal((3, 3, 8, 12))
    labels = np.array([0, 4, 2])

    logits = model(images)
    loss, dlogits = model_loss(logits, labels)
    model.zero_grad()
    dimages = model.backward(dlogits)

    timages = torch.tensor(images, requires_grad=True)
    tlogits = twin(timages)
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.tensor(labels))
    tloss.backward()
    assert logits.shape == (3, 5)
    assert_close(logits, tlogits, what="logits")
    assert_close(loss, tloss, what="loss")
    assert_close(dimages, timages.grad, what="dimages")
    assert sorted(n for n, _ in model.named_parameters()) == sorted(n for n, _ in twin.named_parameters())
    for name, param in model.named_parameters():
        assert_close(param.grad, twin.get_parameter(name).grad, what=f"grad {name}")


def model_loss(logits, labels):
    from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward

    loss, cache = cross_entropy_forward(logits, labels)
    return loss, cross_entropy_backward(1.0, cache)


def test_vit_matches_finite_differences(rng):
    model = VisionTransformer(4, 2, in_channels=2, num_classes=3, d_model=4, nhead=2, num_layers=1,
                              dim_feedforward=6, dropout=0.0, rng=0).to_dtype(np.float64).eval()
    images = rng.standard_normal((2, 2, 4, 4))
    gradcheck_module(model, [images], input_names=["images"]).assert_ok()


def test_vit_float32_and_cls_attention(rng):
    model = small_vit(dtype=np.float32)
    images = rng.standard_normal((2, 3, 8, 12)).astype(np.float32)
    assert model(images).dtype == np.float32
    weights = model.attention_weights(images, layer=0)
    assert weights.shape == (2, 3, 7, 7) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    grid = model.cls_attention(images)
    assert grid.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(grid.reshape(2, 3, 6), model.attention_weights(images)[:, :, 0, 1:], rtol=1e-6)


def test_vit_bad_input_names_argument(rng):
    model = small_vit()
    with pytest.raises(ValueError, match="images"):
        model(rng.standard_normal((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="image_size"):
        VisionTransformer(10, 4)


def test_vit_checkpoint_round_trip(rng, tmp_path):
    model = small_vit(dtype=np.float32, seed=1)
    images = rng.standard_normal((2, 3, 8, 12)).astype(np.float32)
    save_checkpoint(tmp_path / "vit.npz", model)
    other = small_vit(dtype=np.float32, seed=2)
    load_checkpoint(tmp_path / "vit.npz", other)
    np.testing.assert_array_equal(other(images), model(images))

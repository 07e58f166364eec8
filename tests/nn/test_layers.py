"""The basic layers against their torch.nn twins (weights loaded from torch), and against finite differences."""
import numpy as np
import pytest

from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.nn import (
    GELU,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    PatchEmbedding,
    PositionalEncoding,
    ReLU,
)
from reference import DTYPES, assert_close, from_torch, to_torch


def _load_from_torch(ours, theirs, dtype):
    ours.to_dtype(dtype)
    ours.load_state_dict({k: from_torch(v) for k, v in theirs.state_dict().items()})


def _compare_grads(ours, theirs):
    torch_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None, name
        assert param.grad.dtype == param.dtype, name
        assert_close(param.grad, torch_params[name].grad, what=f"d{name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(rng, torch, dtype, bias):
    theirs = torch.nn.Linear(5, 3, bias=bias).to(getattr(torch, np.dtype(dtype).name))
    ours = Linear(5, 3, bias=bias, rng=0)
    _load_from_torch(ours, theirs, dtype)
    x = rng.standard_normal((2, 4, 5)).astype(dtype)
    dout = rng.standard_normal((2, 4, 3)).astype(dtype)
    out = ours(x)
    dx = ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    theirs(tx).backward(to_torch(dout))
    assert out.dtype == dx.dtype == np.dtype(dtype)
    assert_close(out, theirs(tx), what="out")
    assert_close(dx, tx.grad, what="dx")
    _compare_grads(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_with_padding_matches_torch(rng, torch, dtype):
    theirs = torch.nn.Embedding(7, 4, padding_idx=2).to(getattr(torch, np.dtype(dtype).name))
    ours = Embedding(7, 4, padding_idx=2, rng=0)
    assert np.all(ours.weight.data[2] == 0)
    _load_from_torch(ours, theirs, dtype)
    ids = np.array([[1, 2, 2, 6], [0, 1, 1, 2], [3, 5, 4, 1]])
    dout = rng.standard_normal((3, 4, 4)).astype(dtype)
    out = ours(ids)
    assert ours.backward(dout) is None
    theirs(torch.tensor(ids)).backward(to_torch(dout))
    assert_close(out, theirs(torch.tensor(ids)), what="out")
    _compare_grads(ours, theirs)
    assert np.all(ours.weight.grad[2] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_matches_torch(rng, torch, dtype):
    theirs = torch.nn.LayerNorm(6).to(getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():  # random affine parameters: a backward that assumes ones and zeros must fail
        theirs.weight.copy_(to_torch(rng.standard_normal(6)))
        theirs.bias.copy_(to_torch(rng.standard_normal(6)))
    ours = LayerNorm(6)
    _load_from_torch(ours, theirs, dtype)
    x = (rng.standard_normal((3, 2, 6)) * 2 + 1).astype(dtype)
    dout = rng.standard_normal((3, 2, 6)).astype(dtype)
    out = ours(x)
    dx = ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    theirs(tx).backward(to_torch(dout))
    assert_close(out, theirs(tx), what="out")
    assert_close(dx, tx.grad, what="dx")
    _compare_grads(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_patch_embedding_matches_conv2d(rng, torch, dtype):
    channels, patch, dim = 2, 3, 5
    conv = torch.nn.Conv2d(channels, dim, kernel_size=patch, stride=patch).to(getattr(torch, np.dtype(dtype).name))
    ours = PatchEmbedding((6, 9), patch, channels, dim, rng=0)
    ours.to_dtype(dtype)
    ours.load_state_dict({f"proj.{k}": from_torch(v) for k, v in conv.state_dict().items()})
    images = rng.standard_normal((2, channels, 6, 9)).astype(dtype)
    dout = rng.standard_normal((2, 6, dim)).astype(dtype)
    out = ours(images)
    dimages = ours.backward(dout)
    timages = to_torch(images, requires_grad=True)
    tout = conv(timages).flatten(2).transpose(1, 2)
    tout.backward(to_torch(dout))
    assert out.shape == (2, ours.num_patches, dim)
    assert_close(out, tout, what="out")
    assert_close(dimages, timages.grad, what="dimages")
    assert_close(ours.proj.weight.grad, conv.weight.grad, what="dproj.weight")
    assert_close(ours.proj.bias.grad, conv.bias.grad, what="dproj.bias")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_activations_match_torch(rng, torch, approximate):
    x = rng.standard_normal((2, 3, 4))
    dout = rng.standard_normal((2, 3, 4))
    for ours, theirs in ((GELU(approximate), torch.nn.GELU(approximate=approximate)), (ReLU(), torch.nn.ReLU())):
        out = ours(x)
        dx = ours.backward(dout)
        tx = to_torch(x, requires_grad=True)
        tout = theirs(tx)
        tout.backward(to_torch(dout))
        assert_close(out, tout, what=f"{ours} out")
        assert_close(dx, tx.grad, what=f"{ours} dx")


@pytest.mark.parametrize(
    "make, inputs",
    [
        (lambda: Linear(4, 3, rng=1), lambda rng: [rng.standard_normal((2, 3, 4))]),
        (lambda: Linear(1, 2, bias=False, rng=1), lambda rng: [rng.standard_normal((1, 1, 1))]),
        (lambda: LayerNorm(5), lambda rng: [rng.standard_normal((2, 3, 5))]),
        (lambda: PatchEmbedding(4, 2, 2, 3, rng=1), lambda rng: [rng.standard_normal((2, 2, 4, 4))]),
        (lambda: PositionalEncoding(5, max_len=7, kind="learned", rng=1), lambda rng: [rng.standard_normal((2, 3, 5))]),
        (lambda: PositionalEncoding(5, max_len=7), lambda rng: [rng.standard_normal((2, 3, 5))]),
        (lambda: GELU(), lambda rng: [rng.standard_normal((2, 3))]),
    ],
)
def test_layers_match_finite_differences(rng, make, inputs):
    layer = make().to_dtype(np.float64)
    for param in layer.parameters():  # random values: never the ones/zeros of an initialization
        param.data[...] = rng.standard_normal(param.shape)
    gradcheck_module(layer, inputs(rng)).assert_ok()


def test_embedding_matches_finite_differences(rng):
    # the padding row (5) is left out: by design it gets no gradient even where it is used (torch semantics)
    layer = Embedding(6, 3, padding_idx=-1, rng=1).to_dtype(np.float64)
    report = gradcheck_module(layer, [np.array([[0, 4, 2], [2, 2, 1]])])
    report.assert_ok()
    assert "weight" in report.errors


def test_learned_positions_with_offset(rng):
    layer = PositionalEncoding(4, max_len=6, kind="learned", rng=1).to_dtype(np.float64)
    gradcheck_module(layer, [rng.standard_normal((3, 2, 4))], kwargs={"offset": 3}).assert_ok()
    assert np.all(layer.weight.grad[:3] == 0) and np.all(layer.weight.grad[5:] == 0)


def test_sinusoidal_positions_are_not_saved():
    layer = PositionalEncoding(8, max_len=10)
    assert list(layer.state_dict()) == []
    learned = PositionalEncoding(8, max_len=10, kind="learned")
    assert list(learned.state_dict()) == ["weight"]


def test_dropout_train_and_eval(rng):
    layer = Dropout(0.5, rng=3)
    x = rng.standard_normal((4, 50)) + 5
    out = layer(x)
    dropped = out == 0
    assert 0 < dropped.mean() < 1
    np.testing.assert_allclose(out[~dropped], 2 * x[~dropped])
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx == 0, dropped)
    assert not np.array_equal(layer(x) == 0, dropped)  # a new mask each call
    layer.eval()
    assert layer(x) is x or np.array_equal(layer(x), x)
    assert Dropout(0.5, rng=3)(x).tobytes() == Dropout(0.5, rng=3)(x).tobytes()  # a seed reproduces


def test_frozen_parameters_get_no_gradient(rng):
    layer = Linear(3, 2, rng=0).to_dtype(np.float64)
    layer.freeze()
    x = rng.standard_normal((2, 3))
    dx = layer.backward(np.ones((2, 2))) if layer(x) is not None else None
    assert dx.shape == x.shape
    assert layer.weight.grad is None and layer.bias.grad is None
    layer.bias.requires_grad = True
    layer(x)
    layer.backward(np.ones((2, 2)))
    assert layer.weight.grad is None and layer.bias.grad is not None
    embedding = Embedding(4, 2, rng=0).freeze()
    embedding(np.array([1, 2]))
    embedding.backward(np.ones((2, 2), np.float32))
    assert embedding.weight.grad is None


def test_gradients_accumulate_over_two_backwards(rng):
    layer = LayerNorm(4).to_dtype(np.float64)
    x1, x2 = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    g1, g2 = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    separate = []
    for x, g in ((x1, g1), (x2, g2)):
        layer.zero_grad()
        layer(x)
        layer.backward(g)
        separate.append(layer.weight.grad.copy())
    layer.zero_grad()
    for x, g in ((x1, g1), (x2, g2)):
        layer(x)
        layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, separate[0] + separate[1], rtol=1e-12)


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before forward"):
        Linear(2, 2).backward(np.ones((1, 2), dtype=np.float32))


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 3)
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match="image_size"):
        PatchEmbedding(10, 3, 1, 4)
    with pytest.raises(ValueError, match="images"):
        PatchEmbedding(6, 3, 1, 4)(np.ones((1, 2, 6, 6), dtype=np.float32))
    with pytest.raises(ValueError, match="kind"):
        PositionalEncoding(4, kind="rotary")
    with pytest.raises(ValueError, match="p"):
        Dropout(1.0)


def test_default_dtype_is_float32_and_float64_flows(rng):
    layer = Linear(3, 2, rng=0)
    assert layer.weight.dtype == np.float32
    assert layer(rng.standard_normal((2, 3)).astype(np.float32)).dtype == np.float32
    layer.to_dtype(np.float64)
    assert layer(rng.standard_normal((2, 3))).dtype == np.float64

"""The library on a real GPU: CuPy arrays against PyTorch, and a training step against the CPU's.

Run with ``python -m pytest tests/gpu --backend cupy`` on a machine with an NVIDIA GPU and CuPy. Without the
option, without CuPy or without a GPU every test here skips and says why. PyTorch is the reference; it runs
on CUDA when its build has CUDA, otherwise on the CPU (the reference values are the same).
"""
import copy

import numpy as np
import pytest

from numpy_transformer import functional as F
from reference import DTYPES, assert_close, require


@pytest.fixture(scope="module")
def cupy(request):
    if request.config.getoption("--backend") != "cupy":
        pytest.skip("GPU tests: run with --backend cupy on a machine with CuPy and an NVIDIA GPU")
    try:
        import cupy
    except ImportError:
        pytest.skip("GPU tests: CuPy is not installed (pip install cupy-cuda12x)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver
        pytest.skip(f"GPU tests: CuPy sees no GPU ({error})")
    if count == 0:
        pytest.skip("GPU tests: CuPy sees no GPU")
    return cupy


@pytest.fixture(scope="module")
def torch(cupy):
    return require("torch")


def torch_device(torch):
    return "cuda" if torch.cuda.is_available() else "cpu"


def tt(torch, array, grad=False):
    """A torch tensor (on torch's device) holding a NumPy array."""
    tensor = torch.tensor(array, device=torch_device(torch))
    return tensor.requires_grad_(True) if grad else tensor


def check_pair(cupy, torch, ours, theirs, float_inputs, other=(), dtype=np.float64):
    """Run ``ours(*cupy arrays)`` forward and backward and ``theirs(*tensors)`` under autograd; compare.

    ``ours(*args) -> (out, backward)`` where ``backward(dout)`` gives one gradient per float input.
    """
    out, backward = ours(*[cupy.asarray(a) for a in float_inputs], *other)
    tensors = [tt(torch, a, grad=True) for a in float_inputs]
    expected = theirs(*tensors, *other)
    assert isinstance(out, cupy.ndarray)
    assert_close(out, expected, dtype, "output")
    dout = np.random.default_rng(9).standard_normal(out.shape).astype(dtype)
    grads = backward(cupy.asarray(dout))
    expected.backward(tt(torch, dout))
    for number, (grad, tensor) in enumerate(zip(grads, tensors, strict=False)):
        assert isinstance(grad, cupy.ndarray), f"gradient {number} left the GPU"
        assert_close(grad, tensor.grad, dtype, f"gradient {number}")


def pair(forward, backward, **kwargs):
    """Our function pair as ``f(*inputs) -> (out, dout -> tuple of gradients)``."""
    def run(*inputs):
        out, cache = forward(*inputs, **kwargs)
        return out, lambda dout: (lambda g: g if isinstance(g, tuple) else (g,))(backward(dout, cache))
    return run


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_pairs_match_torch(cupy, torch, dtype):
    tf = torch.nn.functional
    g = np.random.default_rng(0)
    r = lambda *shape: g.standard_normal(shape).astype(dtype)  # noqa: E731
    check = lambda *args, **kw: check_pair(cupy, torch, *args, dtype=dtype, **kw)  # noqa: E731
    check(pair(F.linear_forward, F.linear_backward), lambda x, w, b: tf.linear(x, w, b), [r(2, 3, 4), r(5, 4), r(5)])
    check(pair(F.softmax_forward, F.softmax_backward), lambda x: torch.softmax(x, -1), [r(2, 3, 5)])
    check(pair(F.log_softmax_forward, F.log_softmax_backward), lambda x: torch.log_softmax(x, -1), [r(2, 3, 5)])
    check(pair(F.relu_forward, F.relu_backward), tf.relu, [r(2, 3, 4)])
    check(pair(F.gelu_forward, F.gelu_backward), tf.gelu, [r(2, 3, 4)])
    check(pair(F.gelu_forward, F.gelu_backward, approximate="tanh"), lambda x: tf.gelu(x, approximate="tanh"),
          [r(2, 3, 4)])
    check(pair(F.layernorm_forward, F.layernorm_backward), lambda x, w, b: tf.layer_norm(x, (4,), w, b),
          [r(2, 3, 4), r(4), r(4)])
    check(pair(F.feedforward_forward, F.feedforward_backward, activation="gelu"),
          lambda x, w1, b1, w2, b2: tf.linear(tf.gelu(tf.linear(x, w1, b1)), w2, b2),
          [r(2, 3, 4), r(6, 4), r(6), r(4, 6), r(4)])
    # attention: our boolean mask is True = may NOT attend, torch's scaled_dot_product_attention the opposite
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, 3:] = mask[2, :2] = True
    attention = lambda q, k, v, m: F.scaled_dot_product_attention_forward(q, k, v, mask=m)  # noqa: E731

    def ours_attention(q, k, v, m):
        out, _, cache = attention(q, k, v, cupy.asarray(m))
        return out, lambda dout: F.scaled_dot_product_attention_backward(dout, cache)

    check(ours_attention, lambda q, k, v, m: tf.scaled_dot_product_attention(q, k, v, attn_mask=tt(torch, ~m)),
          [r(2, 2, 3, 4), r(2, 2, 5, 4), r(2, 2, 5, 3)], other=(mask,))

    def ours_causal(q, k, v):
        out, _, cache = F.scaled_dot_product_attention_forward(q, k, v, is_causal=True)
        return out, lambda dout: F.scaled_dot_product_attention_backward(dout, cache)

    check(ours_causal, lambda q, k, v: tf.scaled_dot_product_attention(q, k, v, is_causal=True),
          [r(2, 2, 4, 3), r(2, 2, 4, 3), r(2, 2, 4, 5)])

    # embedding (gradient of the weight) and cross-entropy (a scalar loss)
    ids = np.array([[1, 4, 0], [5, 2, 1]])
    check(lambda w, i: (lambda out, cache: (out, lambda d: (F.embedding_backward(d, cache),)))(
              *F.embedding_forward(cupy.asarray(i), w, padding_idx=1)),
          lambda w, i: tf.embedding(tt(torch, i), w, padding_idx=1), [r(6, 4)], other=(ids,))
    targets = np.array([[1, -100, 4], [0, 2, 3]])
    logits = cupy.asarray(r(2, 3, 5))
    loss, cache = F.cross_entropy_forward(logits, cupy.asarray(targets), label_smoothing=0.1)
    tensor = tt(torch, logits.get(), grad=True)
    expected = tf.cross_entropy(tensor.reshape(-1, 5), tt(torch, targets).reshape(-1), label_smoothing=0.1)
    expected.backward()
    assert_close(loss, expected, dtype, "cross-entropy")
    assert_close(F.cross_entropy_backward(1.0, cache), tensor.grad, dtype, "cross-entropy gradient")


def load_from_torch(ours, theirs):
    ours.load_state_dict({key: value.detach().cpu().numpy() for key, value in theirs.state_dict().items()})


def check_module(cupy, torch, ours, theirs, inputs, kwargs, dtype):
    """Our module on the GPU against its torch twin: the output, every input and every parameter gradient."""
    load_from_torch(ours, theirs)
    ours.to("cuda")
    out = ours(*[cupy.asarray(a) for a in inputs], **{k: cupy.asarray(v) for k, v in kwargs.items()})
    out = out[0] if isinstance(out, tuple) else out
    tensors = [tt(torch, a, grad=True) for a in inputs]
    expected = theirs(*tensors, **{k: tt(torch, v) for k, v in kwargs.items()})
    expected = expected[0] if isinstance(expected, tuple) else expected
    assert_close(out, expected, dtype, "output")
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    grads = ours.backward(cupy.asarray(dout))
    expected.backward(tt(torch, dout))
    grads = grads if isinstance(grads, tuple) else (grads,)
    for number, (grad, tensor) in enumerate(zip(grads, tensors, strict=False)):
        assert_close(grad, tensor.grad, dtype, f"input gradient {number}")
    theirs_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert isinstance(param.grad, cupy.ndarray), f"{name}: gradient left the GPU"
        assert_close(param.grad, theirs_params[name].grad, dtype, f"{name} gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_modules_match_torch(cupy, torch, dtype):
    from numpy_transformer import nn

    g = np.random.default_rng(1)
    r = lambda *shape: g.standard_normal(shape).astype(dtype)  # noqa: E731
    tdtype = getattr(torch, np.dtype(dtype).name)
    device = torch_device(torch)
    padding = np.array([[False, False, False, True, True], [False] * 5])
    check_module(cupy, torch, nn.MultiheadAttention(6, 2, batch_first=True, dtype=dtype),
                 torch.nn.MultiheadAttention(6, 2, batch_first=True, dtype=tdtype, device=device),
                 [r(2, 3, 6), r(2, 5, 6), r(2, 5, 6)], dict(key_padding_mask=padding), dtype)
    check_module(cupy, torch, nn.TransformerEncoderLayer(6, 2, 7, dropout=0.0, activation="gelu", batch_first=True,
                                                       dtype=dtype),
                 torch.nn.TransformerEncoderLayer(6, 2, 7, dropout=0.0, activation="gelu", batch_first=True,
                                                  dtype=tdtype, device=device),
                 [r(2, 5, 6)], dict(src_key_padding_mask=padding), dtype)
    check_module(cupy, torch, nn.TransformerDecoderLayer(6, 2, 7, dropout=0.0, norm_first=True, batch_first=True,
                                                       dtype=dtype),
                 torch.nn.TransformerDecoderLayer(6, 2, 7, dropout=0.0, norm_first=True, batch_first=True,
                                                  dtype=tdtype, device=device),
                 [r(2, 3, 6), r(2, 5, 6)], dict(memory_key_padding_mask=padding), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_matches_torch_nn_transformer(cupy, torch, dtype):
    from numpy_transformer.nn import Transformer

    g = np.random.default_rng(2)
    tdtype = getattr(torch, np.dtype(dtype).name)
    kwargs = dict(d_model=6, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=7, dropout=0.0,
                  batch_first=True)
    theirs = torch.nn.Transformer(**kwargs, dtype=tdtype, device=torch_device(torch))
    ours = Transformer(**kwargs, dtype=dtype)
    causal = Transformer.generate_square_subsequent_mask(3, dtype=dtype)
    src, tgt = g.standard_normal((2, 5, 6)).astype(dtype), g.standard_normal((2, 3, 6)).astype(dtype)
    check_module(cupy, torch, ours, theirs, [src, tgt], dict(tgt_mask=causal), dtype)


def test_translator_training_step_on_the_gpu_equals_the_cpu_step(cupy):
    from numpy_transformer.models import Seq2SeqTransformer
    from numpy_transformer.optim import AdamW, clip_grad_norm_

    g = np.random.default_rng(3)
    src, tgt = g.integers(1, 11, (2, 5)), g.integers(1, 9, (2, 6))
    src[0, -2:] = 0

    def step(model, xp):
        optimizer = AdamW(model.parameters(), lr=1e-3)
        logits = model(xp.asarray(src), xp.asarray(tgt[:, :-1]))
        loss, dlogits = model.loss(logits, xp.asarray(tgt[:, 1:]))
        model.backward(dlogits)
        clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        return loss, {name: (p.grad, p.data) for name, p in model.named_parameters()}

    cpu_model = Seq2SeqTransformer(11, 9, 8, 2, 1, 1, 12, dropout=0.0, label_smoothing=0.1, dtype=np.float64, rng=0)
    gpu_model = copy.deepcopy(cpu_model).to("cuda")
    cpu_loss, cpu = step(cpu_model, np)
    gpu_loss, gpu = step(gpu_model, cupy)
    assert isinstance(gpu_loss, cupy.ndarray)
    assert_close(gpu_loss, cpu_loss, np.float64, "loss")
    for name, (grad, data) in gpu.items():
        assert isinstance(data, cupy.ndarray), f"{name} left the GPU"
        assert_close(grad, cpu[name][0], np.float64, f"{name} gradient")
        assert_close(data, cpu[name][1], np.float64, f"{name} after the step")

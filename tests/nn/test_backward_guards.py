"""What every Module's backward refuses: a forward that raised midway (nothing of it may be differentiated), and
an upstream gradient whose shape or dtype is not that of the forward's output."""
import numpy as np
import pytest

from numpy_transformer.models.gpt import GPT
from numpy_transformer.models.translator import Seq2SeqTransformer
from numpy_transformer.nn import (
    Embedding,
    LayerNorm,
    Linear,
    Module,
    MultiheadAttention,
    PositionalEncoding,
    Transformer,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)
from numpy_transformer.nn.modern import GroupedQueryAttention, RMSNorm, SwiGLUFeedForward

B, S, T, D, H = 2, 5, 3, 4, 2


def test_backward_after_a_forward_that_raised_midway_is_refused(rng):
    """The encoder runs, then the decoder refuses its mask: a backward must not mix the encoder's new caches
    with the decoder's old ones."""
    model = Transformer(D, H, 1, 1, 6, dropout=0.0, batch_first=True, dtype=np.float64, rng=0)
    src, tgt = rng.standard_normal((B, S, D)), rng.standard_normal((B, T, D))
    dout = rng.standard_normal((B, T, D))
    model(src, tgt)
    model.backward(dout)                                          # a normal step works
    with pytest.raises(ValueError, match="tgt_mask"):
        model(rng.standard_normal((B, S, D)), tgt, tgt_mask=np.zeros((T + 1, T + 1), bool))
    for module in (model, model.decoder, model.encoder, model.encoder.layers[0].self_attn, model.decoder.norm):
        with pytest.raises(RuntimeError, match="backward: called before forward, or after a forward that raised"):
            module.backward(dout if module is not model.encoder else rng.standard_normal((B, S, D)))
    model(src, tgt)                                               # a new forward makes backward possible again
    dsrc, dtgt = model.backward(dout)
    assert dsrc.shape == src.shape and dtgt.shape == tgt.shape


def test_a_user_module_that_raises_midway_is_guarded_too(rng):
    class TwoSteps(Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = Linear(3, 4, dtype=np.float64, rng=0), Linear(4, 2, dtype=np.float64, rng=1)

        def forward(self, x, fail=False):
            h = self.first(x)
            if fail:
                raise ValueError("x: refused after the first layer ran")
            return self.second(h)

        def backward(self, dout):
            return self.first.backward(self.second.backward(dout))

    model = TwoSteps()
    x = rng.standard_normal((5, 3))
    model(x)
    with pytest.raises(ValueError, match="refused"):
        model(rng.standard_normal((6, 3)), fail=True)
    with pytest.raises(RuntimeError, match="run forward first"):
        model.backward(np.ones((5, 2)))
    with pytest.raises(RuntimeError, match="run forward first"):
        model.first.backward(np.ones((6, 4)))


def _modules():
    """name -> (module, inputs of forward), float32 everywhere (the default dtype)."""
    rng = np.random.default_rng(0)
    x, memory = rng.standard_normal((B, T, D)).astype(np.float32), rng.standard_normal((B, S, D)).astype(np.float32)
    ids = np.array([[1, 2, 3], [4, 0, 2]])
    return {
        "Linear": (Linear(D, 6), (x,)),
        "LayerNorm": (LayerNorm(D), (x,)),
        "Embedding": (Embedding(7, D), (ids,)),
        "PositionalEncoding": (PositionalEncoding(D, max_len=8), (x,)),
        "MultiheadAttention": (MultiheadAttention(D, H, batch_first=True), (x, memory, memory)),
        "TransformerEncoderLayer": (TransformerEncoderLayer(D, H, 6, batch_first=True), (x,)),
        "TransformerDecoderLayer": (TransformerDecoderLayer(D, H, 6, batch_first=True), (x, memory)),
        "Transformer": (Transformer(D, H, 1, 1, 6, batch_first=True), (memory, x)),
        "GPT": (GPT(7, D, H, 1, 6, max_len=8), (ids,)),
        "Seq2SeqTransformer": (Seq2SeqTransformer(7, 7, D, H, 1, 1, 6), (ids, ids)),
        "RMSNorm": (RMSNorm(D), (x,)),
        "SwiGLUFeedForward": (SwiGLUFeedForward(D, 6), (x,)),
        "GroupedQueryAttention": (GroupedQueryAttention(D, H, 1), (x,)),
    }


@pytest.mark.parametrize("name", list(_modules()))
def test_backward_refuses_an_upstream_gradient_that_does_not_fit(name):
    module, inputs = _modules()[name]
    module.eval()
    out = module(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    good = np.ones(out.shape, out.dtype)
    module.backward(good)                                         # the right one passes
    module(*inputs)
    wrong = np.ones(out.shape[::-1], out.dtype)                   # the same size, another shape
    shape = str(tuple(out.shape)).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=rf"got shape .*; expected {shape}, the shape of {type(module).__name__}"):
        module.backward(wrong)
    with pytest.raises(TypeError, match=f"got dtype float64; expected float32, the dtype of {type(module).__name__}"):
        module.backward(good.astype(np.float64))
    module.backward(good)


def test_a_wrong_gradient_is_never_reshaped_or_promoted(rng):
    layer = Linear(4, 2, rng=0)                                   # float32 parameters: the default
    layer(rng.standard_normal((4, 4)).astype(np.float32))         # out (4, 2)
    with pytest.raises(ValueError, match=r"dout: got shape \(2, 4\); expected \(4, 2\)"):
        layer.backward(np.ones((2, 4), np.float32))               # 8 numbers, like (4, 2): once silently reshaped
    with pytest.raises(TypeError, match="dout: got dtype float64; expected float32"):
        layer.backward(np.ones((4, 2)))                           # once silently gave float64 gradients
    assert layer.weight.grad is None and layer.bias.grad is None  # a refused backward added nothing

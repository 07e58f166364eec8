"""dtype arguments as NumPy and torch users write them, and torch's dtype methods: .double(), .float(), .half(),
.to(dtype). Modules default to float32, like torch."""
import numpy as np
import pytest

from numpy_transformer.models.vit import VisionTransformer
from numpy_transformer.nn import (
    Embedding,
    LayerNorm,
    Linear,
    MultiheadAttention,
    PatchEmbedding,
    PositionalEncoding,
    Transformer,
    TransformerEncoderLayer,
)
from numpy_transformer.nn.modern import (
    GroupedQueryAttention,
    RMSNorm,
    SwiGLUFeedForward,
)

FLOAT64_SPELLINGS = [np.float64, np.dtype("float64"), float, "float64", "f8", "double", "torch.float64", "torch.double"]


def dtypes_of(module):
    return {param.dtype for param in module.parameters()} | {b.dtype for b in module.buffers() if b.dtype.kind == "f"}


MAKERS = {
    "Linear": lambda dtype: Linear(3, 2, dtype=dtype),
    "Embedding": lambda dtype: Embedding(5, 3, dtype=dtype),
    "LayerNorm": lambda dtype: LayerNorm(3, dtype=dtype),
    "PositionalEncoding": lambda dtype: PositionalEncoding(4, max_len=6, dtype=dtype),
    "PatchEmbedding": lambda dtype: PatchEmbedding(4, 2, in_channels=1, embed_dim=3, dtype=dtype),
    "MultiheadAttention": lambda dtype: MultiheadAttention(4, 2, dtype=dtype),
    "TransformerEncoderLayer": lambda dtype: TransformerEncoderLayer(4, 2, 6, dtype=dtype),
    "Transformer": lambda dtype: Transformer(4, 2, 1, 1, 6, dtype=dtype),
    "VisionTransformer": lambda dtype: VisionTransformer(4, 2, 1, 3, 4, 2, 1, 6, dtype=dtype),
    "RMSNorm": lambda dtype: RMSNorm(4, dtype=dtype),
    "SwiGLUFeedForward": lambda dtype: SwiGLUFeedForward(4, 6, dtype=dtype),
    "GroupedQueryAttention": lambda dtype: GroupedQueryAttention(4, 2, 1, dtype=dtype),
}


@pytest.mark.parametrize("make", list(MAKERS))
def test_modules_default_to_float32_and_take_every_spelling_of_a_dtype(make, torch):
    assert dtypes_of(MAKERS[make](np.float32)) == dtypes_of(MAKERS[make](None)) == {np.dtype(np.float32)}
    build = MAKERS[make]
    for spelling in FLOAT64_SPELLINGS + [torch.float64]:
        assert dtypes_of(build(spelling)) == {np.dtype(np.float64)}, spelling
    for spelling, expected in ((torch.float32, np.float32), ("torch.float", np.float32), (torch.half, np.float16),
                               ("float16", np.float16)):
        assert dtypes_of(build(spelling)) == {np.dtype(expected)}, spelling


def test_dtype_methods_as_in_torch(torch):
    model = Transformer(4, 2, 1, 1, 6)
    assert dtypes_of(model) == {np.dtype(np.float32)}                        # the default, as in torch
    assert model.double() is model and dtypes_of(model) == {np.dtype(np.float64)}
    assert dtypes_of(model.half()) == {np.dtype(np.float16)}
    assert dtypes_of(model.float()) == {np.dtype(np.float32)}
    assert dtypes_of(model.to(torch.float64)) == {np.dtype(np.float64)}
    assert dtypes_of(model.to("float32")) == {np.dtype(np.float32)}
    assert dtypes_of(model.to("cpu", dtype="torch.float64")) == {np.dtype(np.float64)}
    assert dtypes_of(model.to_dtype(np.float32)) == {np.dtype(np.float32)}
    pe = PositionalEncoding(4, max_len=6).double()                            # float buffers follow
    assert pe.pe.dtype == np.float64


@pytest.mark.parametrize("bad, message", [
    ("float", "float64 to NumPy and float32 to torch"),
    ("bfloat16", "expected a float dtype"),
    ("torch.bfloat16", "no bfloat16"),
    ("int64", "expected a floating dtype"),
    (np.complex64, "expected a floating dtype"),
    ("torch.int64", "torch.float16, torch.float32 or torch.float64"),
    (object(), "expected a float dtype"),
])
def test_what_is_not_a_float_dtype_is_named(bad, message):
    from numpy_transformer.backend import as_dtype

    with pytest.raises(TypeError, match=f"dtype: got .*{message}"):
        as_dtype(bad)
    with pytest.raises(TypeError, match=f"dtype: got .*{message}"):
        Linear(3, 2, dtype=bad)
    with pytest.raises(TypeError, match=f"dtype: got .*{message}"):
        Linear(3, 2).to_dtype(bad)

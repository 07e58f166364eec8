"""Modules: parameters, the Module base class and the layers of torch.nn, each with a hand-written backward."""
from .attention import MultiheadAttention, merge_attention_masks
from .layers import (
    GELU,
    Activation,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    PatchEmbedding,
    PatchProjection,
    PositionalEncoding,
    ReLU,
)
from .modern import GroupedQueryAttention, LlamaDecoderLayer, RMSNorm, SiLU, SwiGLUFeedForward
from .module import IncompatibleKeys, Module, ModuleList, Parameter
from .transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "Parameter", "Module", "ModuleList", "IncompatibleKeys",
    "Linear", "Embedding", "LayerNorm", "Dropout", "Activation", "ReLU", "GELU",
    "PositionalEncoding", "PatchEmbedding", "PatchProjection",
    "MultiheadAttention", "merge_attention_masks",
    "RMSNorm", "SiLU", "SwiGLUFeedForward", "GroupedQueryAttention", "LlamaDecoderLayer",
    "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder", "TransformerDecoder", "Transformer",
]

"""The basic layers, each a thin module around one functional pair.

Every layer here has the name, constructor arguments and ``state_dict`` keys of its ``torch.nn`` twin, so a
torch layer's weights load into it unchanged. Each ``forward`` calls a ``*_forward`` function from
:mod:`numpy_transformer.functional` and keeps its cache on ``self``; each ``backward`` calls the matching
``*_backward``, ADDS the parameter gradients into ``param.grad`` and returns the gradient of the input.
A frozen parameter (``requires_grad`` False) gets no gradient, and where the functional lets us say so,
its gradient is not even computed.

Shapes: B batch, T positions, D model width, V vocabulary, C channels, P patch size, N patches.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import as_dtype, get_array_module, seeded_generator
from ..checks import check_choice, check_positive_int, check_probability
from ..functional.activations import gelu_backward, gelu_forward, relu_backward, relu_forward
from ..functional.dropout import dropout_backward, dropout_forward
from ..functional.embedding import embedding_backward, embedding_forward
from ..functional.layernorm import layernorm_backward, layernorm_forward
from ..functional.linear import linear_backward, linear_forward
from ..functional.patchify import patchify_backward, patchify_forward
from ..functional.positional import positional_encoding_backward, positional_encoding_forward, sinusoidal_table
from .module import Module, Parameter

__all__ = [
    "Linear", "Embedding", "LayerNorm", "Dropout", "Activation", "ReLU", "GELU",
    "PositionalEncoding", "PatchEmbedding", "PatchProjection",
]


def _uniform(rng, shape, bound: float, dtype):
    """U(-bound, bound) drawn on the host (so a seed gives the same weights on every device)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Linear(Module):
    r"""$y = x W^\top + b$ (torch's ``nn.Linear``): weight (out_features, in_features), bias (out_features,).

    Initialized as torch does: every weight and bias entry $\sim U(-1/\sqrt{D_{in}}, 1/\sqrt{D_{in}})$.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        dtype = as_dtype(dtype)
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        generator = seeded_generator(rng)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(_uniform(generator, (out_features, in_features), bound, dtype))
        self.bias = Parameter(_uniform(generator, (out_features,), bound, dtype)) if bias else None
        self._cache = None

    def forward(self, x):
        """x (..., in_features) -> (..., out_features)."""
        out, self._cache = linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        return out

    def backward(self, dout):
        """dout (..., out_features) -> dx (..., in_features); adds into weight.grad and bias.grad."""
        cache = self._cached()
        learn_bias = self.bias is not None and self.bias.requires_grad
        dx, dweight, dbias = linear_backward(
            dout, cache, need_input_grad=True, need_weight_grad=self.weight.requires_grad or learn_bias
        )
        self.accumulate_grads(dweight, dbias)
        return dx

    def accumulate_grads(self, dweight, dbias) -> None:
        """Add dweight (out_features, in_features) and dbias (out_features,) into the ``.grad`` of the parameters
        that learn (a frozen one, or a missing bias, takes nothing); also for a block that computes the
        gradients of several Linear layers at once (SwiGLU's three projections)."""
        if self.weight.requires_grad:
            self.weight.accumulate_grad(dweight)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate_grad(dbias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A table of V learned vectors of width D, looked up by integer id (torch's ``nn.Embedding``).

    weight (V, D) ~ N(0, 1), with the row ``padding_idx`` (if given) set to zero and never updated.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, dtype=np.float32, rng=None):
        super().__init__()
        dtype = as_dtype(dtype)
        check_positive_int("num_embeddings", num_embeddings)
        check_positive_int("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) or not (
                -num_embeddings <= padding_idx < num_embeddings
            ):
                raise ValueError(
                    f"padding_idx: got {padding_idx!r}; expected None or an int in "
                    f"[{-num_embeddings}, {num_embeddings})"
                )
            padding_idx = int(padding_idx) % num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        weight = seeded_generator(rng).standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = Parameter(weight)
        self._cache = None

    def forward(self, ids):
        """ids (...) integer -> (..., D)."""
        out, self._cache = embedding_forward(ids, self.weight.data, self.padding_idx)
        return out

    def backward(self, dout):
        """dout (..., D); scatter-adds into weight.grad. Returns None: ids have no gradient."""
        cache = self._cached()
        if self.weight.requires_grad:
            self.weight.accumulate_grad(embedding_backward(dout, cache))  # (V, D)
        return None

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """Layer normalization over the last axis (torch's ``nn.LayerNorm`` with an int ``normalized_shape``).

    weight (D,) = ones and bias (D,) = zeros at initialization; ``elementwise_affine=False`` has neither,
    ``bias=False`` keeps only the weight.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=np.float32):
        super().__init__()
        dtype = as_dtype(dtype)
        if isinstance(normalized_shape, (tuple, list)) and len(normalized_shape) == 1:
            normalized_shape = normalized_shape[0]
        check_positive_int("normalized_shape", normalized_shape)
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) or not eps > 0:
            raise ValueError(f"eps: got {eps!r}; expected a number > 0 (with 0, a constant row would give 0 / 0)")
        self.normalized_shape, self.eps, self.elementwise_affine = int(normalized_shape), float(eps), elementwise_affine
        width = self.normalized_shape
        self.weight = Parameter(np.ones(width, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(width, dtype=dtype)) if elementwise_affine and bias else None
        self._cache = None

    def forward(self, x):
        """x (..., D) -> (..., D)."""
        xp = get_array_module(x)
        gamma = self.weight.data if self.weight is not None else xp.ones(self.normalized_shape, dtype=x.dtype)
        beta = self.bias.data if self.bias is not None else xp.zeros(self.normalized_shape, dtype=gamma.dtype)
        out, self._cache = layernorm_forward(x, gamma, beta, self.eps)
        return out

    def backward(self, dout):
        """dout (..., D) -> dx (..., D); adds into weight.grad and bias.grad."""
        dx, dgamma, dbeta = layernorm_backward(dout, self._cached())
        if self.weight is not None and self.weight.requires_grad:
            self.weight.accumulate_grad(dgamma)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate_grad(dbeta)
        return dx

    def extra_repr(self) -> str:
        return f"({self.normalized_shape},), eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode and scale the rest by 1/(1-p); identity in eval.

    ``rng`` (an int seed, a Generator or None) drives every mask this layer draws, call after call.
    """

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        check_probability("p", p)
        self.p = float(p)
        self.rng = rng
        self._generator = self._generator_xp = None
        self._cache = None

    def _generator_for(self, xp):
        # one Generator per array module, made on first use and then advanced by every call
        if self._generator is None or self._generator_xp is not xp:
            source = self.rng
            if xp is not np and isinstance(source, np.random.Generator):
                source = int(source.integers(2**63 - 1))  # a host Generator seeds the device one
            self._generator, self._generator_xp = seeded_generator(source, xp), xp
        return self._generator

    def forward(self, x):
        active = self.training and self.p > 0
        rng = self._generator_for(get_array_module(x)) if active else None
        out, self._cache = dropout_forward(x, self.p, training=active, rng=rng)
        return out

    def backward(self, dout):
        return dropout_backward(dout, self._cached())

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Activation(Module):
    """An elementwise nonlinearity by name: ``"relu"``, ``"gelu"`` (exact, erf) or ``"gelu_tanh"``."""

    _PAIRS = {
        "relu": (lambda x: relu_forward(x), relu_backward),
        "gelu": (lambda x: gelu_forward(x, approximate="none"), gelu_backward),
        "gelu_tanh": (lambda x: gelu_forward(x, approximate="tanh"), gelu_backward),
    }

    def __init__(self, name: str = "relu"):
        super().__init__()
        check_choice("activation", name, tuple(self._PAIRS))
        self.name = name
        self._cache = None

    def forward(self, x):
        out, self._cache = self._PAIRS[self.name][0](x)
        return out

    def backward(self, dout):
        return self._PAIRS[self.name][1](dout, self._cached())

    def extra_repr(self) -> str:
        return repr(self.name)


class ReLU(Activation):
    """``max(x, 0)`` (torch's ``nn.ReLU``)."""

    def __init__(self):
        super().__init__("relu")

    def extra_repr(self) -> str:
        return ""


class GELU(Activation):
    """``x * Phi(x)`` (torch's ``nn.GELU``); ``approximate="tanh"`` uses the tanh formula."""

    def __init__(self, approximate: str = "none"):
        check_choice("approximate", approximate, ("none", "tanh"))
        super().__init__("gelu" if approximate == "none" else "gelu_tanh")
        self.approximate = approximate

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class PositionalEncoding(Module):
    """Add a position vector to each token vector, then dropout: ``out = dropout(x + table[offset:offset+T])``.

    ``kind="sinusoidal"``: the paper's fixed table, a non-persistent buffer ``pe`` (max_len, D) (not saved:
    it is recomputed). ``kind="learned"``: a Parameter ``weight`` (max_len, D) ~ N(0, 0.02^2), as in BERT
    and GPT-2.
    """

    def __init__(self, d_model: int, max_len: int = 5000, kind: str = "sinusoidal", dropout: float = 0.0,
                 dtype=np.float32, rng=None):
        super().__init__()
        dtype = as_dtype(dtype)
        check_positive_int("d_model", d_model)
        check_positive_int("max_len", max_len)
        check_choice("kind", kind, ("sinusoidal", "learned"))
        self.d_model, self.max_len, self.kind = d_model, max_len, kind
        generator = seeded_generator(rng)
        if kind == "sinusoidal":
            self.register_buffer("pe", sinusoidal_table(max_len, d_model, dtype=dtype), persistent=False)
        else:
            self.weight = Parameter((0.02 * generator.standard_normal((max_len, d_model))).astype(dtype))
        self.dropout = Dropout(dropout, rng=generator)
        self._cache = None

    def forward(self, x, offset: int = 0):
        """x (B, T, D) -> (B, T, D); ``offset`` is the position of x's first token (used while decoding)."""
        if self.kind == "sinusoidal":
            table = self.pe if self.pe.dtype == x.dtype else self.pe.astype(x.dtype)  # a constant, like eps
        else:
            table = self.weight.data
        summed, cache = positional_encoding_forward(x, table, offset)
        self._cache = (cache, offset, x.shape[-2])
        return self.dropout.forward(summed)

    def backward(self, dout):
        """dout (B, T, D) -> dx (B, T, D); the learned table gets the gradient summed over the batch."""
        cache, offset, length = self._cached()
        dsummed = self.dropout.backward(dout)
        if self.kind == "learned" and self.weight.requires_grad:
            xp = get_array_module(dsummed)
            dweight = xp.zeros(self.weight.shape, dtype=self.weight.dtype)
            # forward: summed = x + weight[offset:offset+T], broadcast over the leading axes
            dweight[offset:offset + length] = dsummed.reshape(-1, length, self.d_model).sum(axis=0)  # -> (T, D)
            self.weight.accumulate_grad(dweight)
        # forward: summed = x + table[offset:offset+T]
        return positional_encoding_backward(dsummed, cache)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, kind={self.kind!r}"


class PatchProjection(Module):
    r"""A ``Conv2d(C, D, kernel_size=P, stride=P)`` written as a Linear on flattened patches.

    Its weight is stored in Conv2d's layout (D, C, P, P) so that torch's ``proj.weight`` loads unchanged; the
    forward views it as (D, C*P*P), which matches :func:`patchify_forward`'s (C, P, P) flattening order.
    Initialized as torch's Conv2d: $U(-1/\sqrt{C P^2}, 1/\sqrt{C P^2})$ for weight and bias.
    """

    def __init__(self, in_channels: int, out_channels: int, patch_size: int, dtype=np.float32, rng=None):
        super().__init__()
        dtype = as_dtype(dtype)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("patch_size", patch_size)):
            check_positive_int(name, value)
        self.in_channels, self.out_channels, self.patch_size = in_channels, out_channels, patch_size
        fan_in = in_channels * patch_size * patch_size
        generator = seeded_generator(rng)
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(_uniform(generator, (out_channels, in_channels, patch_size, patch_size), bound, dtype))
        self.bias = Parameter(_uniform(generator, (out_channels,), bound, dtype))
        self._cache = None

    def forward(self, patches):
        """patches (B, N, C*P*P) -> (B, N, D)."""
        weight = self.weight.data.reshape(self.out_channels, -1)  # (D, C, P, P) -> (D, C*P*P), a view
        out, self._cache = linear_forward(patches, weight, self.bias.data)
        return out

    def backward(self, dout):
        """dout (B, N, D) -> dpatches (B, N, C*P*P); adds into weight.grad and bias.grad."""
        learn = self.weight.requires_grad or self.bias.requires_grad
        dpatches, dweight, dbias = linear_backward(dout, self._cached(), need_weight_grad=learn)
        if self.weight.requires_grad:
            self.weight.accumulate_grad(dweight.reshape(self.weight.shape))  # (D, C*P*P) -> (D, C, P, P)
        if self.bias.requires_grad:
            self.bias.accumulate_grad(dbias)
        return dpatches


class PatchEmbedding(Module):
    """Cut images into P x P patches and project each to width D (the ViT input layer).

    Equal to torch's ``Conv2d(C, D, kernel_size=P, stride=P)(images).flatten(2).transpose(1, 2)``, with the
    same ``state_dict`` keys ``proj.weight`` (D, C, P, P) and ``proj.bias`` (D,).
    """

    def __init__(self, image_size, patch_size: int, in_channels: int = 3, embed_dim: int = 768,
                 dtype=np.float32, rng=None):
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
        check_positive_int("image_size", height)
        check_positive_int("image_size", width)
        check_positive_int("patch_size", patch_size)
        if height % patch_size or width % patch_size:
            raise ValueError(
                f"image_size: got {(height, width)}; expected both sides divisible by patch_size = {patch_size}"
            )
        self.image_size, self.patch_size = (height, width), patch_size
        self.in_channels, self.embed_dim = in_channels, embed_dim
        self.num_patches = (height // patch_size) * (width // patch_size)
        self.proj = PatchProjection(in_channels, embed_dim, patch_size, dtype=dtype, rng=rng)
        self._cache = None

    def forward(self, images):
        """images (B, C, H, W) -> (B, N, D) with N = (H/P)*(W/P), patches in row-major order."""
        expected = (self.in_channels, *self.image_size)
        if getattr(images, "ndim", 0) != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"images: got shape {tuple(getattr(images, 'shape', ()))}; expected (B, {expected[0]}, "
                f"{expected[1]}, {expected[2]}) (B, C, H, W)"
            )
        patches, self._cache = patchify_forward(images, self.patch_size)  # (B, C, H, W) -> (B, N, C*P*P)
        return self.proj.forward(patches)                                 # (B, N, C*P*P) -> (B, N, D)

    def backward(self, dout):
        """dout (B, N, D) -> dimages (B, C, H, W)."""
        cache = self._cached()
        dpatches = self.proj.backward(dout)                               # (B, N, D) -> (B, N, C*P*P)
        return patchify_backward(dpatches, cache)                         # -> (B, C, H, W)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, patch_size={self.patch_size}, num_patches={self.num_patches}"

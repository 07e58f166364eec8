r"""The layers of today's decoders (Llama, Mistral, Qwen): RMSNorm, SiLU, the SwiGLU feed-forward block,
grouped-query self-attention with rotary position embeddings, and the decoder block made of them.

Each is a thin module around the functional pairs (``rmsnorm.py``, ``silu.py``, ``swiglu.py``, ``rope.py``,
``gqa.py``), with the names, arguments and ``state_dict`` keys of its twin, so that weights load unchanged:

- :class:`RMSNorm` is ``torch.nn.RMSNorm`` (``normalized_shape``, ``eps=None``, ``elementwise_affine``; key ``weight``);
- :class:`SiLU` is ``torch.nn.SiLU``;
- :class:`SwiGLUFeedForward` is Hugging Face's ``LlamaMLP`` (``gate_proj``, ``up_proj``, ``down_proj``, no biases by
  default);
- :class:`GroupedQueryAttention` is Hugging Face's ``LlamaAttention`` (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``;
  ``num_heads`` query heads sharing ``num_key_value_heads`` key/value heads; RoPE with base ``rope_theta``;
  causal). Unlike ``LlamaAttention``, which is handed its cosines and sines and an additive mask by the model,
  it builds its own rotation tables from the positions and takes ``torch.nn``-style masks and a
  :class:`~numpy_transformer.nn.attention.KVCache` for decoding;
- :class:`LlamaDecoderLayer` is Hugging Face's ``LlamaDecoderLayer``: RMSNorm, SwiGLU and this attention as one
  pre-norm block (``self_attn``, ``mlp``, ``input_layernorm``, ``post_attention_layernorm``).

Grouped-query self-attention, for x (B, T, D), with $R_m$ the rotation of position $m$:

$$
q_{t} = R_{o + t}\, W_q x_t, \qquad k_{t} = R_{o + t}\, W_k x_t, \qquad v_t = W_v x_t, \qquad
\text{out} = W_o\, \mathrm{concat}_h\Big(\mathrm{softmax}\big(\tfrac{q^{(h)} k^{(j(h))\top}}{\sqrt{D_h}} + M\big)\,
v^{(j(h))}\Big)
$$

where $o$ is the position of the first token (``offset``), $j(h) = \lfloor h / G \rfloor$ is the key/value head
of query head $h$ and $M$ the causal and padding masks. Its backward is the forward read upwards: ``o_proj``,
merge heads, grouped-query attention, the inverse rotation of the query and key gradients, split heads, and
the three projections, whose input gradients add up.

Shapes: B batch, T positions, D model width (``hidden_size``), H query heads, Hkv key/value heads, Dh head
width, F feed-forward width.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import as_dtype, get_array_module, seeded_generator
from ..checks import check_float, check_integer, check_ndim, check_positive_int, check_probability
from ..functional.gqa import grouped_query_attention_backward, grouped_query_attention_forward
from ..functional.heads import merge_heads_backward, merge_heads_forward, split_heads_backward, split_heads_forward
from ..functional.rmsnorm import rmsnorm_backward, rmsnorm_forward
from ..functional.rope import rope_backward, rope_forward, rope_tables
from ..functional.silu import silu_backward, silu_forward
from ..functional.swiglu import swiglu_backward, swiglu_forward
from .attention import KVCache, attention_dropout_generator, merge_attention_masks
from .layers import Linear
from .module import Module, Parameter

__all__ = ["RMSNorm", "SiLU", "SwiGLUFeedForward", "GroupedQueryAttention", "LlamaDecoderLayer"]


def _check_eps(eps) -> None:
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating))
                            or not eps >= 0):
        raise ValueError(f"eps: got {eps!r}; expected None (the dtype's machine epsilon) or a number >= 0")


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing ``normalized_shape`` axes (torch's ``nn.RMSNorm``).

    Inputs:
        normalized_shape: int or tuple of ints, the trailing axes normalized together (D, or e.g. (T, D))
        eps: added to the mean square; None (torch's default) = the machine epsilon of the input's dtype
            (float32's for float16 input, which torch computes in float32)
        elementwise_affine: learn ``weight`` (ones at initialization); False: no parameter
        dtype: the weight's dtype

    Several trailing axes are normalized as ONE row of their product: the root mean square over (T, D) is
    the one over T * D numbers, so x (..., *normalized_shape) is viewed as (..., prod) around the pair.
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine: bool = True, dtype=np.float32):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
        if isinstance(shape, bool) or not isinstance(shape, (tuple, list)) or not shape:
            raise ValueError(f"normalized_shape: got {normalized_shape!r}; expected an int or a non-empty tuple "
                             "of ints (the trailing axes to normalize)")
        for size in shape:
            check_positive_int("normalized_shape", size)
        _check_eps(eps)
        self.normalized_shape = tuple(int(size) for size in shape)
        self.eps = None if eps is None else float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=as_dtype(dtype))) if elementwise_affine else None
        self._cache = None

    def forward(self, x):
        """x (..., *normalized_shape) -> the same shape."""
        check_float("x", x)
        count = len(self.normalized_shape)
        if x.ndim < count or tuple(x.shape[x.ndim - count:]) != self.normalized_shape:
            raise ValueError(f"x: got shape {tuple(x.shape)}; expected a shape (..., *normalized_shape) ending in "
                             f"normalized_shape = {self.normalized_shape}")
        width = math.prod(self.normalized_shape)
        rows = x.reshape(tuple(x.shape[:x.ndim - count]) + (width,))  # (..., *normalized_shape) -> (..., D)
        weight = None if self.weight is None else self.weight.data.reshape(width)  # (*normalized_shape) -> (D,)
        out, cache = rmsnorm_forward(rows, weight, self.eps)          # (..., D)
        self._cache = (cache, x.shape)
        return out.reshape(x.shape)                                  # (..., D) -> (..., *normalized_shape)

    def backward(self, dout):
        """dout (..., *normalized_shape) -> dx, the same shape; adds into weight.grad."""
        cache, shape = self._cached()
        drows = dout.reshape(cache["xhat"].shape)                    # (..., *normalized_shape) -> (..., D)
        # forward: out = rmsnorm(rows, weight)
        dx, dweight = rmsnorm_backward(drows, cache)
        if self.weight is not None and self.weight.requires_grad:
            self.weight.accumulate_grad(dweight.reshape(self.normalized_shape))  # (D,) -> normalized_shape
        return dx.reshape(shape)                                     # (..., D) -> (..., *normalized_shape)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class SiLU(Module):
    """``x * sigmoid(x)`` (torch's ``nn.SiLU``)."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        """x (any shape) -> the same shape."""
        out, self._cache = silu_forward(x)
        return out

    def backward(self, dout):
        """dout -> dx, the shape of x."""
        # forward: out = silu(x)
        return silu_backward(dout, self._cached())


class SwiGLUFeedForward(Module):
    """The SwiGLU block ``down_proj(silu(gate_proj(x)) * up_proj(x))`` (Hugging Face's ``LlamaMLP``).

    Inputs:
        hidden_size: D
        intermediate_size: F (Llama: about 8/3 D, so that the three matrices cost what the 2017 block's two do)
        bias: give the three projections biases (Hugging Face's ``mlp_bias``; False in Llama)
        dtype: parameter dtype
        rng: int seed, NumPy Generator or None, for the initial weights (each ``Linear``'s torch default)

    Sub-modules (Hugging Face's keys): ``gate_proj`` (F, D), ``up_proj`` (F, D), ``down_proj`` (D, F). They
    hold the parameters; the forward is ONE call of the functional pair.
    """

    def __init__(self, hidden_size: int, intermediate_size: int, bias: bool = False, dtype=np.float32, rng=None):
        super().__init__()
        check_positive_int("hidden_size", hidden_size)
        check_positive_int("intermediate_size", intermediate_size)
        self.hidden_size, self.intermediate_size = hidden_size, intermediate_size
        generator = seeded_generator(rng)
        self.gate_proj = Linear(hidden_size, intermediate_size, bias=bias, dtype=dtype, rng=generator)
        self.up_proj = Linear(hidden_size, intermediate_size, bias=bias, dtype=dtype, rng=generator)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=bias, dtype=dtype, rng=generator)
        self._cache = None

    def _projections(self):
        return self.gate_proj, self.up_proj, self.down_proj

    def forward(self, x):
        """x (..., D) -> (..., D)."""
        weights = [layer.weight.data for layer in self._projections()]
        biases = [None if layer.bias is None else layer.bias.data for layer in self._projections()]
        out, self._cache = swiglu_forward(x, *weights, *biases)     # (..., D) -> (..., D)
        return out

    def backward(self, dout):
        """dout (..., D) -> dx (..., D); adds into the three projections' weight.grad and bias.grad."""
        # forward: out = swiglu(x, gate_proj, up_proj, down_proj)
        dx, dw_gate, dw_up, dw_down, db_gate, db_up, db_down = swiglu_backward(dout, self._cached())
        self.gate_proj.accumulate_grads(dw_gate, db_gate)
        self.up_proj.accumulate_grads(dw_up, db_up)
        self.down_proj.accumulate_grads(dw_down, db_down)
        return dx

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, intermediate_size={self.intermediate_size}"


class GroupedQueryAttention(Module):
    """Causal grouped-query self-attention with rotary position embeddings (Hugging Face's ``LlamaAttention``).

    Inputs:
        hidden_size: D
        num_heads: H query heads
        num_key_value_heads: Hkv key/value heads, a divisor of H (default H: multi-head attention; 1:
            multi-query attention); each serves the G = H / Hkv consecutive query heads of its group
        head_dim: Dh, even (default D / H, which H must then divide)
        rope_theta: the base of the rotation frequencies (Llama 2: 10000; Llama 3: 500000)
        bias: give the four projections biases (Hugging Face's ``attention_bias``; False in Llama)
        dropout: probability of dropping an attention weight, in training mode (``attention_dropout``)
        is_causal: each token attends only to itself and the tokens before it (True in a decoder)
        dtype: parameter dtype
        rng: int seed, NumPy Generator or None: initial weights (each ``Linear``'s torch default) and dropout

    Sub-modules (Hugging Face's keys): ``q_proj`` (H*Dh, D), ``k_proj`` (Hkv*Dh, D), ``v_proj`` (Hkv*Dh, D),
    ``o_proj`` (D, H*Dh).

    Decoding with a key/value cache (:class:`~numpy_transformer.nn.attention.KVCache`, ``cache=``) fits
    between the rotation and the attention: the keys are stored AFTER their rotation (a key's rotation
    depends only on its own position, so it never has to be redone), the T new tokens are rotated at
    positions ``offset = len(cache)`` onwards, and their rotated keys and their values are appended to the
    cached ones (Hkv heads each: the cache is H / Hkv times smaller than multi-head attention's) before the
    attention, whose causal mask is aligned to the end of the S = offset + T keys.
    """

    def __init__(self, hidden_size: int, num_heads: int, num_key_value_heads: int | None = None,
                 head_dim: int | None = None, rope_theta: float = 10000.0, bias: bool = False,
                 dropout: float = 0.0, is_causal: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        check_positive_int("hidden_size", hidden_size)
        check_positive_int("num_heads", num_heads)
        num_key_value_heads = num_heads if num_key_value_heads is None else num_key_value_heads
        check_positive_int("num_key_value_heads", num_key_value_heads)
        if num_heads % num_key_value_heads:
            raise ValueError(f"num_key_value_heads: got {num_key_value_heads}; expected a divisor of num_heads = "
                             f"{num_heads} (each key/value head serves num_heads / num_key_value_heads query heads)")
        if head_dim is None:
            if hidden_size % num_heads:
                raise ValueError(f"num_heads: got {num_heads}; expected a divisor of hidden_size = {hidden_size} "
                                 "(or pass head_dim)")
            head_dim = hidden_size // num_heads
        check_positive_int("head_dim", head_dim)
        if head_dim % 2:
            raise ValueError(f"head_dim: got {head_dim}; expected an even head width (RoPE rotates pairs of features)")
        if isinstance(rope_theta, bool) or not isinstance(rope_theta, (int, float, np.integer, np.floating)) \
                or not rope_theta > 0:
            raise ValueError(f"rope_theta: got {rope_theta!r}; expected a positive number")
        check_probability("dropout", dropout)
        if not isinstance(is_causal, (bool, np.bool_)):
            raise TypeError(f"is_causal: got {type(is_causal).__name__}; expected a bool")
        self.hidden_size, self.num_heads, self.num_key_value_heads = hidden_size, num_heads, num_key_value_heads
        self.head_dim, self.num_key_value_groups = head_dim, num_heads // num_key_value_heads
        self.rope_theta, self.dropout, self.is_causal = float(rope_theta), float(dropout), bool(is_causal)
        generator = seeded_generator(rng)
        self._generator = generator
        self.q_proj = Linear(hidden_size, num_heads * head_dim, bias=bias, dtype=dtype, rng=generator)
        self.k_proj = Linear(hidden_size, num_key_value_heads * head_dim, bias=bias, dtype=dtype, rng=generator)
        self.v_proj = Linear(hidden_size, num_key_value_heads * head_dim, bias=bias, dtype=dtype, rng=generator)
        self.o_proj = Linear(num_heads * head_dim, hidden_size, bias=bias, dtype=dtype, rng=generator)
        self._cache = None

    def _check_input(self, x, offset, cache, position_ids) -> int:
        """Check the inputs; returns the offset (the position of x's first token when no position_ids)."""
        check_float("x", x)
        check_ndim("x", x, 3, "(B, T, D)")
        if x.shape[-1] != self.hidden_size:
            raise ValueError(f"x: got shape {tuple(x.shape)}; expected last axis hidden_size = {self.hidden_size}")
        if x.dtype != self.q_proj.weight.dtype:
            raise TypeError(f"x: got dtype {x.dtype}; expected {self.q_proj.weight.dtype} to match the parameters "
                            "(cast explicitly, or use to_dtype)")
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache: got {type(cache).__name__}; expected a KVCache or None")
        past = 0 if cache is None else len(cache)
        if offset is None:
            offset = past
        elif isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
            raise ValueError(f"offset: got {offset!r}; expected a non-negative int (the position of x's first token)")
        elif cache is not None and offset != past:
            raise ValueError(f"offset: got {offset}; expected None or len(cache) = {past} (the new tokens follow "
                             "the cached ones)")
        if position_ids is not None:
            check_integer("position_ids", position_ids)
            B, T = x.shape[:2]
            if tuple(position_ids.shape) not in ((T,), (B, T)):
                raise ValueError(f"position_ids: got shape {tuple(position_ids.shape)}; expected (T,) = ({T},) or "
                                 f"(B, T) = ({B}, {T})")
        return int(offset)

    def forward(self, x, key_padding_mask=None, attn_mask=None, offset: int | None = None,
                cache: KVCache | None = None, position_ids=None):
        """Self-attention of the tokens of ``x``, rotated as positions ``offset, offset + 1, ...``.

        Inputs:
            x: (B, T, D)
            key_padding_mask: None or (B, S), bool True = padding, or float added to the scores; S = T, or
                len(cache) + T with a cache (the cached keys are keys too)
            attn_mask: None, (T, S) or (B*H, T, S), bool True = may NOT attend, or float added (on top of the
                causal mask when ``is_causal``)
            offset: the position of x's first token; default 0, or ``len(cache)`` with a cache (any other
                value is refused there). Scores depend only on relative positions, so without a cache the
                output does not depend on it.
            cache: None, or a :class:`~numpy_transformer.nn.attention.KVCache` holding the rotated keys and the
                values of the P earlier positions (decoding, inference only: nothing is kept for backward).
                The new rotated keys and values are appended to it, and the queries attend to all P + T.
            position_ids: None, or int (T,) or (B, T): each token's position, instead of ``offset + t`` (a
                left-padded row may count only its real tokens, as ``transformers`` does when generating)

        Returns:
            out: (B, T, D)
            weights: (B, H, T, S) the attention probabilities of each head, before dropout
        """
        offset = self._check_input(x, offset, cache, position_ids)
        xp = get_array_module(x, self.q_proj.weight.data)
        B, T, _ = x.shape
        H, Hkv, Dh = self.num_heads, self.num_key_value_heads, self.head_dim

        q = self.q_proj(x)                                            # (B, T, D) -> (B, T, H*Dh)
        k = self.k_proj(x)                                            # (B, T, D) -> (B, T, Hkv*Dh)
        v = self.v_proj(x)                                            # (B, T, D) -> (B, T, Hkv*Dh)
        q_heads, q_split = split_heads_forward(q, H)                  # (B, T, H*Dh) -> (B, H, T, Dh)
        k_heads, k_split = split_heads_forward(k, Hkv)                # (B, T, Hkv*Dh) -> (B, Hkv, T, Dh)
        v_heads, v_split = split_heads_forward(v, Hkv)                # (B, T, Hkv*Dh) -> (B, Hkv, T, Dh)
        positions = xp.arange(offset, offset + T) if position_ids is None else position_ids  # (T,) or (B, T)
        cos, sin = rope_tables(positions, Dh, self.rope_theta, dtype=x.dtype)  # 2 x (T, Dh/2) or (B, T, Dh/2)
        if cos.ndim == 3:
            cos, sin = cos[:, None], sin[:, None]                     # (B, T, Dh/2) -> (B, 1, T, Dh/2): every head
        q_rotated, q_rope = rope_forward(q_heads, cos, sin)           # (B, H, T, Dh)
        k_rotated, k_rope = rope_forward(k_heads, cos, sin)           # (B, Hkv, T, Dh)
        if cache is not None:
            # the cache keeps the keys AFTER their rotation: each was turned by its own position, once
            k_rotated, v_heads = cache.append(k_rotated, v_heads)     # (B, Hkv, P+T, Dh) each: earlier and new
        S = k_rotated.shape[2]
        mask = merge_attention_masks(attn_mask, key_padding_mask, False, B, H, T, S, x.dtype, xp)
        dropout_p = self.dropout if self.training else 0.0
        heads, weights, attention_cache = grouped_query_attention_forward(
            q_rotated, k_rotated, v_heads, mask=mask, is_causal=self.is_causal, dropout_p=dropout_p,
            rng=attention_dropout_generator(self, xp) if dropout_p > 0 else None,
        )                                                             # heads (B, H, T, Dh), weights (B, H, T, S)
        merged, merge_cache = merge_heads_forward(heads)              # (B, H, T, Dh) -> (B, T, H*Dh)
        out = self.o_proj(merged)                                     # (B, T, H*Dh) -> (B, T, D)
        if cache is not None:
            self._cache = None                                        # decoding is inference: no backward
        else:
            self._cache = {"split": (q_split, k_split, v_split), "rope": (q_rope, k_rope),
                           "attention": attention_cache, "merge": merge_cache}
        return out, weights

    def backward(self, dout):
        """dout (B, T, D) -> dx (B, T, D); adds into the four projections' ``.grad``."""
        cache = self.__dict__.get("_cache")
        if cache is None:
            raise RuntimeError("GroupedQueryAttention.backward: called before forward (or after a forward with a "
                               "KVCache, which is inference only); run a forward without a cache first")
        q_split, k_split, v_split = cache["split"]
        q_rope, k_rope = cache["rope"]
        # forward: out = o_proj(merged)
        dmerged = self.o_proj.backward(dout)                          # (B, T, H*Dh)
        # forward: merged = merge_heads(heads)
        dheads = merge_heads_backward(dmerged, cache["merge"])        # (B, T, H*Dh) -> (B, H, T, Dh)
        # forward: heads = grouped_query_attention(q_rotated, k_rotated, v_heads); dk and dv are summed over
        # each key/value head's group of query heads
        dq_rotated, dk_rotated, dv_heads = grouped_query_attention_backward(dheads, cache["attention"])
        # forward: q_rotated, k_rotated = rope(q_heads), rope(k_heads): turn the gradients back
        dq_heads = rope_backward(dq_rotated, q_rope)                  # (B, H, T, Dh)
        dk_heads = rope_backward(dk_rotated, k_rope)                  # (B, Hkv, T, Dh)
        # forward: q_heads, k_heads, v_heads = split_heads(q), split_heads(k), split_heads(v)
        dq = split_heads_backward(dq_heads, q_split)                  # (B, H, T, Dh) -> (B, T, H*Dh)
        dk = split_heads_backward(dk_heads, k_split)                  # (B, Hkv, T, Dh) -> (B, T, Hkv*Dh)
        dv = split_heads_backward(dv_heads, v_split)                  # (B, Hkv, T, Dh) -> (B, T, Hkv*Dh)
        # forward: q, k, v = q_proj(x), k_proj(x), v_proj(x): x feeds all three, the paths add
        dx = self.q_proj.backward(dq)                                 # (B, T, H*Dh) -> (B, T, D)
        dx += self.k_proj.backward(dk)                                # (B, T, Hkv*Dh) -> (B, T, D)
        dx += self.v_proj.backward(dv)                                # (B, T, Hkv*Dh) -> (B, T, D)
        return dx

    def extra_repr(self) -> str:
        return (f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, "
                f"num_key_value_heads={self.num_key_value_heads}, head_dim={self.head_dim}, "
                f"rope_theta={self.rope_theta}, is_causal={self.is_causal}")


class LlamaDecoderLayer(Module):
    r"""One block of today's decoders: pre-norm RMSNorm, grouped-query attention with RoPE, SwiGLU (Hugging
    Face's ``LlamaDecoderLayer``).

    $$
    \begin{aligned}
    x &= x + \mathrm{Attention}(\mathrm{RMSNorm}_1(x)) && \text{causal, rotary positions, } H_{kv} \le H
    \text{ key/value heads} \\
    x &= x + \mathrm{SwiGLU}(\mathrm{RMSNorm}_2(x)) &&
    \end{aligned}
    $$

    Against the 2017 pre-norm block (``TransformerEncoderLayer(norm_first=True)`` with a causal mask, the GPT
    block) every part is replaced and nothing is added: RMSNorm for LayerNorm, rotations of q and k inside
    attention for a position vector added to the input, shared key/value heads, a gated feed-forward for
    ``linear2(gelu(linear1(x)))``, no biases, no dropout on the residual branches.

    Inputs:
        hidden_size: D; num_attention_heads: H; num_key_value_heads: Hkv (default H)
        intermediate_size: F, the SwiGLU width
        head_dim: Dh (default D / H); rope_theta: the RoPE base; rms_norm_eps: the two norms' eps
        attention_bias, mlp_bias: biases in the attention / feed-forward projections (False in Llama)
        attention_dropout: dropout on the attention weights, in training mode
        dtype: parameter dtype; rng: int seed, Generator or None (initial weights and dropout)

    Sub-modules (Hugging Face's keys): ``self_attn`` (:class:`GroupedQueryAttention`), ``mlp``
    (:class:`SwiGLUFeedForward`), ``input_layernorm`` and ``post_attention_layernorm`` (:class:`RMSNorm`).

    Backward, the forward read upwards: each residual sends the gradient both through its branch and
    straight past it, so $dx = dy + \mathrm{RMSNorm}_2'^\top \mathrm{SwiGLU}'^\top dy$, then the same
    through the attention branch.
    """

    def __init__(self, hidden_size: int, num_attention_heads: int, intermediate_size: int,
                 num_key_value_heads: int | None = None, head_dim: int | None = None, rope_theta: float = 10000.0,
                 rms_norm_eps: float = 1e-6, attention_bias: bool = False, mlp_bias: bool = False,
                 attention_dropout: float = 0.0, dtype=np.float32, rng=None):
        super().__init__()
        generator = seeded_generator(rng)
        self.hidden_size = hidden_size
        self.self_attn = GroupedQueryAttention(hidden_size, num_attention_heads, num_key_value_heads,
                                               head_dim=head_dim, rope_theta=rope_theta, bias=attention_bias,
                                               dropout=attention_dropout, dtype=dtype, rng=generator)
        self.mlp = SwiGLUFeedForward(hidden_size, intermediate_size, bias=mlp_bias, dtype=dtype, rng=generator)
        self.input_layernorm = RMSNorm(hidden_size, eps=rms_norm_eps, dtype=dtype)
        self.post_attention_layernorm = RMSNorm(hidden_size, eps=rms_norm_eps, dtype=dtype)

    def forward(self, x, key_padding_mask=None, attn_mask=None, offset: int | None = None,
                cache: KVCache | None = None, position_ids=None, need_weights: bool = False):
        """x (B, T, D) -> (B, T, D), or ``(out, weights)`` with weights (B, H, T, S) when ``need_weights``.

        The masks, ``offset``, ``cache`` and ``position_ids`` go to the attention
        (:meth:`GroupedQueryAttention.forward`); with a cache, x holds only the new positions.
        """
        attended, weights = self.self_attn(self.input_layernorm(x), key_padding_mask, attn_mask, offset=offset,
                                           cache=cache, position_ids=position_ids)  # (B, T, D), (B, H, T, S)
        x = x + attended                                              # (B, T, D)
        x = x + self.mlp(self.post_attention_layernorm(x))            # (B, T, D)
        return (x, weights) if need_weights else x

    def backward(self, dout):
        """dout (B, T, D) -> dx (B, T, D); adds into every parameter's ``.grad``."""
        # forward: x = x + mlp(post_attention_layernorm(x))
        dx = dout + self.post_attention_layernorm.backward(self.mlp.backward(dout))
        # forward: x = x + self_attn(input_layernorm(x))
        return dx + self.input_layernorm.backward(self.self_attn.backward(dx))

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}"

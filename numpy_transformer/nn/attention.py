r"""Multi-head attention as a layer: ``torch.nn.MultiheadAttention`` with its parameters, masks and keys.

A token does not attend once but $H$ times, each time in its own learned subspace of width $D_h = D / H$
("Attention Is All You Need", section 3.2.2):

$$
Q = X_q W_q^\top + b_q, \quad K = X_k W_k^\top + b_k, \quad V = X_v W_v^\top + b_v
$$

$$
\text{head}_h = \mathrm{softmax}\Big(\frac{Q_h K_h^\top}{\sqrt{D_h}} + M\Big) V_h, \qquad
\text{out} = \mathrm{concat}(\text{head}_1, \dots, \text{head}_H)\, W_o^\top + b_o
$$

where $Q_h$ is the $h$-th block of $D_h$ columns of $Q$. As in torch, the three input projections are the
three row blocks of ONE matrix ``in_proj_weight`` (3D, D) = $[W_q; W_k; W_v]$ with ``in_proj_bias`` (3D,),
and the output projection is a :class:`~numpy_transformer.nn.layers.Linear` named ``out_proj``, so the
``state_dict`` keys are torch's: ``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``.

How the matrix products are laid out (that is where the time goes):

- self-attention (``query is key is value``, the same array object): ONE fused product
  ``x @ in_proj_weight^T`` gives (B, T, 3D), read as q, k and v by slicing (views, no copies);
- cross-attention with ``key is value`` (a decoder reading the encoder's memory): q from the first D rows,
  and ONE fused product with the other 2D rows gives k and v;
- otherwise three products, one per row block;
- the heads are a batch axis: (B, T, D) is viewed as (B, H, T, Dh) (:mod:`~numpy_transformer.functional.heads`)
  and one batched ``matmul`` over (B, H) computes every head
  (:mod:`~numpy_transformer.functional.attention`).

Masks (torch's conventions). ``key_padding_mask`` (B, S): bool True = this key is padding, or a float
array added to the scores. ``attn_mask`` (T, S) or (B*H, T, S): bool True = may NOT attend, or float
added. They are merged ONCE per forward into one mask that stays broadcastable: a padding mask is viewed as
(B, 1, 1, S), a (T, S) mask stays (T, S), and their merge is (B, 1, T, S), never copied per head. A boolean
pair merges with ``|``; when either is float, a boolean one becomes ``0 / -inf`` and the two are added.
A query row whose keys are all masked gives zero weights, zero output and zero gradient, never NaN
(torch gives NaN there).

Layouts, as in torch. With ``batch_first=False`` (torch's default) the inputs are (T, B, D) and (S, B, D),
positions first; with ``batch_first=True`` they are (B, T, D) and (B, S, D); a 2-D input (T, D) is one
unbatched sequence either way. Everything inside is computed batch-first, since the heads are a batch axis
over (B, H): the inputs are viewed as (B, T, D) (``swapaxes`` or a new axis: no copy, and an array passed
in two slots stays one object, so self-attention keeps its one fused product), the output is viewed back,
and ``backward`` does the same to ``dout`` and to the input gradients. The masks and the returned weights
are batch-first in both layouts, as in torch: ``key_padding_mask`` (B, S), weights (B, T, S).

Differences from torch, all deliberate:

- ``kdim = vdim = embed_dim``; no ``add_bias_kv`` / ``add_zero_attn``.
- ``is_causal=True`` with no ``attn_mask`` builds the causal mask (T, S) itself; torch requires the mask
  too and treats ``is_causal`` as a hint. With an ``attn_mask`` given, ``is_causal`` is a hint here as well:
  the given mask is used as it is.
- the returned weights are the softmax probabilities BEFORE attention dropout (torch returns them after).
- ``backward`` returns one gradient per DISTINCT input array: when the same object was passed in several
  slots, its whole gradient is in the first of them and the others hold ``None``. So self-attention gives
  ``(dx, None, None)`` and cross-attention with ``key is value`` gives ``(dquery, dmemory, None)``.

Backward: the forward read upwards. ``out = out_proj(merge(attn(split(q), split(k), split(v))))``, so the
gradient goes through ``out_proj.backward``, ``merge_heads_backward``, the attention backward, three
``split_heads_backward`` and the input projection's backward, the latter once per fused product, the way
the forward computed it. (For a fused product the three head gradients are merged straight into one
(B, T, 3D) buffer: the same numbers as merging each and concatenating, with one copy instead of two.) The
weight gradient of the fused (3D, D) matrix is the concatenation of its blocks' gradients. Derived in
``docs/derivations/multihead.md``.

Decoding with a key/value cache (inference). A decoder that writes one token at a time would recompute,
at every step, the keys and values of every earlier position, although they never change: the keys and
values of position j depend only on the input at j. A :class:`KVCache` keeps them instead. Passing
``cache=`` to :meth:`MultiheadAttention.forward` then

- projects only the NEW positions (B, t, D) (usually t = 1; the whole prompt on the first call),
- appends their keys and values to the cache along the position axis, (B, H, P, Dh) -> (B, H, P+t, Dh),
- lets the new queries attend to all P + t cached keys. With ``is_causal=True`` the causal mask is aligned
  to the END of the keys: new query i sits at absolute position P + i and may see keys j <= P + i.

A step then costs O(P) instead of the O(P^2) of recomputing, and gives the same numbers. For
cross-attention (a decoder reading the encoder's memory) the keys and values never change at all: a
``KVCache(static=True)`` is filled from ``key``/``value`` on its first call and read, unchanged, on every
later one. A forward with a cache keeps nothing for backward: decoding is inference only.

Shapes (batch-first; see the layouts above): query (B, T, D), key and value (B, S, D); out (B, T, D);
weights (B, T, S) averaged over heads, or (B, H, T, S).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import as_dtype, get_array_module, seeded_generator
from ..checks import (
    check_array,
    check_choice,
    check_float,
    check_ndim,
    check_positive_int,
    check_probability,
    check_shape,
)
from ..functional.attention import (
    causal_mask,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from ..functional.blocked_attention import blocked_attention_backward, blocked_attention_forward
from ..functional.heads import merge_heads_backward, merge_heads_forward, split_heads_backward, split_heads_forward
from ..functional.linear import linear_backward, linear_forward
from .layers import Linear
from .module import Module, Parameter

__all__ = ["MultiheadAttention", "KVCache", "merge_attention_masks", "attention_dropout_generator",
           "causal_mask_after", "BLOCKED_ATTENTION_MIN_SCORES"]

#: ``attention="auto"`` computes attention in blocks (:mod:`~numpy_transformer.functional.blocked_attention`)
#: from this many scores per (batch, head) on, T * S >= 1024 * 1024, where the full (B, H, T, S) float32 matrix
#: takes 4 MiB per (batch, head), several times over in a training step, and grows with the square of the length
BLOCKED_ATTENTION_MIN_SCORES = 1024 * 1024
ATTENTION_CHOICES = ("auto", "full", "blocked")


def _check_mask_dtype(name: str, mask) -> None:
    check_array(name, mask)
    if mask.dtype != np.bool_ and mask.dtype.kind != "f":
        raise TypeError(f"{name}: got dtype {mask.dtype}; expected bool (True = masked) or a float additive mask")


def _as_additive(mask, dtype, xp):
    """A bool mask (True = masked) as ``0 / -inf`` floats of ``dtype``; a float mask cast to ``dtype``."""
    if mask.dtype == np.bool_:
        minus_inf = xp.asarray(-math.inf, dtype=dtype)
        zero = xp.zeros((), dtype=dtype)
        return xp.where(mask, minus_inf, zero)                 # same shape as mask, dtype
    return mask.astype(dtype, copy=False)


def merge_attention_masks(attn_mask, key_padding_mask, is_causal: bool, batch: int, num_heads: int,
                          tgt_len: int, src_len: int, dtype, xp=np):
    """Merge torch.nn-style masks into ONE mask broadcastable to the scores (B, H, T, S).

    Inputs:
        attn_mask: None, (T, S) or (B*H, T, S); bool True = may NOT attend, or float added to the scores
        key_padding_mask: None or (B, S); bool True = padding, or float added to the scores
        is_causal: with ``attn_mask`` None, forbid the keys after each query's position
        batch, num_heads, tgt_len, src_len: B, H, T, S
        dtype: the dtype of the scores (float masks are cast to it)
        xp: the array module

    Returns:
        None, or a bool / float mask of shape (T, S), (B, 1, 1, S), (B, 1, T, S) or (B, H, T, S):
        the smallest shape that holds the merge (never copied per head unless ``attn_mask`` is per head).
    """
    B, H, T, S = batch, num_heads, tgt_len, src_len
    masks = []
    if attn_mask is not None:
        _check_mask_dtype("attn_mask", attn_mask)
        if attn_mask.ndim == 2:
            check_shape("attn_mask", attn_mask, (T, S), f"(T, S) = ({T}, {S}) or (B*H, T, S) = ({B * H}, {T}, {S})")
            masks.append(attn_mask)                              # (T, S)
        elif attn_mask.ndim == 3:
            check_shape("attn_mask", attn_mask, (B * H, T, S),
                        f"(B*H, T, S) = ({B * H}, {T}, {S}) or (T, S) = ({T}, {S})")
            masks.append(attn_mask.reshape(B, H, T, S))          # (B*H, T, S) -> (B, H, T, S), a view
        else:
            raise ValueError(f"attn_mask: got shape {tuple(attn_mask.shape)} ({attn_mask.ndim}-D); "
                             f"expected (T, S) = ({T}, {S}) or (B*H, T, S) = ({B * H}, {T}, {S})")
    elif is_causal:
        masks.append(causal_mask(T, S, xp))                      # (T, S) bool
    if key_padding_mask is not None:
        _check_mask_dtype("key_padding_mask", key_padding_mask)
        check_shape("key_padding_mask", key_padding_mask, (B, S), f"(B, S) = ({B}, {S})")
        masks.append(key_padding_mask.reshape(B, 1, 1, S))       # (B, S) -> (B, 1, 1, S), a view

    if not masks:
        return None
    if len(masks) == 1:
        only = masks[0]
        return only if only.dtype == np.bool_ else only.astype(dtype, copy=False)
    first, second = masks
    if first.dtype == np.bool_ and second.dtype == np.bool_:
        return first | second                                    # (T, S) | (B, 1, 1, S) -> (B, 1, T, S)
    return _as_additive(first, dtype, xp) + _as_additive(second, dtype, xp)  # -> (B, 1, T, S) or (B, H, T, S)


def _merge_heads_into(head_grads, xp):
    """Merge several (B, H, T, Dh) head arrays side by side into ONE (B, T, n * D) array, one copy each.

    Equal to ``concatenate([merge_heads(g) for g in head_grads], axis=-1)``, without the n intermediate
    (B, T, D) arrays: block i of the result, viewed as (B, H, T, Dh), is assigned directly.
    """
    B, H, T, Dh = head_grads[0].shape
    D = H * Dh
    merged = xp.empty((B, T, len(head_grads) * D), dtype=head_grads[0].dtype)  # (B, T, n * D)
    for i, grad in enumerate(head_grads):                       # a loop over the 2 or 3 projections
        block, _ = split_heads_forward(merged[..., i * D:(i + 1) * D], H)  # (B, T, D) -> (B, H, T, Dh), a view
        block[...] = grad                                        # the one copy of this head gradient
    return merged


def causal_mask_after(past: int, new: int, xp=np):
    """The causal mask of ``new`` queries that follow ``past`` cached positions: True = may NOT attend.

    Query i sits at absolute position ``past + i`` and may see keys ``j <= past + i``, so
    ``mask[i, j] = j > past + i``: :func:`~numpy_transformer.functional.attention.causal_mask` aligned to the
    end of the ``past + new`` keys instead of their start. Returns None when ``new == 1`` (the one new
    query may see every key, so there is nothing to mask).

    Returns:
        mask: bool (new, past + new), or None
    """
    if new == 1:
        return None
    return xp.triu(xp.ones((new, past + new), dtype=bool), k=past + 1)  # (t, P+t)


def attention_dropout_generator(module: Module, xp):
    """The Generator that draws ``module``'s attention-dropout masks, on the device of the activations.

    ``module._generator`` is the host (NumPy) Generator the attention module was built with; for another array
    module (CuPy) a Generator of that module is seeded once from it and kept in ``module._device_generator``,
    so the masks on the device are drawn there, without a transfer per call.
    """
    if xp is np:
        return module._generator
    if getattr(module, "_device_generator", None) is None:
        module._device_generator = xp.random.default_rng(int(module._generator.integers(2**63 - 1)))
    return module._device_generator


class KVCache:
    r"""The keys and values one attention layer has already computed, kept for decoding.

    The cache holds ``keys`` and ``values`` of shape (B, Hkv, P, Dh): B sequences, Hkv key/value heads
    (the attention's H here; fewer for grouped-query attention, which shares each key/value head among
    several query heads), P positions so far, head width Dh. :meth:`append` adds t new positions along
    axis 2 and returns all P + t; ``len(cache)`` is P, which is also the absolute position of the next
    token (the offset of a position table, or of rotary embeddings, which are applied to q and k BEFORE
    k is appended, so that the cache holds keys already rotated to their own positions).

    Storage grows by doubling, so appending one position at a time copies each key O(1) times on average
    (plainly ``keys = concatenate([keys, new], axis=2)``, which copies the whole cache at every step).

    A ``static`` cache is for cross-attention: it is filled once (from the encoder's memory) and then only
    read. :meth:`reorder` keeps chosen batch rows, in a chosen order (beam search).

    Inputs:
        static: True for keys and values that are computed once and never grow
    """

    def __init__(self, static: bool = False):
        self.static = bool(static)
        self._keys = self._values = None                         # (B, Hkv, capacity, Dh) storage
        self._length = 0

    def __len__(self) -> int:
        return self._length

    @property
    def keys(self):
        """(B, Hkv, P, Dh), a view of the filled part; None while empty."""
        return None if self._keys is None else self._keys[:, :, :self._length]

    @property
    def values(self):
        """(B, Hkv, P, Dv), a view of the filled part; None while empty."""
        return None if self._values is None else self._values[:, :, :self._length]

    def _check_new(self, keys, values) -> None:
        for name, x in (("keys", keys), ("values", values)):
            check_float(name, x)
            check_ndim(name, x, 4, "(B, Hkv, t, Dh)")
        if keys.shape[:3] != values.shape[:3]:
            raise ValueError(f"values: got shape {tuple(values.shape)}; expected (B, Hkv, t) = "
                             f"{tuple(keys.shape[:3])} to match keys")
        if self.static and self._length:
            raise ValueError("keys: got new positions for a static cache that is already filled; expected a "
                             "static (cross-attention) cache to be filled once")
        if self._keys is not None:
            stored = (self._keys.shape[:2], self._keys.shape[3], self._values.shape[3], self._keys.dtype)
            new = (keys.shape[:2], keys.shape[3], values.shape[3], keys.dtype)
            if stored != new:
                raise ValueError(f"keys: got (B, Hkv) = {tuple(keys.shape[:2])}, Dh = {keys.shape[3]}, "
                                 f"dtype {keys.dtype}; expected {tuple(stored[0])}, {stored[1]}, {stored[3]} "
                                 "as the positions already in the cache")

    def append(self, keys, values):
        """Add t positions and return everything cached so far.

        Inputs:
            keys: (B, Hkv, t, Dh); values: (B, Hkv, t, Dv)

        Returns:
            keys: (B, Hkv, P+t, Dh); values: (B, Hkv, P+t, Dv), views of the cache (do not modify them)
        """
        self._check_new(keys, values)
        xp = get_array_module(keys, values)
        old, new = self._length, keys.shape[2]
        capacity = 0 if self._keys is None else self._keys.shape[2]
        if old + new > capacity:
            capacity = new if self.static else max(old + new, 2 * capacity, 16)
            grown = []
            for stored, x in ((self._keys, keys), (self._values, values)):
                buffer = xp.empty(x.shape[:2] + (capacity,) + x.shape[3:], dtype=x.dtype)  # (B, Hkv, cap, Dh)
                if old:
                    buffer[:, :, :old] = stored[:, :, :old]          # the one copy of the earlier positions
                grown.append(buffer)
            self._keys, self._values = grown
        self._keys[:, :, old:old + new] = keys                   # (B, Hkv, t, Dh) into positions P..P+t-1
        self._values[:, :, old:old + new] = values
        self._length = old + new
        return self.keys, self.values

    def reorder(self, index) -> None:
        """Keep the batch rows ``index`` (an int array (B',)), in that order: ``keys = keys[index]``.

        Beam search calls this after each step, with the row each surviving hypothesis came from.
        """
        if self._keys is not None:
            self._keys = self._keys[index]                       # (B, Hkv, cap, Dh) -> (B', Hkv, cap, Dh)
            self._values = self._values[index]

    def __repr__(self) -> str:
        shape = None if self._keys is None else tuple(self.keys.shape)
        return f"KVCache(length={self._length}, static={self.static}, keys={shape})"


def _to_batch_first(arrays, layout: str) -> list:
    """View each input as (B, positions, D), without copying; an array passed in several slots stays one object.

    ``layout``: "batch_first" (B, positions, D) as it is, "seq_first" (positions, B, D) swapped, "unbatched"
    (positions, D) given a batch axis of 1.
    """
    views = {}
    for x in arrays:
        if id(x) not in views:
            views[id(x)] = (x if layout == "batch_first" or x is None else
                            x.swapaxes(0, 1) if layout == "seq_first" else x[None])
    return [views[id(x)] for x in arrays]


def _from_batch_first(x, layout: str):
    """The inverse of :func:`_to_batch_first` for one (B, positions, ...) array (None passes through)."""
    if x is None or layout == "batch_first":
        return x
    return x.swapaxes(0, 1) if layout == "seq_first" else x[0]


class MultiheadAttention(Module):
    """``torch.nn.MultiheadAttention`` with a hand-written backward pass.

    Inputs:
        embed_dim: D, the model width
        num_heads: H; must divide D (head width Dh = D / H)
        dropout: probability of dropping an attention weight (training mode only)
        bias: learn ``in_proj_bias`` and ``out_proj.bias``
        batch_first: False (torch's default): inputs (T, B, D) and (S, B, D); True: (B, T, D) and (B, S, D).
            A 2-D input (T, D) is one unbatched sequence in either case.
        dtype: parameter dtype
        rng: int seed, NumPy Generator or None: initial weights and attention dropout
        attention: how the scores are computed (not in torch; an attribute that may be changed later):
            ``"full"`` forms the whole (B, H, T, S) matrix (:mod:`~numpy_transformer.functional.attention`);
            ``"blocked"`` computes it in blocks with memory linear in T and S
            (:mod:`~numpy_transformer.functional.blocked_attention`; no attention dropout, no weights);
            ``"auto"`` is blocked from ``T * S >= BLOCKED_ATTENTION_MIN_SCORES`` on when neither the weights
            nor attention dropout are asked for, and full otherwise

    Parameters (torch's names and initialisation): ``in_proj_weight`` (3D, D) Xavier-uniform,
    ``in_proj_bias`` (3D,) zeros, ``out_proj.weight`` (D, D) as ``Linear``, ``out_proj.bias`` (D,) zeros.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, dtype=np.float32, rng=None, attention: str = "auto"):
        super().__init__()
        check_choice("attention", attention, ATTENTION_CHOICES)
        check_positive_int("embed_dim", embed_dim)
        check_positive_int("num_heads", num_heads)
        if embed_dim % num_heads != 0:
            raise ValueError(f"num_heads: got {num_heads}; expected a divisor of embed_dim = {embed_dim} "
                             "(each head gets embed_dim / num_heads features)")
        check_probability("dropout", dropout)
        if not isinstance(batch_first, (bool, np.bool_)):
            raise TypeError(f"batch_first: got {batch_first!r}; expected True or False")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.attention = attention
        generator = seeded_generator(rng)
        self._generator = generator
        dtype = as_dtype(dtype)

        # torch: xavier_uniform_(in_proj_weight), fan_in = D, fan_out = 3D
        bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))
        self.in_proj_weight = Parameter(generator.uniform(-bound, bound, (3 * embed_dim, embed_dim)).astype(dtype))
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dtype=dtype))
        else:
            self.in_proj_bias = None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype, rng=generator)
        if bias:
            self.out_proj.bias.data[...] = 0                     # torch: constant_(out_proj.bias, 0.)
        self._cache = None

    # ------------------------------------------------------------------ helpers

    def _use_blocked(self, T: int, S: int, need_weights: bool, dropout_p: float) -> bool:
        """Whether this forward computes attention in blocks (see ``attention`` in the class docstring)."""
        check_choice("attention", self.attention, ATTENTION_CHOICES)
        if self.attention == "full":
            return False
        if self.attention == "blocked":
            if need_weights:
                raise ValueError("need_weights: got True; expected False with attention='blocked', which never "
                                 "forms the (T, S) weights (or set attention='auto' or 'full')")
            if dropout_p > 0:
                raise ValueError(f"attention: got 'blocked' with attention dropout {dropout_p} in training; "
                                 "expected 'full' or 'auto' (blocked attention has no dropout), or eval()")
            return True
        return not need_weights and dropout_p == 0 and T * S >= BLOCKED_ATTENTION_MIN_SCORES

    def _check_inputs(self, query, key, value) -> str:
        """Check the inputs; returns their layout: "batch_first", "seq_first" or "unbatched"."""
        D = self.embed_dim
        batched = "(B, positions, D)" if self.batch_first else "(positions, B, D)"
        for name, x in (("query", query), ("key", key), ("value", value)):
            check_float(name, x)
            check_ndim(name, x, (2, 3), f"{batched} (batch_first={self.batch_first}) or (positions, D) unbatched")
            if x.ndim != query.ndim:
                raise ValueError(f"{name}: got shape {tuple(x.shape)}; expected {query.ndim}-D like query "
                                 f"{tuple(query.shape)} (batched and unbatched inputs do not mix)")
            if x.shape[-1] != D:
                raise ValueError(f"{name}: got shape {tuple(x.shape)}; expected last axis embed_dim = {D}")
            if x.dtype != self.in_proj_weight.dtype:
                raise TypeError(f"{name}: got dtype {x.dtype}; expected {self.in_proj_weight.dtype} to match the "
                                "parameters (cast explicitly, or use to_dtype)")
        layout = "unbatched" if query.ndim == 2 else "batch_first" if self.batch_first else "seq_first"
        batch_axis = 0 if self.batch_first else 1
        if layout != "unbatched" and key.shape[batch_axis] != query.shape[batch_axis]:
            raise ValueError(f"key: got shape {tuple(key.shape)}; expected batch size {query.shape[batch_axis]} "
                             f"(axis {batch_axis}) to match query {tuple(query.shape)}")
        if value.shape != key.shape:
            raise ValueError(f"value: got shape {tuple(value.shape)}; expected {tuple(key.shape)} to match key")
        return layout

    # ------------------------------------------------------------------ forward

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False, cache: KVCache | None = None):
        """Attend from ``query`` to ``key`` / ``value``.

        Inputs (batch_first=True; with False, the first two axes of query, key and value swap places; a 2-D
        query, key and value (T, D), (S, D) are one unbatched sequence, with key_padding_mask (S,)):
            query: (B, T, D)
            key: (B, S, D)
            value: (B, S, D)
            key_padding_mask: None or (B, S), bool True = padding, or float added to the scores
            need_weights: also return the attention weights
            attn_mask: None, (T, S) or (B*H, T, S); bool True = may NOT attend, or float added
            average_attn_weights: average the returned weights over the heads
            is_causal: with no ``attn_mask``, forbid keys after each query's position
            cache: None, or a :class:`KVCache` holding P earlier positions (inference). The new keys and
                values are appended to it and the queries attend to all P + S of them, so the masks are
                (B, P+S) and (T, P+S), and ``is_causal`` aligns the causal mask to the end of the keys. A
                filled ``static`` cache is read as it is (``key`` and ``value`` are then not projected).

        Returns:
            out: (B, T, D), in the layout of query
            weights: (B, T, S) averaged over heads, (B, H, T, S) per head (batch-first in both layouts, as in
                torch; without B when unbatched), or None when not ``need_weights``; the probabilities before
                dropout (S counts the cached positions too)
        """
        layout = self._check_inputs(query, key, value)
        query, key, value = _to_batch_first((query, key, value), layout)  # (B, positions, D) views
        if layout == "unbatched" and key_padding_mask is not None and getattr(key_padding_mask, "ndim", 0) == 1:
            key_padding_mask = key_padding_mask[None]                # (S,) -> (1, S)
        if not isinstance(is_causal, (bool, np.bool_)):
            raise TypeError(f"is_causal: got {type(is_causal).__name__}; expected a bool")
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"cache: got {type(cache).__name__}; expected a KVCache or None")
        xp = get_array_module(query, key, value, self.in_proj_weight.data)
        B, T, D = query.shape
        H = self.num_heads
        W = self.in_proj_weight.data                             # (3D, D) = [W_q; W_k; W_v]
        b = self.in_proj_bias.data if self.in_proj_bias is not None else None
        b_q, b_k, b_v, b_kv = (None,) * 4 if b is None else (b[:D], b[D:2 * D], b[2 * D:], b[D:])

        # with a cache, the keys are the P cached positions followed by the new ones (none for a filled static one)
        past = 0 if cache is None else len(cache)
        read_only = cache is not None and cache.static and past > 0
        S = past if read_only else past + key.shape[1]
        if cache is not None and is_causal and attn_mask is None:
            attn_mask, is_causal = causal_mask_after(past, T, xp), False  # (T, P+T) or None
        dropout_p = self.dropout if self.training else 0.0
        blocked = self._use_blocked(T, S, need_weights, dropout_p)
        # blocked attention applies is_causal block by block, never forming the (T, S) causal mask
        causal_in_blocks = blocked and bool(is_causal) and attn_mask is None
        mask = merge_attention_masks(attn_mask, key_padding_mask, bool(is_causal) and not causal_in_blocks,
                                     B, H, T, S, query.dtype, xp)

        if read_only:
            path = "q"
            q, q_cache = linear_forward(query, W[:D], b_q)       # (B, T, D) -> (B, T, D); k, v are cached
            proj_caches = (q_cache,)
        elif query is key and key is value:
            path = "qkv"
            qkv, proj_caches = linear_forward(query, W, b)       # (B, T, D) -> (B, T, 3D), one product
            proj_caches = (proj_caches,)
            q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]  # 3 x (B, T, D), views
        elif key is value:
            path = "q_kv"
            q, q_cache = linear_forward(query, W[:D], b_q)       # (B, T, D) -> (B, T, D)
            kv, kv_cache = linear_forward(key, W[D:], b_kv)      # (B, S, D) -> (B, S, 2D), one product
            proj_caches = (q_cache, kv_cache)
            k, v = kv[..., :D], kv[..., D:]                      # 2 x (B, S, D), views
        else:
            path = "q_k_v"
            q, q_cache = linear_forward(query, W[:D], b_q)       # (B, T, D) -> (B, T, D)
            k, k_cache = linear_forward(key, W[D:2 * D], b_k)    # (B, S, D) -> (B, S, D)
            v, v_cache = linear_forward(value, W[2 * D:], b_v)   # (B, S, D) -> (B, S, D)
            proj_caches = (q_cache, k_cache, v_cache)

        q_heads, q_split = split_heads_forward(q, H)             # (B, T, D) -> (B, H, T, Dh)
        if read_only:
            k_heads, v_heads = cache.keys, cache.values          # (B, H, S, Dh) each, computed once
        else:
            k_heads, k_split = split_heads_forward(k, H)         # (B, S, D) -> (B, H, S, Dh)
            v_heads, v_split = split_heads_forward(v, H)         # (B, S, D) -> (B, H, S, Dh)
        if cache is not None and not read_only:
            k_heads, v_heads = cache.append(k_heads, v_heads)    # (B, H, P+S, Dh) each: earlier and new
        if blocked:
            heads, attention_cache = blocked_attention_forward(q_heads, k_heads, v_heads, mask=mask,
                                                               is_causal=causal_in_blocks)  # (B, H, T, Dh)
            weights = None
        else:
            heads, weights, attention_cache = scaled_dot_product_attention_forward(
                q_heads, k_heads, v_heads, mask=mask, dropout_p=dropout_p,
                rng=attention_dropout_generator(self, xp) if dropout_p > 0 else None,
            )                                                    # heads (B, H, T, Dh), weights (B, H, T, S)
        merged, merge_cache = merge_heads_forward(heads)         # (B, H, T, Dh) -> (B, T, D)
        out = self.out_proj(merged)                              # (B, T, D) -> (B, T, D)

        if cache is not None:
            self._cache = None                                   # decoding is inference: no backward
        else:
            self._cache = {
                "path": path, "proj": proj_caches, "split": (q_split, k_split, v_split),
                "attention": attention_cache, "blocked": blocked, "merge": merge_cache,
                "key_is_query": key is query, "value_is_query": value is query, "layout": layout,
            }
        out = _from_batch_first(out, layout)                     # (B, T, D) -> the layout of query, a view
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)                       # (B, H, T, S) -> (B, T, S)
        return out, weights[0] if layout == "unbatched" else weights

    # ------------------------------------------------------------------ backward

    def backward(self, dout):
        """Gradients of the last forward; adds into the parameters' ``.grad``.

        Inputs:
            dout: upstream gradient of ``out``, in its layout (the weights are not differentiated)

        Returns:
            (dquery, dkey, dvalue): (B, T, D), (B, S, D), (B, S, D), with the whole gradient of an input
            passed in several slots in its first slot and ``None`` in the others:
            self-attention ``(dx, None, None)``, ``key is value`` ``(dquery, dkey_and_value, None)``.
            Each in the layout of its input.
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError("backward: called before forward (or after a forward with a KVCache, which is "
                               "inference only); expected a forward call without a cache first")
        dout = _to_batch_first((dout,), cache["layout"])[0]      # the layout of out -> (B, T, D), a view
        xp = get_array_module(dout)
        weight_param, bias_param = self.in_proj_weight, self.in_proj_bias
        need_weight = weight_param.requires_grad or (bias_param is not None and bias_param.requires_grad)

        # forward: out = self.out_proj(merged)
        dmerged = self.out_proj.backward(dout)                   # (B, T, D)
        # forward: merged = merge_heads(heads)
        dheads = merge_heads_backward(dmerged, cache["merge"])   # (B, T, D) -> (B, H, T, Dh)
        # forward: heads = attention(q_heads, k_heads, v_heads, mask)
        attention_backward = blocked_attention_backward if cache["blocked"] else scaled_dot_product_attention_backward
        dq_heads, dk_heads, dv_heads = attention_backward(dheads, cache["attention"])
        # forward: q_heads, k_heads, v_heads = split_heads(q), split_heads(k), split_heads(v)
        path, proj = cache["path"], cache["proj"]
        if path == "qkv":
            # forward: q, k, v = qkv[..., :D], qkv[..., D:2D], qkv[..., 2D:]. Plainly
            # dqkv = concatenate(split_heads_backward(dq_heads), ...): three merges, then a fourth copy to
            # join them. Instead each head gradient is written once, through a (B, H, T, Dh) view, into
            # its block of one (B, T, 3D) buffer.
            dqkv = _merge_heads_into((dq_heads, dk_heads, dv_heads), xp)  # 3 x (B, H, T, Dh) -> (B, T, 3D)
            # forward: qkv = x @ W^T + b, one product for all three
            dx, dW, db = linear_backward(dqkv, proj[0], need_weight_grad=need_weight)
            grads = (dx, None, None)
        elif path == "q_kv":
            dq = split_heads_backward(dq_heads, cache["split"][0])  # (B, H, T, Dh) -> (B, T, D)
            # forward: k, v = kv[..., :D], kv[..., D:]; both head gradients written into one buffer
            dkv = _merge_heads_into((dk_heads, dv_heads), xp)    # 2 x (B, H, S, Dh) -> (B, S, 2D)
            # forward: kv = key @ W[D:]^T + b[D:]
            dkey, dW_kv, db_kv = linear_backward(dkv, proj[1], need_weight_grad=need_weight)
            # forward: q = query @ W[:D]^T + b[:D]
            dquery, dW_q, db_q = linear_backward(dq, proj[0], need_weight_grad=need_weight)
            dW = xp.concatenate((dW_q, dW_kv)) if need_weight else None          # (3D, D)
            db = xp.concatenate((db_q, db_kv)) if need_weight and db_q is not None else None  # (3D,)
            grads = (dquery, dkey, None)
        else:
            q_split, k_split, v_split = cache["split"]
            dq = split_heads_backward(dq_heads, q_split)         # (B, H, T, Dh) -> (B, T, D)
            dk = split_heads_backward(dk_heads, k_split)         # (B, H, S, Dh) -> (B, S, D)
            dv = split_heads_backward(dv_heads, v_split)         # (B, H, S, Dh) -> (B, S, D)
            # forward: q, k, v = query @ W_q^T + b_q, key @ W_k^T + b_k, value @ W_v^T + b_v
            dvalue, dW_v, db_v = linear_backward(dv, proj[2], need_weight_grad=need_weight)
            dkey, dW_k, db_k = linear_backward(dk, proj[1], need_weight_grad=need_weight)
            dquery, dW_q, db_q = linear_backward(dq, proj[0], need_weight_grad=need_weight)
            dW = xp.concatenate((dW_q, dW_k, dW_v)) if need_weight else None     # (3D, D)
            db = xp.concatenate((db_q, db_k, db_v)) if need_weight and db_q is not None else None  # (3D,)
            # the same array passed in two slots (not both key and value, that is the "q_kv" path)
            if cache["key_is_query"]:
                dquery, dkey = dquery + dkey, None
            if cache["value_is_query"]:
                dquery, dvalue = dquery + dvalue, None
            grads = (dquery, dkey, dvalue)

        if weight_param.requires_grad:
            weight_param.accumulate_grad(dW)
        if bias_param is not None and bias_param.requires_grad:
            bias_param.accumulate_grad(db)
        # forward: query, key, value = views of the inputs as (B, positions, D)
        return tuple(_from_batch_first(grad, cache["layout"]) for grad in grads)

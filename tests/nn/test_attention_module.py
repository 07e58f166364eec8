"""MultiheadAttention: against torch.nn.MultiheadAttention (float64 tight, float32 loose), finite differences,
masks, a fully padded batch row, weights round trip and bad input."""
import numpy as np
import pytest

from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.nn.attention import MultiheadAttention, merge_attention_masks
from reference import DTYPES, assert_close, from_torch, to_torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

B, T, S, D, H = 2, 3, 5, 8, 2


def make_pair(torch, dtype, embed_dim=D, num_heads=H, bias=True, seed=0):
    """A torch MultiheadAttention with random weights (biases non-zero) and ours loaded with its state_dict."""
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    generator = torch.Generator().manual_seed(seed)
    theirs = torch.nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=True, dtype=tdtype)
    with torch.no_grad():
        for param in theirs.parameters():
            param.copy_(0.5 * torch.randn(param.shape, generator=generator, dtype=tdtype))
    theirs.train()
    ours = MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=True, dtype=dtype, rng=seed)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def assert_param_grads_match(ours, theirs):
    our_params = dict(ours.named_parameters())
    assert list(our_params) == [name for name, _ in theirs.named_parameters()]
    for name, param in theirs.named_parameters():
        assert_close(our_params[name].grad, param.grad, what=name)


def torch_mask(torch, mask):
    return None if mask is None else to_torch(mask)


# masks as (attn_mask for ours, attn_mask for torch, key_padding_mask, is_causal for ours)
def self_attention_masks(torch, dtype, case, rng):
    padding = np.zeros((B, T), dtype=bool)
    padding[1, -1] = True                                        # one padded key in the second sequence
    float_causal = from_torch(torch.nn.Transformer.generate_square_subsequent_mask(
        T, dtype=torch.float64 if dtype == np.float64 else torch.float32))
    bool_causal = np.triu(np.ones((T, T), dtype=bool), k=1)
    if case == "none":
        return None, None, None, False
    if case == "padding":
        return None, None, padding, False
    if case == "float_causal_and_padding":
        return float_causal, float_causal, padding, False
    if case == "bool_causal":
        return bool_causal, bool_causal, None, False
    if case == "is_causal_only":                                 # ours builds the mask; torch needs it given
        return None, bool_causal, padding, True
    if case == "per_head_float":
        per_head = (0.5 * rng.standard_normal((B * H, T, T))).astype(dtype)
        return per_head, per_head, padding, False
    if case == "float_padding":
        additive = np.where(padding, -np.inf, 0.3 * rng.standard_normal((B, T))).astype(dtype)
        return bool_causal, bool_causal, additive, False
    raise AssertionError(case)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["none", "padding", "float_causal_and_padding", "bool_causal", "is_causal_only",
                                  "per_head_float", "float_padding"])
@pytest.mark.parametrize("average", [True, False])
def test_self_attention_matches_torch(rng, plain_torch, dtype, case, average):
    torch = plain_torch
    ours, theirs = make_pair(torch, dtype)
    attn_mask, their_attn_mask, padding, is_causal = self_attention_masks(torch, dtype, case, rng)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    dout = rng.standard_normal((B, T, D)).astype(dtype)

    out, weights = ours(x, x, x, key_padding_mask=padding, attn_mask=attn_mask, is_causal=is_causal,
                        average_attn_weights=average)
    dx, dkey, dvalue = ours.backward(dout)

    tx = to_torch(x, requires_grad=True)                         # the same tensor as query, key and value
    tout, tweights = theirs(tx, tx, tx, key_padding_mask=torch_mask(torch, padding),
                            attn_mask=torch_mask(torch, their_attn_mask), average_attn_weights=average)
    tout.backward(to_torch(dout))

    assert dkey is None and dvalue is None                       # the whole gradient of x is in slot 0
    assert out.dtype == dx.dtype == np.dtype(dtype)
    assert weights.shape == ((B, T, T) if average else (B, H, T, T))
    assert_close(out, tout, what="out")
    assert_close(weights, tweights, what="weights")
    assert_close(dx, tx.grad, what="dx (query + key + value paths)")
    assert_param_grads_match(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_masks", [False, True])
def test_cross_attention_key_is_value_matches_torch(rng, plain_torch, dtype, with_masks):
    torch = plain_torch
    ours, theirs = make_pair(torch, dtype, seed=1)
    query = rng.standard_normal((B, T, D)).astype(dtype)
    memory = rng.standard_normal((B, S, D)).astype(dtype)       # S != T
    dout = rng.standard_normal((B, T, D)).astype(dtype)
    padding = memory_mask = None
    if with_masks:
        padding = np.zeros((B, S), dtype=bool)
        padding[0, -2:] = True
        memory_mask = np.zeros((T, S), dtype=bool)
        memory_mask[0, 1] = memory_mask[2, 0] = True

    out, weights = ours(query, memory, memory, key_padding_mask=padding, attn_mask=memory_mask,
                        average_attn_weights=False)
    dquery, dmemory, dnone = ours.backward(dout)

    tquery, tmemory = to_torch(query, requires_grad=True), to_torch(memory, requires_grad=True)
    tout, tweights = theirs(tquery, tmemory, tmemory, key_padding_mask=torch_mask(torch, padding),
                            attn_mask=torch_mask(torch, memory_mask), average_attn_weights=False)
    tout.backward(to_torch(dout))

    assert dnone is None                                         # the memory's whole gradient is in slot 1
    assert weights.shape == (B, H, T, S)
    assert_close(out, tout, what="out")
    assert_close(weights, tweights, what="weights")
    assert_close(dquery, tquery.grad, what="dquery")
    assert_close(dmemory, tmemory.grad, what="dmemory (key + value paths)")
    assert_param_grads_match(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_attention_separate_key_and_value_matches_torch(rng, plain_torch, dtype):
    torch = plain_torch
    ours, theirs = make_pair(torch, dtype, seed=2)
    query = rng.standard_normal((B, T, D)).astype(dtype)
    key = rng.standard_normal((B, S, D)).astype(dtype)
    value = rng.standard_normal((B, S, D)).astype(dtype)
    dout = rng.standard_normal((B, T, D)).astype(dtype)

    out, weights = ours(query, key, value, need_weights=False)
    grads = ours.backward(dout)

    tensors = [to_torch(a, requires_grad=True) for a in (query, key, value)]
    tout, _ = theirs(*tensors, need_weights=False)
    tout.backward(to_torch(dout))

    assert weights is None
    assert_close(out, tout, what="out")
    for name, grad, tensor in zip(("dquery", "dkey", "dvalue"), grads, tensors, strict=True):
        assert_close(grad, tensor.grad, what=name)
    assert_param_grads_match(ours, theirs)


def test_query_is_key_but_not_value_sums_into_first_slot(rng, plain_torch):
    torch = plain_torch
    ours, theirs = make_pair(torch, np.float64, seed=3)
    x = rng.standard_normal((B, T, D))
    value = rng.standard_normal((B, T, D))
    dout = rng.standard_normal((B, T, D))
    ours(x, x, value)
    dx, dnone, dvalue = ours.backward(dout)
    tx, tvalue = to_torch(x, requires_grad=True), to_torch(value, requires_grad=True)
    theirs(tx, tx, tvalue)[0].backward(to_torch(dout))
    assert dnone is None
    assert_close(dx, tx.grad, what="dx")
    assert_close(dvalue, tvalue.grad, what="dvalue")


def test_no_bias_matches_torch(rng, plain_torch):
    torch = plain_torch
    ours, theirs = make_pair(torch, np.float64, bias=False, seed=4)
    assert list(ours.state_dict()) == ["in_proj_weight", "out_proj.weight"] == list(theirs.state_dict())
    x = rng.standard_normal((B, T, D))
    dout = rng.standard_normal((B, T, D))
    out, _ = ours(x, x, x)
    dx = ours.backward(dout)[0]
    tx = to_torch(x, requires_grad=True)
    tout, _ = theirs(tx, tx, tx)
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_param_grads_match(ours, theirs)


def test_fully_padded_batch_row_gives_zeros_not_nan(rng, plain_torch):
    torch = plain_torch
    ours, theirs = make_pair(torch, np.float64, seed=5)
    x = rng.standard_normal((B, T, D))
    dout = rng.standard_normal((B, T, D))
    padding = np.zeros((B, T), dtype=bool)
    padding[1, :] = True                                         # every key of the second sequence is padding

    out, weights = ours(x, x, x, key_padding_mask=padding)
    dx = ours.backward(dout)[0]
    tx = to_torch(x, requires_grad=True)
    tout, tweights = theirs(tx, tx, tx, key_padding_mask=to_torch(padding))
    tout.backward(to_torch(dout))

    assert np.isnan(from_torch(tout)[1]).all()                   # torch: NaN for the fully padded row
    assert_close(out[0], tout[0], what="out of the normal row")
    assert_close(weights[0], tweights[0], what="weights of the normal row")
    assert_close(dx[0], tx.grad[0], what="dx of the normal row")
    # ours: the attention part is exactly zero, so the output is the output projection's bias alone
    assert np.all(weights[1] == 0)
    np.testing.assert_array_equal(out[1], np.broadcast_to(ours.out_proj.bias.data, (T, D)))
    assert np.all(dx[1] == 0)
    assert all(np.isfinite(p.grad).all() for p in ours.parameters())


def test_merged_mask_stays_broadcastable():
    padding = np.zeros((B, S), dtype=bool)
    causal = np.triu(np.ones((T, S), dtype=bool), k=1)
    merged = merge_attention_masks(causal, padding, False, B, H, T, S, np.float32)
    assert merged.shape == (B, 1, T, S) and merged.dtype == np.bool_  # never copied per head
    only_padding = merge_attention_masks(None, padding, False, B, H, T, S, np.float32)
    assert only_padding.shape == (B, 1, 1, S)
    additive = merge_attention_masks(np.zeros((T, S), np.float64), padding, True, B, H, T, S, np.float32)
    assert additive.shape == (B, 1, T, S) and additive.dtype == np.float32
    causal_only = merge_attention_masks(None, None, True, B, H, T, S, np.float32)
    np.testing.assert_array_equal(causal_only, causal)
    assert merge_attention_masks(None, None, False, B, H, T, S, np.float32) is None


class _Shared:
    """Feeds one input to several slots of an attention, so the fused paths are what gradcheck sees."""

    def __init__(self, attention, kind, **kwargs):
        self.attention, self.kind, self.kwargs = attention, kind, kwargs

    def forward(self, *inputs):
        if self.kind == "self":
            (x,) = inputs
            return self.attention(x, x, x, **self.kwargs)[0]
        query, memory = inputs
        return self.attention(query, memory, memory, **self.kwargs)[0]

    def backward(self, dout):
        grads = self.attention.backward(dout)
        return grads[0] if self.kind == "self" else grads[:2]

    def named_parameters(self):
        return self.attention.named_parameters()


def test_self_attention_matches_finite_differences(rng):
    attention = MultiheadAttention(4, 2, batch_first=True, dtype=np.float64, rng=0)
    for param in attention.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    padding = np.zeros((2, 3), dtype=bool)
    padding[1, 2] = True
    module = _Shared(attention, "self", key_padding_mask=padding, is_causal=True)
    gradcheck_module(module, [rng.standard_normal((2, 3, 4))], input_names=["x"]).assert_ok()


def test_cross_attention_matches_finite_differences(rng):
    attention = MultiheadAttention(4, 2, batch_first=True, dtype=np.float64, rng=0)
    for param in attention.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    padding = np.zeros((2, 4), dtype=bool)
    padding[0, 3] = True
    memory_mask = (0.5 * rng.standard_normal((3, 4)))
    module = _Shared(attention, "cross", key_padding_mask=padding, attn_mask=memory_mask)
    inputs = [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 4))]
    gradcheck_module(module, inputs, input_names=["query", "memory"]).assert_ok()


def test_separate_inputs_match_finite_differences(rng):
    attention = MultiheadAttention(4, 4, batch_first=True, dtype=np.float64, rng=0)  # head width 1
    for param in attention.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    inputs = [rng.standard_normal((1, 1, 4)), rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4))]
    gradcheck_module(attention, inputs, input_names=["query", "key", "value"]).assert_ok()


def test_frozen_parameters_get_no_gradient(rng):
    attention = MultiheadAttention(D, H, batch_first=True, dtype=np.float64, rng=0)
    attention.freeze()
    x = rng.standard_normal((B, T, D))
    attention(x, x, x)
    dx = attention.backward(rng.standard_normal((B, T, D)))[0]
    assert dx.shape == (B, T, D)
    assert all(p.grad is None for p in attention.parameters())


def test_gradients_accumulate(rng):
    attention = MultiheadAttention(D, H, batch_first=True, dtype=np.float64, rng=0)
    x = rng.standard_normal((B, T, D))
    dout = rng.standard_normal((B, T, D))
    attention(x, x, x)
    attention.backward(dout)
    once = attention.in_proj_weight.grad.copy()
    attention(x, x, x)
    attention.backward(dout)
    np.testing.assert_allclose(attention.in_proj_weight.grad, 2 * once, rtol=1e-12)


def test_init_like_torch():
    attention = MultiheadAttention(12, 3, batch_first=True, rng=0)
    bound = np.sqrt(6.0 / (12 + 36))
    weight = attention.in_proj_weight.data
    assert weight.shape == (36, 12) and weight.dtype == np.float32
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.8 * bound
    assert np.all(attention.in_proj_bias.data == 0) and np.all(attention.out_proj.bias.data == 0)
    assert attention.out_proj.weight.shape == (12, 12)


def test_weights_round_trip_through_torch(plain_torch):
    torch = plain_torch
    ours, theirs = make_pair(torch, np.float32, seed=6)
    fresh = torch.nn.MultiheadAttention(D, H, batch_first=True)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    for key, value in theirs.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_bad_input_names_argument(rng):
    with pytest.raises(ValueError, match="num_heads"):
        MultiheadAttention(10, 3)
    with pytest.raises(TypeError, match="batch_first: got 'yes'; expected True or False"):
        MultiheadAttention(8, 2, batch_first="yes")
    attention = MultiheadAttention(D, H, batch_first=True, dtype=np.float64)
    x = rng.standard_normal((B, T, D))
    memory = rng.standard_normal((B, S, D))
    with pytest.raises(ValueError, match="query"):
        attention(rng.standard_normal((B, T, D + 1)), memory, memory)
    with pytest.raises(ValueError, match="key: got shape .* expected 2-D like query.*do not mix"):
        attention(rng.standard_normal((T, D)), memory, memory)
    with pytest.raises(ValueError, match="query: got shape"):
        attention(rng.standard_normal((1, B, T, D)), memory, memory)
    with pytest.raises(ValueError, match="key"):
        attention(x, rng.standard_normal((B + 1, S, D)), rng.standard_normal((B + 1, S, D)))
    with pytest.raises(ValueError, match="value"):
        attention(x, memory, rng.standard_normal((B, S + 1, D)))
    with pytest.raises(TypeError, match="query"):
        attention(x.astype(np.float32), memory, memory)
    with pytest.raises(ValueError, match="key_padding_mask"):
        attention(x, memory, memory, key_padding_mask=np.zeros((B, T), dtype=bool))
    with pytest.raises(ValueError, match="attn_mask"):
        attention(x, memory, memory, attn_mask=np.zeros((S, T), dtype=bool))
    with pytest.raises(ValueError, match="attn_mask"):
        attention(x, memory, memory, attn_mask=np.zeros((B, T, S), dtype=bool))
    with pytest.raises(TypeError, match="attn_mask"):
        attention(x, memory, memory, attn_mask=np.zeros((T, S), dtype=np.int64))
    with pytest.raises(RuntimeError, match="backward"):
        MultiheadAttention(D, H, batch_first=True).backward(np.zeros((B, T, D), np.float32))

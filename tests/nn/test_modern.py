"""The modern decoder layers against their twins: RMSNorm against torch.nn.RMSNorm and transformers' LlamaRMSNorm,
SwiGLUFeedForward against LlamaMLP, GroupedQueryAttention against LlamaAttention (outputs, input gradients and
every parameter gradient, float64 tight and float32 loose), state_dict keys both ways, finite differences for
every input and parameter, the relative-position property at the layer, bad input."""
import numpy as np
import pytest

from numpy_transformer.functional.gqa import grouped_query_attention_forward
from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.nn import GroupedQueryAttention, LlamaDecoderLayer, RMSNorm, SiLU, SwiGLUFeedForward
from reference import DTYPES, assert_close, require, to_torch


def modeling_llama():
    require("transformers")
    from transformers.models.llama import modeling_llama as module

    return module


def llama_config(hidden_size=12, heads=6, kv_heads=2, head_dim=None, theta=500.0, intermediate=10, bias=False,
                 attn="sdpa"):
    from transformers import LlamaConfig

    extra = {} if head_dim is None else {"head_dim": head_dim}
    return LlamaConfig(hidden_size=hidden_size, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       intermediate_size=intermediate, rope_theta=theta, attention_bias=bias, mlp_bias=bias,
                       num_hidden_layers=1, vocab_size=11, attn_implementation=attn, **extra)


def randomize(module, rng):
    """Perturb parameters that start constant (RMSNorm's ones), so no gradient hides behind a one."""
    for _, param in module.named_parameters():
        param.data += (0.3 * rng.standard_normal(param.shape)).astype(param.dtype)
    return module


def load_into_torch(theirs, ours, torch, dtype):
    theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    theirs.load_state_dict({key: torch.tensor(value) for key, value in ours.state_dict().items()}, strict=True)
    return theirs


def assert_param_grads(ours, theirs):
    their_params = dict(theirs.named_parameters())
    assert set(their_params) == {name for name, _ in ours.named_parameters()}
    for name, param in ours.named_parameters():
        assert param.grad.dtype == param.dtype
        assert_close(param.grad, their_params[name].grad, what=f"d{name}")


# ------------------------------------------------------------------------------------------------- RMSNorm
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalized_shape, eps, affine", [
    (7, None, True), ((7,), 1e-5, True), ((3, 7), 1e-3, True), (7, 1e-6, False),
])
def test_rmsnorm_matches_torch_rmsnorm(rng, torch, dtype, normalized_shape, eps, affine):
    ours = RMSNorm(normalized_shape, eps=eps, elementwise_affine=affine, dtype=dtype)
    theirs = torch.nn.RMSNorm(normalized_shape, eps=eps, elementwise_affine=affine,
                              dtype=torch.float64 if dtype == np.float64 else torch.float32)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    if affine:
        randomize(ours, rng)
        load_into_torch(theirs, ours, torch, dtype)
    x = (rng.standard_normal((2, 5, 3, 7)) * 2 + 0.3).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    out = ours(x)
    dx = ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    tout = theirs(tx)
    tout.backward(to_torch(dout))
    assert out.dtype == dx.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    if affine:
        assert_param_grads(ours, theirs)
    else:
        assert list(ours.named_parameters()) == []


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsnorm_matches_llama_rmsnorm(rng, torch, dtype):
    """transformers' LlamaRMSNorm normalizes in float32 whatever the input dtype (it casts a float64 row down
    and back), so it is compared at float32's tolerance in both dtypes; torch.nn.RMSNorm above is the tight
    float64 reference."""
    llama = modeling_llama()
    ours = randomize(RMSNorm(6, eps=1e-6, dtype=dtype), rng)
    theirs = load_into_torch(llama.LlamaRMSNorm(6, eps=1e-6), ours, torch, dtype)
    x = rng.standard_normal((3, 4, 6)).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    out, dx = ours(x), ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    tout = theirs(tx)
    tout.backward(to_torch(dout))
    assert_close(out, tout, np.float32, what="out")
    assert_close(dx, tx.grad, np.float32, what="dx")
    assert_close(ours.weight.grad, theirs.weight.grad, np.float32, what="dweight")


def test_rmsnorm_matches_finite_differences(rng):
    layer = randomize(RMSNorm((2, 3), eps=1e-4, dtype=np.float64), rng)
    gradcheck_module(layer, [rng.standard_normal((4, 2, 3))], input_names=["x"]).assert_ok()


def test_rmsnorm_loads_torch_weights_and_back(torch, rng):
    theirs = torch.nn.RMSNorm(5, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.normal_()
    ours = RMSNorm(5, dtype=np.float64)
    ours.load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())
    back = torch.nn.RMSNorm(5, dtype=torch.float64)
    back.load_state_dict({key: torch.tensor(value) for key, value in ours.state_dict().items()})
    assert torch.equal(back.weight, theirs.weight)


def test_rmsnorm_bad_input_names_argument(rng):
    with pytest.raises(ValueError, match="normalized_shape"):
        RMSNorm(0)
    with pytest.raises(ValueError, match="normalized_shape"):
        RMSNorm(())
    with pytest.raises(ValueError, match="eps"):
        RMSNorm(4, eps=-1e-5)
    with pytest.raises(ValueError, match="x: got shape"):
        RMSNorm((3, 4))(np.ones((2, 4, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="x"):
        RMSNorm(4)(np.ones((2, 4), dtype=np.float64))
    with pytest.raises(RuntimeError, match="before forward"):
        RMSNorm(4).backward(np.ones((2, 4), dtype=np.float32))


# ------------------------------------------------------------------------------------------------- SiLU, SwiGLU
@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_module_matches_torch(rng, torch, dtype):
    x, dout = (rng.standard_normal((3, 4)) * 3).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    layer = SiLU()
    out, dx = layer(x), layer.backward(dout)
    tx = to_torch(x, requires_grad=True)
    tout = torch.nn.SiLU()(tx)
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert repr(layer) == repr(torch.nn.SiLU())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_matches_llama_mlp(rng, torch, dtype, bias):
    llama = modeling_llama()
    ours = randomize(SwiGLUFeedForward(12, 10, bias=bias, dtype=dtype, rng=0), rng)
    theirs = load_into_torch(llama.LlamaMLP(llama_config(bias=bias)), ours, torch, dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = rng.standard_normal((2, 5, 12)).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    out, dx = ours(x), ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    tout = theirs(tx)
    tout.backward(to_torch(dout))
    assert out.dtype == dx.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_param_grads(ours, theirs)


@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_module_matches_finite_differences(rng, bias):
    layer = randomize(SwiGLUFeedForward(4, 3, bias=bias, dtype=np.float64, rng=0), rng)
    report = gradcheck_module(layer, [rng.standard_normal((2, 3, 4))], input_names=["x"])
    report.assert_ok()
    assert len(report.errors) == (7 if bias else 4)


def test_swiglu_frozen_projection_gets_no_gradient(rng):
    layer = SwiGLUFeedForward(4, 3, dtype=np.float64, rng=0)
    layer.up_proj.freeze()
    layer(rng.standard_normal((2, 4)))
    layer.backward(rng.standard_normal((2, 4)))
    assert layer.up_proj.weight.grad is None and layer.gate_proj.weight.grad is not None


# ------------------------------------------------------------------------------------------------- attention
GQA_CASES = [
    dict(hidden_size=12, heads=6, kv_heads=2, head_dim=None, B=2, T=5),   # groups of 3, head width 2
    dict(hidden_size=8, heads=4, kv_heads=1, head_dim=None, B=1, T=3),    # multi-query, batch 1
    dict(hidden_size=8, heads=2, kv_heads=2, head_dim=4, B=2, T=1),       # group size 1 = multi-head, T = 1
    dict(hidden_size=8, heads=4, kv_heads=2, head_dim=4, B=2, T=4),       # head_dim * heads != hidden_size
]


def llama_attention_pair(rng, torch, dtype, case, bias=False, attn="sdpa", theta=500.0):
    llama = modeling_llama()
    config = llama_config(case["hidden_size"], case["heads"], case["kv_heads"], case["head_dim"], theta=theta,
                          bias=bias, attn=attn)
    ours = GroupedQueryAttention(case["hidden_size"], case["heads"], case["kv_heads"], head_dim=case["head_dim"],
                                 rope_theta=theta, bias=bias, dtype=dtype, rng=0)
    if bias:
        randomize(ours, rng)
    theirs = load_into_torch(llama.LlamaAttention(config, layer_idx=0), ours, torch, dtype)
    return ours, theirs, config


def float64_position_embeddings(torch, positions, head_dim, theta):
    """LlamaRotaryEmbedding's cos/sin written out in float64 (the module computes them in float32 always)."""
    inverse_frequency = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.tensor(positions, dtype=torch.float64)[:, None] * inverse_frequency
    emb = torch.cat((freqs, freqs), dim=-1)[None]                          # (1, T, Dh)
    return emb.cos(), emb.sin()


@pytest.mark.parametrize("case", GQA_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_gqa_matches_llama_attention_float64(rng, torch, case, bias):
    """float64: LlamaAttention with sdpa (the eager path computes its softmax in float32) and the rotation
    tables in float64; causal, as in a decoder."""
    ours, theirs, config = llama_attention_pair(rng, torch, np.float64, case, bias=bias)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = rng.standard_normal((case["B"], case["T"], case["hidden_size"]))
    dout = rng.standard_normal(x.shape)
    out, weights = ours(x)
    dx = ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    embeddings = float64_position_embeddings(torch, np.arange(case["T"]), config.head_dim, 500.0)
    tout, _ = theirs(tx, position_embeddings=embeddings, attention_mask=None)
    tout.backward(to_torch(dout))
    assert weights.shape == (case["B"], case["heads"], case["T"], case["T"])
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_param_grads(ours, theirs)


@pytest.mark.parametrize("case", GQA_CASES[:2])
def test_gqa_matches_llama_attention_float32_with_its_own_rotary_embedding(rng, torch, case):
    """float32: transformers' own LlamaRotaryEmbedding and eager attention, weights included."""
    llama = modeling_llama()
    ours, theirs, config = llama_attention_pair(rng, torch, np.float32, case, attn="eager")
    x = rng.standard_normal((case["B"], case["T"], case["hidden_size"])).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    out, weights = ours(x)
    dx = ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    positions = torch.arange(case["T"])[None]
    embeddings = llama.LlamaRotaryEmbedding(config)(tx, positions)
    causal = torch.full((case["T"], case["T"]), float("-inf")).triu(1)[None, None]
    tout, tweights = theirs(tx, position_embeddings=embeddings, attention_mask=causal)
    tout.backward(to_torch(dout))
    assert out.dtype == dx.dtype == weights.dtype == np.float32
    assert_close(out, tout, what="out")
    assert_close(weights, tweights, what="weights")
    assert_close(dx, tx.grad, what="dx")
    assert_param_grads(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gqa_key_padding_matches_llama_attention(rng, torch, dtype):
    """Right padding as a (B, S) key_padding_mask here, as a 4-D additive causal + padding mask there."""
    case = GQA_CASES[0]
    ours, theirs, config = llama_attention_pair(rng, torch, dtype, case)
    B, T = case["B"], case["T"]
    padding = np.zeros((B, T), dtype=bool)
    padding[0, 3:] = True                                                  # sequence 0 has 3 tokens
    x = rng.standard_normal((B, T, case["hidden_size"])).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    out, _ = ours(x, key_padding_mask=padding)
    dx = ours.backward(dout)
    forbidden = np.triu(np.ones((T, T), dtype=bool), 1)[None, None] | padding[:, None, None, :]
    additive = to_torch(np.where(forbidden, -np.inf, 0.0).astype(dtype))
    tx = to_torch(x, requires_grad=True)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    embeddings = [table.to(tdtype) for table in float64_position_embeddings(torch, np.arange(T), config.head_dim,
                                                                                 500.0)]
    tout, _ = theirs(tx, position_embeddings=embeddings, attention_mask=additive)
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_param_grads(ours, theirs)


@pytest.mark.parametrize("case", GQA_CASES)
def test_gqa_module_matches_finite_differences(rng, case):
    layer = randomize(GroupedQueryAttention(case["hidden_size"], case["heads"], case["kv_heads"],
                                           head_dim=case["head_dim"], rope_theta=50.0, bias=True,
                                           dtype=np.float64, rng=0), rng)
    x = rng.standard_normal((case["B"], case["T"], case["hidden_size"]))
    padding = np.zeros((case["B"], case["T"]), dtype=bool)
    padding[-1, -1] = case["T"] > 1
    report = gradcheck_module(layer, [x], kwargs={"key_padding_mask": padding, "offset": 3}, input_names=["x"])
    report.assert_ok()
    assert len(report.errors) == 9                                         # x and the 4 weights and 4 biases


def test_gqa_output_does_not_depend_on_the_offset(rng):
    """The relative-position property at the layer: rotating all tokens further changes no score."""
    layer = GroupedQueryAttention(16, 4, 2, dtype=np.float64, rng=0)
    x = rng.standard_normal((2, 6, 16))
    out_0, weights_0 = layer(x)
    out_500, weights_500 = layer(x, offset=500)
    np.testing.assert_allclose(out_500, out_0, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(weights_500, weights_0, rtol=1e-11, atol=1e-12)
    # but the rotation is there: the same attention on the unrotated queries and keys weighs differently
    def heads(projection, count):
        return projection(x).reshape(2, 6, count, 4).transpose(0, 2, 1, 3)  # (B, T, n*Dh) -> (B, n, T, Dh)

    _, unrotated, _ = grouped_query_attention_forward(heads(layer.q_proj, 4), heads(layer.k_proj, 2),
                                                      heads(layer.v_proj, 2), is_causal=True)
    assert not np.allclose(unrotated, weights_0, atol=1e-3)


def test_gqa_is_causal_and_can_be_bidirectional(rng):
    x = rng.standard_normal((1, 4, 8))
    causal = GroupedQueryAttention(8, 4, 2, dtype=np.float64, rng=0)
    _, weights = causal(x)
    assert (np.triu(weights[0, :], 1) == 0).all() and (weights[0, :, :, 0] > 0).all()
    first_token, _ = causal(x[:, :1])
    np.testing.assert_allclose(causal(x)[0][:, :1], first_token, rtol=1e-12)  # later tokens do not leak back
    bidirectional = GroupedQueryAttention(8, 4, 2, is_causal=False, dtype=np.float64, rng=0)
    assert (bidirectional(x)[1] > 0).all()


def test_gqa_dropout_in_training_only(rng):
    layer = GroupedQueryAttention(8, 4, 2, dropout=0.5, dtype=np.float64, rng=0)
    x = rng.standard_normal((2, 5, 8))
    train_out, _ = layer(x)
    layer.backward(np.ones_like(train_out))
    layer.eval()
    eval_out, _ = layer(x)
    np.testing.assert_array_equal(eval_out, layer(x)[0])
    assert not np.allclose(train_out, eval_out)


def test_gqa_bad_input_names_argument(rng):
    with pytest.raises(ValueError, match="num_key_value_heads"):
        GroupedQueryAttention(12, 6, 4)
    with pytest.raises(ValueError, match="head_dim"):
        GroupedQueryAttention(12, 4)                                       # head width 3 cannot rotate pairs
    with pytest.raises(ValueError, match="num_heads"):
        GroupedQueryAttention(10, 4)
    with pytest.raises(ValueError, match="rope_theta"):
        GroupedQueryAttention(8, 4, rope_theta=-1.0)
    layer = GroupedQueryAttention(8, 4, 2)
    with pytest.raises(ValueError, match="x"):
        layer(np.ones((2, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="x"):
        layer(np.ones((2, 3, 6), dtype=np.float32))
    with pytest.raises(TypeError, match="x"):
        layer(np.ones((2, 3, 8), dtype=np.float64))
    with pytest.raises(ValueError, match="offset"):
        layer(np.ones((2, 3, 8), dtype=np.float32), offset=-1)
    with pytest.raises(ValueError, match="key_padding_mask"):
        layer(np.ones((2, 3, 8), dtype=np.float32), key_padding_mask=np.zeros((2, 4), dtype=bool))
    with pytest.raises(RuntimeError, match="before forward"):
        GroupedQueryAttention(8, 4, 2).backward(np.ones((2, 3, 8), dtype=np.float32))


# ------------------------------------------------------------------------------------------------- the cache
def test_gqa_decoding_with_a_cache_equals_one_forward(rng):
    """The prompt, then one token, then two: each chunk attends to the cached keys (rotated at their own
    positions, stored after the rotation) and gives the rows of one forward over the whole sequence."""
    from numpy_transformer.functional.rope import rope_forward, rope_tables
    from numpy_transformer.nn.attention import KVCache

    layer = randomize(GroupedQueryAttention(12, 6, 2, rope_theta=50.0, bias=True, dtype=np.float64, rng=0), rng)
    x = rng.standard_normal((2, 7, 12))
    padding = np.zeros((2, 7), dtype=bool)
    padding[1, :2] = True                                                  # row 1 is left-padded
    full, full_weights = layer(x, key_padding_mask=padding)
    cache = KVCache()
    for start, stop in ((0, 4), (4, 5), (5, 7)):
        out, weights = layer(x[:, start:stop], key_padding_mask=padding[:, :stop], cache=cache)
        assert len(cache) == stop and weights.shape == (2, 6, stop - start, stop)
        np.testing.assert_allclose(out, full[:, start:stop], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(weights, full_weights[:, :, start:stop, :stop], rtol=1e-12, atol=1e-13)
    # what the cache holds: the keys of the 2 key/value heads AFTER their rotation, and the values
    keys = layer.k_proj(x).reshape(2, 7, 2, 2).transpose(0, 2, 1, 3)       # (B, Hkv, S, Dh)
    rotated, _ = rope_forward(keys, *rope_tables(np.arange(7), 2, 50.0, dtype=np.float64))
    np.testing.assert_allclose(cache.keys, rotated, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(cache.values, layer.v_proj(x).reshape(2, 7, 2, 2).transpose(0, 2, 1, 3), rtol=1e-13)
    with pytest.raises(RuntimeError, match="inference only"):
        layer.backward(np.ones((2, 2, 12)))
    with pytest.raises(ValueError, match="offset: got 3; expected None or len"):
        layer(x[:, :1], cache=cache, offset=3)
    with pytest.raises(TypeError, match="cache"):
        layer(x, cache={})


def test_gqa_per_row_positions_match_llama_attention(rng, torch):
    """position_ids (B, T): each row rotated at its own positions, as LlamaAttention with per-row tables."""
    case = GQA_CASES[0]
    ours, theirs, config = llama_attention_pair(rng, torch, np.float64, case)
    positions = np.array([[0, 1, 2, 3, 4], [7, 8, 9, 10, 11]])
    x = rng.standard_normal((2, 5, 12))
    dout = rng.standard_normal(x.shape)
    out, _ = ours(x, position_ids=positions)
    dx = ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    tables = [float64_position_embeddings(torch, row, config.head_dim, 500.0) for row in positions]
    embeddings = tuple(torch.cat([table[i] for table in tables]) for i in range(2))  # (B, T, Dh) each
    causal = torch.full((5, 5), float("-inf"), dtype=torch.float64).triu(1)[None, None]
    tout, _ = theirs(tx, position_embeddings=embeddings, attention_mask=causal)
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_param_grads(ours, theirs)
    # RoPE sees distances only: row 1 shifted by 7 gives what it gives at 0..4
    np.testing.assert_allclose(ours(x, position_ids=positions)[0], ours(x)[0], rtol=1e-11, atol=1e-12)


# ------------------------------------------------------------------------------------------------- the block
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
def test_llama_decoder_layer_matches_transformers(rng, torch, dtype, bias):
    """float64 with the reference computing RMSNorm, the rotation and softmax in float64 (hf_twins explains why);
    float32 with transformers' own code; left padding as a key padding mask."""
    import hf_twins

    llama = modeling_llama()
    config = llama_config(12, 6, 2, theta=500.0, bias=bias, attn="eager")
    config.rms_norm_eps = 1e-5
    ours = randomize(LlamaDecoderLayer(12, 6, 10, 2, rope_theta=500.0, rms_norm_eps=1e-5, attention_bias=bias,
                                       mlp_bias=bias, dtype=dtype, rng=0), rng)
    theirs = load_into_torch(llama.LlamaDecoderLayer(config, layer_idx=0), ours, torch, dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    B, T = 2, 5
    padding = np.zeros((B, T), dtype=bool)
    padding[1, :2] = True
    x = rng.standard_normal((B, T, 12)).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype) * ~padding[..., None]  # no gradient from padding rows
    out, weights = ours(x, key_padding_mask=padding, need_weights=True)
    dx = ours.backward(dout.astype(dtype))
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    forbidden = np.triu(np.ones((T, T), dtype=bool), 1)[None, None] | padding[:, None, None, :]
    # the dtype's lowest number, as transformers' masks: -inf would give NaN in the fully masked padding row
    additive = to_torch(np.where(forbidden, np.finfo(dtype).min, 0.0).astype(dtype))
    tx = to_torch(x, requires_grad=True)
    with hf_twins.llama_in_model_dtype(dtype):
        embeddings = llama.LlamaRotaryEmbedding(config)(tx, torch.arange(T)[None])
        tout = theirs(tx, attention_mask=additive, position_embeddings=[e.to(tdtype) for e in embeddings])
    tout.backward(to_torch(dout))
    real = ~padding
    assert_close(out[real], tout.detach().numpy()[real], what="out")
    assert_close(dx, tx.grad, what="dx")
    assert_param_grads(ours, theirs)
    assert weights.shape == (B, 6, T, T)


def test_llama_decoder_layer_matches_finite_differences(rng):
    layer = randomize(LlamaDecoderLayer(8, 4, 6, 2, rope_theta=50.0, rms_norm_eps=1e-5, attention_bias=True,
                                       mlp_bias=True, dtype=np.float64, rng=0), rng)
    x = rng.standard_normal((2, 4, 8))
    padding = np.array([[True, False, False, False], [False] * 4])
    report = gradcheck_module(layer, [x], kwargs={"key_padding_mask": padding}, input_names=["x"])
    report.assert_ok()
    assert len(report.errors) == 1 + 2 * 4 + 2 * 3 + 2                     # x, attention, feed-forward, norms

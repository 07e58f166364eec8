"""Transformer layers, stacks and the whole model: against torch.nn (float64 tight, float32 loose) with every
mask, finite differences, copied layers, weights round trip and bad input."""
import numpy as np
import pytest

from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.nn.layers import LayerNorm
from numpy_transformer.nn.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from reference import DTYPES, assert_close, from_torch, to_torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

B, T, S, D, H, F = 2, 3, 4, 8, 2, 6


def torch_dtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def randomize_and_load(torch, theirs, ours, seed=0):
    """Random weights in torch's module (non-zero biases, LayerNorm weights near 1), copied into ours."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in theirs.named_parameters():
            noise = 0.4 * torch.randn(param.shape, generator=generator, dtype=param.dtype)
            param.copy_(1.0 + noise if "norm" in name and name.endswith("weight") else noise)
    theirs.train()  # training mode (dropout 0) keeps torch off its fused inference path
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def assert_param_grads_match(ours, theirs):
    our_params = dict(ours.named_parameters())
    assert list(our_params) == [name for name, _ in theirs.named_parameters()]
    for name, param in theirs.named_parameters():
        assert_close(our_params[name].grad, param.grad, what=name)


def tensor_or_none(mask):
    return None if mask is None else to_torch(mask)


def padding_mask(batch, length, padded):
    mask = np.zeros((batch, length), dtype=bool)
    for row, count in padded.items():
        mask[row, length - count:] = True
    return mask


# ---------------------------------------------------------------------------------------------- layers

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("masks", ["none", "float_causal_padding", "bool_causal", "is_causal"])
def test_encoder_layer_matches_torch(rng, plain_torch, dtype, norm_first, activation, masks):
    torch = plain_torch
    theirs = torch.nn.TransformerEncoderLayer(D, H, F, dropout=0.0, activation=activation, batch_first=True,
                                              norm_first=norm_first, dtype=torch_dtype(torch, dtype))
    ours = TransformerEncoderLayer(D, H, F, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=True,
                                   dtype=dtype)
    randomize_and_load(torch, theirs, ours)
    src = rng.standard_normal((B, S, D)).astype(dtype)
    dout = rng.standard_normal((B, S, D)).astype(dtype)
    float_causal = from_torch(torch.nn.Transformer.generate_square_subsequent_mask(S, dtype=torch_dtype(torch, dtype)))
    bool_causal = np.triu(np.ones((S, S), dtype=bool), k=1)
    padding = padding_mask(B, S, {1: 2})
    our_mask, their_mask, our_padding, is_causal = {
        "none": (None, None, None, False),
        "float_causal_padding": (float_causal, float_causal, padding, True),
        "bool_causal": (bool_causal, bool_causal, None, False),
        "is_causal": (None, bool_causal, padding, True),        # ours builds the mask; torch needs it given
    }[masks]

    out = ours(src, src_mask=our_mask, src_key_padding_mask=our_padding, is_causal=is_causal)
    dsrc = ours.backward(dout)
    tsrc = to_torch(src, requires_grad=True)
    tout = theirs(tsrc, src_mask=tensor_or_none(their_mask), src_key_padding_mask=tensor_or_none(our_padding),
                  is_causal=is_causal and their_mask is not None)
    tout.backward(to_torch(dout))

    assert out.dtype == dsrc.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dsrc, tsrc.grad, what="dsrc")
    assert_param_grads_match(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer_matches_torch(rng, plain_torch, dtype, norm_first, activation):
    torch = plain_torch
    theirs = torch.nn.TransformerDecoderLayer(D, H, F, dropout=0.0, activation=activation, batch_first=True,
                                              norm_first=norm_first, dtype=torch_dtype(torch, dtype))
    ours = TransformerDecoderLayer(D, H, F, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=True,
                                   dtype=dtype)
    randomize_and_load(torch, theirs, ours, seed=1)
    tgt = rng.standard_normal((B, T, D)).astype(dtype)
    memory = rng.standard_normal((B, S, D)).astype(dtype)       # S != T
    dout = rng.standard_normal((B, T, D)).astype(dtype)
    tgt_mask = np.triu(np.ones((T, T), dtype=bool), k=1)
    memory_mask = (0.5 * rng.standard_normal((T, S))).astype(dtype)  # a float bias on the cross-attention
    tgt_padding = padding_mask(B, T, {0: 1})
    memory_padding = padding_mask(B, S, {1: 2})

    out = ours(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, tgt_key_padding_mask=tgt_padding,
               memory_key_padding_mask=memory_padding, tgt_is_causal=True)
    dtgt, dmemory = ours.backward(dout)
    ttgt, tmemory = to_torch(tgt, requires_grad=True), to_torch(memory, requires_grad=True)
    tout = theirs(ttgt, tmemory, tgt_mask=to_torch(tgt_mask), memory_mask=to_torch(memory_mask),
                  tgt_key_padding_mask=to_torch(tgt_padding), memory_key_padding_mask=to_torch(memory_padding),
                  tgt_is_causal=True)
    tout.backward(to_torch(dout))

    assert_close(out, tout, what="out")
    assert_close(dtgt, ttgt.grad, what="dtgt")
    assert_close(dmemory, tmemory.grad, what="dmemory")
    assert_param_grads_match(ours, theirs)


# ---------------------------------------------------------------------------------------------- whole model

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(rng, plain_torch, dtype, norm_first):
    torch = plain_torch
    kwargs = dict(d_model=D, nhead=H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=F, dropout=0.0,
                  activation="gelu" if norm_first else "relu", batch_first=True, norm_first=norm_first)
    theirs = torch.nn.Transformer(**kwargs, dtype=torch_dtype(torch, dtype))
    ours = Transformer(**kwargs, dtype=dtype, rng=0)
    randomize_and_load(torch, theirs, ours, seed=2)
    src = rng.standard_normal((B, S, D)).astype(dtype)
    tgt = rng.standard_normal((B, T, D)).astype(dtype)
    dout = rng.standard_normal((B, T, D)).astype(dtype)
    masks = dict(
        src_mask=(0.3 * rng.standard_normal((S, S))).astype(dtype),
        tgt_mask=Transformer.generate_square_subsequent_mask(T, dtype=dtype),
        memory_mask=np.triu(np.ones((T, S), dtype=bool), k=2),
        src_key_padding_mask=padding_mask(B, S, {1: 1}),
        tgt_key_padding_mask=padding_mask(B, T, {0: 1}),
        memory_key_padding_mask=padding_mask(B, S, {1: 1}),
    )

    out = ours(src, tgt, **masks, tgt_is_causal=True)
    dsrc, dtgt = ours.backward(dout)
    tsrc, ttgt = to_torch(src, requires_grad=True), to_torch(tgt, requires_grad=True)
    tout = theirs(tsrc, ttgt, **{k: to_torch(v) for k, v in masks.items()}, tgt_is_causal=True)
    tout.backward(to_torch(dout))

    assert out.dtype == dsrc.dtype == dtgt.dtype == np.dtype(dtype)
    assert_close(out, tout, what="out")
    assert_close(dsrc, tsrc.grad, what="dsrc (through the memory of every decoder layer)")
    assert_close(dtgt, ttgt.grad, what="dtgt")
    assert_param_grads_match(ours, theirs)


def test_encoder_and_decoder_stacks_match_torch(rng, plain_torch):
    torch = plain_torch
    layer_args = dict(dim_feedforward=F, dropout=0.0, batch_first=True, dtype=torch.float64)
    their_encoder = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, H, **layer_args), 2,
                                                enable_nested_tensor=False)
    their_decoder = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(D, H, **layer_args), 3,
                                                norm=torch.nn.LayerNorm(D, dtype=torch.float64))
    our_args = dict(dim_feedforward=F, dropout=0.0, batch_first=True, dtype=np.float64)
    our_encoder = TransformerEncoder(TransformerEncoderLayer(D, H, **our_args), 2)
    our_decoder = TransformerDecoder(TransformerDecoderLayer(D, H, **our_args), 3, norm=LayerNorm(D, dtype=np.float64))
    randomize_and_load(torch, their_encoder, our_encoder, seed=3)
    randomize_and_load(torch, their_decoder, our_decoder, seed=4)
    src = rng.standard_normal((B, S, D))
    tgt = rng.standard_normal((B, T, D))
    dout = rng.standard_normal((B, T, D))
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)

    memory = our_encoder(src)
    out = our_decoder(tgt, memory, tgt_mask=causal)
    dtgt, dmemory = our_decoder.backward(dout)
    dsrc = our_encoder.backward(dmemory)
    tsrc, ttgt = to_torch(src, requires_grad=True), to_torch(tgt, requires_grad=True)
    tout = their_decoder(ttgt, their_encoder(tsrc), tgt_mask=to_torch(causal))
    tout.backward(to_torch(dout))

    assert_close(out, tout, what="out")
    assert_close(dsrc, tsrc.grad, what="dsrc")
    assert_close(dtgt, ttgt.grad, what="dtgt")
    assert_param_grads_match(our_encoder, their_encoder)
    assert_param_grads_match(our_decoder, their_decoder)


def test_stack_layers_are_independent_copies_of_one_layer(rng):
    layer = TransformerEncoderLayer(D, H, F, dropout=0.5, rng=0)
    encoder = TransformerEncoder(layer, 3, rng=1)
    first, second = encoder.layers[0], encoder.layers[1]
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)  # the same initial weights, as torch
        assert a.data is not b.data and not np.shares_memory(a.data, b.data)
    first.linear1.weight.data[...] += 1.0
    assert not np.array_equal(first.linear1.weight.data, second.linear1.weight.data)
    # every copy draws its own dropout masks
    x = rng.standard_normal((B, S, D)).astype(np.float32)
    assert not np.array_equal(first.dropout(x), second.dropout(x))


def test_transformer_init_resets_matrices_like_torch():
    model = Transformer(d_model=D, nhead=H, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=F, rng=0)
    weights = model.encoder.layers[0].linear1.weight.data
    bound = np.sqrt(6.0 / (D + F))
    assert np.abs(weights).max() <= bound
    # the reset draws fresh values for every layer, so the copies no longer share their initial weights
    assert not np.array_equal(weights, model.encoder.layers[1].linear1.weight.data)
    assert np.all(model.encoder.norm.weight.data == 1) and np.all(model.decoder.norm.bias.data == 0)
    assert model.encoder.layers[0].self_attn.in_proj_weight.dtype == np.float32


def test_generate_square_subsequent_mask_matches_torch(torch):
    ours = Transformer.generate_square_subsequent_mask(5)
    theirs = from_torch(torch.nn.Transformer.generate_square_subsequent_mask(5))
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_weights_round_trip_through_torch(plain_torch):
    torch = plain_torch
    kwargs = dict(d_model=D, nhead=H, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=F, batch_first=True)
    theirs = torch.nn.Transformer(**kwargs)
    ours = Transformer(**kwargs, rng=0)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    back = torch.nn.Transformer(**kwargs)
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    for key, value in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_no_bias_keys_match_torch(torch):
    theirs = torch.nn.TransformerDecoderLayer(D, H, F, batch_first=True, bias=False)
    ours = TransformerDecoderLayer(D, H, F, batch_first=True, bias=False)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_dropout_is_identity_in_eval_and_random_in_train(rng):
    layer = TransformerEncoderLayer(D, H, F, dropout=0.3, rng=0)
    x = rng.standard_normal((B, S, D)).astype(np.float32)
    layer.eval()
    np.testing.assert_array_equal(layer(x), layer(x))
    layer.train()
    assert not np.array_equal(layer(x), layer(x))


# ---------------------------------------------------------------------------------------------- finite differences

def randomized(module, rng):
    for name, param in module.named_parameters():
        param.data[...] = rng.standard_normal(param.shape) * (0.3 if "norm" in name else 0.6) + (
            1.0 if "norm" in name and name.endswith("weight") else 0.0)
    return module


small = dict(dim_feedforward=6, dropout=0.0, batch_first=True, dtype=np.float64)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_finite_differences(rng, norm_first):
    layer = randomized(TransformerEncoderLayer(4, 2, activation="gelu", norm_first=norm_first, **small, rng=0), rng)
    padding = padding_mask(2, 3, {1: 1})
    gradcheck_module(layer, [rng.standard_normal((2, 3, 4))], input_names=["src"],
                     kwargs=dict(src_key_padding_mask=padding, is_causal=True)).assert_ok()


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_finite_differences(rng, norm_first):
    layer = randomized(TransformerDecoderLayer(4, 2, activation="relu", norm_first=norm_first, **small, rng=0), rng)
    kwargs = dict(tgt_is_causal=True, memory_key_padding_mask=padding_mask(2, 4, {0: 2}),
                  memory_mask=0.5 * rng.standard_normal((3, 4)))
    inputs = [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 4))]
    gradcheck_module(layer, inputs, input_names=["tgt", "memory"], kwargs=kwargs).assert_ok()


def test_transformer_matches_finite_differences(rng):
    model = randomized(Transformer(4, 2, 1, 1, **small, rng=0), rng)
    kwargs = dict(tgt_is_causal=True, src_key_padding_mask=padding_mask(2, 4, {1: 1}))
    inputs = [rng.standard_normal((2, 4, 4)), rng.standard_normal((2, 3, 4))]
    gradcheck_module(model, inputs, input_names=["src", "tgt"], kwargs=kwargs).assert_ok()


# ---------------------------------------------------------------------------------------------- bad input

def test_bad_input_names_argument(rng):
    with pytest.raises(ValueError, match="nhead"):
        TransformerEncoderLayer(10, 3)
    with pytest.raises(ValueError, match="activation"):
        TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(TypeError, match="batch_first: got 1; expected True or False"):
        TransformerDecoderLayer(8, 2, batch_first=1)
    with pytest.raises(ValueError, match="num_layers"):
        TransformerEncoder(TransformerEncoderLayer(8, 2), 0)
    encoder_layer = TransformerEncoderLayer(D, H, F, batch_first=True, dtype=np.float64)
    src = rng.standard_normal((B, S, D))
    with pytest.raises(ValueError, match="src"):
        encoder_layer(rng.standard_normal((B, S, D + 1)))
    with pytest.raises(ValueError, match="src_mask"):
        encoder_layer(src, src_mask=np.zeros((S, S + 1), dtype=bool))
    with pytest.raises(ValueError, match="src_key_padding_mask"):
        encoder_layer(src, src_key_padding_mask=np.zeros((B, S + 1), dtype=bool))
    decoder_layer = TransformerDecoderLayer(D, H, F, batch_first=True, dtype=np.float64)
    tgt = rng.standard_normal((B, T, D))
    with pytest.raises(ValueError, match="memory"):
        decoder_layer(tgt, rng.standard_normal((B + 1, S, D)))
    with pytest.raises(ValueError, match="tgt_mask"):
        decoder_layer(tgt, src, tgt_mask=np.zeros((T, S), dtype=bool))
    with pytest.raises(ValueError, match="memory_mask"):
        decoder_layer(tgt, src, memory_mask=np.zeros((S, T), dtype=bool))
    with pytest.raises(ValueError, match="memory_key_padding_mask"):
        decoder_layer(tgt, src, memory_key_padding_mask=np.zeros((B, T), dtype=bool))
    with pytest.raises(ValueError, match="tgt_key_padding_mask"):
        decoder_layer(tgt, src, tgt_key_padding_mask=np.zeros((B, S), dtype=bool))
    model = Transformer(D, H, 1, 1, F, batch_first=True, dtype=np.float64)
    with pytest.raises(ValueError, match="tgt"):
        model(src, rng.standard_normal((B + 1, T, D)))
    with pytest.raises(ValueError, match="src"):
        model(rng.standard_normal((B, S, D + 2)), tgt)

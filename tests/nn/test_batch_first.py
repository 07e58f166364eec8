"""torch.nn's default layout: code written for torch.nn, with batch_first left at its default False and
(T, B, D) arrays, gives torch's numbers here unchanged; and so does an unbatched (T, D) sequence. Outputs,
input gradients and every parameter gradient are compared with torch twins (float64)."""
import numpy as np
import pytest

from numpy_transformer.nn import (
    LayerNorm,
    MultiheadAttention,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from reference import assert_close, to_torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch on mixed mask types and nested tensors

B, T, S, D, H, F = 2, 3, 5, 4, 2, 6


def twins(torch, rng, ours, theirs):
    """Random weights (biases non-zero) in torch's module, loaded into ours; both returned."""
    with torch.no_grad():
        for param in theirs.parameters():
            param.copy_(torch.from_numpy(0.5 * rng.standard_normal(tuple(param.shape))))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def compare(torch, ours, theirs, inputs, kwargs, rng, grads_of_ours):
    """Run both on the same inputs and one upstream gradient; compare the output and every gradient."""
    out = ours(*inputs, **kwargs)
    out = out[0] if isinstance(out, tuple) else out
    dout = rng.standard_normal(out.shape)
    our_grads = grads_of_ours(ours.backward(dout))
    tensors = {}
    for x in inputs:                                              # one tensor per distinct array, as passed
        tensors.setdefault(id(x), to_torch(x, requires_grad=True))
    their_inputs = [tensors[id(x)] for x in inputs]
    their_out = theirs(*their_inputs, **{k: None if v is None else to_torch(v) for k, v in kwargs.items()})
    their_out = their_out[0] if isinstance(their_out, tuple) else their_out
    their_out.backward(to_torch(dout))
    assert_close(out, their_out, what="out")
    distinct = list(tensors.values())
    assert len(our_grads) == len(distinct)
    for index, (grad, tensor) in enumerate(zip(our_grads, distinct, strict=True)):
        assert_close(grad, tensor.grad, what=f"input gradient {index}")
    params = dict(ours.named_parameters())
    for name, param in theirs.named_parameters():
        assert_close(params[name].grad, param.grad, what=name)


def padding(lengths, size):
    return np.arange(size)[None, :] >= np.array(lengths)[:, None]  # (B, size), True = padding


@pytest.mark.parametrize("path", ["self", "cross", "three"])
def test_multihead_attention_default_layout_matches_torch(rng, plain_torch, path):
    torch = plain_torch
    ours, theirs = twins(torch, rng, MultiheadAttention(D, H, dtype=np.float64),
                         torch.nn.MultiheadAttention(D, H, dtype=torch.float64))
    assert ours.batch_first is False is theirs.batch_first
    query, memory, other = (rng.standard_normal((T, B, D)), rng.standard_normal((S, B, D)),
                            rng.standard_normal((S, B, D)))
    inputs = {"self": (query, query, query), "cross": (query, memory, memory), "three": (query, memory, other)}[path]
    keys = inputs[1].shape[0]
    kwargs = dict(key_padding_mask=padding([keys, keys - 1], keys), attn_mask=None)
    compare(torch, ours, theirs, inputs, kwargs, rng, lambda grads: [g for g in grads if g is not None])
    out, weights = ours(*inputs, key_padding_mask=kwargs["key_padding_mask"], average_attn_weights=False)
    assert out.shape == (T, B, D) and weights.shape == (B, H, T, keys)  # weights batch-first, as torch's


def test_multihead_attention_unbatched_matches_torch(rng, plain_torch):
    torch = plain_torch
    for batch_first in (False, True):
        ours, theirs = twins(torch, rng, MultiheadAttention(D, H, batch_first=batch_first, dtype=np.float64),
                             torch.nn.MultiheadAttention(D, H, batch_first=batch_first, dtype=torch.float64))
        query, memory = rng.standard_normal((T, D)), rng.standard_normal((S, D))
        kwargs = dict(key_padding_mask=np.array([False, False, False, False, True]),
                      attn_mask=rng.standard_normal((H, T, S)))   # per head: (H, T, S) unbatched
        compare(torch, ours, theirs, (query, memory, memory), kwargs, rng,
                lambda grads: [g for g in grads if g is not None])
        _, weights = ours(query, memory, memory)
        assert weights.shape == (T, S)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_and_decoder_layers_default_layout_match_torch(rng, plain_torch, norm_first):
    torch = plain_torch
    args = dict(dim_feedforward=F, dropout=0.0, norm_first=norm_first)
    encoder, their_encoder = twins(torch, rng, TransformerEncoderLayer(D, H, **args, dtype=np.float64),
                                   torch.nn.TransformerEncoderLayer(D, H, **args, dtype=torch.float64))
    src = rng.standard_normal((S, B, D))
    compare(torch, encoder, their_encoder, (src,), dict(src_key_padding_mask=padding([S, 2], S)), rng,
            lambda grad: [grad])
    decoder, their_decoder = twins(torch, rng, TransformerDecoderLayer(D, H, **args, dtype=np.float64),
                                   torch.nn.TransformerDecoderLayer(D, H, **args, dtype=torch.float64))
    tgt, memory = rng.standard_normal((T, B, D)), rng.standard_normal((S, B, D))
    causal = np.triu(np.ones((T, T), bool), 1)
    compare(torch, decoder, their_decoder, (tgt, memory),
            dict(tgt_mask=causal, memory_key_padding_mask=padding([S, 3], S)), rng, list)


def test_stacks_take_the_layout_from_their_layer(rng, plain_torch):
    torch = plain_torch
    args = dict(dim_feedforward=F, dropout=0.0)
    encoder, their_encoder = twins(
        torch, rng, TransformerEncoder(TransformerEncoderLayer(D, H, **args, dtype=np.float64), 2,
                                       norm=LayerNorm(D, dtype=np.float64)),
        torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, H, **args, dtype=torch.float64), 2,
                                    norm=torch.nn.LayerNorm(D, dtype=torch.float64), enable_nested_tensor=False))
    compare(torch, encoder, their_encoder, (rng.standard_normal((S, B, D)),), {}, rng, lambda grad: [grad])
    decoder, their_decoder = twins(
        torch, rng, TransformerDecoder(TransformerDecoderLayer(D, H, **args, dtype=np.float64), 2),
        torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(D, H, **args, dtype=torch.float64), 2))
    compare(torch, decoder, their_decoder, (rng.standard_normal((T, B, D)), rng.standard_normal((S, B, D))), {}, rng,
            list)


@pytest.mark.parametrize("layout", ["default", "unbatched"])
def test_transformer_as_torch_users_call_it(rng, plain_torch, layout):
    torch = plain_torch
    args = dict(d_model=D, nhead=H, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=F, dropout=0.0)
    ours, theirs = twins(torch, rng, Transformer(**args, dtype=np.float64),
                         torch.nn.Transformer(**args, dtype=torch.float64))
    assert ours.batch_first is False is theirs.batch_first
    if layout == "default":
        src, tgt = rng.standard_normal((S, B, D)), rng.standard_normal((T, B, D))
        kwargs = dict(src_key_padding_mask=padding([S, 3], S), memory_key_padding_mask=padding([S, 3], S),
                      tgt_mask=np.triu(np.ones((T, T), bool), 1))
    else:
        src, tgt = rng.standard_normal((S, D)), rng.standard_normal((T, D))
        kwargs = dict(src_key_padding_mask=np.arange(S) >= 4, tgt_mask=np.triu(np.ones((T, T), bool), 1))
    compare(torch, ours, theirs, (src, tgt), kwargs, rng, list)


def test_layout_errors_name_the_argument(rng):
    model = Transformer(D, H, 1, 1, F, dtype=np.float64)
    with pytest.raises(ValueError, match=r"tgt: got shape \(3, 3, 4\); expected batch size 2"):
        model(rng.standard_normal((S, 2, D)), rng.standard_normal((T, 3, D)))  # (positions, B, D): B on axis 1
    with pytest.raises(ValueError, match="tgt: .*batched and unbatched inputs do not mix"):
        model(rng.standard_normal((S, 2, D)), rng.standard_normal((T, D)))
    with pytest.raises(ValueError, match=r"src: got shape .*\(positions, B, d_model\) \(batch_first=False\)"):
        model(rng.standard_normal((1, S, 2, D)), rng.standard_normal((T, 2, D)))
    layer = TransformerEncoderLayer(D, H, F, dtype=np.float64)
    with pytest.raises(ValueError, match=r"src_key_padding_mask: got shape \(5, 2\); expected \(2, 5\)"):
        layer(rng.standard_normal((S, 2, D)), src_key_padding_mask=np.zeros((S, 2), bool))
    attention = MultiheadAttention(D, H, dtype=np.float64)
    with pytest.raises(ValueError, match=r"key: got shape \(5, 3, 4\); expected batch size 2 \(axis 1\)"):
        attention(rng.standard_normal((T, 2, D)), rng.standard_normal((S, 3, D)), rng.standard_normal((S, 3, D)))

"""Empty axes, decided case by case like PyTorch: attention over no keys (S = 0) gives zeros, no queries
(T = 0) gives empty arrays, and a Transformer with either computes the same as torch's, gradients included.
BERT with no tokens and a loss over no classes are refused with named errors."""
import numpy as np
import pytest

from numpy_transformer.functional import (
    cross_entropy_forward,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from numpy_transformer.nn import MultiheadAttention, Transformer
from reference import assert_close, to_torch

B, D, H = 2, 4, 2


def load_twin(torch, ours, theirs, rng):
    """Random weights (biases non-zero) in torch's module, copied into ours."""
    with torch.no_grad():
        for param in theirs.parameters():
            param.copy_(torch.from_numpy(0.5 * rng.standard_normal(tuple(param.shape))))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def assert_grads_match(ours, theirs):
    grads = dict(ours.named_parameters())
    for name, param in theirs.named_parameters():
        if param.grad is None:                                    # torch leaves untouched parameters at None
            assert grads[name].grad is None or not np.any(grads[name].grad), name
        else:
            assert_close(grads[name].grad, param.grad, what=name)


@pytest.mark.parametrize("T, S", [(3, 0), (0, 3), (0, 0)])
def test_scaled_dot_product_attention_with_an_empty_axis(rng, torch, T, S):
    q, k, v = rng.standard_normal((B, H, T, 4)), rng.standard_normal((B, H, S, 4)), rng.standard_normal((B, H, S, 5))
    out, weights, cache = scaled_dot_product_attention_forward(q, k, v)
    dout = rng.standard_normal(out.shape)
    dq, dk, dv = scaled_dot_product_attention_backward(dout, cache)
    tq, tk, tv = (to_torch(a, requires_grad=True) for a in (q, k, v))
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)
    tout.backward(to_torch(dout))
    assert weights.shape == (B, H, T, S)
    for name, ours, theirs in (("out", out, tout), ("dq", dq, tq.grad), ("dk", dk, tk.grad), ("dv", dv, tv.grad)):
        assert_close(ours, theirs, what=name)
    if S == 0 and T > 0:
        assert not out.any() and not dq.any()                     # no keys: zero output, zero query gradient


@pytest.mark.parametrize("T, S", [(3, 0), (0, 3)])
def test_multihead_attention_with_an_empty_axis(rng, plain_torch, T, S):
    torch = plain_torch
    theirs = torch.nn.MultiheadAttention(D, H, batch_first=True, dtype=torch.float64)
    ours = MultiheadAttention(D, H, batch_first=True, dtype=np.float64)
    load_twin(torch, ours, theirs, rng)
    query, memory = rng.standard_normal((B, T, D)), rng.standard_normal((B, S, D))
    dout = rng.standard_normal((B, T, D))
    out, weights = ours(query, memory, memory)
    dquery, dmemory, _ = ours.backward(dout)
    tquery, tmemory = to_torch(query, requires_grad=True), to_torch(memory, requires_grad=True)
    tout, tweights = theirs(tquery, tmemory, tmemory)
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    assert weights.shape == tuple(tweights.shape) == (B, T, S)
    assert_close(dquery, tquery.grad, what="dquery")
    assert_close(dmemory, tmemory.grad, what="dmemory")
    assert_grads_match(ours, theirs)


@pytest.mark.parametrize("S, T", [(0, 3), (3, 0), (0, 0)])
def test_transformer_with_an_empty_source_or_target(rng, plain_torch, S, T):
    torch = plain_torch
    args = dict(d_model=D, nhead=H, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=6, dropout=0.0,
                batch_first=True)
    theirs = torch.nn.Transformer(**args, dtype=torch.float64)
    ours = Transformer(**args, dtype=np.float64)
    load_twin(torch, ours, theirs, rng)
    src, tgt, dout = rng.standard_normal((B, S, D)), rng.standard_normal((B, T, D)), rng.standard_normal((B, T, D))
    out = ours(src, tgt)
    dsrc, dtgt = ours.backward(dout)
    tsrc, ttgt = to_torch(src, requires_grad=True), to_torch(tgt, requires_grad=True)
    tout = theirs(tsrc, ttgt)
    tout.backward(to_torch(dout))
    assert_close(out, tout, what="out")
    assert_close(dsrc, tsrc.grad, what="dsrc")
    assert_close(dtgt, ttgt.grad, what="dtgt")
    assert_grads_match(ours, theirs)


def test_bert_with_no_tokens_and_a_loss_over_no_classes_are_named_errors():
    from numpy_transformer.models.bert import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=10, max_position_embeddings=16), rng=0)
    with pytest.raises(ValueError, match=r"input_ids: got shape \(2, 0\), no positions; expected T >= 1"):
        model(np.zeros((2, 0), dtype=np.int64))
    with pytest.raises(ValueError, match=r"logits: got shape \(2, 0\); expected \(\.\.\., V\) with V >= 1"):
        cross_entropy_forward(np.zeros((2, 0)), np.full(2, -100))

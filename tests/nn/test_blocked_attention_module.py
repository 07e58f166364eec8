"""MultiheadAttention's ``attention`` choice: "blocked" gives the "full" numbers (output and every gradient) under
every mask, "auto" switches above the size, the layers train with it (finite differences, PyTorch), and a
request that blocked attention cannot honour is refused by name."""
import functools

import numpy as np
import pytest

import numpy_transformer.nn.attention as attention_module
from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.nn.attention import MultiheadAttention
from numpy_transformer.nn.transformer import TransformerEncoderLayer
from reference import DTYPES, assert_close, to_torch

B, T, S, D, H = 2, 7, 9, 8, 2


def pair(dtype=np.float64, seed=0, dropout=0.0):
    """Two attention modules with the same random weights (biases non-zero), one full and one blocked."""
    full = MultiheadAttention(D, H, dropout=dropout, batch_first=True, dtype=dtype, rng=seed, attention="full")
    state = {name: (value + 0.1 * np.random.default_rng(seed).standard_normal(value.shape)).astype(dtype)
             for name, value in full.state_dict().items()}
    full.load_state_dict(state)
    blocked = MultiheadAttention(D, H, dropout=dropout, batch_first=True, dtype=dtype, rng=seed,
                                 attention="blocked")
    blocked.load_state_dict(state)
    return full, blocked


def run(module, inputs, dout, **kwargs):
    module.zero_grad()
    out, _ = module(*inputs, need_weights=False, **kwargs)
    grads = module.backward(dout)
    return out, grads, {name: p.grad.copy() for name, p in module.named_parameters()}


def masks(case, rng, dtype, T, S):
    """The module's mask arguments for queries of length T and keys of length S."""
    padding = np.zeros((B, S), dtype=bool)
    padding[1, -3:] = True
    padding_all = padding.copy()
    padding_all[0] = True                                         # sequence 0 may attend to nothing
    return {
        "none": {},
        "padding": dict(key_padding_mask=padding),
        "is_causal": dict(is_causal=True, key_padding_mask=padding),
        "bool_attn_mask": dict(attn_mask=np.triu(np.ones((T, S), dtype=bool), k=1)),
        "float_attn_mask": dict(attn_mask=(0.5 * rng.standard_normal((T, S))).astype(dtype),
                                key_padding_mask=padding),
        "per_head": dict(attn_mask=rng.random((B * H, T, S)) < 0.3),
        "fully_padded_sequence": dict(key_padding_mask=padding_all),
    }[case]


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 3 positions in the module, so that these short sequences are cut into several blocks."""
    monkeypatch.setattr(attention_module, "blocked_attention_forward",
                        functools.partial(attention_module.blocked_attention_forward, query_block=3, key_block=3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["none", "padding", "is_causal", "bool_attn_mask", "float_attn_mask", "per_head",
                                  "fully_padded_sequence"])
@pytest.mark.parametrize("path", ["self", "cross"])
def test_blocked_module_equals_full(rng, small_blocks, dtype, case, path):
    full, blocked = pair(dtype)
    if path == "self":
        x = rng.standard_normal((B, S, D)).astype(dtype)
        inputs, dout, kwargs = (x, x, x), rng.standard_normal((B, S, D)).astype(dtype), masks(case, rng, dtype, S, S)
    else:
        query, memory = rng.standard_normal((B, T, D)).astype(dtype), rng.standard_normal((B, S, D)).astype(dtype)
        inputs, dout = (query, memory, memory), rng.standard_normal((B, T, D)).astype(dtype)
        kwargs = masks(case, rng, dtype, T, S)
    out_f, grads_f, params_f = run(full, inputs, dout, **kwargs)
    out_b, grads_b, params_b = run(blocked, inputs, dout, **kwargs)
    assert blocked._cache["blocked"] and not full._cache["blocked"]
    tight = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(out_b, out_f, err_msg="out", **tight)
    for number, (a, b) in enumerate(zip(grads_f, grads_b, strict=True)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(b, a, err_msg=f"input gradient {number}", **tight)
    for name in params_f:
        np.testing.assert_allclose(params_b[name], params_f[name], err_msg=name, **tight)


def test_auto_switches_to_blocked_from_the_size_on(rng, monkeypatch):
    module = MultiheadAttention(D, H, batch_first=True, dtype=np.float64, rng=0)
    assert module.attention == "auto"
    x = rng.standard_normal((1, 6, D))
    monkeypatch.setattr(attention_module, "BLOCKED_ATTENTION_MIN_SCORES", 36)
    module(x, x, x, need_weights=False)
    assert module._cache["blocked"]                               # T * S = 36 >= 36
    module(x[:, :5], x[:, :5], x[:, :5], need_weights=False)
    assert not module._cache["blocked"]                           # 25 < 36
    _, weights = module(x, x, x, need_weights=True)               # the weights are asked for: full
    assert not module._cache["blocked"] and weights.shape == (1, 6, 6)
    dropping = MultiheadAttention(D, H, dropout=0.5, batch_first=True, dtype=np.float64, rng=0)
    dropping(x, x, x, need_weights=False)                         # attention dropout in training: full
    assert not dropping._cache["blocked"]
    dropping.eval()
    dropping(x, x, x, need_weights=False)
    assert dropping._cache["blocked"]


def test_is_causal_is_applied_in_blocks_without_a_t_by_s_mask(rng, monkeypatch):
    seen = {}
    original = attention_module.blocked_attention_forward

    def spy(q, k, v, mask=None, is_causal=False, **kwargs):
        seen.update(mask=mask, is_causal=is_causal)
        return original(q, k, v, mask=mask, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(attention_module, "blocked_attention_forward", spy)
    _, blocked = pair()
    x = rng.standard_normal((B, T, D))
    blocked(x, x, x, need_weights=False, is_causal=True)
    assert seen == {"mask": None, "is_causal": True}


def test_blocked_refuses_weights_and_dropout():
    module = MultiheadAttention(D, H, dropout=0.1, batch_first=True, dtype=np.float64, rng=0, attention="blocked")
    x = np.zeros((1, 3, D))
    with pytest.raises(ValueError, match="need_weights"):
        module(x, x, x)
    with pytest.raises(ValueError, match="dropout"):
        module(x, x, x, need_weights=False)
    module.eval()
    out, weights = module(x, x, x, need_weights=False)
    assert weights is None and out.shape == (1, 3, D)
    with pytest.raises(ValueError, match="attention"):
        MultiheadAttention(D, H, attention="flash")
    module.attention = "sparse"
    with pytest.raises(ValueError, match="attention"):
        module(x, x, x, need_weights=False)


def test_encoder_layer_with_blocked_attention_matches_finite_differences(rng):
    layer = TransformerEncoderLayer(D, H, 12, dropout=0.0, activation="gelu", batch_first=True, dtype=np.float64,
                                    rng=0)
    layer.self_attn.attention = "blocked"
    padding = np.zeros((2, 5), dtype=bool)
    padding[1, 3:] = True
    report = gradcheck_module(layer, [rng.standard_normal((2, 5, D))],
                              kwargs={"src_key_padding_mask": padding, "is_causal": True,
                                      "src_mask": np.triu(np.ones((5, 5), dtype=bool), k=1)})
    report.assert_ok()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_encoder_layer_with_blocked_attention_matches_torch(rng, plain_torch, dtype):
    torch = plain_torch
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    theirs = torch.nn.TransformerEncoderLayer(D, H, 12, dropout=0.0, batch_first=True, dtype=tdtype)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in theirs.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=generator, dtype=tdtype))
    theirs.train()
    ours = TransformerEncoderLayer(D, H, 12, dropout=0.0, batch_first=True, dtype=dtype, rng=0)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.self_attn.attention = "blocked"
    x, dout = rng.standard_normal((B, T, D)).astype(dtype), rng.standard_normal((B, T, D)).astype(dtype)
    padding = np.zeros((B, T), dtype=bool)
    padding[0, -2:] = True
    out = ours(x, src_key_padding_mask=padding)
    dx = ours.backward(dout)
    tx = to_torch(x, requires_grad=True)
    tout = theirs(tx, src_key_padding_mask=to_torch(padding))
    tout.backward(to_torch(dout))
    assert ours.self_attn._cache["blocked"]
    assert_close(out, tout, what="out")
    assert_close(dx, tx.grad, what="dx")
    for name, param in theirs.named_parameters():
        assert_close(dict(ours.named_parameters())[name].grad, param.grad, what=name)

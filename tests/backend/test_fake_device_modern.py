"""The modern decoder pieces keep their arrays on the device, proven on the fake CuPy of ``fake_cupy.py``.

The same checks as ``test_fake_device.py``, for RoPE, RMSNorm, SiLU, SwiGLU and grouped-query attention, their
layers, the Llama block and the Llama model: each runs once on NumPy arrays and once on device arrays; every
output, gradient and cache entry must be a device array with the CPU run's values, and a forward and backward
(a training step, a decoding step through the key/value caches) must never read a value back.
"""
import copy

import fake_cupy
import numpy as np
import pytest
from test_fake_device import assert_same, check_module_on_device, check_pair_on_device, to_dev

from numpy_transformer import functional as F


@pytest.fixture
def cp():
    with fake_cupy.install() as module:
        yield module


def _cases():
    g = np.random.default_rng(0)
    r = lambda *shape: g.standard_normal(shape)  # noqa: E731
    cos, sin = F.rope_tables(np.arange(3, 8), 4, theta=100.0, dtype=np.float64)
    padding = np.zeros((2, 1, 1, 5), dtype=bool)
    padding[0, ..., -2:] = True
    additive = np.where(g.random((3, 5)) < 0.2, -np.inf, r(3, 5))
    q, k, v = r(2, 4, 3, 4), r(2, 2, 5, 4), r(2, 2, 5, 3)
    return {
        "rope": (F.rope_forward, F.rope_backward, (r(2, 3, 5, 4), cos, sin), {}),
        "rmsnorm": (F.rmsnorm_forward, F.rmsnorm_backward, (r(2, 3, 4), r(4)), {}),
        "rmsnorm_no_weight_f32": (F.rmsnorm_forward, F.rmsnorm_backward, (r(2, 3, 4).astype(np.float32),), {}),
        "silu": (F.silu_forward, F.silu_backward, (r(2, 3, 4) * 5,), {}),
        "swiglu": (F.swiglu_forward, F.swiglu_backward, (r(2, 3, 4), r(6, 4), r(6, 4), r(4, 6)), {}),
        "swiglu_bias": (F.swiglu_forward, F.swiglu_backward, (r(2, 3, 4), r(6, 4), r(6, 4), r(4, 6), r(6), r(6), r(4)),
                        {}),
        "gqa_causal_padding": (F.grouped_query_attention_forward, F.grouped_query_attention_backward,
                               (q, k, v, padding), dict(is_causal=True)),
        "gqa_additive": (F.grouped_query_attention_forward, F.grouped_query_attention_backward, (q, k, v, additive),
                         dict(is_causal=True)),
        "gqa_multi_query_dropout": (F.grouped_query_attention_forward, F.grouped_query_attention_backward,
                                    (q, k[:, :1], v[:, :1]), dict(dropout_p=0.3, rng=7)),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_pair_stays_on_device(cp, name):
    check_pair_on_device(cp, *CASES[name], name)


def test_rope_tables_are_built_on_the_device(cp):
    positions = np.arange(4, 9)
    assert_same(F.rope_tables(positions, 6, dtype=np.float64), F.rope_tables(cp.asarray(positions), 6,
                                                                              dtype=np.float64))
    assert_same(F.end_aligned_causal_mask(2, 5), F.end_aligned_causal_mask(2, 5, xp=cp))


def _module_cases():
    from numpy_transformer import nn

    g = np.random.default_rng(2)
    r = lambda *shape: g.standard_normal(shape)  # noqa: E731
    f64 = np.float64
    padding = np.array([[False, False, False, True], [False] * 4])
    return {
        "RMSNorm": (lambda: nn.RMSNorm((3, 4), eps=1e-5, dtype=f64), (r(2, 3, 4),), {}),
        "SiLU": (lambda: nn.SiLU(), (r(2, 3, 4),), {}),
        "SwiGLUFeedForward": (lambda: nn.SwiGLUFeedForward(4, 6, bias=True, dtype=f64, rng=0), (r(2, 3, 4),), {}),
        "GroupedQueryAttention": (lambda: nn.GroupedQueryAttention(8, 4, 2, dropout=0.2, dtype=f64, rng=0),
                                  (r(2, 4, 8),), dict(key_padding_mask=padding, offset=3)),
        "GroupedQueryAttention-positions": (lambda: nn.GroupedQueryAttention(8, 4, 2, dtype=f64, rng=0),
                                            (r(2, 4, 8),), dict(position_ids=np.array([[0, 1, 2, 3], [5, 6, 7, 8]]))),
        "LlamaDecoderLayer": (lambda: nn.LlamaDecoderLayer(8, 4, 6, 2, attention_dropout=0.2, attention_bias=True,
                                                           dtype=f64, rng=0),
                              (r(2, 4, 8),), dict(key_padding_mask=padding)),
    }


MODULES = ["RMSNorm", "SiLU", "SwiGLUFeedForward", "GroupedQueryAttention", "GroupedQueryAttention-positions",
           "LlamaDecoderLayer"]


@pytest.mark.parametrize("name", MODULES)
def test_module_to_cuda_matches_cpu_without_reading_back(cp, name):
    make, args, kwargs = _module_cases()[name]
    check_module_on_device(cp, make, args, kwargs, name)


def test_the_no_host_calls_guard_reads_the_new_compute_paths():
    """``test_no_host_calls.py`` scans every file of functional/ and nn/: it sees these forward and backward passes."""
    import ast

    import test_no_host_calls as guard

    expected = {
        "functional/rope.py": {"rope_tables", "rope_forward", "rope_backward"},
        "functional/rmsnorm.py": {"rmsnorm_forward", "rmsnorm_backward", "default_eps"},
        "functional/silu.py": {"sigmoid", "silu_forward", "silu_backward"},
        "functional/swiglu.py": {"swiglu_forward", "swiglu_backward"},
        "functional/gqa.py": {"grouped_query_attention_forward", "grouped_query_attention_backward", "_fold_mask"},
        "nn/modern.py": {"forward", "backward"},
        "models/llama.py": {"forward", "backward", "next_token_logits"},
        "models/generation.py": {"generate", "positions_from_mask", "loss"},   # loss: CausalLM's, GPT's and Llama's
    }
    for relative, names in expected.items():
        everything = relative.split("/")[0] in guard.FULLY_COMPUTE
        assert everything or relative.split("/")[0] in guard.PARTLY_COMPUTE
        tree = ast.parse((guard.PACKAGE / relative).read_text())
        scanned = {function.name for function in guard.compute_functions(tree, everything)}
        assert names <= scanned, f"{relative}: {sorted(names - scanned)} not scanned"
        assert [call for function in guard.compute_functions(tree, everything)
                for call in guard.numpy_calls(function) if call[1] not in guard.ALLOWED] == []


def _llama(tie):
    from numpy_transformer.models import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=13, hidden_size=8, intermediate_size=12, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tie, initializer_range=0.3)
    return LlamaForCausalLM(config, dtype=np.float64, rng=0)


@pytest.mark.parametrize("tie", [False, True])
def test_llama_training_step_stays_on_the_device(cp, tie):
    from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward

    host_model = _llama(tie)
    device_model = copy.deepcopy(host_model).to("cuda")
    ids = np.array([[0, 0, 3, 4, 5], [6, 7, 8, 9, 10]])
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    targets = np.array([[-100, -100, 4, 5, 6], [7, 8, 9, 10, 11]])

    def step(model, ids, mask, targets):
        fake_cupy.reset_counts()
        record = model(ids, mask, output_hidden_states=True, output_attentions=True)
        loss, cache = cross_entropy_forward(record.output, targets)
        model.zero_grad()
        model.backward(cross_entropy_backward(1.0, cache))
        return ((record.output, record.hidden_states, record.attentions, loss,
                 {n: p.grad for n, p in model.named_parameters()}), list(fake_cupy.SYNC_SITES))

    host, _ = step(host_model, ids, mask, targets)
    device, syncs = step(device_model, to_dev(ids, cp), to_dev(mask, cp), to_dev(targets, cp))
    assert syncs == []
    assert_same(host, device, "Llama training step")


def test_llama_generation_through_the_caches_stays_on_the_device(cp):
    model = _llama(False)
    prompt = np.array([[3, 4, 5], [0, 6, 7]])
    mask = np.array([[1, 1, 1], [0, 1, 1]])
    host_greedy = model.generate(prompt, 6, temperature=0.0, attention_mask=mask)
    host_ids, host_logits = model.generate(prompt, 5, temperature=0.8, top_k=6, top_p=0.9, rng=4,
                                           attention_mask=mask, return_logits=True)
    model.to("cuda")
    fake_cupy.reset_counts()
    greedy = model.generate(to_dev(prompt, cp), 6, temperature=0.0, attention_mask=to_dev(mask, cp))
    ids, logits = model.generate(to_dev(prompt, cp), 5, temperature=0.8, top_k=6, top_p=0.9, rng=4,
                                 attention_mask=to_dev(mask, cp), return_logits=True)
    assert fake_cupy.SYNC_SITES == []
    assert_same(host_greedy, greedy, "greedy ids")
    assert isinstance(ids, fake_cupy.ndarray) and ids.shape == host_ids.shape
    assert_same(host_logits[:, 0], logits[:, 0], "logits after the prompt")   # later steps follow device draws

"""The modern decoder pieces keep their arrays on the device, proven on the fake CuPy of ``fake_cupy.py``.

The same checks as ``test_fake_device.py``, for RoPE, RMSNorm, SiLU, SwiGLU and grouped-query attention and their
layers: each runs once on NumPy arrays and once on device arrays; every output, gradient and cache entry must be
a device array with the CPU run's values, and a layer's forward and backward must never read a value back.
"""
import copy

import fake_cupy
import numpy as np
import pytest
from test_fake_device import assert_on_device, assert_same, forward_backward, run_pair, to_dev

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
    forward, backward, args, kwargs = CASES[name]
    host = run_pair(forward, backward, args, kwargs)
    device = run_pair(forward, backward, to_dev(args, cp), kwargs)
    assert_same(host[0], device[0], f"{name} forward")
    assert_same(host[1], device[1], f"{name} backward")
    assert_same(host[2], device[2], f"{name} cache")


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
    }


MODULES = ["RMSNorm", "SiLU", "SwiGLUFeedForward", "GroupedQueryAttention"]


@pytest.mark.parametrize("name", MODULES)
def test_module_to_cuda_matches_cpu_without_reading_back(cp, name):
    make, args, kwargs = _module_cases()[name]
    host_module = make()
    device_module = copy.deepcopy(host_module).to("cuda")
    for param in device_module.parameters():
        assert isinstance(param.data, fake_cupy.ndarray)
    # dropout on: the device Generator is seeded from the host one, so only where the arrays live is compared
    assert_on_device(forward_backward(device_module, to_dev(args, cp), to_dev(kwargs, cp)), name)
    # dropout off: the same numbers, and not one value read back to the host
    host_module.eval().zero_grad()
    device_module.eval().zero_grad()
    host = forward_backward(host_module, args, kwargs)
    fake_cupy.reset_counts()
    device = forward_backward(device_module, to_dev(args, cp), to_dev(kwargs, cp))
    assert fake_cupy.SYNC_SITES == [], f"{name}: host syncs {fake_cupy.SYNC_SITES}"
    assert_same(host, device, name)


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
    }
    for relative, names in expected.items():
        everything = relative.split("/")[0] in guard.FULLY_COMPUTE
        assert everything or relative.split("/")[0] in guard.PARTLY_COMPUTE
        tree = ast.parse((guard.PACKAGE / relative).read_text())
        scanned = {function.name for function in guard.compute_functions(tree, everything)}
        assert names <= scanned, f"{relative}: {sorted(names - scanned)} not scanned"
        assert [call for function in guard.compute_functions(tree, everything)
                for call in guard.numpy_calls(function) if call[1] not in guard.ALLOWED] == []

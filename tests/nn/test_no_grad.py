"""``no_grad()``: inference without backward caches.

Under it the functional pairs return no cache and the modules keep none, the outputs are the same numbers as
outside it (bit for bit: the in-place forms compute the same operations), a backward pass is refused with an
error that names no_grad, and the mode nests, restores itself after an exception and belongs to one thread.
"""
import threading

import numpy as np
import pytest

import numpy_transformer as nt
from numpy_transformer import functional as F
from numpy_transformer import nn
from numpy_transformer.grad_mode import check_cache


# ------------------------------------------------------------------------------------------ the mode itself
def test_no_grad_nests_restores_and_decorates():
    assert nt.is_grad_enabled()
    with nt.no_grad():
        assert not nt.is_grad_enabled()
        with nt.enable_grad():
            assert nt.is_grad_enabled()
            with nt.no_grad():
                assert not nt.is_grad_enabled()
            assert nt.is_grad_enabled()
        assert not nt.is_grad_enabled()
    assert nt.is_grad_enabled()

    with pytest.raises(KeyError):
        with nt.no_grad():
            raise KeyError("inside")
    assert nt.is_grad_enabled()                                  # restored after the exception

    @nt.no_grad()
    def depth(n):
        assert not nt.is_grad_enabled()
        return 0 if n == 0 else 1 + depth(n - 1)                 # the same decorator entered recursively

    assert depth(3) == 3 and nt.is_grad_enabled()


def test_the_mode_belongs_to_its_thread():
    seen = []
    with nt.no_grad():
        thread = threading.Thread(target=lambda: seen.append(nt.is_grad_enabled()))
        thread.start()
        thread.join()
        assert not nt.is_grad_enabled()
    assert seen == [True]


def test_check_cache_names_no_grad():
    with pytest.raises(RuntimeError, match="layernorm_backward.*no_grad"):
        check_cache("layernorm_backward", None)
    check_cache("layernorm_backward", {})                        # a cache passes


# ------------------------------------------------------------------------------------------ functional pairs
def _functional_cases(dtype):
    g = np.random.default_rng(0)
    r = lambda *shape: g.standard_normal(shape).astype(dtype)  # noqa: E731
    q, k, v = r(2, 2, 3, 4), r(2, 2, 5, 4), r(2, 2, 5, 3)
    mask = np.zeros((3, 5), dtype=bool)
    mask[1] = True                                              # a fully masked query row
    return {
        "linear": (F.linear_forward, F.linear_backward, (r(2, 3, 4), r(5, 4), r(5)), {}),
        "relu": (F.relu_forward, F.relu_backward, (r(2, 3, 4),), {}),
        "gelu": (F.gelu_forward, F.gelu_backward, (r(2, 3, 40),), {}),
        "gelu_tanh": (F.gelu_forward, F.gelu_backward, (r(2, 3, 4),), dict(approximate="tanh")),
        "activation": (F.activation_forward, F.activation_backward, (r(2, 3, 4), "gelu"), {}),
        "layernorm": (F.layernorm_forward, F.layernorm_backward, (r(2, 3, 7), r(7), r(7)), {}),
        "softmax": (F.softmax_forward, F.softmax_backward, (r(2, 3, 5),), dict(axis=1)),
        "log_softmax": (F.log_softmax_forward, F.log_softmax_backward, (r(2, 3, 5),), {}),
        "attention": (F.scaled_dot_product_attention_forward, F.scaled_dot_product_attention_backward,
                      (q, k, v, mask), dict(is_causal=True)),
        "blocked_attention": (F.blocked_attention_forward, F.blocked_attention_backward, (q, k, v, mask),
                              dict(query_block=2, key_block=2)),
        "feedforward": (F.feedforward_forward, F.feedforward_backward, (r(2, 3, 4), r(6, 4), r(6), r(4, 6), r(4)),
                        dict(activation="gelu")),
    }


FUNCTIONAL = [(name, dtype) for name in sorted(_functional_cases(np.float64)) for dtype in (np.float64, np.float32)]
FUNCTIONAL += [(name, np.float16) for name in ("gelu", "layernorm", "relu", "softmax")]  # their float16 paths


@pytest.mark.parametrize(("name", "dtype"), FUNCTIONAL)
def test_functional_pair_under_no_grad(name, dtype):
    forward, backward, args, kwargs = _functional_cases(dtype)[name]
    copies = [a.copy() if hasattr(a, "copy") else a for a in args]
    *expected, cache = forward(*args, **kwargs)
    with nt.no_grad():
        *outs, no_cache = forward(*args, **kwargs)
    assert no_cache is None
    for out, want in zip(outs, expected, strict=True):
        np.testing.assert_array_equal(out, want)                 # the same numbers, bit for bit
        assert out.dtype == want.dtype
    for arg, copy in zip(args, copies, strict=True):
        if hasattr(arg, "shape"):
            np.testing.assert_array_equal(arg, copy)             # the inputs are never written into
    with pytest.raises(RuntimeError, match="no_grad"):
        backward(np.ones_like(outs[0]), no_cache)
    backward(np.ones_like(expected[0]), cache)                   # the cache of a normal forward still works


# ------------------------------------------------------------------------------------------ modules and models
def _caches(module):
    """(module name, attribute, value) of every ``*_cache`` attribute in the tree that holds something."""
    return [(name, attribute, value) for name, sub in module.named_modules()
            for attribute, value in vars(sub).items() if attribute.endswith("_cache") and value is not None]


def _models():
    from numpy_transformer.models import GPT, Seq2SeqTransformer, VisionTransformer
    from numpy_transformer.models.bert import BertClassifier, BertConfig, BertModel
    from numpy_transformer.models.distilbert import DistilBertConfig, DistilBertModel
    from numpy_transformer.models.llama import LlamaConfig, LlamaForCausalLM

    g = np.random.default_rng(5)
    src, tgt = g.integers(1, 11, (2, 5)), g.integers(1, 9, (2, 4))
    src[0, -2:] = 0
    text = g.integers(1, 13, (2, 6))
    attention_mask = np.ones((2, 6), dtype=np.int64)
    attention_mask[1, -2:] = 0
    config = BertConfig(vocab_size=13, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=12, max_position_embeddings=16)
    padding = np.array([[False, False, False, True, True], [False] * 5])
    distilbert = DistilBertConfig(vocab_size=13, dim=8, n_layers=2, n_heads=2, hidden_dim=12,
                                  max_position_embeddings=16)
    llama = LlamaConfig(vocab_size=13, hidden_size=8, intermediate_size=12, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
    return {
        "encoder layer": (lambda: nn.TransformerEncoderLayer(6, 2, 7, activation="gelu", batch_first=True, rng=0),
                          (g.standard_normal((2, 5, 6)).astype(np.float32),), dict(src_key_padding_mask=padding)),
        "decoder layer, pre-norm, seq-first": (
            lambda: nn.TransformerDecoderLayer(6, 2, 7, norm_first=True, rng=0),
            (g.standard_normal((3, 2, 6)).astype(np.float32), g.standard_normal((5, 2, 6)).astype(np.float32)),
            dict(tgt_is_causal=True, tgt_mask=nn.Transformer.generate_square_subsequent_mask(3))),
        "translator": (lambda: Seq2SeqTransformer(11, 9, 8, 2, 1, 1, 12, rng=0), (src, tgt), {}),
        "gpt": (lambda: GPT(13, 8, 2, 2, max_len=16, rng=0), (text,), {}),
        "vit": (lambda: VisionTransformer(4, 2, 3, 5, 8, 2, 1, 12, rng=0),
                (g.standard_normal((2, 3, 4, 4)).astype(np.float32),), {}),
        "bert": (lambda: BertModel(config, rng=0), (text, attention_mask), {}),
        "bert classifier": (lambda: BertClassifier(BertModel(config, rng=0), num_labels=3, rng=1),
                            (text, attention_mask), {}),
        "distilbert": (lambda: DistilBertModel(distilbert, rng=0), (text, attention_mask), {}),
        "llama": (lambda: LlamaForCausalLM(llama, rng=0), (text,), {}),
    }


@pytest.mark.parametrize("name", sorted(_models()))
def test_model_under_no_grad_keeps_nothing_and_refuses_backward(name):
    make, args, kwargs = _models()[name]
    model = make().eval()
    expected = model(*args, **kwargs)
    assert _caches(model), "a normal forward keeps caches"
    with nt.no_grad():
        out = model(*args, **kwargs)
    np.testing.assert_array_equal(out, expected)                 # the same numbers, bit for bit
    assert _caches(model) == []                                  # no cache anywhere in the tree
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(out))
    again = model(*args, **kwargs)                               # outside no_grad: caches and backward again
    np.testing.assert_array_equal(again, expected)
    model.backward(np.ones_like(again))


def test_blocked_attention_module_under_no_grad():
    attention = nn.MultiheadAttention(8, 2, batch_first=True, rng=0, attention="blocked")
    x = np.random.default_rng(1).standard_normal((2, 9, 8)).astype(np.float32)
    expected, _ = attention(x, x, x, need_weights=False, is_causal=True)
    with nt.no_grad():
        out, _ = attention(x, x, x, need_weights=False, is_causal=True)
    np.testing.assert_array_equal(out, expected)
    assert attention._cache is None
    with pytest.raises(RuntimeError, match="no_grad"):
        attention.backward(out)


def test_inference_memory_is_that_of_one_layer():
    """A 4-layer BERT forward under no_grad holds at most a layer's arrays: its peak (tracemalloc) is far
    below a normal forward's, which keeps every layer's caches."""
    import tracemalloc

    from numpy_transformer.models.bert import BertConfig, BertModel

    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64)
    model = BertModel(config, rng=0).eval()
    ids = np.random.default_rng(2).integers(1, 50, (4, 64))

    def peak(run):
        model(ids)                                               # warm: tables, first-use set-up
        tracemalloc.start()
        run()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    normal = peak(lambda: model(ids))
    with nt.no_grad():
        inference = peak(lambda: model(ids))
    assert inference < normal / 2, (inference, normal)


def test_decoding_keeps_no_backward_caches_and_restores_the_mode():
    """generate, greedy_decode and beam_search run under no_grad (as transformers' generate runs under
    torch.no_grad): after them no layer holds a backward cache, and the caller's mode is back."""
    from numpy_transformer.models import GPT, Seq2SeqTransformer
    from numpy_transformer.models.generation import generate

    gpt = GPT(13, 8, 2, 2, max_len=16, rng=0)
    prompt = np.random.default_rng(3).integers(1, 13, (2, 3))
    with_cache, without = generate(gpt, prompt, 4, temperature=0), generate(gpt, prompt, 4, temperature=0,
                                                                            use_cache=False)
    np.testing.assert_array_equal(with_cache, without)
    assert _caches(gpt) == [] and nt.is_grad_enabled()
    translator = Seq2SeqTransformer(11, 9, 8, 2, 1, 1, 12, rng=0)
    src = np.random.default_rng(4).integers(3, 11, (2, 5))
    translator.greedy_decode(src, max_len=4, bos_id=1, eos_id=2)
    translator.beam_search(src, beam_width=2, max_len=4, bos_id=1, eos_id=2)
    assert _caches(translator) == [] and nt.is_grad_enabled()
    logits = gpt(prompt)                                         # training goes on as before afterwards
    gpt.backward(np.ones_like(logits))

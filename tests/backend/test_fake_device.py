"""Every compute path keeps its arrays on the device, proven without a GPU.

The fake CuPy of ``fake_cupy.py`` plays the device: its arrays refuse every implicit trip to the host (a NumPy
call on them, ``np.asarray``, mixing with a host array) and count every value read back (``float(x)``,
``bool(x)`` ...). Each test runs the same code twice, once on NumPy arrays and once on device arrays, and
checks that every output, gradient and cache entry is a device array whose values equal the CPU run's
(the fake computes with NumPy, so float64 results agree to 1e-12 and in practice exactly).
"""
import copy

import fake_cupy
import numpy as np
import pytest

from numpy_transformer import functional as F

TIGHT = dict(rtol=1e-12, atol=1e-14)


@pytest.fixture
def cp():
    with fake_cupy.install() as module:
        yield module


def to_dev(tree, cp):
    """Host arrays -> device arrays, inside tuples, lists and dicts; everything else unchanged."""
    if isinstance(tree, np.ndarray):
        return cp.asarray(tree)
    if isinstance(tree, (tuple, list)):
        return type(tree)(to_dev(item, cp) for item in tree)
    if isinstance(tree, dict):
        return {key: to_dev(value, cp) for key, value in tree.items()}
    return tree


def assert_same(host, device, what="output"):
    """``device`` mirrors ``host``: each host array is a device array there, with the same values."""
    if isinstance(host, np.ndarray):
        assert isinstance(device, fake_cupy.ndarray), f"{what}: got {type(device).__name__}; expected a device array"
        value = device.get()
        assert value.dtype == host.dtype and value.shape == host.shape, f"{what}: {value.dtype}{value.shape}"
        np.testing.assert_allclose(value, host, err_msg=what, **TIGHT)
    elif isinstance(host, (tuple, list)):
        assert len(host) == len(device), what
        for number, (h, d) in enumerate(zip(host, device, strict=True)):
            assert_same(h, d, f"{what}[{number}]")
    elif isinstance(host, dict):
        for key in host:
            assert_same(host[key], device[key], f"{what}[{key!r}]")
    else:
        assert not isinstance(device, fake_cupy.ndarray) or device.shape == (), what


def assert_on_device(tree, what="output"):
    """No host array anywhere in ``tree`` (for runs whose random numbers differ from the CPU's)."""
    if isinstance(tree, (tuple, list)):
        for number, item in enumerate(tree):
            assert_on_device(item, f"{what}[{number}]")
    elif isinstance(tree, dict):
        for key, item in tree.items():
            assert_on_device(item, f"{what}[{key!r}]")
    else:
        assert not isinstance(tree, np.ndarray), f"{what}: a host array {tree.shape} where a device array belongs"


# ------------------------------------------------------------------------------------------ (a) functional
def _cases():
    g = np.random.default_rng(0)
    r = lambda *shape: g.standard_normal(shape)  # noqa: E731
    ids = np.array([[1, 4, 0], [5, 2, 1]])
    bool_mask = np.zeros((3, 5), dtype=bool)
    bool_mask[1] = True                                   # one query row sees no key
    bool_mask[2, :2] = True
    float_mask = np.where(g.random((3, 5)) < 0.3, -np.inf, r(3, 5))
    q, k, v = r(2, 2, 3, 4), r(2, 2, 5, 4), r(2, 2, 5, 3)
    targets = np.array([[1, -100, 4], [0, 2, 3]])
    cases = {
        "linear": (F.linear_forward, F.linear_backward, (r(2, 3, 4), r(5, 4), r(5)), {}),
        "linear_nobias": (F.linear_forward, F.linear_backward,
                          (r(2, 3, 4).astype(np.float32), r(5, 4).astype(np.float32)), {}),
        "embedding": (F.embedding_forward, F.embedding_backward, (ids, r(6, 4)), dict(padding_idx=1)),
        "positional": (F.positional_encoding_forward, F.positional_encoding_backward, (r(2, 3, 4), r(9, 4)),
                       dict(offset=2)),
        "softmax": (F.softmax_forward, F.softmax_backward, (r(2, 3, 5),), dict(axis=1)),
        "log_softmax": (F.log_softmax_forward, F.log_softmax_backward, (r(2, 3, 5),), {}),
        "attention": (F.scaled_dot_product_attention_forward, F.scaled_dot_product_attention_backward, (q, k, v), {}),
        "attention_bool_mask": (F.scaled_dot_product_attention_forward, F.scaled_dot_product_attention_backward,
                                (q, k, v, bool_mask), dict(scale=0.7)),
        "attention_float_mask": (F.scaled_dot_product_attention_forward, F.scaled_dot_product_attention_backward,
                                 (q, k, v, float_mask), {}),
        "attention_causal_dropout": (F.scaled_dot_product_attention_forward, F.scaled_dot_product_attention_backward,
                                     (q, k, v), dict(is_causal=True, dropout_p=0.3, rng=7)),
        "blocked_attention_causal": (F.blocked_attention_forward, F.blocked_attention_backward, (q, k, v),
                                     dict(is_causal=True, query_block=2, key_block=2)),
        "blocked_attention_bool_mask": (F.blocked_attention_forward, F.blocked_attention_backward,
                                        (q, k, v, bool_mask), dict(scale=0.7, query_block=2, key_block=3)),
        "blocked_attention_float_mask": (F.blocked_attention_forward, F.blocked_attention_backward,
                                         (q, k, v, float_mask), dict(query_block=3, key_block=2)),
        "split_heads": (F.split_heads_forward, F.split_heads_backward, (r(2, 3, 6), 2), {}),
        "merge_heads": (F.merge_heads_forward, F.merge_heads_backward, (r(2, 2, 3, 4),), {}),
        "relu": (F.relu_forward, F.relu_backward, (r(2, 3, 4),), {}),
        "gelu": (F.gelu_forward, F.gelu_backward, (r(2, 3, 4),), {}),
        "gelu_float32_table": (F.gelu_forward, F.gelu_backward, ((3 * r(2, 3, 40)).astype(np.float32),), {}),
        "gelu_tanh": (F.gelu_forward, F.gelu_backward, (r(2, 3, 4).astype(np.float32),), dict(approximate="tanh")),
        "activation": (F.activation_forward, F.activation_backward, (r(2, 3, 4), "gelu_tanh"), {}),
        "feedforward": (F.feedforward_forward, F.feedforward_backward, (r(2, 3, 4), r(6, 4), r(6), r(4, 6), r(4)),
                        dict(activation="gelu", dropout_p=0.25, rng=3)),
        "layernorm": (F.layernorm_forward, F.layernorm_backward, (r(2, 3, 4), r(4), r(4)), {}),
        "layernorm_float32": (F.layernorm_forward, F.layernorm_backward,
                              tuple(a.astype(np.float32) for a in (r(2, 3, 4), r(4), r(4))), {}),
        "dropout": (F.dropout_forward, F.dropout_backward, (r(2, 3, 4),), dict(p=0.4, rng=5)),
        "dropout_eval": (F.dropout_forward, F.dropout_backward, (r(2, 3, 4),), dict(p=0.4, training=False)),
        "patchify": (F.patchify_forward, F.patchify_backward, (r(2, 3, 4, 6), 2), {}),
        "unpatchify": (F.unpatchify_forward, F.unpatchify_backward, (r(2, 6, 12),),
                       dict(image_shape=(3, 4, 6), patch_size=2)),
        "cross_entropy": (F.cross_entropy_forward, F.cross_entropy_backward, (r(2, 3, 5), targets),
                          dict(label_smoothing=0.1)),
    }
    return cases


CASES = _cases()


def run_pair(forward, backward, args, kwargs):
    *outs, cache = forward(*args, **kwargs)
    upstream = np.random.default_rng(1).standard_normal(outs[0].shape).astype(outs[0].dtype)
    on_device = isinstance(outs[0], fake_cupy.ndarray)
    dout = 1.0 if outs[0].shape == () else to_dev(upstream, fake_cupy) if on_device else upstream
    return outs, backward(dout, cache), cache


def check_pair_on_device(cp, forward, backward, args, kwargs, name: str) -> None:
    """A functional pair run on host and on device arrays: the same outputs, gradients and cache entries, the
    device run's all device arrays."""
    host = run_pair(forward, backward, args, kwargs)
    device = run_pair(forward, backward, to_dev(args, cp), kwargs)
    assert_same(host[0], device[0], f"{name} forward")
    assert_same(host[1], device[1], f"{name} backward")
    assert_same(host[2], device[2], f"{name} cache")


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_pair_stays_on_device(cp, name):
    check_pair_on_device(cp, *CASES[name], name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_forward_under_no_grad_stays_on_device(cp, name):
    """no_grad(): the forward's in-place forms on the device give the host's numbers, and no cache."""
    from numpy_transformer import no_grad

    forward, _, args, kwargs = CASES[name]
    with no_grad():
        host = forward(*args, **kwargs)
        device = forward(*to_dev(args, cp), **kwargs)
    assert_same(host[:-1], device[:-1], f"{name} forward under no_grad")
    if name in NO_GRAD_CACHELESS:
        assert host[-1] is None and device[-1] is None


#: the pairs whose forward keeps nothing under no_grad (the others' caches are dropped by their modules)
NO_GRAD_CACHELESS = {name for name in CASES if name.split("_")[0] in (
    "linear", "softmax", "log", "attention", "blocked", "relu", "gelu", "activation", "feedforward", "layernorm")}


def test_tables_and_masks_are_built_on_the_device(cp):
    assert_same(F.sinusoidal_table(7, 5, dtype=np.float64), F.sinusoidal_table(7, 5, dtype=np.float64, xp=cp))
    assert_same(F.causal_mask(3, 5), F.causal_mask(3, 5, xp=cp))


def test_the_fake_device_refuses_host_trips(cp):
    x = cp.asarray(np.arange(6.0).reshape(2, 3))
    for host_trip in (lambda: np.exp(x), lambda: np.asarray(x), lambda: x + np.ones(3), lambda: np.sum(x)):
        with pytest.raises(TypeError, match="implicit conversion"):
            host_trip()
    assert isinstance(x.sum(), fake_cupy.ndarray) and fake_cupy.COUNTS["sync"] == 0
    assert float(x.max()) == 5.0 and fake_cupy.COUNTS["sync"] == 1


# ------------------------------------------------------------------------------------------ (b) modules
def _module_cases():
    from numpy_transformer import nn

    g = np.random.default_rng(2)
    r = lambda *shape: g.standard_normal(shape)  # noqa: E731
    f64 = np.float64
    cases = {
        "Linear": (lambda: nn.Linear(4, 5, dtype=f64, rng=0), (r(2, 3, 4),), {}),
        "Embedding": (lambda: nn.Embedding(6, 4, padding_idx=0, dtype=f64, rng=0),
                      (np.array([[1, 0, 5], [2, 3, 3]]),), {}),
        "LayerNorm": (lambda: nn.LayerNorm(4, dtype=f64), (r(2, 3, 4),), {}),
        "Dropout": (lambda: nn.Dropout(0.3, rng=np.random.default_rng(4)), (r(2, 3, 4),), {}),
        "GELU": (lambda: nn.GELU(), (r(2, 3, 4),), {}),
        "PositionalEncoding": (lambda: nn.PositionalEncoding(4, max_len=9, kind="learned", dropout=0.2, dtype=f64,
                                                             rng=1),
                               (r(2, 3, 4),), dict(offset=1)),
        "PatchEmbedding": (lambda: nn.PatchEmbedding(4, 2, 3, 5, dtype=f64, rng=0), (r(2, 3, 4, 4),), {}),
    }
    padding = np.array([[False, False, False, True, True], [False] * 5])
    cases["MultiheadAttention"] = (lambda: nn.MultiheadAttention(6, 2, dropout=0.2, batch_first=True, dtype=f64,
                                                                 rng=0),
                                   (r(2, 3, 6), r(2, 5, 6), r(2, 5, 6)), dict(key_padding_mask=padding))
    cases["TransformerEncoderLayer"] = (
        lambda: nn.TransformerEncoderLayer(6, 2, 7, dropout=0.1, activation="gelu", batch_first=True, dtype=f64,
                                           rng=0),
        (r(2, 5, 6),), dict(src_key_padding_mask=padding))
    cases["TransformerDecoderLayer"] = (
        lambda: nn.TransformerDecoderLayer(6, 2, 7, dropout=0.1, norm_first=True, batch_first=True, dtype=f64,
                                           rng=0),
        (r(2, 3, 6), r(2, 5, 6)),
        dict(tgt_is_causal=True, tgt_mask=nn.Transformer.generate_square_subsequent_mask(3),
             memory_key_padding_mask=padding))
    cases["Transformer"] = (
        lambda: nn.Transformer(6, 2, 2, 2, 7, dropout=0.1, batch_first=True, dtype=f64, rng=0),
        (r(2, 5, 6), r(2, 3, 6)), dict(tgt_mask=nn.Transformer.generate_square_subsequent_mask(3),
                                       src_key_padding_mask=padding, memory_key_padding_mask=padding))
    return cases


MODULES = ["Linear", "Embedding", "LayerNorm", "Dropout", "GELU", "PositionalEncoding", "PatchEmbedding",
           "MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "Transformer"]


def forward_backward(module, args, kwargs):
    out = module(*args, **kwargs)
    main = out[0] if isinstance(out, tuple) else out
    upstream = np.random.default_rng(3).standard_normal(main.shape).astype(main.dtype)
    if isinstance(main, fake_cupy.ndarray):
        upstream = fake_cupy.asarray(upstream)
    grads = module.backward(upstream)
    return out, grads, {name: p.grad for name, p in module.named_parameters()}


def check_module_on_device(cp, make, args, kwargs, name: str) -> None:
    """A module moved to the device: its parameters there, every output and gradient a device array; with
    dropout off the CPU run's numbers without one value read back to the host; and back on the CPU, the same
    state_dict."""
    host_module = make()
    device_module = copy.deepcopy(host_module).to("cuda")
    for p in device_module.parameters():
        assert isinstance(p.data, fake_cupy.ndarray)
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
    back_on_cpu = device_module.to("cpu").state_dict()
    for key, value in host_module.state_dict().items():
        np.testing.assert_array_equal(back_on_cpu[key], value, err_msg=f"{name} back on cpu: {key}")


@pytest.mark.parametrize("name", MODULES)
def test_module_to_cuda_matches_cpu(cp, name):
    make, args, kwargs = _module_cases()[name]
    check_module_on_device(cp, make, args, kwargs, name)


# ------------------------------------------------------------------------------------------ (c) one training step
def _model_cases(dropout=0.0):
    g = np.random.default_rng(5)
    ids = lambda high, *shape: g.integers(1, high, shape)  # noqa: E731
    cases = {}
    from numpy_transformer.models import GPT, Seq2SeqTransformer, TransformerClassifier, VisionTransformer
    from numpy_transformer.models.bert import BertClassifier, BertConfig, BertModel

    src, tgt = ids(11, 2, 5), ids(9, 2, 5)
    src[0, -2:] = 0                                         # padding
    cases["translator"] = (lambda: Seq2SeqTransformer(11, 9, 8, 2, 1, 1, 12, dropout=dropout, label_smoothing=0.1,
                                                      rng=0),
                           (src, tgt[:, :-1]), tgt[:, 1:], "loss")
    text = ids(13, 2, 6)
    cases["gpt"] = (lambda: GPT(13, 8, 2, 2, dropout=dropout, max_len=16, rng=0), (text[:, :-1],), text[:, 1:], "loss")
    cases["vit"] = (lambda: VisionTransformer(4, 2, 3, 5, 8, 2, 1, 12, dropout=dropout, rng=0),
                    (g.standard_normal((2, 3, 4, 4)).astype(np.float32),), np.array([1, 4]), None)
    cases["classifier"] = (lambda: TransformerClassifier(13, 3, 8, 2, 1, 12, dropout=dropout, rng=0),
                           (text,), np.array([2, 0]), "loss")
    config = BertConfig(vocab_size=13, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=12, max_position_embeddings=16, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout)
    cases["bert"] = (lambda: BertClassifier(BertModel(config, rng=0), num_labels=3, rng=1),
                     (text,), np.array([2, 0]), None)
    return cases


MODELS = ["translator", "gpt", "vit", "classifier", "bert"]


def train_step(model, inputs, targets, loss_method):
    from numpy_transformer.optim import AdamW, clip_grad_norm_

    optimizer = AdamW(model.parameters(), lr=1e-2)
    model.train()
    fake_cupy.reset_counts()
    logits = model(*inputs)
    if loss_method:
        loss, dlogits = getattr(model, loss_method)(logits, targets)
    else:
        loss, cache = F.cross_entropy_forward(logits, targets)
        dlogits = F.cross_entropy_backward(1.0, cache)
    model.backward(dlogits)
    norm = clip_grad_norm_(model.parameters(), 0.5)
    optimizer.step()
    syncs = list(fake_cupy.SYNC_SITES)
    grads = {name: p.grad for name, p in model.named_parameters()}
    return (logits, loss, norm, grads, {name: p.data for name, p in model.named_parameters()}), syncs


def _run_model(cp, name, dropout):
    make, inputs, targets, loss_method = _model_cases(dropout)[name]
    host_model = make()
    device_model = copy.deepcopy(host_model).to("cuda")
    host, _ = train_step(host_model, inputs, targets, loss_method)
    device, syncs = train_step(device_model, to_dev(inputs, cp), to_dev(targets, cp), loss_method)
    return host, device, syncs


@pytest.mark.parametrize("name", MODELS)
def test_training_step_on_device_matches_cpu(cp, name):
    host, device, _ = _run_model(cp, name, dropout=0.0)
    assert_same(host[:3], device[:3], f"{name} logits, loss, gradient norm")
    assert_same(host[3], device[3], f"{name} gradients")
    assert_same(host[4], device[4], f"{name} parameters after the step")
    _, device, _ = _run_model(cp, name, dropout=0.1)
    assert_on_device(device, f"{name} with dropout")


@pytest.mark.parametrize("name", MODELS)
def test_inference_under_no_grad_on_device_matches_cpu(cp, name):
    from numpy_transformer import no_grad

    make, inputs, _, _ = _model_cases()[name]
    host_model = make().eval()
    device_model = copy.deepcopy(host_model).to("cuda")
    fake_cupy.reset_counts()
    with no_grad():
        host, device = host_model(*inputs), device_model(*to_dev(inputs, cp))
    assert_same(host, device, f"{name} under no_grad")
    assert fake_cupy.SYNC_SITES == [], fake_cupy.SYNC_SITES


@pytest.mark.parametrize("name", MODELS)
def test_training_step_never_waits_for_the_device(cp, name):
    _, _, syncs = _run_model(cp, name, dropout=0.1)
    assert syncs == [], f"{len(syncs)} host syncs in one step: {syncs}"


# ------------------------------------------------------------------------------------------ (d) checkpoints
def test_checkpoint_from_the_device_loads_on_cpu(cp, tmp_path):
    from numpy_transformer.io.checkpoint import load_checkpoint, save_checkpoint
    from numpy_transformer.nn import LayerNorm, Linear, Module

    class Small(Module):
        def __init__(self):
            super().__init__()
            self.norm, self.proj = LayerNorm(4), Linear(4, 3, rng=0)

    model = Small().to("cuda")
    model.proj.weight.data *= 3.0
    save_checkpoint(tmp_path / "small.npz", model, config={"width": 4})
    fresh = Small()
    assert load_checkpoint(tmp_path / "small.npz", fresh) == {"width": 4}
    np.testing.assert_array_equal(fresh.proj.weight.data, model.proj.weight.data.get())
    assert type(fresh.proj.weight.data) is np.ndarray


def test_optimizer_follows_the_parameters_without_to(cp):
    """Optimizer state is made lazily like the parameters, so a model moved before the first step needs no
    ``optimizer.to``; a state dict saved from the device loads back and keeps stepping there."""
    from numpy_transformer.nn import Linear
    from numpy_transformer.optim import AdamW

    layer = Linear(3, 2, rng=0).to("cuda")
    optimizer = AdamW(layer.parameters())
    layer(cp.ones((4, 3), dtype=np.float32))
    layer.backward(cp.ones((4, 2), dtype=np.float32))
    optimizer.step()
    assert all(isinstance(v, fake_cupy.ndarray) for s in optimizer.state.values() for v in s.values())


def test_optimizer_to_moves_state_of_a_model_moved_mid_training(cp):
    """Steps on the CPU, then model.to("cuda") and optimizer.to("cuda"): the next step runs on the device and
    equals the same step taken on the CPU; optimizer.to("cpu") brings the state back."""
    from numpy_transformer.nn import Linear
    from numpy_transformer.optim import AdamW

    def train(layer, optimizer, ones):
        layer.zero_grad()
        layer(ones((4, 3), dtype=np.float32))
        layer.backward(ones((4, 2), dtype=np.float32))
        optimizer.step()

    host_layer, moved_layer = Linear(3, 2, rng=0), Linear(3, 2, rng=0)
    host_optimizer, moved_optimizer = AdamW(host_layer.parameters()), AdamW(moved_layer.parameters())
    for _ in range(2):
        train(host_layer, host_optimizer, np.ones)
        train(moved_layer, moved_optimizer, np.ones)
    moved_layer.to("cuda")
    assert moved_optimizer.to("cuda") is moved_optimizer
    assert all(isinstance(v, fake_cupy.ndarray) for s in moved_optimizer.state.values() for v in s.values())
    train(host_layer, host_optimizer, np.ones)
    train(moved_layer, moved_optimizer, cp.ones)
    assert_same(host_layer.weight.data, moved_layer.weight.data, "weight after a step on the device")
    moved_optimizer.to("cpu")
    assert all(type(v) is np.ndarray for s in moved_optimizer.state.values() for v in s.values())


def test_optimizer_state_loads_onto_the_parameters_device(cp):
    from numpy_transformer.nn import Linear
    from numpy_transformer.optim import AdamW

    layer = Linear(3, 2, rng=0).to("cuda")
    optimizer = AdamW(layer.parameters())
    layer(cp.ones((4, 3), dtype=np.float32))
    layer.backward(cp.ones((4, 2), dtype=np.float32))
    optimizer.step()
    optimizer.load_state_dict(optimizer.state_dict())
    assert all(isinstance(v, fake_cupy.ndarray) for s in optimizer.state.values() for v in s.values())
    optimizer.step()
    assert isinstance(layer.weight.data, fake_cupy.ndarray)


# ------------------------------------------------------------------------------------------ (e) decoding
def _decode(cp):
    cases = _model_cases()
    translator, gpt = cases["translator"][0](), cases["gpt"][0]()
    src, prompt = cases["translator"][1][0], cases["gpt"][1][0][:, :2]
    host = (translator.greedy_decode(src, 4, 1, 2), gpt.generate(prompt, 3, temperature=0.0))
    translator.to("cuda")
    gpt.to("cuda")
    fake_cupy.reset_counts()
    tokens = translator.greedy_decode(to_dev(src, cp), 4, 1, 2)
    translator_syncs = list(fake_cupy.SYNC_SITES)
    fake_cupy.reset_counts()
    generated = gpt.generate(to_dev(prompt, cp), 3, temperature=0.0)
    return host, (tokens, generated), translator_syncs, list(fake_cupy.SYNC_SITES)


def test_greedy_decode_and_generate_run_on_the_device(cp):
    host, device, _, _ = _decode(cp)
    assert_same(host, device, "decoded ids")


#: the one documented read-back: greedy decoding checks ``finished.all()`` once per step to stop early
EOS_CHECK = "models/translator.py"


def test_decoding_reads_back_only_the_eos_check(cp):
    _, _, translator_syncs, gpt_syncs = _decode(cp)
    assert [site for site in translator_syncs if EOS_CHECK not in site[0]] == []
    assert gpt_syncs == []

"""The pretrained families, the key/value cache and the generation function keep their arrays on the device
(the fake CuPy of ``fake_cupy.py``): same numbers as on the CPU, and no read-back to the host."""
import copy

import fake_cupy
import numpy as np
import pytest
from test_fake_device import assert_same, to_dev

from numpy_transformer.functional.losses import (
    cross_entropy_backward,
    cross_entropy_forward,
)
from numpy_transformer.models import (
    GPT,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertModel,
    Seq2SeqTransformer,
    VisionTransformer,
)


@pytest.fixture
def cp():
    with fake_cupy.install() as module:
        yield module


def _gpt():
    return GPT(13, d_model=8, nhead=2, num_layers=2, max_len=16, dropout=0.0, activation="gelu_tanh", dtype=np.float64,
               rng=0)


def test_sampled_generation_with_padding_stays_on_the_device(cp):
    model = _gpt()
    prompt = np.array([[3, 4, 5], [0, 6, 7]])
    mask = np.array([[1, 1, 1], [0, 1, 1]])
    kwargs = dict(temperature=0.8, top_k=6, top_p=0.9, rng=4, return_logits=True)
    host_ids, host_logits = model.generate(prompt, 5, attention_mask=mask, **kwargs)
    model.to("cuda")
    fake_cupy.reset_counts()
    ids, logits = model.generate(to_dev(prompt, cp), 5, attention_mask=to_dev(mask, cp), **kwargs)
    assert fake_cupy.SYNC_SITES == []
    assert isinstance(ids, fake_cupy.ndarray) and ids.shape == host_ids.shape
    assert_same(host_logits[:, 0], logits[:, 0], "logits after the prompt")   # later steps follow device draws


def test_greedy_generation_and_recording_match_the_cpu(cp):
    model = _gpt()
    prompt = np.array([[3, 4, 5], [1, 6, 7]])
    host = model.generate(prompt, 6, temperature=0.0)
    host_record = model(prompt, output_hidden_states=True, output_attentions=True)
    model.to("cuda")
    fake_cupy.reset_counts()
    device = model.generate(to_dev(prompt, cp), 6, temperature=0.0)
    assert fake_cupy.SYNC_SITES == []
    assert_same(host, device, "greedy ids")
    record = model(to_dev(prompt, cp), output_hidden_states=True, output_attentions=True)
    assert_same((host_record.output, host_record.hidden_states, host_record.attentions),
                (record.output, record.hidden_states, record.attentions), "recorded states")


def test_beam_search_with_caches_on_the_device(cp):
    model = Seq2SeqTransformer(11, 9, 8, 2, 1, 2, 12, dropout=0.0, rng=0)
    src = np.array([[3, 4, 5, 0], [6, 7, 8, 9]])
    host = model.beam_search(src, beam_width=3, max_len=5, bos_id=1, eos_id=2)
    model.to("cuda")
    device = model.beam_search(to_dev(src, cp), beam_width=3, max_len=5, bos_id=1, eos_id=2)
    assert_same(host, device, "beam search")


def test_distilbert_classifier_training_step_stays_on_the_device(cp):
    config = DistilBertConfig(vocab_size=13, dim=8, n_layers=2, n_heads=2, hidden_dim=12, max_position_embeddings=8,
                              dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    host_model = DistilBertForSequenceClassification(DistilBertModel(config, rng=0), num_labels=3, rng=1)
    device_model = copy.deepcopy(host_model).to("cuda")
    ids = np.array([[1, 4, 5, 6], [2, 7, 3, 0]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]])
    labels = np.array([2, 0])

    def step(model, ids, mask, labels):
        fake_cupy.reset_counts()
        logits = model(ids, mask)
        loss, cache = cross_entropy_forward(logits, labels)
        model.backward(cross_entropy_backward(1.0, cache))
        return (logits, loss, {n: p.grad for n, p in model.named_parameters()}), list(fake_cupy.SYNC_SITES)

    host, _ = step(host_model, ids, mask, labels)
    device, syncs = step(device_model, to_dev(ids, cp), to_dev(mask, cp), to_dev(labels, cp))
    assert syncs == []
    assert_same(host, device, "DistilBERT classifier")


def test_vit_without_head_stays_on_the_device(cp):
    model = VisionTransformer(4, 2, 3, None, 8, 2, 1, 12, layer_norm_eps=1e-12, rng=0)
    images = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    host = model(images)
    host_grad = model.backward(np.ones_like(host))
    device_model = copy.deepcopy(model).to("cuda")
    device = device_model(to_dev(images, cp))
    assert_same((host, host_grad), (device, device_model.backward(cp.ones(device.shape, dtype=np.float32))), "ViT")

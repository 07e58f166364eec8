"""The generation function: sampling filters against transformers' warpers, draws that follow the
distribution, the protocol, and cached decoding equal to recomputation for GPT and the translator."""
import numpy as np
import pytest

from numpy_transformer.functional.softmax import log_softmax_forward, softmax_forward
from numpy_transformer.models import GPT, Seq2SeqTransformer
from numpy_transformer.models.generation import (
    filter_logits,
    generate,
    sample_next_token,
)
from reference import assert_close, require


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 5, None), (0.7, None, 0.9), (1.3, 8, 0.5),
                                                     (1.0, None, 0.01), (2.0, 1, None)])
def test_filters_match_transformers_warpers(rng, temperature, top_k, top_p):
    torch = require("torch")
    processing = require("transformers.generation.logits_process")
    logits = rng.standard_normal((6, 30)) * 3
    ours = filter_logits(logits, temperature, top_k, top_p)
    theirs = torch.tensor(logits)
    warpers = [processing.TemperatureLogitsWarper(temperature)]
    if top_k is not None:
        warpers.append(processing.TopKLogitsWarper(top_k))
    if top_p is not None:
        warpers.append(processing.TopPLogitsWarper(top_p))
    for warper in warpers:
        theirs = warper(None, theirs)
    theirs = theirs.numpy()
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
    kept = np.isfinite(theirs)
    np.testing.assert_allclose(ours[kept], theirs[kept], rtol=1e-14)


def test_samples_follow_the_filtered_distribution(rng):
    logits = np.log(np.array([[0.5, 0.25, 0.15, 0.07, 0.03]]))
    many = np.repeat(logits, 20000, axis=0)
    generator = np.random.default_rng(0)
    drawn = sample_next_token(many, temperature=1.0, top_p=0.8, generator=generator)
    assert set(np.unique(drawn)) == {0, 1, 2}                     # the nucleus of mass 0.8: 0.5 + 0.25 + 0.15
    expected = np.array([0.5, 0.25, 0.15]) / 0.9
    frequencies = np.bincount(drawn, minlength=3)[:3] / drawn.size
    np.testing.assert_allclose(frequencies, expected, atol=0.015)
    probs, _ = softmax_forward(filter_logits(logits, 1.0, None, 0.8), axis=-1)
    np.testing.assert_allclose(probs[0, :3], expected, rtol=1e-12)
    greedy = sample_next_token(rng.standard_normal((4, 9)), temperature=0)
    assert greedy.shape == (4,)


def test_sampling_arguments_are_checked(rng):
    logits = rng.standard_normal((2, 5))
    for kwargs, name in (({"temperature": -1.0}, "temperature"), ({"top_k": 0}, "top_k"),
                         ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p")):
        with pytest.raises(ValueError, match=name):
            sample_next_token(logits, generator=np.random.default_rng(0), **kwargs)
    with pytest.raises(TypeError, match="new_caches"):
        generate(object(), np.zeros((1, 2), dtype=np.int64), 3)


def small_gpt(seed=0):
    return GPT(19, d_model=12, nhead=3, num_layers=2, dim_feedforward=20, dropout=0.1, max_len=30,
               dtype=np.float64, rng=seed)


def test_gpt_step_by_step_logits_equal_the_forward_with_left_padding(rng):
    """next_token_logits with caches, one token at a time, against one forward with the same positions."""
    model = small_gpt().eval()
    ids = rng.integers(0, 19, size=(3, 9))
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    mask[2, :7] = 0
    positions = np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 0)
    full = model(ids, mask, position_ids=positions)
    caches = model.new_caches(3)
    for stop in range(4, 10):
        start = 0 if stop == 4 else stop - 1
        step = model.next_token_logits(ids[:, start:stop], caches, mask[:, :stop])
        real = mask[:, stop - 1] == 1
        assert_close(step[real], full[real, stop - 1], rtol=1e-12, atol=1e-12, what=f"position {stop - 1}")
    recomputed = model.next_token_logits(ids, None, mask)
    assert_close(recomputed[mask[:, -1] == 1], full[:, -1][mask[:, -1] == 1], rtol=1e-12, atol=1e-12)


def test_generate_stops_at_eos_and_pads(rng):
    model = small_gpt(1)
    prompt = rng.integers(0, 19, size=(4, 3))
    free = model.generate(prompt, 12, temperature=0.0)
    eos = int(free[0, 5])                                         # the third token of row 0 becomes EOS
    stopped = model.generate(prompt, 12, temperature=0.0, eos_token_id=eos, pad_token_id=0)
    for row, full_row in zip(stopped, free, strict=True):
        new = full_row[3:]
        if eos in new:
            end = 3 + int(np.argmax(new == eos)) + 1
            np.testing.assert_array_equal(row[:end], full_row[:end])
            assert np.all(row[end:] == 0)
        else:
            np.testing.assert_array_equal(row, full_row[:row.size])
    assert stopped.shape[1] <= free.shape[1]
    assert model.training                                         # generation restored the mode


def make_translator(seed=0):
    return Seq2SeqTransformer(13, 11, d_model=16, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                              dim_feedforward=24, dropout=0.1, pad_id=0, dtype=np.float64, rng=seed)


def test_translator_cached_steps_equal_recomputing_the_prefix(rng):
    model = make_translator().eval()
    src = rng.integers(1, 13, size=(3, 6))
    src[1, 4:] = 0
    tgt = rng.integers(1, 11, size=(3, 7))
    memory, src_padding = model.encode(src)
    caches = model.new_caches(3)
    for t in range(1, 8):
        cached = model._next_log_probs(tgt[:, t - 1:t], memory, src_padding, caches)
        full, _ = log_softmax_forward(model.decode(tgt[:, :t], memory, src_padding)[:, -1], axis=-1)
        assert_close(cached, full, rtol=1e-12, atol=1e-12, what=f"step {t}")


def test_translator_greedy_equals_greedy_by_recomputation(rng):
    model = make_translator(2)
    src = rng.integers(1, 13, size=(4, 5))
    src[2, 3:] = 0
    ours = model.greedy_decode(src, max_len=8, bos_id=1, eos_id=2)
    model.eval()
    memory, src_padding = model.encode(src)
    tokens = np.ones((4, 1), dtype=src.dtype)
    finished = np.zeros(4, dtype=bool)
    for _ in range(8):                                            # the decoding loop, recomputing every prefix
        log_probs, _ = log_softmax_forward(model.decode(tokens, memory, src_padding)[:, -1], axis=-1)
        log_probs[:, 0] = -np.inf
        token = np.where(finished, 0, log_probs.argmax(-1))
        tokens = np.concatenate([tokens, token[:, None]], axis=1)
        finished |= token == 2
        if finished.all():
            break
    np.testing.assert_array_equal(ours, tokens)


def test_translator_beam_search_scores_are_the_model_scores(rng):
    model = make_translator(3)
    src = rng.integers(1, 13, size=(3, 5))
    ids, scores = model.beam_search(src, beam_width=3, max_len=7, bos_id=1, eos_id=2)
    assert_close(scores, model.score(src, ids), rtol=1e-10, atol=1e-10, what="beam scores")
    greedy = model.greedy_decode(src, max_len=7, bos_id=1, eos_id=2)
    one, _ = model.beam_search(src, beam_width=1, max_len=7, bos_id=1, eos_id=2)
    np.testing.assert_array_equal(one[:, :greedy.shape[1]], greedy)


def test_translator_records_every_layer(rng):
    model = make_translator(4).eval()
    src, tgt = rng.integers(1, 13, size=(2, 5)), rng.integers(1, 11, size=(2, 4))
    src[1, 3:] = 0
    out = model(src, tgt, output_hidden_states=True, output_attentions=True)
    np.testing.assert_array_equal(out.output, model(src, tgt))
    assert len(out.encoder_hidden_states) == len(out.hidden_states) == 3
    assert [a.shape for a in out.cross_attentions] == [(2, 2, 4, 5)] * 2
    assert np.all(out.cross_attentions[0][1, :, :, 3:] == 0)      # nobody reads the source padding
    np.testing.assert_array_equal(model.cross_attention_weights(src, tgt, layer=0), out.cross_attentions[0])
    assert [a.shape for a in out.encoder_attentions] == [(2, 2, 5, 5)] * 2


def test_a_recorded_forward_trains_like_a_plain_one(rng):
    """Asking for every layer changes nothing in the forward pass: backward gives the same gradients."""
    model = make_translator(5).eval()
    src, tgt = rng.integers(1, 13, size=(2, 5)), rng.integers(1, 11, size=(2, 5))
    gradients = []
    for record in (False, True):
        model.zero_grad()
        out = model(src, tgt[:, :-1], output_attentions=record, output_hidden_states=record)
        logits = out.output if record else out
        _, dlogits = model.loss(logits, tgt[:, 1:])
        model.backward(dlogits)
        gradients.append({name: p.grad.copy() for name, p in model.named_parameters()})
    for name, grad in gradients[0].items():
        np.testing.assert_array_equal(gradients[1][name], grad, err_msg=name)

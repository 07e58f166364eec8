"""Seq2SeqTransformer: a torch twin (logits, loss, every gradient), finite differences, decoding, checkpoints."""
import numpy as np
import pytest

from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.io.checkpoint import load_checkpoint, save_checkpoint
from numpy_transformer.models import Seq2SeqTransformer, length_penalty_factor
from reference import assert_close
from twins import translator_twin

PAD, BOS, EOS = 0, 1, 2


def make_twin(torch, model):
    """The same model from torch.nn modules, with our state_dict loaded (keys match one-to-one)."""
    torch.backends.mha.set_fastpath_enabled(False)
    return translator_twin(torch, model)


def batch(rng, B=3, S=7, T=5, V_src=11, V_tgt=13):
    """Source and target ids with padding at the ends (every row keeps at least two real tokens)."""
    src = rng.integers(3, V_src, size=(B, S))
    tgt = rng.integers(3, V_tgt, size=(B, T + 1))
    tgt[:, 0] = BOS
    src_len = rng.integers(2, S + 1, size=B)
    src_len[0] = S
    tgt_len = rng.integers(2, T + 2, size=B)
    src[np.arange(S)[None, :] >= src_len[:, None]] = PAD
    tgt[np.arange(T + 1)[None, :] >= tgt_len[:, None]] = PAD
    return src, tgt[:, :-1].copy(), tgt[:, 1:].copy()


def small_model(tie=False, norm_first=False, dtype=np.float64, seed=0, **kwargs):
    return Seq2SeqTransformer(11, 13, d_model=12, nhead=3, num_encoder_layers=2, num_decoder_layers=2,
                              dim_feedforward=20, dropout=0.0, max_len=64, pad_id=PAD, tie_weights=tie,
                              norm_first=norm_first, dtype=dtype, rng=seed, **kwargs)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("tie,norm_first", [(False, False), (True, False), (True, True)])
def test_translator_matches_torch_twin(rng, torch, tie, norm_first):
    model = small_model(tie=tie, norm_first=norm_first)
    twin = make_twin(torch, model)
    src, tgt_in, tgt_out = batch(rng)
    assert (tgt_in == PAD).any() and (src == PAD).any() and (tgt_out == PAD).any()

    logits = model(src, tgt_in)
    loss, dlogits = model.loss(logits, tgt_out, label_smoothing=0.1)
    model.zero_grad()
    model.backward(dlogits)

    tlogits = twin(torch.tensor(src), torch.tensor(tgt_in))
    tloss = torch.nn.functional.cross_entropy(tlogits.reshape(-1, tlogits.shape[-1]),
                                              torch.tensor(tgt_out).reshape(-1), ignore_index=PAD,
                                              label_smoothing=0.1)
    tloss.backward()
    assert logits.shape == (3, 5, 13) and logits.dtype == np.float64
    assert_close(logits, tlogits, what="logits")
    assert_close(loss, tloss, what="loss")
    names = [name for name, _ in model.named_parameters()]
    assert names == [name for name, _ in twin.named_parameters()]
    for name, param in model.named_parameters():
        assert_close(param.grad, twin.get_parameter(name).grad, what=f"grad {name}")
    if tie:
        assert model.generator.weight is model.tgt_embed.weight
        assert "generator.weight" in model.state_dict() and "tgt_embed.weight" in model.state_dict()


def test_translator_float32_matches_float64(rng):
    model64 = small_model()
    model32 = small_model(dtype=np.float32)
    model32.load_state_dict(model64.state_dict())
    src, tgt_in, _ = batch(rng)
    out32 = model32(src, tgt_in)
    assert out32.dtype == np.float32
    assert_close(out32, model64(src, tgt_in).astype(np.float32), what="float32 logits")


def tiny(tie=False, seed=0):
    return Seq2SeqTransformer(5, 5, d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                              dim_feedforward=6, dropout=0.0, max_len=16, pad_id=PAD, tie_weights=tie,
                              rng=seed).to_dtype(np.float64)


@pytest.mark.parametrize("tie", [False, True])
def test_translator_matches_finite_differences(rng, tie):
    model = tiny(tie).eval()
    # padding only in the source: a target pad token would feed the pad embedding row, whose gradient is 0 by
    # definition (torch's padding_idx), into the logits at that position
    src = np.array([[3, 4, 2, 0], [4, 3, 3, 3]])
    tgt = np.array([[1, 3, 4], [1, 4, 2]])
    gradcheck_module(model, [src, tgt]).assert_ok()


def test_translator_bad_input_names_argument():
    model = tiny()
    with pytest.raises(TypeError, match="src_ids"):
        model(np.zeros((2, 3)), np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="tgt_in_ids"):
        model(np.ones((2, 3), dtype=np.int64), np.ones((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="pad_id"):
        Seq2SeqTransformer(5, 5, d_model=4, nhead=2, pad_id=7)
    with pytest.raises(ValueError, match="bos_id"):
        model.greedy_decode(np.ones((1, 3), dtype=np.int64), max_len=3, bos_id=PAD, eos_id=EOS)
    with pytest.raises(ValueError, match="beam_width"):
        model.beam_search(np.ones((1, 3), dtype=np.int64), beam_width=0, bos_id=BOS, eos_id=EOS)


def decoding_model(seed=3):
    return Seq2SeqTransformer(9, 9, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                              dim_feedforward=24, dropout=0.1, max_len=32, pad_id=PAD, dtype=np.float64, rng=seed)


def test_greedy_decode_takes_the_argmax_of_full_recomputation(rng):
    model = decoding_model()
    src = rng.integers(3, 9, size=(4, 6))
    src[1, 4:] = PAD
    ids = model.greedy_decode(src, max_len=7, bos_id=BOS, eos_id=EOS)
    assert model.training  # restored after decoding
    model.eval()
    assert ids.shape[0] == 4 and ids.shape[1] <= 8 and (ids[:, 0] == BOS).all()
    for t in range(1, ids.shape[1]):
        logits = model(src, ids[:, :t])[:, -1]
        logits[:, PAD] = -np.inf
        expected = logits.argmax(-1)
        done = (ids[:, 1:t] == EOS).any(axis=1)
        np.testing.assert_array_equal(ids[~done, t], expected[~done])
        np.testing.assert_array_equal(ids[done, t], PAD)


def test_beam_width_one_equals_greedy(rng):
    model = decoding_model()
    src = rng.integers(3, 9, size=(5, 6))
    src[2, 3:] = PAD
    greedy = model.greedy_decode(src, max_len=8, bos_id=BOS, eos_id=EOS)
    for alpha, kind in [(0.0, "gnmt"), (0.6, "gnmt"), (1.0, "power")]:
        beam, _ = model.beam_search(src, beam_width=1, max_len=8, length_penalty=alpha, bos_id=BOS, eos_id=EOS,
                                    length_penalty_kind=kind)
        np.testing.assert_array_equal(beam, greedy)


def test_beam_search_scores_at_least_greedy_and_is_vectorized_over_the_batch(rng):
    for seed in range(3):
        model = decoding_model(seed)
        src = rng.integers(3, 9, size=(4, 5))
        greedy = model.greedy_decode(src, max_len=6, bos_id=BOS, eos_id=EOS)
        beam, scores = model.beam_search(src, beam_width=4, max_len=6, length_penalty=0.0, bos_id=BOS,
                                         eos_id=EOS)
        # the returned score is the model's log-probability of the returned sequence
        np.testing.assert_allclose(scores, model.score(src, beam), rtol=1e-10)
        assert (scores >= model.score(src, greedy) - 1e-10).all()
        # one sentence at a time gives the same result as the batch
        for b in range(src.shape[0]):
            single, single_score = model.beam_search(src[b:b + 1], beam_width=4, max_len=6, bos_id=BOS, eos_id=EOS)
            width = single.shape[1]
            np.testing.assert_array_equal(single[0], beam[b, :width])
            assert (beam[b, width:] == PAD).all()
            np.testing.assert_allclose(single_score, scores[b:b + 1], rtol=1e-10)


def test_length_penalty_formulas():
    n = np.array([1, 4, 10])
    np.testing.assert_allclose(length_penalty_factor(n, 0.6, "gnmt"), ((5 + n) / 6) ** 0.6)
    np.testing.assert_allclose(length_penalty_factor(n, 0.7, "power"), n ** 0.7)
    np.testing.assert_array_equal(length_penalty_factor(n, 0.0), 1.0)


def test_cross_attention_weights_read_only_real_source_tokens(rng):
    model = decoding_model()
    src, tgt_in, _ = batch(rng, B=3, S=6, T=4, V_src=9, V_tgt=9)
    weights = model.cross_attention_weights(src, tgt_in)
    assert weights.shape == (3, 2, 4, 6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-12)
    assert (weights[np.broadcast_to((src == PAD)[:, None, None, :], weights.shape)] == 0).all()
    first = model.cross_attention_weights(src, tgt_in, layer=0)
    assert not np.allclose(first, weights)


def test_checkpoint_round_trip_gives_identical_logits(rng, tmp_path):
    model = small_model(tie=True, dtype=np.float32, seed=1)
    src, tgt_in, _ = batch(rng)
    path = tmp_path / "translator.npz"
    save_checkpoint(path, model, config={"d_model": 12})
    other = small_model(tie=True, dtype=np.float32, seed=2)
    assert not np.array_equal(other(src, tgt_in), model(src, tgt_in))
    load_checkpoint(path, other)
    np.testing.assert_array_equal(other(src, tgt_in), model(src, tgt_in))
    assert other.generator.weight is other.tgt_embed.weight

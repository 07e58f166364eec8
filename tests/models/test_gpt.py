"""GPT: a torch twin (logits, loss, every gradient), finite differences, KV-cache generation, checkpoints."""
import numpy as np
import pytest

from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.io.checkpoint import load_checkpoint, save_checkpoint
from numpy_transformer.models import GPT
from reference import assert_close
from twins import gpt_twin


def make_twin(torch, model):
    """GPT from torch.nn modules with our state_dict loaded (``twins.gpt_twin``)."""
    torch.backends.mha.set_fastpath_enabled(False)
    return gpt_twin(torch, model)


def small_gpt(dtype=np.float64, seed=0, dropout=0.0):
    return GPT(17, d_model=12, nhead=3, num_layers=2, dim_feedforward=20, dropout=dropout, max_len=24,
               dtype=dtype, rng=seed)


def test_gpt_matches_torch_twin(rng, torch):
    model = small_gpt()
    twin = make_twin(torch, model)
    ids = rng.integers(0, 17, size=(3, 9))
    targets = rng.integers(0, 17, size=(3, 9))
    targets[1, 5:] = -100

    logits = model(ids)
    loss, dlogits = model.loss(logits, targets)
    model.zero_grad()
    model.backward(dlogits)

    tlogits = twin(torch.tensor(ids))
    tloss = torch.nn.functional.cross_entropy(tlogits.reshape(-1, 17), torch.tensor(targets).reshape(-1))
    tloss.backward()
    assert_close(logits, tlogits, what="logits")
    assert_close(loss, tloss, what="loss")
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in twin.named_parameters()]
    for name, param in model.named_parameters():
        assert_close(param.grad, twin.get_parameter(name).grad, what=f"grad {name}")


def test_gpt_matches_finite_differences(rng):
    model = GPT(5, d_model=4, nhead=2, num_layers=1, dim_feedforward=6, dropout=0.0, max_len=8, rng=0)
    model.to_dtype(np.float64).eval()
    ids = np.array([[1, 4, 0], [3, 3, 2]])
    gradcheck_module(model, [ids]).assert_ok()


@pytest.mark.parametrize("temperature,top_k", [(0.0, None), (0.8, None), (1.3, 4)])
def test_kv_cache_generation_equals_full_recomputation(rng, temperature, top_k):
    model = small_gpt(dropout=0.2)
    prompt = rng.integers(0, 17, size=(3, 4))
    ids, logits = model.generate(prompt, 10, temperature=temperature, top_k=top_k, rng=7, return_logits=True)
    slow_ids, slow_logits = model.generate(prompt, 10, temperature=temperature, top_k=top_k, rng=7,
                                           use_cache=False, return_logits=True)
    assert model.training  # restored
    assert ids.shape == (3, 14) and logits.shape == (3, 10, 17)
    np.testing.assert_array_equal(ids[:, :4], prompt)
    np.testing.assert_array_equal(ids, slow_ids)
    assert_close(logits, slow_logits, rtol=1e-10, atol=1e-10, what="cached vs recomputed logits")
    # and both equal one forward pass over the finished sequence
    model.eval()
    assert_close(logits, model(ids)[:, 3:-1], rtol=1e-10, atol=1e-10, what="cached vs forward logits")


def test_generation_samples_only_from_the_top_k(rng):
    model = small_gpt()
    prompt = rng.integers(0, 17, size=(6, 3))
    ids, logits = model.generate(prompt, 8, temperature=1.0, top_k=2, rng=1, return_logits=True)
    chosen = np.take_along_axis(logits, ids[:, 3:, None], axis=-1)[..., 0]
    second = np.sort(logits, axis=-1)[..., -2]
    assert (chosen >= second).all()
    assert (chosen < logits.max(-1)).any()  # sampling, not always the argmax
    greedy, greedy_logits = model.generate(prompt, 8, temperature=0.0, return_logits=True)
    np.testing.assert_array_equal(greedy[:, 3:], greedy_logits.argmax(-1))


def test_gpt_bad_input_names_argument(rng):
    model = small_gpt()
    with pytest.raises(ValueError, match="ids"):
        model(rng.integers(0, 17, size=(2, 25)))
    with pytest.raises(TypeError, match="ids"):
        model(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(rng.integers(0, 17, size=(2, 20)), 5)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(rng.integers(0, 17, size=(2, 3)), 2, temperature=-1.0)


def test_gpt_attention_weights_are_causal(rng):
    model = small_gpt()
    weights = model.attention_weights(rng.integers(0, 17, size=(2, 6)), layer=1)
    assert weights.shape == (2, 3, 6, 6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-12)
    assert (np.triu(weights, k=1) == 0).all()


def test_gpt_checkpoint_round_trip(rng, tmp_path):
    model = small_gpt(dtype=np.float32, seed=1)
    ids = rng.integers(0, 17, size=(2, 7))
    save_checkpoint(tmp_path / "gpt.npz", model)
    other = small_gpt(dtype=np.float32, seed=2)
    load_checkpoint(tmp_path / "gpt.npz", other)
    np.testing.assert_array_equal(other(ids), model(ids))

"""TransformerClassifier: a torch twin (cls and mean pooling, padding), finite differences, freeze_bottom."""
import numpy as np
import pytest

from numpy_transformer.gradcheck import gradcheck_module
from numpy_transformer.io.checkpoint import load_checkpoint, save_checkpoint
from numpy_transformer.models import TransformerClassifier
from reference import assert_close
from twins import classifier_twin

PAD = 0


def make_twin(torch, model):
    """The classifier from torch.nn modules with our state_dict loaded (``twins.classifier_twin``)."""
    torch.backends.mha.set_fastpath_enabled(False)
    return classifier_twin(torch, model)


def small_classifier(pooling="cls", dtype=np.float64, seed=0):
    return TransformerClassifier(19, 4, d_model=12, nhead=3, num_layers=2, dim_feedforward=20, dropout=0.0,
                                 max_len=16, pooling=pooling, pad_id=PAD, dtype=dtype, rng=seed)


def padded_ids(rng, B=4, T=7):
    ids = rng.integers(1, 19, size=(B, T))
    lengths = np.array([T, 3, 5, 1])[:B]
    ids[np.arange(T)[None, :] >= lengths[:, None]] = PAD
    return ids


def run_both(torch, model, twin, ids, labels):
    logits = model(ids)
    loss, dlogits = model.loss(logits, labels)
    model.zero_grad()
    model.backward(dlogits)
    tlogits = twin(torch.tensor(ids))
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.tensor(labels))
    tloss.backward()
    return logits, loss, tlogits, tloss


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_matches_torch_twin(rng, torch, pooling):
    model = small_classifier(pooling)
    twin = make_twin(torch, model)
    ids = padded_ids(rng)
    logits, loss, tlogits, tloss = run_both(torch, model, twin, ids, np.array([0, 3, 1, 2]))
    assert_close(logits, tlogits, what="logits")
    assert_close(loss, tloss, what="loss")
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in twin.named_parameters()]
    for name, param in model.named_parameters():
        assert_close(param.grad, twin.get_parameter(name).grad, what=f"grad {name}")


def test_freeze_bottom_skips_frozen_gradients(rng, torch):
    model = small_classifier("mean")
    twin = make_twin(torch, model)
    model.freeze_bottom(1)

    def must_not_run(dout):
        raise AssertionError("the frozen bottom layer's backward ran")

    model.encoder.layers[0].backward = must_not_run
    ids = padded_ids(rng)
    run_both(torch, model, twin, ids, np.array([1, 1, 0, 3]))
    for name, param in model.named_parameters():
        frozen = name.startswith(("tok_embed", "pos_embed", "encoder.layers.0."))
        assert param.requires_grad is not frozen
        if frozen:
            assert param.grad is None, name
        else:
            assert_close(param.grad, twin.get_parameter(name).grad, what=f"grad {name}")
    assert model.num_parameters(trainable_only=True) < model.num_parameters()
    with pytest.raises(ValueError, match="n_layers"):
        model.freeze_bottom(3)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_matches_finite_differences(pooling):
    model = TransformerClassifier(5, 3, d_model=4, nhead=2, num_layers=1, dim_feedforward=6, dropout=0.0,
                                  max_len=6, pooling=pooling, pad_id=PAD, rng=0).to_dtype(np.float64).eval()
    ids = np.array([[1, 4, 2, 0], [3, 3, 1, 2]])
    gradcheck_module(model, [ids]).assert_ok()


def test_classifier_attention_weights_ignore_padding(rng):
    model = small_classifier()
    ids = padded_ids(rng)
    weights = model.attention_weights(ids, layer=1)
    assert weights.shape == (4, 3, 7, 7)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-12)
    assert (weights[np.broadcast_to((ids == PAD)[:, None, None, :], weights.shape)] == 0).all()
    np.testing.assert_array_equal(model.attention_weights(ids, layer=0, head=2), model.attention_weights(ids, 0)[:, 2])


def test_classifier_bad_input_and_checkpoint(rng, tmp_path):
    with pytest.raises(ValueError, match="pooling"):
        TransformerClassifier(5, 2, pooling="max")
    model = small_classifier(dtype=np.float32, seed=1)
    with pytest.raises(ValueError, match="ids"):
        model(rng.integers(0, 19, size=(2, 17)))
    ids = padded_ids(rng)
    save_checkpoint(tmp_path / "clf.npz", model)
    other = small_classifier(dtype=np.float32, seed=2)
    load_checkpoint(tmp_path / "clf.npz", other)
    np.testing.assert_array_equal(other(ids), model(ids))


def attention_by_hand(model, ids):
    """Each layer's attention probabilities (B, H, T, T), from its self-attention module called directly on the
    layer's input (what ``attention_weights`` computed before the per-layer record existed)."""
    padding = ids == PAD
    x = model.pos_embed(model.tok_embed(ids))
    out = []
    for block in model.encoder.layers:
        h = block.norm1(x) if block.norm_first else x
        out.append(block.self_attn(h, h, h, key_padding_mask=padding, need_weights=True,
                                   average_attn_weights=False)[1])
        x = block(x, src_key_padding_mask=padding)
    return out


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_output_attentions_and_hidden_states_record_every_layer(rng, pooling, norm_first):
    model = TransformerClassifier(19, 4, d_model=12, nhead=3, num_layers=3, dim_feedforward=20, dropout=0.0,
                                  max_len=16, pooling=pooling, pad_id=PAD, norm_first=norm_first,
                                  dtype=np.float64, rng=5).eval()
    ids = padded_ids(rng)
    plain = model(ids)
    out = model(ids, output_hidden_states=True, output_attentions=True)
    np.testing.assert_array_equal(out.output, plain)
    reference = attention_by_hand(model, ids)
    assert len(out.attentions) == 3 and [a.shape for a in out.attentions] == [(4, 3, 7, 7)] * 3
    for layer, (mine, theirs) in enumerate(zip(out.attentions, reference, strict=True)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-15, err_msg=f"layer {layer}")
        np.testing.assert_array_equal(model.attention_weights(ids, layer=layer), mine)
        assert (mine[np.broadcast_to((ids == PAD)[:, None, None, :], mine.shape)] == 0).all()
    assert len(out.hidden_states) == 4 and out.hidden_states[0].shape == (4, 7, 12)
    x = model.pos_embed(model.tok_embed(ids))
    np.testing.assert_array_equal(out.hidden_states[0], x)
    for layer, block in enumerate(model.encoder.layers):
        x = block(x, src_key_padding_mask=ids == PAD)
        np.testing.assert_allclose(out.hidden_states[layer + 1], x, rtol=1e-13, atol=1e-15)
    only = model(ids, output_attentions=True)
    assert only.hidden_states is None and len(only.attentions) == 3
    assert model(ids, output_hidden_states=True).attentions is None


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_backward_after_a_recorded_forward_equals_backward_after_a_plain_one(rng, pooling):
    """Asking for every layer's record changes nothing in the forward pass: the gradients are the same."""
    model = TransformerClassifier(19, 4, d_model=12, nhead=3, num_layers=2, dim_feedforward=20, dropout=0.0,
                                  max_len=16, pooling=pooling, pad_id=PAD, norm_first=True, dtype=np.float64,
                                  rng=6)
    ids, labels = padded_ids(rng), np.array([0, 3, 1, 2])
    gradients = []
    for record in (False, True):
        model.zero_grad()
        out = model(ids, output_hidden_states=record, output_attentions=record)
        _, dlogits = model.loss(out.output if record else out, labels)
        model.backward(dlogits)
        gradients.append({name: p.grad.copy() for name, p in model.named_parameters()})
    for name, grad in gradients[0].items():
        assert np.abs(grad).max() > 0, name
        np.testing.assert_array_equal(gradients[1][name], grad, err_msg=name)

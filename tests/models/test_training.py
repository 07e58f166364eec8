"""Training the translator: loss trajectories against torch.optim, and learning a copy task to 99%."""
import time

import numpy as np
import pytest
from test_translator import PAD, batch, make_twin, small_model

from numpy_transformer.models import Seq2SeqTransformer
from numpy_transformer.optim import SGD, Adam, AdamW, LambdaLR, clip_grad_norm_
from reference import assert_close, require

BOS, EOS = 1, 2


def warmup(step):
    return min(1.0, (step + 1) / 5)


def torch_loss(torch, twin, src, tgt_in, tgt_out, smoothing):
    logits = twin(torch.tensor(src), torch.tensor(tgt_in))
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.tensor(tgt_out).reshape(-1),
                                             ignore_index=PAD, label_smoothing=smoothing)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("name,steps", [("adamw", 20), ("sgd", 10), ("adam", 10)])
def test_loss_trajectory_matches_torch_optim(rng, torch, name, steps):
    model = small_model(tie=True)
    twin = make_twin(torch, model)
    if name == "adamw":
        ours = AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.05)
        theirs = torch.optim.AdamW(twin.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.05)
    elif name == "sgd":
        ours = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
        theirs = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
    else:
        ours = Adam(model.parameters(), lr=2e-3)
        theirs = torch.optim.Adam(twin.parameters(), lr=2e-3)
    our_schedule = LambdaLR(ours, warmup)
    their_schedule = torch.optim.lr_scheduler.LambdaLR(theirs, warmup)

    losses, torch_losses = [], []
    for _ in range(steps):
        src, tgt_in, tgt_out = batch(rng)
        logits = model(src, tgt_in)
        loss, dlogits = model.loss(logits, tgt_out, label_smoothing=0.1)
        model.zero_grad()
        model.backward(dlogits)
        norm = clip_grad_norm_(model.parameters(), 0.5)
        ours.step()
        our_schedule.step()

        theirs.zero_grad()
        tloss = torch_loss(torch, twin, src, tgt_in, tgt_out, 0.1)
        tloss.backward()
        tnorm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
        theirs.step()
        their_schedule.step()
        losses.append(float(loss))
        torch_losses.append(float(tloss.detach()))
        assert_close(np.asarray(norm), tnorm, rtol=1e-6, what="gradient norm")
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-6)
    assert losses[-1] < losses[0]
    for key, value in model.state_dict().items():
        assert_close(value, twin.state_dict()[key], rtol=1e-6, atol=1e-8, what=key)


def copy_batch(rng, n, low=3, high=7, vocab=12):
    """Source: random symbols of random length, padded; target: BOS, the same symbols, EOS, padding."""
    lengths = rng.integers(low, high + 1, size=n)
    src = rng.integers(3, vocab, size=(n, high))
    src[np.arange(high)[None, :] >= lengths[:, None]] = PAD
    positions = np.arange(high + 2)[None, :]
    tgt = np.full((n, high + 2), PAD)
    tgt[:, 1:high + 1] = src
    tgt[:, 0] = BOS
    tgt[positions == lengths[:, None] + 1] = EOS
    return src, tgt


def token_accuracy(model, src, tgt):
    """Share of the target tokens (EOS included) that greedy decoding gets right, position by position."""
    predicted = model.greedy_decode(src, max_len=tgt.shape[1] - 1, bos_id=BOS, eos_id=EOS)
    aligned = np.full_like(tgt, PAD)
    aligned[:, :predicted.shape[1]] = predicted
    real = tgt[:, 1:] != PAD
    return float(((aligned[:, 1:] == tgt[:, 1:]) & real).sum() / real.sum())


def test_translator_learns_to_copy():
    threadpoolctl = require("threadpoolctl")
    rng = np.random.default_rng(0)
    held_out = copy_batch(np.random.default_rng(12345), 300)
    model = Seq2SeqTransformer(12, 12, d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                               dim_feedforward=64, dropout=0.0, max_len=16, pad_id=PAD, rng=0)
    optimizer = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    # linear warmup over 50 steps, then inverse square-root decay from step 300
    schedule = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 50) * min(1.0, (300 / (step + 1)) ** 0.5))
    start, accuracy = time.time(), 0.0
    with threadpoolctl.threadpool_limits(1):  # matrices this small run fastest on one BLAS thread
        for step in range(1, 3001):
            src, tgt = copy_batch(rng, 64)
            logits = model(src, tgt[:, :-1])
            loss, dlogits = model.loss(logits, tgt[:, 1:])
            model.zero_grad()
            model.backward(dlogits)
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            if step >= 600 and step % 100 == 0:
                accuracy = token_accuracy(model, *held_out)
                if accuracy >= 0.99:
                    break
    assert accuracy >= 0.99, f"token accuracy {accuracy:.3f} after {step} steps ({time.time() - start:.0f} s)"
    assert model.training
    # the held-out sentences were never trained on, and beam search agrees with greedy on a learned copy
    beam, _ = model.beam_search(held_out[0][:20], beam_width=3, max_len=8, bos_id=BOS, eos_id=EOS)
    assert (beam[:, 1:8] == held_out[1][:20, 1:8]).mean() >= 0.95

"""The 3-digit addition task that the decoder demos learn (``10_gpt.py``, ``11_llama.py``), and its training loop.

Text is one character per token, every number at a fixed width, so digit i of an operand always sits at the
same position::

    042+317=0359

The model reads a newline and ``a+b=`` (PROMPT characters) and must write the sum's four digits and a newline
(ANSWER characters). Of the 10^6 pairs (a, b), HELD_OUT are set aside and never trained on. The loss counts
only the answer: the operands are random, there is nothing to learn in them.

:func:`train` is the one training loop of both demos (AdamW with warmup then linear decay, clipping at 1.0,
random batches of the training pairs, a held-out evaluation every twelfth of the run), so that two models
trained with the same generator see the same batches in the same order.
"""
from __future__ import annotations

import time

import numpy as np
from _common import Progress

from numpy_transformer.optim import AdamW, clip_grad_norm_, warmup_linear_decay

DIGITS = 3
ALPHABET = "\n0123456789+="                        # the 13 characters of the task, one id each
HELD_OUT = 500
BASE = 10 ** DIGITS
PROMPT = 2 * DIGITS + 3                             # "\n" + a + "+" + b + "=": what the model is given
ANSWER = DIGITS + 2                                 # the sum's digits and "\n": what it must write
STOI = {c: i for i, c in enumerate(ALPHABET)}


def problem(a: int, b: int) -> str:
    """``"042+317=0359\\n"``: operands of DIGITS digits, the sum of DIGITS + 1, then the end of the line."""
    return f"{a:0{DIGITS}d}+{b:0{DIGITS}d}={a + b:0{DIGITS + 1}d}\n"


def encode(pairs, base: int = BASE):
    """Pairs numbered a * base + b -> ids (N, PROMPT + ANSWER): "\\n", the problem, its answer."""
    return np.array([[STOI[c] for c in "\n" + problem(p // base, p % base)] for p in pairs])


def text(ids) -> str:
    return "".join(ALPHABET[i] for i in ids)


def shown(char: str) -> str:
    """A character as a label: the newline spelled out."""
    return "\\n" if char == "\n" else char


def split(rng):
    """(held-out pairs, training pairs): a random permutation of all BASE^2 pairs, the first HELD_OUT held out."""
    pairs = rng.permutation(BASE * BASE)
    return pairs[:HELD_OUT], pairs[HELD_OUT:]


def answer_targets(ids):
    """Next-token targets of ``ids`` (N, PROMPT + ANSWER): the answer's characters, -100 (ignored) elsewhere."""
    targets = ids[:, 1:].copy()
    targets[:, :PROMPT - 1] = -100                               # the operands are random: not learned
    return targets


def exact_answers(model, ids):
    """Greedy answers to the prompts of ``ids`` (N, PROMPT + ANSWER), and which are exactly right (N,) bool."""
    answers = model.generate(ids[:, :PROMPT], ANSWER, temperature=0.0)[:, PROMPT:]
    return answers, (answers == ids[:, PROMPT:]).all(axis=1)


def train(model, rng, training, check, steps: int, batch_size: int = 64, lr: float = 3e-3) -> dict:
    """Train ``model`` (a decoder with forward, loss, backward, generate) on random batches of ``training``.

    Inputs:
        model: the decoder; rng: the Generator the batches are drawn from; training: the training pairs
        check: ids (N, PROMPT + ANSWER) of held-out problems, evaluated every twelfth of the run
        steps, batch_size, lr: the run (AdamW, weight decay 0.01, warmup for a twelfth, then linear decay)

    Returns:
        dict of ``losses`` (each step's training loss), ``eval_steps``, ``eval_losses``, ``eval_exact`` (the
        held-out loss and exact-match rate at each evaluation) and ``seconds`` (the training time)
    """
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = warmup_linear_decay(optimizer, warmup_steps=max(1, steps // 12), total_steps=steps)
    evaluate_every = max(1, steps // 12)

    def held_out_loss_and_exact():
        model.eval()
        loss, _ = model.loss(model(check[:, :-1]), answer_targets(check))
        _, right = exact_answers(model, check)
        model.train()
        return float(loss), float(right.mean())

    progress = Progress(total=steps, every=evaluate_every)
    history = {"losses": [], "eval_steps": [], "eval_losses": [], "eval_exact": []}
    for step in range(1, steps + 1):
        batch = encode(rng.choice(training, batch_size))            # (B, PROMPT + ANSWER)
        logits = model(batch[:, :-1])                               # (B, T, V)
        loss, dlogits = model.loss(logits, answer_targets(batch))
        model.zero_grad()
        model.backward(dlogits)
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        history["losses"].append(float(loss))
        extra = {}
        if step % evaluate_every == 0 or step == steps:
            held_loss, held_exact = held_out_loss_and_exact()
            history["eval_steps"].append(step)
            history["eval_losses"].append(held_loss)
            history["eval_exact"].append(held_exact)
            extra = {"held_out_loss": held_loss, "held_out_exact": held_exact}
        progress.update(step, float(loss), **extra)
    history["seconds"] = time.perf_counter() - progress.start
    return history


def running_mean(values, steps: int):
    """(x, mean of the last ``window`` values) with window = min(50, steps // 10), at least 1."""
    window = max(1, min(50, steps // 10))
    return np.arange(window, len(values) + 1), np.convolve(values, np.ones(window) / window, mode="valid"), window

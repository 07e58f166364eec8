"""10 -- A GPT learns to add, then writes its answers one token at a time through a key/value cache.

A GPT (``numpy_transformer.models.GPT``: GPT-2's pre-norm blocks, tied embeddings, learned positions) reads
text one character at a time and predicts the next character. Here the text is three-digit additions, written
with every number at a fixed width so that digit i of one number always sits at the same position:

    042+317=0359

The model is trained from scratch on random problems; 500 pairs (a, b) are held out and never seen. The loss
counts only the answer (its four digits and the newline): the operands are random, there is nothing to
learn in them. Afterwards the model completes ``a+b=`` for the held-out pairs, greedily, and we count the
answers that are exactly right.

Decoding is where the key/value cache earns its keep. Without it, writing token t means running the whole
prefix of t tokens through every layer again; with it (``KVCache``, one per attention layer), each step runs
only the newest token and reads the keys and values of the earlier ones from the cache. The demo checks
that both give the same tokens and logits, and measures the time of each, interleaved.

With ``--model DIR`` it loads a Hugging Face GPT-2 folder instead (``config.json``, ``model.safetensors``,
``vocab.json``, ``merges.txt``; e.g. ``gpt2`` from the Hugging Face cache) and continues ``--prompt``.

Options (besides --quick, --out, --seed):

    --steps N            training steps (default 1200)
    --model DIR          a GPT-2 folder: continue --prompt with it instead of training
    --prompt TEXT        the text to continue (with --model)
    --max-new-tokens N   how many tokens to write (with --model; default 40)
    --temperature T      0 = greedy (default); with --top-k / --top-p for sampling
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # small matrices: one BLAS thread is fastest

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _addition import (  # noqa: E402
    ALPHABET,
    ANSWER,
    DIGITS,
    HELD_OUT,
    PROMPT,
    encode,
    exact_answers,
    running_mean,
    shown,
    split,
    text,
    train,
)
from _common import add_prompt_options, continue_prompt, done, save, section, setup  # noqa: E402

from numpy_transformer.models import GPT  # noqa: E402
from numpy_transformer.viz import attention_heads_grid, loss_curve  # noqa: E402


def add_options(parser):
    parser.add_argument("--steps", type=int, default=1200, help="training steps (default 1200)")
    add_prompt_options(parser, "GPT-2")


def timed(function, repeats: int):
    """Median seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def cache_speedup(model, prompts, new_tokens: int, repeats: int):
    """Generate with and without the cache, interleaved so that both see the same machine load.

    Returns (seconds with the cache, seconds recomputing, both outputs equal, largest logit difference).
    """
    with_cache, without = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fast = model.generate(prompts, new_tokens, temperature=0.0, return_logits=True)
        with_cache.append(time.perf_counter() - start)
        start = time.perf_counter()
        slow = model.generate(prompts, new_tokens, temperature=0.0, use_cache=False, return_logits=True)
        without.append(time.perf_counter() - start)
    same = bool(np.array_equal(fast[0], slow[0]))
    return float(np.median(with_cache)), float(np.median(without)), same, float(np.abs(fast[1] - slow[1]).max())


# ---------------------------------------------------------------------------------------------- GPT-2

def continue_with_gpt2(args) -> None:
    from numpy_transformer.text import GPT2Tokenizer

    section("1. the pretrained model")
    start = time.perf_counter()
    model = GPT.from_pretrained(args.model)
    tokenizer = GPT2Tokenizer.from_pretrained(args.model)
    print(f"  loaded {args.model} in {time.perf_counter() - start:.1f} s: {len(model.blocks)} blocks, width "
          f"{model.d_model}, {model.nhead} heads, {model.num_parameters():,} parameters, window {model.max_len}")
    section("2. continuing the prompt")
    ids, _, steps = continue_prompt(model, tokenizer, args)
    fast, slow, same, diff = cache_speedup(model, ids, steps, repeats=1 if args.quick else 3)
    print(f"  greedy, {steps} tokens: {fast:.2f} s with the cache, {slow:.2f} s recomputing the prefix "
          f"(x{slow / fast:.1f}); same tokens: {same}, largest logit difference {diff:.1e}")
    done(args.out)


# ---------------------------------------------------------------------------------------------- training

def main() -> None:
    args = setup("10_gpt", "a GPT learns to add and decodes with a key/value cache", add_options)
    if args.model:
        continue_with_gpt2(args)
        return
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    metrics = {}

    section("1. the task")
    held_out, training = split(rng)
    held_ids = encode(held_out)                                     # (500, PROMPT + ANSWER)
    print(f"  {DIGITS}-digit additions, {len(training):,} possible training problems; {HELD_OUT} pairs held out")
    for example in encode(training[:3]):
        print(f"    {text(example[1:])!r}")
    print(f"  the model sees {PROMPT} characters (a newline, then a+b=) and must write the {ANSWER} after them")

    section("2. the model")
    model = GPT(len(ALPHABET), d_model=64, nhead=4, num_layers=2, dim_feedforward=256, dropout=0.0,
                max_len=PROMPT + ANSWER, activation="gelu_tanh", rng=args.seed)
    print(f"  GPT: 2 blocks (pre-norm, GELU tanh as GPT-2), width 64, 4 heads, window {model.max_len}; "
          f"{model.num_parameters():,} parameters")

    section("3. training")
    steps = 30 if args.quick else args.steps
    print(f"  {steps} steps of 64 random problems: AdamW (lr 3e-3), warmup then linear decay, clipping 1.0")
    history = train(model, rng, training, held_ids[:100 if args.quick else 200], steps)
    metrics["train_seconds"] = round(history["seconds"], 1)
    print(f"  trained in {metrics['train_seconds']:.1f} s")
    x, smooth, window = running_mean(history["losses"], steps)
    eval_steps = history["eval_steps"]
    fig = loss_curve(x, smooth, val_steps=eval_steps, val=history["eval_losses"],
                     title="A GPT learning 3-digit addition",
                     ylabel="cross-entropy of the answer", accuracy_steps=eval_steps, accuracy=history["eval_exact"],
                     accuracy_label="held-out exact answers")
    left, right = fig.axes
    left.plot(np.arange(1, steps + 1), history["losses"], color="C0", alpha=0.35, linewidth=0.8)
    right.lines[0].set_color("C2")                                  # accuracy: its own colour, not the loss's
    right.set_ylabel("held-out exact answers", color="C2")
    for axes in (left, right):
        axes.get_legend().remove()                                  # one legend for both axes, below
    fig.legend(left.lines[:3] + right.lines[:1], [f"train loss (mean of {window} steps)", "held-out loss",
                                                  "train loss, each step", "held-out exact answers (right axis)"],
               loc="outside lower center", ncol=2, frameon=False)
    fig.set_size_inches(7.0, 5.0)
    save(fig, args.out, "10_loss.png")

    section("4. answers for the held-out pairs (greedy, with the KV cache)")
    model.eval()
    prompts = held_ids[:, :PROMPT]
    answers, right = exact_answers(model, held_ids)
    metrics["held_out_exact_match"] = round(float(right.mean()), 3)
    print(f"  exactly right: {int(right.sum())} of {HELD_OUT} ({right.mean():.3f})")
    examples = list(range(3)) + [row for row in np.flatnonzero(~right) if row >= 3][:2]
    for row in examples:
        verdict = "right" if right[row] else "wrong, the sum is " + text(held_ids[row, PROMPT:]).strip()
        print(f"    {text(prompts[row, 1:])}{text(answers[row]).strip():<6}{verdict}")
    sampled, logits = model.generate(prompts[:3], ANSWER, temperature=1.0, top_k=3, rng=args.seed,
                                     return_logits=True)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    peak = (probs / probs.sum(-1, keepdims=True)).max(-1)[:, :-1]   # (3, DIGITS + 1) the top digit's probability
    print(f"  sampled at temperature 1 among the top 3 digits (the top digit's probability: {peak.min():.3f} "
          f"to {peak.max():.3f}):")
    for row in range(3):
        print(f"    {text(sampled[row, 1:PROMPT])}{text(sampled[row, PROMPT:]).strip()}")

    section("5. what the answer digits look at")
    example = held_ids[:1]                                          # (1, T) "\n959+233=1192\n"
    record = model(example[:, :-1], output_attentions=True)         # every layer's (1, H, T, T)
    seen = text(example[0, :-1])                                    # the T characters the model reads
    owner = {1 + i: "a" for i in range(DIGITS)} | {DIGITS + 2 + i: "b" for i in range(DIGITS)}
    keys = [shown(c) + (f"\n{owner[j]}" if j in owner else "") for j, c in enumerate(seen)]
    writes = [f"writes {shown(c)}" for c in text(example[0, PROMPT:])]
    layer = 1
    weights = record.attentions[layer][0, :, PROMPT - 1:, :]         # (H, answer positions, keys)
    fig = attention_heads_grid(weights, writes, key_tokens=keys, columns=2,
                               title=f"Layer {layer} (of layers 0-1), heads 0-3, on {text(example[0, 1:-1])}: "
                                     "each row is the position that writes the next character")
    for ax in fig.axes[:-1]:                                        # the last axes is the colour bar
        ax.tick_params(labelsize=9)
        for label in ax.get_xticklabels():
            label.set_rotation(0)
            label.set_horizontalalignment("center")
    save(fig, args.out, "10_attention.png")
    names = ["hundreds", "tens", "ones"]
    digits = {j: f"{owner[j]}'s {names[(j - 1) % (DIGITS + 1)]}" for j in owner}
    print("  the operand digits each answer position reads most (largest weight over the heads):")
    for row, (char, place_name) in enumerate(zip(text(example[0, PROMPT:PROMPT + DIGITS + 1]),
                                                 ["thousands", "hundreds", "tens", "ones"], strict=True)):
        found = []
        for number, attention in enumerate(record.attentions):
            read = attention[0, :, PROMPT - 1 + row, :PROMPT].max(axis=0)  # (prompt keys,) over the heads
            top = [j for j in np.argsort(-read) if j in digits][:2]
            found.append(f"layer {number}: " + ", ".join(f"{digits[j]} ({read[j]:.2f})" for j in top))
        print(f"    writing the {place_name} digit ({char}): " + "; ".join(found))

    section("6. the key/value cache")
    repeats = 1 if args.quick else 5
    fast, slow, same, diff = cache_speedup(model, prompts, ANSWER, repeats)
    metrics["answers_cache_seconds"], metrics["answers_recompute_seconds"] = round(fast, 4), round(slow, 4)
    metrics["kv_cache_speedup_answers"] = round(slow / fast, 2)
    print(f"  {HELD_OUT} answers of {ANSWER} tokens after {PROMPT}-token prompts: {fast * 1e3:.0f} ms with the "
          f"cache, {slow * 1e3:.0f} ms recomputing the prefix at every step (x{slow / fast:.2f}); same answers: "
          f"{same}, largest logit difference {diff:.1e}")
    # the cache's gain grows with the length written: a model of the same size with a longer window
    window_model = GPT(len(ALPHABET), d_model=64, nhead=4, num_layers=2, dim_feedforward=256, dropout=0.0,
                       max_len=512, activation="gelu_tanh", rng=args.seed).eval()
    new_tokens = 32 if args.quick else 256
    long_prompts = rng.integers(0, len(ALPHABET), size=(8, 16))
    fast, slow, same, diff = cache_speedup(window_model, long_prompts, new_tokens, min(repeats, 3))
    metrics["long_new_tokens"] = new_tokens
    metrics["long_cache_seconds"], metrics["long_recompute_seconds"] = round(fast, 3), round(slow, 3)
    metrics["kv_cache_speedup_long"] = round(slow / fast, 2)
    print(f"  8 sequences, {new_tokens} new tokens after 16 (same size, window 512, untrained: the time does not "
          f"depend on the weights): {fast:.2f} s with the cache, {slow:.2f} s recomputing (x{slow / fast:.1f}); "
          f"same tokens: {same}, largest logit difference {diff:.1e}")
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    with open(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=1)
    section("7. the figures of this run")
    print(f"  held-out exact match: {metrics['held_out_exact_match']:.3f}")
    print(f"  KV-cache speed-up, {HELD_OUT} answers: {metrics['kv_cache_speedup_answers']:.2f}")
    print(f"  seconds with the cache, {new_tokens} new tokens: {metrics['long_cache_seconds']:.2f}")
    print(f"  seconds recomputing, {new_tokens} new tokens: {metrics['long_recompute_seconds']:.2f}")
    print(f"  KV-cache speed-up, {new_tokens} new tokens: {metrics['kv_cache_speedup_long']:.1f}")
    print(f"\n  total time {metrics['total_seconds']:.1f} s; metrics in {os.path.join(args.out, 'metrics.json')}")
    done(args.out)


if __name__ == "__main__":
    main()

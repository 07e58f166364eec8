"""11 -- Today's decoder block against the 2017 one: a Llama-style model and a GPT learn the same addition.

The GPT of ``10_gpt.py`` is the Transformer of 2017 made pre-norm (GPT-2's block). The decoders people run
today (Llama, Mistral, Qwen) replace each of its parts and add nothing:

    the 2017 / GPT-2 block                       today's / the Llama block
    a learned position vector added to x         RoPE: q and k rotated by their position, inside attention
    LayerNorm (mean, variance, weight, bias)     RMSNorm (root mean square, weight only)
    linear2(gelu(linear1(x)))                    down_proj(silu(gate_proj(x)) * up_proj(x))   (SwiGLU)
    H key/value heads                            Hkv < H key/value heads, each shared by a group (GQA)
    a bias in every linear layer                 no biases

Here both have 2 blocks of width 64 with 4 query heads, tied input and output embeddings, and the same number
of parameters to within 64 (0.06%): the Llama block's three feed-forward matrices are 198 wide where GPT's two
are 256, it has 2 key/value heads, and no table of positions. Both are trained on the task of ``10_gpt.py``
(``_addition.py``: write the sum of two 3-digit numbers) from the same seed, on the same batches in the same
order, with the same optimizer and schedule; the GPT run is exactly 10_gpt.py's. The picture puts their loss
curves and their held-out exact match side by side, and both write the answers of the 500 held-out problems
through their key/value caches (the Llama cache holds keys already rotated, 2 heads instead of 4).

With ``--model DIR`` it loads a Hugging Face ``LlamaForCausalLM`` folder instead (``config.json``,
``model.safetensors``, and a GPT-2-style byte-level BPE tokenizer in ``vocab.json`` and ``merges.txt``) and
continues ``--prompt``.

Options (besides --quick, --out, --seed):

    --steps N            training steps of each model (default 1200)
    --model DIR          a Llama-family folder: continue --prompt with it instead of training
    --prompt TEXT        the text to continue (with --model)
    --max-new-tokens N   how many tokens to write (with --model; default 40)
    --temperature T      0 = greedy (default); with --top-k / --top-p for sampling
"""
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # small matrices: one BLAS thread is fastest

import copy  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _addition import (  # noqa: E402
    ALPHABET,
    ANSWER,
    HELD_OUT,
    PROMPT,
    encode,
    exact_answers,
    running_mean,
    split,
    text,
    train,
)
from _common import add_prompt_options, continue_prompt, done, fail, save, section, setup  # noqa: E402

from numpy_transformer.models import GPT, LlamaConfig, LlamaForCausalLM  # noqa: E402

GPT_COLOR, LLAMA_COLOR = "C0", "C3"


def add_options(parser):
    parser.add_argument("--steps", type=int, default=1200, help="training steps of each model (default 1200)")
    add_prompt_options(parser, "Llama")


# ---------------------------------------------------------------------------------------------- a folder

def continue_with_llama(args) -> None:
    from numpy_transformer.text import GPT2Tokenizer

    section("1. the pretrained model")
    for name in ("vocab.json", "merges.txt"):
        if not os.path.isfile(os.path.join(args.model, name)):
            fail(f"--model: {args.model} has no {name}; this demo reads GPT-2-style byte-level BPE tokenizers "
                 "(vocab.json and merges.txt); with another tokenizer, give the model its token ids in Python")
    start = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(args.model)
    tokenizer = GPT2Tokenizer.from_pretrained(args.model)
    config = model.config
    print(f"  loaded {args.model} in {time.perf_counter() - start:.1f} s: {config.num_hidden_layers} blocks, width "
          f"{config.hidden_size}, {config.num_attention_heads} query heads sharing {config.num_key_value_heads} "
          f"key/value heads, RoPE base {config.rope_theta:g}, {model.num_parameters():,} parameters"
          f"{', tied output' if config.tie_word_embeddings else ''}")
    section("2. continuing the prompt")
    ids, out, _ = continue_prompt(model, tokenizer, args)
    slow = model.generate(ids, out.shape[1] - ids.shape[1], temperature=args.temperature, top_k=args.top_k,
                          top_p=args.top_p, rng=args.seed, eos_token_id=tokenizer.eos_token_id, use_cache=False)
    print(f"  the same tokens recomputing every prefix instead of the cache: {bool(np.array_equal(out, slow))}")
    done(args.out)


# ---------------------------------------------------------------------------------------------- the picture

def first_step_reaching(steps, values, level: float):
    """The first step whose value reaches ``level``, or None."""
    return next((step for step, value in zip(steps, values, strict=True) if value >= level), None)


def comparison_picture(histories: dict, steps: int, parameters: dict, exact: dict):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.6), layout="constrained")
    for name, color in (("GPT", GPT_COLOR), ("Llama", LLAMA_COLOR)):
        history = histories[name]
        x, smooth, window = running_mean(history["losses"], steps)
        left.plot(np.arange(1, steps + 1), history["losses"], color=color, alpha=0.2, linewidth=0.7)
        left.plot(x, smooth, color=color, linewidth=2.0, label=f"{name}: training loss (mean of {window} steps)")
        left.plot(history["eval_steps"], history["eval_losses"], "o", color=color, markersize=4,
                  markerfacecolor="white", label=f"{name}: held-out loss")
        right.plot(history["eval_steps"], history["eval_exact"], "o-", color=color, linewidth=2.0, markersize=4,
                   label=f"{name}: {exact[name]:.3f} of the 500 at the end")
    left.set_yscale("log")
    left.set_xlabel("training step (the same batches for both)")
    left.set_ylabel("cross-entropy of the answer (log scale)")
    left.set_title("Loss")
    left.legend(fontsize=8.5, frameon=False)
    right.set_ylim(-0.03, 1.03)
    right.set_xlabel("training step")
    right.set_ylabel("held-out answers exactly right")
    right.set_title("Held-out exact match (200 problems during training)")
    right.legend(fontsize=8.5, frameon=False, loc="lower right")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    fig.suptitle(f"3-digit addition: the 2017 block (GPT, {parameters['GPT']:,} parameters) and today's "
                 f"(Llama, {parameters['Llama']:,})")
    return fig


# ---------------------------------------------------------------------------------------------- training

def main() -> None:
    args = setup("11_llama", "today's decoder block (Llama) against the 2017 one (GPT) on the same task",
                 add_options)
    if args.model:
        continue_with_llama(args)
        return
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    metrics = {}

    section("1. the task (the one of 10_gpt.py)")
    held_out, training = split(rng)
    held_ids = encode(held_out)                                     # (500, PROMPT + ANSWER)
    print(f"  write the sum of two 3-digit numbers, e.g. {text(held_ids[0, 1:])!r}; {HELD_OUT} pairs held out")

    section("2. two models of the same size")
    gpt = GPT(len(ALPHABET), d_model=64, nhead=4, num_layers=2, dim_feedforward=256, dropout=0.0,
              max_len=PROMPT + ANSWER, activation="gelu_tanh", rng=args.seed)
    config = LlamaConfig(vocab_size=len(ALPHABET), hidden_size=64, intermediate_size=198, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    llama = LlamaForCausalLM(config, rng=args.seed)
    parameters = {"GPT": gpt.num_parameters(), "Llama": llama.num_parameters()}
    print(f"  GPT  : 2 blocks, width 64, 4 heads of 16 (keys and values too), GELU feed-forward 256 wide, "
          f"LayerNorm, {PROMPT + ANSWER} learned positions, biases; {parameters['GPT']:,} parameters")
    print(f"  Llama: 2 blocks, width 64, 4 query heads sharing 2 key/value heads of 16, SwiGLU 198 wide, RMSNorm, "
          f"RoPE (base {config.rope_theta:g}), no biases; {parameters['Llama']:,} parameters")
    print(f"  the Llama initialization is Hugging Face's (every matrix N(0, {config.initializer_range})); the GPT's "
          "is torch's for its layers and N(0, 0.02) for its tables")

    section("3. training both on the same batches")
    steps = 30 if args.quick else args.steps
    check = held_ids[:100 if args.quick else 200]
    print(f"  {steps} steps of 64 random problems each: AdamW (lr 3e-3), warmup then linear decay, clipping 1.0")
    histories = {}
    for name, model in (("GPT", gpt), ("Llama", llama)):
        print(f"  {name}:")
        histories[name] = train(model, copy.deepcopy(rng), training, check, steps)  # the same batch stream
        metrics[f"{name.lower()}_train_seconds"] = round(histories[name]["seconds"], 1)
        print(f"  {name} trained in {histories[name]['seconds']:.1f} s")

    section("4. the comparison")
    exact = {}
    tail = max(1, min(100, steps // 10))
    for name, model in (("GPT", gpt), ("Llama", llama)):
        model.eval()
        answers, right = exact_answers(model, held_ids)
        exact[name] = float(right.mean())
        history = histories[name]
        reached = first_step_reaching(history["eval_steps"], history["eval_exact"], 0.9)
        metrics[name] = {"held_out_exact_match": round(exact[name], 3),
                         "final_train_loss": round(float(np.mean(history["losses"][-tail:])), 4),
                         "final_held_out_loss": round(history["eval_losses"][-1], 4),
                         "first_step_at_0.9": reached}
        print(f"  {name:5s}: training loss {metrics[name]['final_train_loss']:.4f} (mean of the last {tail} steps), "
              f"held-out loss {metrics[name]['final_held_out_loss']:.4f}, exactly right {int(right.sum())} of "
              f"{HELD_OUT}; 90% of the check problems first right at step {reached or 'never'}")
        wrong = np.flatnonzero(~right)[:2]
        for row in wrong:
            print(f"         e.g. {text(held_ids[row, 1:PROMPT])}{text(answers[row]).strip()}, "
                  f"the sum is {text(held_ids[row, PROMPT:]).strip()}")
    for milestone in sorted({steps // 4, steps // 2, steps}):
        index = milestone - 1
        window = slice(max(0, index - tail + 1), index + 1)
        losses = {name: float(np.mean(histories[name]["losses"][window])) for name in histories}
        print(f"  at step {milestone:>4}: training loss GPT {losses['GPT']:.4f}, Llama {losses['Llama']:.4f}")
    fig = comparison_picture(histories, steps, parameters, exact)
    save(fig, args.out, "11_compare.png")

    section("5. decoding through the caches")
    prompts = held_ids[:64, :PROMPT]
    for name, model in (("GPT", gpt), ("Llama", llama)):
        fast, fast_logits = model.generate(prompts, ANSWER, temperature=0.0, return_logits=True)
        slow, slow_logits = model.generate(prompts, ANSWER, temperature=0.0, use_cache=False, return_logits=True)
        caches = model.new_caches(1)
        model.next_token_logits(held_ids[:1, :PROMPT], caches)
        per_token = sum(cache.keys[0, :, 0].size + cache.values[0, :, 0].size for cache in caches)
        print(f"  {name:5s}: cached and recomputed answers equal: {bool(np.array_equal(fast, slow))} (largest logit "
              f"difference {float(np.abs(fast_logits - slow_logits).max()):.1e}); the cache keeps {per_token} "
              "numbers per token")

    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    with open(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=1)
    section("6. the figures of this run")
    print(f"  GPT parameters: {parameters['GPT']}")
    print(f"  Llama parameters: {parameters['Llama']}")
    for name in ("GPT", "Llama"):
        print(f"  {name} held-out exact match: {metrics[name]['held_out_exact_match']:.3f}")
        print(f"  {name} final training loss: {metrics[name]['final_train_loss']:.4f}")
        print(f"  {name} final held-out loss: {metrics[name]['final_held_out_loss']:.4f}")
    print(f"\n  total time {metrics['total_seconds']:.1f} s; metrics in {os.path.join(args.out, 'metrics.json')}")
    done(args.out)


if __name__ == "__main__":
    main()

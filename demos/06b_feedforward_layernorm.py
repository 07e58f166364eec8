"""06b -- The rest of a Transformer layer: feed-forward, residual connections and layer norm.

Attention (05, 06) mixes information BETWEEN positions. A Transformer layer then gives every position the same
small two-layer network, the *feed-forward* block, which works on each position ALONE::

    ffn(x) = relu(x W1^T + b1) W2^T + b2          (..., D) -> (..., F) -> (..., D), F = 4 D here

Around each of the two sub-layers (attention, feed-forward) sit a *residual connection*, which adds the
sub-layer's output to its input instead of replacing it, and a *layer norm*, which rescales every position's
vector to mean 0 and variance 1 over its D features (then multiplies by a learned gain and adds a bias)::

    post-norm (the 2017 paper, torch's default):   x = norm(x + sublayer(x))
    pre-norm  (GPT-2 and most deep models since):  x = x + sublayer(norm(x))

This demo runs the library's own layers (``nn.TransformerEncoderLayer``, ``nn.LayerNorm``) on sentences of
the translation grammar, embedded with untrained weights: what these operations do does not depend on the
weights. It shows, with numbers:

1. the feed-forward block treats each position on its own (shuffle the words and its outputs shuffle the same
   way) and, through the ReLU, switches on a different part of its F hidden units for every word;
2. the residual keeps the input's signal: x + ffn(x) still points where x pointed, ffn(x) alone does not;
3. layer norm gives every token mean 0 and variance 1, whatever scale it came in at;
4. why deep stacks prefer pre-norm: the gradient that reaches each layer of a 12-layer stack, measured at the
   start and after a few large training steps. In post-norm the gradient goes through every layer's norm on
   its way down; in pre-norm the residual stream ``x + ...`` is a straight path from the loss to the bottom.
"""
import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # small matrices: one BLAS thread is fastest

import numpy as np  # noqa: E402
from _common import done, integer, save, section, setup  # noqa: E402

from numpy_transformer.data.translation import make_translation_pairs  # noqa: E402
from numpy_transformer.functional.feedforward import feedforward_forward  # noqa: E402
from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward  # noqa: E402
from numpy_transformer.nn import Embedding, LayerNorm, Linear, PositionalEncoding  # noqa: E402
from numpy_transformer.nn.transformer import TransformerEncoderLayer  # noqa: E402
from numpy_transformer.optim import Adam  # noqa: E402
from numpy_transformer.text import WordTokenizer  # noqa: E402


def add_options(parser):
    parser.add_argument("--layers", type=integer(2, 48), default=12,
                        help="depth of the stacks compared in part 4 (default 12)")


args = setup("06b_feedforward_layernorm", "feed-forward, residual and layer norm, and why deep stacks use pre-norm",
             add_options)
rng = np.random.default_rng(args.seed)
D, H, F = 64, 4, 256

section("the activations: grammar sentences, embedded, after one attention sub-layer")
sentences = [english for english, _ in make_translation_pairs(32, seed=args.seed)]
tokenizer = WordTokenizer().build_vocab(sentences)
ids, _ = tokenizer.batch_encode(sentences)                          # (B, T), padded with 0
embed = Embedding(tokenizer.vocab_size, D, rng=args.seed)
positions = PositionalEncoding(D, max_len=64)
x0 = positions(embed(ids))                                          # (B, T, D)
layer = TransformerEncoderLayer(D, H, dim_feedforward=F, dropout=0.0, batch_first=True, rng=args.seed)
attended = layer.self_attn(x0, x0, x0, key_padding_mask=ids == 0, need_weights=False)[0]  # (B, T, D)
x = layer.norm1(x0 + attended)                                      # (B, T, D): the input of the feed-forward block
row = int(np.argmax([len(s.split()) for s in sentences]))         # the longest sentence, shown below
words = tokenizer.split(sentences[row])
T0 = len(words)
print(f"  {len(sentences)} sentences such as {sentences[row]!r}; x = norm1(x0 + attention(x0)): {x.shape} (B, T, D)")

section("1. the feed-forward block works on each position alone")
w1, b1 = layer.linear1.weight.data, layer.linear1.bias.data         # (F, D), (F,)
w2, b2 = layer.linear2.weight.data, layer.linear2.bias.data         # (D, F), (D,)
sentence = x[row, :T0]                                              # (T, D): one sentence, no padding
out, _ = feedforward_forward(sentence, w1, b1, w2, b2)              # (T, D)
one_by_one = np.stack([feedforward_forward(sentence[t:t + 1], w1, b1, w2, b2)[0][0] for t in range(T0)])
shuffle = rng.permutation(T0)
shuffled, _ = feedforward_forward(sentence[shuffle], w1, b1, w2, b2)
print(f"  the whole sentence at once == each word alone: max difference {np.abs(out - one_by_one).max():.1e}")
print(f"  shuffle the words -> the outputs shuffle the same way: max difference "
      f"{np.abs(shuffled - out[shuffle]).max():.1e} (no word sees another here: that was attention's job)")
hidden = np.maximum(sentence @ w1.T + b1, 0.0)                      # (T, F): the ReLU's output
active = hidden > 0                                                 # (T, F)
print(f"  widen D = {D} -> F = {F}, ReLU, back to D. Hidden units switched on per word (of {F}):")
print("    " + ", ".join(f"{w} {n}" for w, n in zip(words, active.sum(axis=1), strict=True)))
overlap = (active[:, None] & active[None]).sum(-1) / np.maximum(1, (active[:, None] | active[None]).sum(-1))
print(f"  two different words share {np.mean(overlap[~np.eye(T0, dtype=bool)]):.0%} of their active units on "
      "average: each word gets its own part of the network")

section("2. the residual connection keeps the signal")


def cosine(a, b):
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


residual = sentence + out                                           # (T, D)
alone = np.mean([cosine(sentence[t], out[t]) for t in range(T0)])
kept = np.mean([cosine(sentence[t], residual[t]) for t in range(T0)])
print(f"  mean cosine between a word's x and ffn(x): {alone:+.2f}; between x and x + ffn(x): {kept:+.2f}")
print(f"  |x| = {np.linalg.norm(sentence, axis=1).mean():.2f}, |ffn(x)| = {np.linalg.norm(out, axis=1).mean():.2f} "
      "per word: the sub-layer adds a correction, the word keeps what it was")

section("3. layer norm: every token to mean 0, variance 1")
scales = np.linspace(0.5, 3.0, T0, dtype=residual.dtype)[:, None]  # (T, 1)
before = residual * scales + 0.5 * scales                          # (T, D): words at different scales, as in
norm = LayerNorm(D)                                                 # a deep stack where sums keep growing
normalized = norm(before)                                           # (T, D); gain 1 and bias 0 at the start
print(f"  {'word':10s} {'mean before':>12s} {'std before':>11s} {'mean after':>11s} {'std after':>10s}")
for t, word in enumerate(words):
    print(f"  {word:10s} {before[t].mean():+12.3f} {before[t].std():11.3f} {normalized[t].mean():+11.3f} "
          f"{normalized[t].std():10.3f}")
print("  the statistics are over each token's own D features (not over the batch, as batch norm's are), so a "
      "token\n  is normalized the same way whatever else is in the batch, and at inference too")

section(f"4. post-norm or pre-norm: the gradient reaching each of {args.layers} layers")
# Two stacks of args.layers encoder layers, the same initial weights in both, a next-word head on top, trained
# with Adam at a learning rate of 1e-2 and no warmup. The loop over layers is written out, so that the
# gradient each layer receives can be read off on the way down.
steps, learning_rate, probe = (12, 1e-2, 4) if args.quick else (30, 1e-2, 10)
targets = np.where(ids[:, 1:] == 0, -100, ids[:, 1:])               # (B, T-1): the next word; padding ignored
history = {}
for name, norm_first in (("post-norm", False), ("pre-norm", True)):
    stack_embed = Embedding(tokenizer.vocab_size, D, rng=args.seed)
    stack = [TransformerEncoderLayer(D, H, dim_feedforward=F, dropout=0.0, norm_first=norm_first, batch_first=True,
                                     rng=args.seed + 1 + i) for i in range(args.layers)]
    final = LayerNorm(D) if norm_first else None  # pre-norm ends with one more norm (GPT-2's ln_f)
    head = Linear(D, tokenizer.vocab_size, rng=args.seed)
    modules = [stack_embed, head, *stack] + ([final] if final else [])
    optimizer = Adam([p for m in modules for p in m.parameters()], lr=learning_rate)
    norms, losses = [], []
    for step in range(steps + 1):
        h = positions(stack_embed(ids))                             # (B, T, D)
        for block in stack:
            h = block(h, src_key_padding_mask=ids == 0)             # (B, T, D)
        if final is not None:
            h = final(h)
        logits = head(h)[:, :-1]                                    # (B, T-1, V)
        loss, cache = cross_entropy_forward(logits, targets, ignore_index=-100)
        for module in modules:
            module.zero_grad()
        dlogits = np.zeros((*ids.shape, tokenizer.vocab_size), dtype=logits.dtype)
        dlogits[:, :-1] = cross_entropy_backward(1.0, cache)        # (B, T, V)
        dh = head.backward(dlogits)
        if final is not None:
            dh = final.backward(dh)
        for block in reversed(stack):
            dh = block.backward(dh)
        positions.backward(dh)
        stack_embed.backward(dh)
        norms.append([float(np.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in block.parameters())))
                      for block in stack])                          # one number per layer
        losses.append(float(loss))
        if step < steps:
            optimizer.step()
    history[name] = (np.array(norms), np.array(losses))
print(f"  norm of the gradient of each layer's weights, at the start and after {probe} steps of Adam at "
      f"learning rate {learning_rate} (no warmup):")
print(f"  {'layer':>5s} {'post, start':>12s} {'pre, start':>11s} {f'post, step {probe}':>13s} "
      f"{f'pre, step {probe}':>12s}")
for i in range(args.layers):
    print(f"  {i:5d} {history['post-norm'][0][0, i]:12.2e} {history['pre-norm'][0][0, i]:11.2e} "
          f"{history['post-norm'][0][probe, i]:13.2e} {history['pre-norm'][0][probe, i]:12.2e}")
for name, (_, losses) in history.items():
    print(f"  {name}: next-word loss {losses[0]:.2f} at the start, {losses[-1]:.2f} after {steps} steps")
print("  At the start both stacks hand every layer a gradient of the same size. A few large steps later the\n"
      "  post-norm stack has gone quiet: each layer's output passes through its norm, which rescales the gradient\n"
      "  on its way down, and once the sub-layers' outputs grow the lower layers receive almost nothing: they stop\n"
      "  learning, and the loss falls only as far as the top layers alone can take it. In the pre-norm stack the\n"
      "  sum x + sublayer(norm(x)) hands the gradient down unchanged, a straight path from the loss to the bottom\n"
      "  layer, and it keeps learning. Hence pre-norm in deep models (GPT-2, ViT, Llama), and the learning-rate\n"
      "  warmup that post-norm stacks need.")

section("pictures")
from matplotlib.figure import Figure  # noqa: E402

fig = Figure(figsize=(9.0, 3.6), layout="constrained")
ax = fig.add_subplot(1, 1, 1)
image = ax.imshow(hidden, aspect="auto", cmap="magma", interpolation="nearest")
ax.set_yticks(range(T0), words)
ax.set_xlabel(f"hidden unit (of F = {F})")
ax.set_title(f"Feed-forward block: relu(x W1^T + b1) for each word of \"{sentences[row]}\"\n"
             "(black: switched off by the ReLU; every word lights up its own units)")
fig.colorbar(image, ax=ax, label="activation")
save(fig, args.out, "06b_feedforward_hidden.png")

fig = Figure(figsize=(9.0, 3.8), layout="constrained")
left, right = fig.subplots(1, 2)
positions_t = np.arange(T0)
left.bar(positions_t - 0.2, before.mean(axis=1), width=0.4, label="before")
left.bar(positions_t + 0.2, normalized.mean(axis=1), width=0.4, label="after layer norm")
left.set_title("mean over each token's features")
right.bar(positions_t - 0.2, before.std(axis=1), width=0.4, label="before")
right.bar(positions_t + 0.2, normalized.std(axis=1), width=0.4, label="after layer norm")
right.axhline(1.0, color="gray", linestyle="--", linewidth=1)
right.set_title("standard deviation over each token's features")
for panel in (left, right):
    panel.set_xticks(positions_t, words, rotation=30, ha="right")
    panel.legend(fontsize=8)
    panel.grid(axis="y", alpha=0.3)
fig.suptitle("Layer norm: every token to mean 0 and standard deviation 1, whatever its scale")
save(fig, args.out, "06b_layernorm.png")

fig = Figure(figsize=(12.0, 4.0), layout="constrained")
at_start, after, curves = fig.subplots(1, 3)
floor = 1e-12  # a gradient of exactly 0 drawn at the bottom of the log scale
for name, marker in (("post-norm", "o"), ("pre-norm", "s")):
    norms, losses = history[name]
    at_start.plot(range(args.layers), np.maximum(norms[0], floor), marker=marker, label=name)
    after.plot(range(args.layers), np.maximum(norms[probe], floor), marker=marker, label=name)
    curves.plot(range(steps + 1), losses, marker=marker, markersize=3, label=name)
at_start.set_title("gradient norm per layer, at the start")
after.set_title(f"... after {probe} steps (learning rate {learning_rate}, no warmup)")
for panel in (at_start, after):
    panel.set_yscale("log")
    panel.set_xlabel("layer (0 = the bottom, next to the embeddings)")
    panel.set_ylabel("norm of the gradient of the layer's weights")
    panel.grid(alpha=0.3, which="both")
    panel.legend(fontsize=8)
curves.set_title("next-word loss")
curves.set_xlabel("step")
curves.set_ylabel("cross-entropy")
curves.grid(alpha=0.3)
curves.legend(fontsize=8)
fig.suptitle(f"Post-norm or pre-norm: {args.layers} encoder layers trained on the same sentences")
save(fig, args.out, "06b_norm_first_gradients.png")

print(f"\nresult: per-position {np.abs(out - one_by_one).max() < 1e-5}; residual cosine {kept:+.2f} vs {alone:+.2f}; "
      f"layer norm std {normalized.std(axis=1).min():.3f}-{normalized.std(axis=1).max():.3f}; loss after {steps} "
      f"steps post-norm {history['post-norm'][1][-1]:.2f}, pre-norm {history['pre-norm'][1][-1]:.2f}")
done(args.out)

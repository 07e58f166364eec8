"""06 -- Multi-head attention: several heads, each free to look somewhere else.

One head of attention gives each word ONE weighted average of the other words. Multi-head attention runs H
heads side by side, each with its own query, key and value projections of width D / H, and concatenates
their outputs before a last projection (``nn.MultiheadAttention``, with torch's ``in_proj_weight`` (3D, D)
and ``out_proj``)::

    q, k, v = x W_q^T, x W_k^T, x W_v^T                        (B, T, D) each
    split into H heads                                         (B, H, T, D/H)
    head_h  = softmax(q_h k_h^T / sqrt(D/H)) v_h              (B, H, T, D/H), heads as a batch axis
    out     = concat(head_1 .. head_H) W_o^T                   (B, T, D)

The weights pictured here are LEARNED, not set by hand: a tiny model -- word embeddings plus sinusoidal
positions, one ``MultiheadAttention`` layer with 4 heads, and two Linear read-outs -- is trained for a few
seconds to name, at every position, both the word BEFORE it and the word AFTER it. No single average can
carry two different words, so the heads divide the work: some learn to look one step back, others one step
ahead. The pictures show each head's attention on a sentence it never saw, one panel per head (heads numbered
from 0, as the model indexes them), as heatmaps and as lines from each word to the words it attends to.
"""
import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # tiny matrices: one BLAS thread is fastest

import numpy as np  # noqa: E402
from _common import Progress, done, save, section, setup  # noqa: E402

from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward  # noqa: E402
from numpy_transformer.nn import Embedding, Linear, Module, PositionalEncoding  # noqa: E402
from numpy_transformer.nn.attention import MultiheadAttention  # noqa: E402
from numpy_transformer.optim import AdamW, clip_grad_norm_  # noqa: E402
from numpy_transformer.viz import attention_heads_grid, head_view, loss_curve  # noqa: E402

IGNORE = -100  # target of positions with no word before (or after) them: left out of the loss


class NeighbourModel(Module):
    """Embeddings + positions -> one multi-head self-attention layer -> "word before" and "word after" scores."""

    def __init__(self, vocab_size, d_model, num_heads, rng):
        super().__init__()
        self.embed = Embedding(vocab_size, d_model, rng=rng)
        self.positions = PositionalEncoding(d_model, max_len=64, kind="sinusoidal")
        self.attention = MultiheadAttention(d_model, num_heads, batch_first=True, rng=rng)
        self.before = Linear(d_model, vocab_size, rng=rng)
        self.after = Linear(d_model, vocab_size, rng=rng)

    def forward(self, ids):
        x = self.positions(self.embed(ids))                         # (B, T) -> (B, T, D)
        h, _ = self.attention(x, x, x, need_weights=False)          # (B, T, D)
        return self.before(h), self.after(h)                        # 2 x (B, T, V)

    def backward(self, dbefore, dafter):
        # forward: before(h), after(h): both read h, so their gradients add
        dh = self.before.backward(dbefore) + self.after.backward(dafter)  # (B, T, D)
        # forward: h = attention(x, x, x): x is the query, the key and the value, so the module returns
        # the whole gradient of x in the first slot (and None in the other two)
        dx, _, _ = self.attention.backward(dh)                      # (B, T, D)
        dx = self.positions.backward(dx)                            # (B, T, D)
        self.embed.backward(dx)
        return None

    def weights(self, ids):
        """Per-head attention weights (B, H, T, T) of ``ids`` (B, T)."""
        x = self.positions(self.embed(ids))
        return self.attention(x, x, x, need_weights=True, average_attn_weights=False)[1]


args = setup("06_multihead_attention", "several attention heads, each learning where to look")
rng = np.random.default_rng(args.seed)

section("1. the task: name the word before and the word after every word")
sentence = "the cat sat on the mat because it was tired".split()
extra = ("a dog ran under this red chair and then she slept well "
         "my old car is slow but your new bike looks fast").split()
vocabulary = sorted(set(sentence) | set(extra))
stoi = {w: i for i, w in enumerate(vocabulary)}
V, T = len(vocabulary), len(sentence)
print(f"  {V} words; training sequences are {T} words drawn at random (never the sentence below), e.g.")
example = rng.integers(0, V, T)
print("    " + " ".join(vocabulary[i] for i in example))
print("    target 'before': " + " ".join(["-"] + [vocabulary[i] for i in example[:-1]]))
print("    target 'after':  " + " ".join([vocabulary[i] for i in example[1:]] + ["-"]))


def batch(size):
    ids = rng.integers(0, V, (size, T))                             # (B, T) random words
    before = np.full_like(ids, IGNORE)
    before[:, 1:] = ids[:, :-1]                                     # position t: the word at t - 1
    after = np.full_like(ids, IGNORE)
    after[:, :-1] = ids[:, 1:]                                      # position t: the word at t + 1
    return ids, before, after


section("2. training a one-layer, 4-head model")
D, H = 32, 4
model = NeighbourModel(V, D, H, rng=args.seed)
print(f"  Embedding({V}, {D}) + sinusoidal positions -> MultiheadAttention({D}, num_heads={H}) "
      f"(head width {D // H}) -> two Linear({D}, {V}); {model.num_parameters():,} parameters")
steps = 30 if args.quick else 600
optimizer = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
progress = Progress(total=steps, every=max(1, steps // 10))
losses = []
for step in range(1, steps + 1):
    ids, before, after = batch(64)
    logits_before, logits_after = model(ids)
    loss_b, cache_b = cross_entropy_forward(logits_before, before, ignore_index=IGNORE)
    loss_a, cache_a = cross_entropy_forward(logits_after, after, ignore_index=IGNORE)
    model.zero_grad()
    model.backward(cross_entropy_backward(1.0, cache_b), cross_entropy_backward(1.0, cache_a))
    clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    losses.append(float(loss_b) + float(loss_a))
    progress.update(step, losses[-1])
ids, before, after = batch(500)
logits_before, logits_after = model(ids)
keep = before != IGNORE
accuracy_before = float((logits_before.argmax(-1) == before)[keep].mean())
keep = after != IGNORE
accuracy_after = float((logits_after.argmax(-1) == after)[keep].mean())
print(f"  on 500 new random sequences: word before named right {accuracy_before:.1%}, "
      f"word after {accuracy_after:.1%} (chance {1 / V:.1%})")
print(f"  multihead accuracy (before, after): {accuracy_before:.3f} {accuracy_after:.3f}")
save(loss_curve(np.arange(1, steps + 1), losses, smooth=max(1, steps // 30),
                reference=[(2 * np.log(V), f"guessing: 2 ln V = {2 * np.log(V):.2f}")],
                title="Training: name the word before and the word after", ylabel="cross-entropy (before + after)"),
     args.out, "06_loss.png")

section("3. what each head learned, on a sentence it never saw")
ids = np.array([[stoi[w] for w in sentence]])                       # (1, T)
weights = model.weights(ids)[0]                                     # (H, T, T)
print(f"  MultiheadAttention(..., need_weights=True, average_attn_weights=False) -> weights {weights.shape}"
      " (heads, query, key)")
roles = []
for h in range(H):
    # how much attention, on average over the words, goes one step back, to the word itself, one step ahead
    back = float(np.mean(np.diagonal(weights[h], offset=-1)))
    same = float(np.mean(np.diagonal(weights[h])))
    ahead = float(np.mean(np.diagonal(weights[h], offset=1)))
    share, role = max((back, "the word before"), (same, "the word itself"), (ahead, "the word after"))
    roles.append(f"head {h}: {role} ({share:.2f})")
    print(f"  head {h}: to the word before {back:.2f}, to itself {same:.2f}, to the word after {ahead:.2f}"
          f"  -> mostly looks at {role}")
print("  (each picture titles every head with what it mostly looks at and the mean weight it puts there)")
fig = attention_heads_grid(weights, sentence, head_titles=roles,
                           title=f"Learned multi-head attention, one panel per head ({H} heads, numbered from 0) "
                                 "on a sentence it never saw\nrows: the word asking; columns: the words it looks "
                                 "at")
save(fig, args.out, "06_heads.png")
fig = head_view(weights, sentence, head_titles=roles,
                title="Head view: each word (left) -> the words it attends to (right), one panel per head")
save(fig, args.out, "06_head_view.png")
done(args.out)

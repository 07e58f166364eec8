"""05 -- Scaled dot-product attention: every word looks at every other word.

Each word asks a question (its *query* q), offers a description of itself (its *key* k) and carries
content (its *value* v). The attention weights of word t are the softmax of how well its query matches
every key, and its output is the weighted average of the values:

    weights = softmax(q k^T / sqrt(Dh) + mask)      (T, S)
    out     = weights v                             (T, Dv)

Here the word vectors and the projections are written by hand, so we know what each word should look for:
a pronoun looks for an animate noun, a verb for a noun, a determiner for a noun, a noun for a verb. Then
two masks: the *causal* mask, which stops a word from seeing the words after it (how a language model is
trained to predict the next word), and the *padding* mask, which hides the filler tokens that make
sentences of different lengths fit in one batch. Last, four heads, each with its own hand-made question
(the word before, an animate noun, a noun, a verb), computed together as one batched matrix product, as
multi-head attention does: pictured side by side and as lines from each word to the words it attends to.
"""
import numpy as np
from _common import done, save, section, setup

from numpy_transformer.functional.attention import causal_mask, scaled_dot_product_attention_forward
from numpy_transformer.functional.heads import split_heads_forward
from numpy_transformer.viz import attention_heads_grid, attention_heatmap, head_view

args = setup("05_attention", "scaled dot-product attention, causal and padding masks, four heads")
rng = np.random.default_rng(args.seed)

section("1. hand-made word vectors and projections")
tokens = "the cat sat on the mat because it was tired".split()
features = ["determiner", "noun", "animate", "verb", "pronoun", "adjective", "other"]
kinds = {"the": ["determiner"], "cat": ["noun", "animate"], "mat": ["noun"], "sat": ["verb"], "was": ["verb"],
         "it": ["pronoun"], "tired": ["adjective"], "on": ["other"], "because": ["other"]}
F = len(features)
x = np.zeros((len(tokens), F))  # (T, F): one column per feature the word has
for t, token in enumerate(tokens):
    x[t, [features.index(k) for k in kinds[token]]] = 1.0
x += 0.05 * rng.standard_normal(x.shape)  # a little noise, as real vectors are never this clean
# keys describe: "I am a noun", "I am animate", "I am a verb"
w_k = np.zeros((F, 3))
w_k[features.index("noun"), 0] = w_k[features.index("animate"), 1] = w_k[features.index("verb"), 2] = 1.0
# queries ask: determiners and verbs want a noun, pronouns and adjectives want something animate, nouns a verb
w_q = np.zeros((F, 3))
w_q[features.index("determiner"), 0] = w_q[features.index("verb"), 0] = 1.0
w_q[features.index("pronoun"), 1] = w_q[features.index("adjective"), 1] = 2.0
w_q[features.index("noun"), 2] = 1.0
sharpness = 4.0  # a larger scale makes the softmax pick more decisively
q = sharpness * x @ w_q  # (T, F) @ (F, 3) -> (T, 3)
k = x @ w_k               # (T, 3)
v = x                     # values: the word vectors themselves
out, weights, _ = scaled_dot_product_attention_forward(q, k, v)  # out (T, F), weights (T, S)
print(f"  q {q.shape}, k {k.shape}, v {v.shape} -> out {out.shape}, weights {weights.shape}")
print(f"  every row of the weights sums to 1: {np.allclose(weights.sum(axis=-1), 1.0)}")
for word in ("it", "tired", "sat", "cat"):
    t = tokens.index(word)
    best = np.argsort(-weights[t])[:2]
    print(f"  '{word}' attends most to: " + ", ".join(f"'{tokens[j]}' ({weights[t, j]:.2f})" for j in best))
it_row = weights[tokens.index("it")]
it_to_cat = tokens[int(np.argmax(it_row))] == "cat"

section("2. the causal mask")
T = len(tokens)
mask = causal_mask(T, T)  # (T, T) bool, True = may not attend
print("  causal_mask(4, 4), True = may NOT attend:\n  " + str(causal_mask(4, 4).astype(int)).replace("\n", "\n  "))
_, causal_weights, _ = scaled_dot_product_attention_forward(q, k, v, is_causal=True)
future = float(np.abs(causal_weights[mask]).max())
print(f"  largest weight on a future word: {future} ; 'it' can still see 'cat' (it comes earlier): "
      f"{causal_weights[tokens.index('it'), tokens.index('cat')]:.2f}")
print(f"  the first word can only look at itself: weights[0] = {np.round(causal_weights[0, :3], 2).tolist()} ...")

section("3. the padding mask")
short = "the cat sat".split()
padded = short + ["<pad>"] * (T - len(short))
batch_x = np.stack([x, np.concatenate([x[:3], np.zeros((T - 3, F))])])  # (B, T, F): 2 sentences, the 2nd padded
key_padding = np.array([[False] * T, [False] * 3 + [True] * (T - 3)])    # (B, S): True = padding
batch_q, batch_k = sharpness * batch_x @ w_q, batch_x @ w_k                # (B, T, 3)
_, batch_weights, _ = scaled_dot_product_attention_forward(
    batch_q, batch_k, batch_x, mask=key_padding[:, None, :])              # mask (B, 1, S) -> weights (B, T, S)
on_padding = float(batch_weights[1][:, 3:].max())
print(f"  key padding mask (B, S) = {key_padding.shape}, passed as (B, 1, S) so it hides columns for every query")
print(f"  largest weight on a <pad> key: {on_padding}; rows still sum to 1: "
      f"{np.allclose(batch_weights.sum(axis=-1), 1.0)}")
print("  the <pad> positions are queries too: their rows are computed (over the 3 real words), but their outputs"
      "\n  are thrown away -- the loss and every later use skip padded positions -- so the picture greys them out")

section("4. four heads, four questions, one matrix product")
# Each head asks its own question with its own query and key projections, of width Dh: F feature dims and T
# position dims. Positions are one-hot here (real models learn them from positional encodings), and with
# one-hot positions a query can score every position as it likes: q_t . k_s = (row t of a T x T table)[s].
T = len(tokens)
H, Dh = 4, F + T
position = np.eye(T)                                        # (T, T): row t is position t, one-hot
distance = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :])  # (T, T): |t - s|
head_q, head_k = np.zeros((H, T, Dh)), np.zeros((H, T, Dh))
head_k[:, :, :F] = x                                        # keys: what each word is ...
head_k[:, :, F:] = position                                 # ... and where it is
head_names = ["the word before", "animate nouns", "the word after", "the nearest verb"]
head_asks = ["every word: the word just before me", "pronouns and adjectives: something animate",
             "determiners: the word after me (their noun)", "nouns: the nearest verb"]
is_a = {f: x[:, features.index(f)][:, None] for f in features}  # (T, 1) each: how much word t has feature f
strong = 2.0 * sharpness
head_q[0, 1:, F:] = strong * position[:-1]                  # head 0: position t asks for position t - 1
head_q[1, :, features.index("animate")] = strong * (is_a["pronoun"] + is_a["adjective"])[:, 0]
head_q[2, :-1, F:] = strong * is_a["determiner"][:-1] * position[1:]  # head 2: determiners ask for t + 1
head_q[3, :, features.index("verb")] = strong * is_a["noun"][:, 0]
head_q[3, :, F:] = -0.3 * distance - 0.1 * (np.arange(T)[None, :] > np.arange(T)[:, None])  # nearer, then earlier
head_q[:, :, F:] += 3.0 * position                          # every head: a word with nothing to ask looks at itself
head_q *= np.sqrt(Dh)                                       # so that the scores above are the softmax's inputs
# written as multi-head attention writes it: ONE (T, H * Dh) projection, split into heads, one batched product
q_all = head_q.transpose(1, 0, 2).reshape(1, T, H * Dh)     # (H, T, Dh) -> (1, T, H*Dh), as x W_q would give
k_all = head_k.transpose(1, 0, 2).reshape(1, T, H * Dh)
heads_q, _ = split_heads_forward(q_all, H)                   # (1, T, H*Dh) -> (1, H, T, Dh)
heads_k, _ = split_heads_forward(k_all, H)
heads_v, _ = split_heads_forward(np.tile(x, (1, H))[None], H)  # values: the word vectors, in every head
_, head_weights, _ = scaled_dot_product_attention_forward(heads_q, heads_k, heads_v)  # (1, H, T, T)
print(f"  q, k: (1, T, H*Dh) = {q_all.shape} -> split_heads -> {heads_q.shape}; weights {head_weights.shape}:"
      f" {H} patterns from one batched product")
for h in range(H):
    best = head_weights[0, h].argmax(axis=1)
    pairs = ", ".join(f"{tokens[t]} -> {tokens[best[t]]}" for t in range(T) if best[t] != t)
    print(f"  head {h} ({head_asks[h]}): {pairs}")
before_head_ok = all(head_weights[0, 0, t].argmax() == t - 1 for t in range(1, T))

section("pictures")
save(attention_heatmap(weights, tokens, title="Attention with hand-made queries and keys"), args.out,
     "attention_weights.png")
save(attention_heatmap(causal_weights, tokens, title="Causal mask: no word sees the words after it"),
     args.out, "attention_causal.png")
save(attention_heatmap(batch_weights[1], padded, ignored_rows=key_padding[1],
                       title="Padding mask: no query attends to a <pad> key\n"
                             "(the <pad> queries' own rows are computed, then discarded)"),
     args.out, "attention_padding.png")
save(attention_heads_grid(head_weights[0], tokens, head_titles=[f"head {h}: {head_names[h]}" for h in range(H)],
                          title=f"{H} hand-made heads, each asking its own question (rows: the word asking; "
                                "columns: the words it looks at)"),
     args.out, "attention_heads.png")
save(head_view(head_weights[0], tokens, head_titles=[f"head {h}: {head_names[h]}" for h in range(H)],
               title="Who attends to whom, one panel per head"), args.out, "head_view.png")

print(f"\nresult: 'it' attends most to 'cat': {it_to_cat}; head 0 looks at the word before: {before_head_ok}; "
      f"weight on future words {future}; weight on padding {on_padding}")
done(args.out)

"""03 -- Embeddings: a learned vector for every word.

Demo 01 showed that ``one_hot(word) @ table`` picks one row of ``table``. An embedding layer keeps that table
as a parameter and does the lookup directly (a gather, ``table[ids]``); its gradient is a scatter-add of the
upstream gradient into the looked-up rows. Nothing else is special about it: the table is trained like any
weight.

Here we train the smallest useful language model, a next-word predictor:

    word id -> embedding (V, D) -> linear (V, D) -> logits over the next word -> cross-entropy

with the library's functional pairs and a hand-written SGD loop. Words that are followed by the same kind of
words ("dog" and "cat" are both followed by verbs; "red" and "black" by nouns) get similar vectors, which the
cosine-similarity picture shows. A tenth of the sentences is held out: the loss on them says whether the model
learned the language or the training sentences, and ``ln V`` (the loss of guessing uniformly among V words) is
where every curve starts. The sentences come from the English side of the translation grammar in
``numpy_transformer.data.translation``.
"""
import numpy as np
from _common import Progress, done, save, section, setup

from numpy_transformer.data.translation import make_translation_pairs
from numpy_transformer.functional.embedding import embedding_backward, embedding_forward
from numpy_transformer.functional.linear import linear_backward, linear_forward
from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward
from numpy_transformer.viz import loss_curve, similarity_matrix

args = setup("03_embeddings", "embedding lookup, training word vectors, cosine similarity")
rng = np.random.default_rng(args.seed)

section("1. lookup == one-hot @ matrix")
V_small, D_small = 6, 3
table = rng.normal(size=(V_small, D_small)).astype(np.float32)  # (V, D)
ids = np.array([4, 0, 4, 2])                                     # (T,)
looked_up, _ = embedding_forward(ids, table)                     # (T, D)
one_hot = np.eye(V_small, dtype=np.float32)[ids]                 # (T, V), only to show the equivalence
print(f"  ids {ids.tolist()} -> embedding_forward gives (T, D) = {looked_up.shape}")
print(f"  max |table[ids] - one_hot @ table| = {np.abs(looked_up - one_hot @ table).max():.1e}")
_, cache = embedding_forward(ids, table)
dtable = embedding_backward(np.ones_like(looked_up), cache)     # upstream gradient of ones: counts the uses
print(f"  backward scatter-adds: row 4 was used twice, so its gradient is {dtable[4].tolist()}; "
      f"unused rows get {dtable[1].tolist()}")

section("2. a corpus and next-word pairs")
n_sentences = 1000 if args.quick else 5000
sentences = [english.split() + ["."] for english, _ in make_translation_pairs(n_sentences, seed=args.seed)]
vocabulary = sorted({w for s in sentences for w in s})
index = {w: i for i, w in enumerate(vocabulary)}
n_held = n_sentences // 10
held_stream = np.array([index[w] for s in sentences[:n_held] for w in s])   # the held-out sentences
stream = np.array([index[w] for s in sentences[n_held:] for w in s])        # the training sentences, one after another
current, following = stream[:-1], stream[1:]                 # (N,), (N,): predict following from current
held_current, held_following = held_stream[:-1], held_stream[1:]
V, D = len(vocabulary), 16
print(f"  {n_sentences} sentences, e.g. '{' '.join(sentences[0])}'; {n_held} of them held out")
print(f"  vocabulary V = {V}; {current.size} (word, next word) pairs for training, {held_current.size} held out; "
      f"embedding width D = {D}")


def held_out_loss():
    """Cross-entropy of the next word over the held-out pairs (no gradient, no update)."""
    x, _ = embedding_forward(held_current, embedding)                   # (M, D)
    logits, _ = linear_forward(x, out_weight, out_bias)                 # (M, V)
    loss, _ = cross_entropy_forward(logits, held_following)
    return float(loss)

section("3. training with plain SGD")
embedding = (0.1 * rng.standard_normal((V, D))).astype(np.float32)  # (V, D)
out_weight = (0.1 * rng.standard_normal((V, D))).astype(np.float32)  # (V, D): linear D -> V
out_bias = np.zeros(V, dtype=np.float32)
steps = 1500 if args.quick else 8000
batch, lr = 256, 0.5
progress = Progress(steps, every=max(1, steps // 6))
losses, held_steps, held_losses = [], [0], []
held_losses.append(held_out_loss())
for step in range(1, steps + 1):
    pick = rng.integers(0, current.size, size=batch)
    x, emb_cache = embedding_forward(current[pick], embedding)           # (B,) -> (B, D)
    logits, lin_cache = linear_forward(x, out_weight, out_bias)           # (B, D) -> (B, V)
    loss, ce_cache = cross_entropy_forward(logits, following[pick])       # 0-d
    dlogits = cross_entropy_backward(1.0, ce_cache)                       # (B, V)
    dx, dweight, dbias = linear_backward(dlogits, lin_cache)              # (B, D), (V, D), (V,)
    dembedding = embedding_backward(dx, emb_cache)                        # (V, D)
    for param, g in ((embedding, dembedding), (out_weight, dweight), (out_bias, dbias)):
        param -= lr * g                                                   # SGD, in place
    losses.append(float(loss))
    if step % max(1, steps // 20) == 0:
        held_steps.append(step)
        held_losses.append(held_out_loss())
    progress.update(step, loss)
print(f"  loss went from {losses[0]:.3f} to {np.mean(losses[-20:]):.3f} on training batches, "
      f"{held_losses[-1]:.3f} on the held-out sentences\n  (uniform guessing would be ln V = {np.log(V):.3f}; "
      "the rest is real uncertainty: after 'the' many nouns and adjectives fit)")

section("4. which words ended up close?")
word_groups = [("dog", "cat", "horse", "girl", "car", "house", "book"), ("red", "black", "small", "big"),
               ("sleeps", "eats", "sees"), ("the", "these")]  # nouns, adjectives, verbs, determiners
word_groups = [[w for w in group if w in index] for group in word_groups]
word_groups = [group for group in word_groups if group]
shown = [w for group in word_groups for w in group]
vectors = embedding[[index[w] for w in shown]]                             # (W, D)
unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
cosine = unit @ unit.T                                                     # (W, W)
def cos(a, b):
    return cosine[shown.index(a), shown.index(b)]
for a, b in (("dog", "cat"), ("car", "house"), ("red", "black"), ("dog", "red"), ("sleeps", "eats"), ("cat", "sleeps")):
    print(f"  cosine({a}, {b}) = {cos(a, b):+.2f}")
nouns = ["dog", "cat", "horse", "girl", "car", "house", "book"]
others = ["red", "black", "sleeps", "eats", "sees", "the", "these"]
within = np.mean([cos(a, b) for a in nouns for b in nouns if a != b])
across = np.mean([cos(a, b) for a in nouns for b in others])
print(f"  mean cosine among nouns {within:+.2f}; between nouns and other words {across:+.2f}")

section("pictures")
save(similarity_matrix(cosine, shown, groups=[len(g) for g in word_groups], annotate=False,
                       title="Cosine similarity of learned word embeddings\n"
                             "(lines separate nouns, adjectives, verbs, determiners)"), args.out,
     "embedding_similarity.png")
save(loss_curve(np.arange(1, steps + 1), losses, val_steps=held_steps, val=held_losses, smooth=100,
                train_label="training batches", val_label=f"{n_held} held-out sentences",
                reference=[(np.log(V), f"guessing uniformly: ln V = {np.log(V):.2f}")],
                title="Next-word model: cross-entropy of the next word", ylabel="cross-entropy"),
     args.out, "embedding_loss.png")

print(f"\nresult: final loss {np.mean(losses[-20:]):.3f} (start {losses[0]:.3f}); "
      f"noun-noun cosine {within:+.2f} vs noun-other {across:+.2f}")
done(args.out)

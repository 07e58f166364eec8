"""02 -- A first-order Markov chain: predicting the next word from the current word alone.

Count, in a corpus, how often each word follows each other word; divide each row by its total and you have
a transition matrix ``P[a, b] = p(next = b | current = a)``. Sampling from it writes text that is locally
plausible. But the chain sees only one word back, so it cannot carry information across a sentence: in

    "the dogs that chase the cat ... run"   /   "the dog that chases the cat ... runs"

the verb must agree with a noun several words earlier, and the word just before the verb ("cat") is the same
in both sentences. A Markov chain must give both sentences the same next-word distribution there. Attention
(demo 05) is the mechanism that lets a model look back as far as it needs.
"""
import numpy as np
from _common import done, save, section, setup

args = setup("02_markov_chain", "transition matrix, sampling, and a long-range dependency it cannot see")
rng = np.random.default_rng(args.seed)

corpus = """
the dog chases the cat . the cat chases the mouse . the dog runs . the cat runs .
the dogs chase the cat . the dogs run . the cats run . the mouse runs .
the dog that chases the cat runs . the dogs that chase the cat run .
the cat that chases the mouse runs . the cats that chase the mouse run .
""".split()
if not args.quick:
    corpus = corpus * 20  # more text changes nothing here but the counts: the chain's blind spot stays

section("1. vocabulary and ids")
vocabulary = sorted(set(corpus))
index = {w: i for i, w in enumerate(vocabulary)}
ids = np.array([index[w] for w in corpus])  # (N,)
V = len(vocabulary)
print(f"  {len(corpus)} words, vocabulary of {V}: {vocabulary}")

section("2. counting transitions, vectorized")
counts = np.zeros((V, V))
np.add.at(counts, (ids[:-1], ids[1:]), 1.0)  # counts[a, b] += 1 for every neighbouring pair (a, b)
print("  np.add.at(counts, (ids[:-1], ids[1:]), 1) adds 1 for every (current, next) pair, repeats included")
totals = counts.sum(axis=1, keepdims=True)  # (V, 1)
transition = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)  # rows sum to 1
for word in ("the", "cat", "dogs"):
    row = transition[index[word]]
    nexts = ", ".join(f"{vocabulary[j]} {row[j]:.2f}" for j in np.argsort(-row) if row[j] > 0)
    print(f"  p(next | {word!r}): {nexts}")

section("3. sampling text")
for sample in range(3):
    word, words = "the", ["the"]
    for _ in range(14):
        word = vocabulary[rng.choice(V, p=transition[index[word]])]
        words.append(word)
    print(f"  sample {sample + 1}: {' '.join(words)}")

section("4. where it fails: agreement across a clause")
singular = "the dog that chases the cat".split()
plural = "the dogs that chase the cat".split()
p_singular = transition[index[singular[-1]]]
p_plural = transition[index[plural[-1]]]
for words, p in ((singular, p_singular), (plural, p_plural)):
    print(f"  '{' '.join(words)} ...': p(runs) = {p[index['runs']]:.2f}, p(run) = {p[index['run']]:.2f}")
same = np.array_equal(p_singular, p_plural)
print(f"  identical distributions: {same} -- the chain only sees 'cat', so it cannot know which verb agrees.")
print("  The right verb depends on a word 5 positions back; attention lets every position look at all others.")

section("pictures")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
image = ax.imshow(transition, cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(V), vocabulary, rotation=60, ha="right", rotation_mode="anchor")
ax.set_yticks(range(V), vocabulary)
ax.set_xlabel("next word")
ax.set_ylabel("current word")
ax.set_title("Markov chain transition matrix p(next | current)")
for (i, j), value in np.ndenumerate(transition):
    if value > 0:
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="black" if value > 0.6 else "white")
fig.colorbar(image, ax=ax, label="probability")
save(fig, args.out, "transition_matrix.png")
plt.close(fig)

print(f"\nresult: rows sum to 1: {np.allclose(transition[totals[:, 0] > 0].sum(axis=1), 1.0)}; "
      f"same prediction for singular and plural subject: {same}")
done(args.out)

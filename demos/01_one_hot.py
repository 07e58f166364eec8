"""01 -- One-hot vectors: how words become numbers.

A computer cannot multiply words, so the first step of every language model is to turn each word into a
number (its index in a vocabulary) and then into a vector. The simplest vector is *one-hot*: as long as the
vocabulary, all zeros except a single 1 at the word's index. Two facts make one-hot vectors the door to
everything that follows:

1. Every word is equally far from every other word (their dot product is 0): one-hot vectors carry identity,
   not meaning.
2. Multiplying a one-hot row by a matrix picks out one row of that matrix. That is a table lookup written
   as a matrix product, and it is exactly what an embedding layer does (demo 03) -- except that the library
   does the lookup directly, as a gather, instead of multiplying by a mostly-zero matrix.
"""
import numpy as np
from _common import done, save, section, setup

args = setup("01_one_hot", "one-hot vectors, integer encoding, lookup as a matrix product")
rng = np.random.default_rng(args.seed)

section("1. a vocabulary and integer encoding")
sentence = "the cat sat on the mat".split()
vocabulary = sorted(set(sentence))
index = {word: i for i, word in enumerate(vocabulary)}
ids = np.array([index[word] for word in sentence])
print(f"  sentence:   {sentence}")
print(f"  vocabulary: {vocabulary}  (V = {len(vocabulary)})")
print(f"  ids:        {ids.tolist()}")

section("2. one-hot vectors")
one_hot = np.zeros((len(sentence), len(vocabulary)))  # (T, V)
one_hot[np.arange(len(sentence)), ids] = 1.0            # one 1 per row, at the word's index
print("  one row per word, one column per vocabulary entry:")
for word, row in zip(sentence, one_hot, strict=True):
    print(f"  {word:>4}  {row.astype(int)}")

gram = one_hot @ one_hot.T  # (T, T): dot product of every pair of words
print("\n  dot products between the words of the sentence (1 = same word, 0 = different):")
print("  " + str(gram.astype(int)).replace("\n", "\n  "))
print("  'the' and 'the' match; 'cat' and 'mat' are as unrelated as 'cat' and 'on'.")

section("3. a one-hot row times a matrix picks a row")
d_model = 4
table = np.round(rng.normal(size=(len(vocabulary), d_model)), 2)  # (V, D): one vector per word
word = "mat"
picked = one_hot[sentence.index(word)] @ table  # (V,) @ (V, D) -> (D,)
print(f"  table (V={len(vocabulary)}, D={d_model}):")
for w, row in zip(vocabulary, table, strict=True):
    print(f"    {w:>4}  {row}")
print(f"  one_hot('{word}') @ table = {picked}")
print(f"  table[{index[word]}]            = {table[index[word]]}")
assert np.array_equal(picked, table[index[word]])
whole = one_hot @ table  # (T, V) @ (V, D) -> (T, D)
print(f"  for the whole sentence: one_hot @ table == table[ids]: {np.array_equal(whole, table[ids])}")
print(f"  the product costs T*V*D = {len(sentence) * len(vocabulary) * d_model} multiplications; the lookup none.")

section("pictures")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), layout="constrained")
axes[0].imshow(one_hot, cmap="Greys", vmin=0, vmax=1)
axes[0].set_xticks(range(len(vocabulary)), vocabulary, rotation=45, ha="right")
axes[0].set_yticks(range(len(sentence)), [f"{w} (id {i})" for w, i in zip(sentence, ids, strict=True)])
axes[0].set_xlabel("vocabulary entry")
axes[0].set_ylabel("word of the sentence")
axes[0].set_title("One-hot matrix: a single 1 per row")
image = axes[1].imshow(whole, cmap="RdBu", vmin=-2.5, vmax=2.5)
axes[1].set_xticks(range(d_model))
axes[1].set_yticks(range(len(sentence)), sentence)
axes[1].set_xlabel("embedding feature")
axes[1].set_title("one_hot @ table = table[ids]")
fig.colorbar(image, ax=axes[1], label="value")
save(fig, args.out, "one_hot_matrix.png")
plt.close(fig)

print(f"\nresult: lookup equals one-hot product: {np.array_equal(whole, table[ids])}")
done(args.out)

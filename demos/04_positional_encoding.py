"""04 -- Sinusoidal positional encoding: telling the model where each word is.

Attention (demo 05) compares every word with every other word, and a comparison does not care about order:
shuffle the words and each one gets the same result, shuffled. To give the model the order, the original
Transformer adds to each word vector a vector that depends only on its position:

    PE[pos, 2i]   = sin(pos / 10000^(2i / D))
    PE[pos, 2i+1] = cos(pos / 10000^(2i / D))

Each pair of features (2i, 2i+1) is a clock hand turning at its own speed: fast on the left of the table,
slow on the right. Two consequences shown here:

- The table is a fixed function, not a parameter: any length can be encoded.
- The dot product PE[p] . PE[p + k] depends only on the distance k (the sum of cos(k * frequency) over the
  pairs), and it is largest at k = 0 and falls off with distance: nearby positions look alike.
"""
import numpy as np
from _common import done, save, section, setup

from numpy_transformer.functional.positional import positional_encoding_forward, sinusoidal_table
from numpy_transformer.viz import positional_encoding_plot

args = setup("04_positional_encoding", "the sinusoidal table and how position similarity falls with distance")

section("1. the table")
max_len, d_model = (64, 32) if args.quick else (128, 64)
table = sinusoidal_table(max_len, d_model, dtype=np.float64)  # (max_len, D)
print(f"  sinusoidal_table({max_len}, {d_model}) -> shape {table.shape}")
print(f"  position 0: sin features 0, cos features 1: {np.round(table[0, :6], 3).tolist()} ...")
print(f"  position 1: {np.round(table[1, :6], 3).tolist()} ...")
print(f"  every value lies in [-1, 1]: {bool(np.abs(table).max() <= 1.0)}")

section("2. adding it to word vectors")
rng = np.random.default_rng(args.seed)
x = rng.normal(size=(2, 5, d_model))  # (B, T, D) word vectors of two 5-word sentences
out, _ = positional_encoding_forward(x, table)
print(f"  x (B, T, D) = {x.shape} -> x + table[:T] = {out.shape}")
print("  the same word at positions 0 and 3 now differs: |out[0,0] - out[0,3]| with x[0,0] = x[0,3]:")
x[0, 3] = x[0, 0]
out, _ = positional_encoding_forward(x, table)
print(f"    {np.linalg.norm(out[0, 0] - out[0, 3]):.3f} (it was 0 before adding positions)")

section("3. similarity as a function of distance")
gram = table @ table.T  # (max_len, max_len): PE[p] . PE[q]
distances = np.arange(max_len)
from_start = gram[0]  # PE[0] . PE[k]
middle = max_len // 2
shift_invariant = np.allclose(gram[middle, middle:middle + 8], gram[0, :8])
print(f"  PE[p] . PE[p+k] depends only on k: PE[{middle}].PE[{middle}+k] == PE[0].PE[k] for k < 8: {shift_invariant}")
for k in (0, 1, 2, 4, 8, 16, 32):
    if k < max_len:
        print(f"  k = {k:>2}: PE[0] . PE[k] = {from_start[k]:7.3f}")
peak_at_zero = bool(from_start[1:].max() < from_start[0])
print(f"  largest at k = 0 (a position is most like itself): {peak_at_zero}; "
      f"the fast features repeat, so far positions are not all equally unlike")

section("pictures")
save(positional_encoding_plot(table, title=f"Sinusoidal positional encoding ({max_len} positions, D = {d_model})"),
     args.out, "positional_encoding.png")

import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
axes[0].plot(distances, from_start, marker=".", label="PE[0] . PE[k]")
axes[0].plot(distances[: max_len - middle], gram[middle, middle:], linestyle="--",
             label=f"PE[{middle}] . PE[{middle}+k]")
axes[0].axhline(0, color="grey", linewidth=0.5)
axes[0].set_xlabel("distance k between positions")
axes[0].set_ylabel("dot product")
axes[0].set_title("Position similarity depends only on distance")
axes[0].legend()
image = axes[1].imshow(gram, cmap="viridis")
axes[1].set_xlabel("position q")
axes[1].set_ylabel("position p")
axes[1].set_title("PE[p] . PE[q] for every pair of positions")
fig.colorbar(image, ax=axes[1], label="dot product")
save(fig, args.out, "position_similarity.png")
plt.close(fig)

print(f"\nresult: PE[0].PE[0] = {from_start[0]:.3f} (= D/2 = {d_model / 2}); "
      f"shift invariant: {shift_invariant}")
done(args.out)

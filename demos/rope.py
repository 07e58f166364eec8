"""Rotary position embedding (RoPE): position as a rotation, and attention scores that see only distances.

The 2017 Transformer ADDS a position vector to each word (demo 04). Llama and its kin instead ROTATE each query
and key right before attention. A head of width Dh is read as Dh/2 pairs of features (Hugging Face pairs
feature i with feature i + Dh/2); at position m, pair i turns by the angle m * w_i with

    w_i = theta^(-2i/Dh)        (theta = 10000: pair 0 turns 1 radian per position, the last pair barely moves)

Rotations compose by adding angles and a rotation's transpose turns back, so for a query at position m and a key
at position n

    (R_m q) . (R_n k) = q . (R_m^T R_n k) = q . (R_(n-m) k)

depends on the positions only through the distance n - m. This demo shows:

1. the rotation itself: one pair of features of one vector, turning with the position, fast and slow pairs;
2. the property: the SAME query and key placed at every pair of positions (m, n) give a score matrix that is
   constant along each diagonal (n - m fixed) with RoPE, and is not with added sinusoidal positions;
3. the score against the distance from several starting positions: with RoPE the curves lie on top of each
   other; with added positions they do not.
"""
import numpy as np
from _common import done, save, section, setup

from numpy_transformer.functional.positional import sinusoidal_table
from numpy_transformer.functional.rope import rope_forward, rope_tables

args = setup("rope", "rotary position embedding: the rotation and the relative-position property")
rng = np.random.default_rng(args.seed)
head_dim = 16 if args.quick else 32
length = 32 if args.quick else 64
theta = 10000.0


def rotate(vectors, positions):
    """vectors (T, Dh) rotated as positions (T,)."""
    cos, sin = rope_tables(np.asarray(positions), head_dim, theta, dtype=np.float64)  # 2 x (T, Dh/2)
    out, _ = rope_forward(vectors, cos, sin)
    return out


def max_off_diagonal_spread(scores):
    """The largest difference between two entries of one diagonal (n - m fixed) of a square score matrix."""
    size = scores.shape[0]
    return max(np.ptp(np.diagonal(scores, offset)) for offset in range(-size + 1, size))


section("1. the rotation of one pair")
half = head_dim // 2
frequencies = theta ** (-np.arange(half) * 2.0 / head_dim)
print(f"  head width Dh = {head_dim}: {half} pairs (i, i + {half}); theta = {theta:g}")
for i in (0, 1, half // 2, half - 1):
    print(f"  pair {i:>2}: w = {frequencies[i]:.5f} rad per position, a full turn every "
          f"{2 * np.pi / frequencies[i]:9.1f} positions")
vector = np.zeros((1, head_dim))
vector[0, 0], vector[0, half] = 1.0, 0.0                          # pair 0 = (1, 0)
turned = rotate(np.repeat(vector, 4, axis=0), np.arange(4))
print("  pair 0 of the vector (1, 0) at positions 0..3: "
      + ", ".join(f"({a:+.3f}, {b:+.3f})" for a, b in turned[:, [0, half]]))
print(f"  lengths are kept: |R_m x| = |x| for every m: "
      f"{bool(np.allclose(np.linalg.norm(turned, axis=1), 1.0))}")

section("2. the same query and key at every pair of positions")
q = rng.standard_normal(head_dim)
k = rng.standard_normal(head_dim)
positions = np.arange(length)
rope_scores = rotate(np.tile(q, (length, 1)), positions) @ rotate(np.tile(k, (length, 1)), positions).T  # (m, n)
table = sinusoidal_table(length, head_dim, dtype=np.float64)      # (T, Dh)
added_scores = (q + table) @ (k + table).T                         # (q + PE_m) . (k + PE_n)
rope_spread = max_off_diagonal_spread(rope_scores)
added_spread = max_off_diagonal_spread(added_scores)
print(f"  scores[m, n] = (R_m q) . (R_n k) for m, n < {length}: largest spread along one diagonal "
      f"{rope_spread:.1e} (rounding)")
print(f"  with added positions, (q + PE_m) . (k + PE_n): largest spread along one diagonal {added_spread:.2f}")
relative = np.array([q @ rotate(k[None], [d])[0] for d in range(length)])  # q . R_d k
print(f"  q . R_(n-m) k reproduces every score of the upper triangle: "
      f"{bool(all(np.allclose(np.diagonal(rope_scores, d), relative[d]) for d in range(length)))}")

section("3. the score against the distance, from several starting positions")
starts = [0, 7, 100, 1000] if not args.quick else [0, 7, 100]
distances = np.arange(length)
curves = {m: rotate(q[None], [m])[0] @ rotate(np.tile(k, (length, 1)), m + distances).T for m in starts}
worst = max(float(np.abs(curve - curves[0]).max()) for curve in curves.values())
long_table = sinusoidal_table(max(starts) + length, head_dim, dtype=np.float64)
added_curves = {m: (q + long_table[m]) @ (k + long_table[m + distances]).T for m in starts}
added_worst = max(float(np.abs(curve - added_curves[0]).max()) for curve in added_curves.values())
print(f"  RoPE, starting at m = {starts}: largest difference between the curves {worst:.1e}")
print(f"  added positions, the same starts: largest difference between the curves {added_worst:.2f}")

section("pictures")
import matplotlib.pyplot as plt  # noqa: E402

shown = [(0, 1), (2, 1), (half // 2, 50)]                        # (pair, every how many positions)
fig, axes = plt.subplots(1, len(shown), figsize=(13, 4.6), layout="constrained")
colors = plt.cm.viridis(np.linspace(0, 0.9, 9))
for ax, (i, step) in ((axes[number], pair) for number, pair in enumerate(shown)):
    steps = step * np.arange(9)
    unit = np.zeros((len(steps), head_dim))
    unit[:, i] = 1.0                                                # the vector whose pair i is (1, 0)
    points = rotate(unit, steps)[:, [i, i + half]]                  # (positions, 2): the pair after rotation
    ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="lightgrey"))
    for number, (a, b) in enumerate(points):
        ax.annotate("", xy=(a, b), xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=colors[number], lw=2))
        ax.text(1.15 * a, 1.15 * b, str(steps[number]), ha="center", va="center", fontsize=10,
                color=colors[number])
    ax.set_xlim(-1.35, 1.35)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.set_xlabel(f"feature {i}")
    ax.set_ylabel(f"feature {i + half}")
    every = "" if step == 1 else f" (every {step}th)"
    ax.set_title(f"pair {i}: {frequencies[i]:.3g} rad per position{every}")
fig.suptitle("RoPE turns pair i of a query or key by (position) x w_i; the arrows are labelled with the position")
save(fig, args.out, "rope_rotation.png")
plt.close(fig)

fig, axes = plt.subplots(2, 2, figsize=(13, 10), layout="constrained")
for column, (scores, title, lines) in enumerate((
        (rope_scores, "RoPE: (R_m q) . (R_n k)", curves),
        (added_scores, "added positions: (q + PE_m) . (k + PE_n)", added_curves))):
    ax = axes[0, column]
    image = ax.imshow(scores, cmap="coolwarm", vmin=-np.abs(scores).max(), vmax=np.abs(scores).max())
    ax.set_xlabel("key position n")
    ax.set_ylabel("query position m")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.85, label="score")
    ax = axes[1, column]
    for m, curve in lines.items():
        ax.plot(distances, curve, label=f"query at m = {m}", linewidth=3 if m == 0 else 1.5,
                linestyle="-" if m == 0 else "--")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("distance d = n - m")
    ax.set_ylabel("score of query at m, key at m + d")
    ax.legend(fontsize=9)
axes[0, 0].text(0.02, 0.02, "constant along each diagonal:\nonly n - m matters", transform=axes[0, 0].transAxes,
                fontsize=10, bbox=dict(facecolor="white", alpha=0.85))
axes[1, 0].set_title(f"RoPE: the {len(starts)} curves coincide (they differ by {worst:.0e})")
axes[1, 1].set_title("added positions: the curve depends on where it starts")
fig.suptitle(f"The same query and key at every pair of positions (Dh = {head_dim}, theta = {theta:g})")
save(fig, args.out, "rope_relative_position.png")
plt.close(fig)

print(f"\nresult: spread along a diagonal: RoPE {rope_spread:.1e}, added positions {added_spread:.2f}; "
      f"curves from {len(starts)} starts differ by: RoPE {worst:.1e}, added positions {added_worst:.2f}")
done(args.out)

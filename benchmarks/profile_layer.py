"""Where the time of one encoder-layer training step goes: a cProfile listing and a per-operation breakdown.

    python benchmarks/profile_layer.py                 # standard size, post-norm, relu
    python benchmarks/profile_layer.py --size minilm --activation gelu --padding

The cProfile listing names the Python functions by their own time (``tottime``): NumPy's operators (``@``,
``*``, ``exp``...) are not functions to the profiler, so their time is charged to the function whose line runs
them. The breakdown then re-times the array operations of one step one by one on arrays of the layer's
shapes (median of repeats), so that a line of the listing can be read as "this many ms are the exp, this many
the copy of a transpose".
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.workloads import SEED, SIZES  # noqa: E402


def _median_ms(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return 1e3 * statistics.median(samples)


def breakdown(size, repeats: int, activation: str):
    """Median ms of each array operation of one post-norm encoder-layer step, on the layer's shapes."""
    from scipy.special import erf
    B, T, d, h, ff = size.B, size.T, size.d, size.h, size.ff
    Dh = d // h
    rng = np.random.default_rng(SEED)
    f32 = np.float32
    x = rng.standard_normal((B, T, d)).astype(f32)
    x2d = x.reshape(B * T, d)
    w_in = rng.standard_normal((3 * d, d)).astype(f32)
    w1 = rng.standard_normal((ff, d)).astype(f32)
    qkv = (x2d @ w_in.T).reshape(B, T, 3 * d)
    q = qkv[..., :d].reshape(B, T, h, Dh).transpose(0, 2, 1, 3)
    k = qkv[..., d:2 * d].reshape(B, T, h, Dh).transpose(0, 2, 1, 3)
    heads = rng.standard_normal((B, h, T, Dh)).astype(f32)
    scores = rng.standard_normal((B, h, T, T)).astype(f32)
    hidden = rng.standard_normal((B * T, ff)).astype(f32)
    mask = rng.random((T, T)) > 0.5
    row = rng.standard_normal((B * T, 1)).astype(f32)
    gamma = rng.standard_normal(d).astype(f32)
    ops = {
        "matmul: QKV projection (B*T, d) @ (d, 3d)": lambda: x2d @ w_in.T,
        "matmul: linear1 (B*T, d) @ (d, ff)": lambda: x2d @ w1.T,
        "matmul: scores q @ k^T, q and k strided views of qkv": lambda: q @ k.swapaxes(-1, -2),
        "matmul: scores, q and k made contiguous first": lambda: np.ascontiguousarray(q) @ np.ascontiguousarray(
            k).swapaxes(-1, -2),
        "copy: merge heads (B, H, T, Dh) -> (B, T, D) transpose + reshape": lambda: heads.transpose(
            0, 2, 1, 3).reshape(B, T, d),
        "copy: concatenate dq, dk, dv -> (B, T, 3d)": lambda: np.concatenate((x, x, x), axis=-1),
        "elementwise: scores * scale (B, H, T, T)": lambda: scores * 0.125,
        "elementwise: where(mask, -inf, scores) (B, H, T, T)": lambda: np.where(mask, -np.inf, scores),
        "elementwise: softmax max + subtract + exp + sum + divide": lambda: _softmax(scores),
        "elementwise: exp alone (B, H, T, T)": lambda: np.exp(scores),
        "elementwise: softmax backward y * (g - sum(g * y))": lambda: scores * (
            scores - (scores * scores).sum(-1, keepdims=True)),
        "elementwise: relu forward + backward (B*T, ff)": lambda: (np.maximum(hidden, 0), hidden * (hidden > 0)),
        "elementwise: gelu (erf) forward (B*T, ff)": lambda: hidden * (0.5 * (1.0 + erf(hidden * 0.7071))),
        "elementwise: gelu backward exp (B*T, ff)": lambda: np.exp(-0.5 * (hidden * hidden)),
        "elementwise: one (B*T, ff) multiply": lambda: hidden * hidden,
        "elementwise: layernorm forward (B*T, d)": lambda: _layernorm(x2d, gamma),
        "elementwise: one (B*T, d) multiply": lambda: x2d * row,
        "reduction: bias gradient sum over B*T of (B*T, ff)": lambda: hidden.sum(axis=0),
        "mask: causal_mask(T, T) build": lambda: np.triu(np.ones((T, T), dtype=bool), k=1),
    }
    del activation
    return {name: _median_ms(fn, repeats) for name, fn in ops.items()}


def _softmax(s):
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - m)
    return e / e.sum(axis=-1, keepdims=True)


def _layernorm(x, gamma):
    mean = x.mean(axis=-1, keepdims=True)
    c = x - mean
    rstd = 1.0 / np.sqrt((c * c).mean(axis=-1, keepdims=True) + 1e-5)
    return c * rstd * gamma + gamma


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="standard", choices=list(SIZES))
    parser.add_argument("--activation", default="relu", choices=("relu", "gelu"))
    parser.add_argument("--padding", action="store_true", help="pass a key padding mask (every second row)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--threads", type=int, default=None, help="limit NumPy's BLAS to N threads")
    args = parser.parse_args(argv)
    if args.threads:
        import threadpoolctl
        limit = threadpoolctl.threadpool_limits(args.threads, user_api="blas")  # noqa: F841, held to the end

    from numpy_transformer.nn.transformer import TransformerEncoderLayer
    size = SIZES[args.size]
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((size.B, size.T, size.d)).astype(np.float32)
    dout = rng.standard_normal((size.B, size.T, size.d)).astype(np.float32)
    padding = None
    if args.padding:
        padding = np.zeros((size.B, size.T), dtype=bool)
        padding[1::2, -size.T // 4:] = True
    layer = TransformerEncoderLayer(size.d, size.h, dim_feedforward=size.ff, dropout=0.0,
                                    activation=args.activation, batch_first=True, rng=SEED)

    def step():
        layer.zero_grad()
        layer(x, src_key_padding_mask=padding)
        layer.backward(dout)

    for _ in range(2):
        step()
    total = _median_ms(step, args.steps)
    print(f"encoder layer ({args.size}: B={size.B}, T={size.T}, d={size.d}, h={size.h}, ff={size.ff}, "
          f"{args.activation}{', padding' if args.padding else ''}): forward + backward {total:.1f} ms (median)")

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.steps):
        step()
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(args.top)
    print(stream.getvalue())

    print("Per-operation breakdown (ms, median, the layer's shapes):")
    for name, ms in breakdown(size, max(args.steps, 5), args.activation).items():
        print(f"  {ms:8.2f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

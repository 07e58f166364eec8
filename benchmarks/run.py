"""Time our NumPy Transformer against PyTorch CPU eager, in one process, on the same inputs and weights.

    python benchmarks/run.py --record      # everything; writes benchmarks/results.md, the long-sequence plot
                                           # docs/images/long_sequence.png and the tables of README.md
    python benchmarks/run.py               # the same run, printed only
    python benchmarks/run.py --quick       # tiny sizes, one round: checks in seconds that everything runs
    python benchmarks/run.py --workloads mha,encoder_layer --sizes standard --repeats 7 --no-long
    python benchmarks/run.py --profile bert_finetune minilm   # where our time goes (cProfile of one workload)
    python benchmarks/run.py --device cuda  # CuPy against PyTorch CUDA (below)

Method.

- Time: each callable is called ``--warmup`` times (the last call also sets how many calls one sample averages,
  so that a sample lasts at least 20 ms), then ``--repeats`` rounds are taken; in each round ours and torch
  each take one sample, one after the other, so a change in the machine's load hits both. The time is the
  median sample; the ratio (ours / torch, above 1 = slower) is the median of the rounds' ratios and the spread
  is their lowest and highest. "fwd" is the forward pass (the training workloads: forward + loss; PyTorch
  recording autograd), "f+b" forward + backward (translator, vit, bert_finetune: the whole training step with
  AdamW). BERT is inference (ours in eval mode under ``no_grad()``, torch under ``inference_mode``). float32;
  NumPy's BLAS and torch at their default threads (``--threads N`` limits both).
- Rate: the matrix-product FLOPs of a workload (``benchmarks/workloads.py``) over its time, against the "floor",
  NumPy's float32 ``(B*T, d) @ (d, ff)`` rate measured in the same run.
- Memory: measured first, before any timing, each (workload, size, implementation) in a child process forked
  from this one, which builds the workload and runs ONE training step (a forward for inference): "RSS" is the
  peak resident memory of that step above what the process held before it (the kernel's high-water mark
  ``VmHWM``, reset through ``/proc/self/clear_refs`` just before the step, after the memory that building freed
  is handed back with glibc's ``malloc_trim``, so that neither the building's peak nor its freed memory can hide
  the step's), the same measure for both libraries; "traced" is the peak of our arrays (tracemalloc).
- Long sequences: one post-norm encoder layer's training step at B=1, d=256, h=8, ff=1024 and T = 128 ... 8192,
  ours with full attention, ours with blocked attention and PyTorch (whose CPU attention is also
  memory-efficient): time (rounds interleaved over the three) and peak memory as above.
- A load average above half the usable cores at the start prints a warning (and goes into the report): other
  programs are running, and the spread columns say how much the times moved.

GPU mode: ``--device cuda`` runs the workloads with our code on CuPy arrays (built on the host from the same seed,
then ``model.to("cuda")``) and PyTorch on CUDA; the device is drained before every reading of the clock, and the
memory is the device memory of the first step above what model and inputs held (CuPy's pool high-water mark,
``torch.cuda.max_memory_allocated``). It needs CuPy that sees a GPU and a CUDA build of PyTorch, else it says
what is missing and exits 2; ``--allow-cpu-reference`` lets PyTorch run on the CPU to test the script only.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import json
import math
import os
import platform
import pstats
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from functools import partial

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.workloads import (  # noqa: E402
    LONG_IMPLS,
    LONG_LENGTHS,
    QUICK_LONG_LENGTHS,
    QUICK_SIZE,
    SEED,
    SIZES,
    WORKLOADS,
    Size,
    build_long,
    encoder_layer_flops,
    long_size,
    matmul_flops,
)

MIN_SAMPLE_S = 0.02
IMPLS = ("ours", "torch")
RECORD = {"markdown": "benchmarks/results.md", "plot": "docs/images/long_sequence.png", "readme": "README.md"}
TIME_COLUMNS = ["workload", "size", "ours fwd ms", "torch fwd ms", "fwd ratio", "fwd spread", "ours f+b ms",
                "torch f+b ms", "f+b ratio", "f+b spread"]
RATE_COLUMNS = ["workload", "size", "GFLOP fwd", "ours GFLOP/s", "torch GFLOP/s", "floor GFLOP/s", "ours % floor",
                "torch % floor"]
CPU_MEMORY_COLUMNS = ["ours traced MB", "ours RSS MB", "torch RSS MB"]
GPU_MEMORY_COLUMNS = ["ours peak MB", "torch peak MB"]
LONG_COLUMNS = ["length", "ours full ms", "ours blocked ms", "torch ms", "full / torch", "blocked / torch",
                "ours full MB", "ours blocked MB", "torch MB", "spread (blocked / torch)"]


# ------------------------------------------------------------------------------------------- timing

def _sample(fn, number: int, sync=None) -> float:
    """Seconds per call of ``number`` calls (the device drained before each reading of the clock)."""
    if sync:
        sync()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    if sync:
        sync()
    return (time.perf_counter() - start) / number


def time_interleaved(fns: dict, repeats: int, warmup: int, min_sample: float = MIN_SAMPLE_S, syncs=None,
                     on_round=None) -> dict:
    """Seconds per call of each callable in ``fns``, as ``repeats`` samples each, taken in rounds.

    Each callable gets ``warmup`` untimed calls (at least one, which sets how many calls make a sample of
    ``min_sample`` seconds); then in every round each callable takes one sample, in turn. ``syncs`` maps a
    name to a function that waits for its device; ``on_round(round, samples)`` reports progress.
    """
    syncs = syncs or {}
    numbers = {}
    for name, fn in fns.items():
        for _ in range(max(warmup, 1) - 1):
            fn()
        seconds = _sample(fn, 1, syncs.get(name))
        numbers[name] = max(1, math.ceil(min_sample / max(seconds, 1e-7))) if min_sample > 0 else 1
    samples = {name: [] for name in fns}
    for number in range(repeats):
        gc.collect()
        for name, fn in fns.items():
            samples[name].append(_sample(fn, numbers[name], syncs.get(name)))
        if on_round:
            on_round(number, samples)
    return samples


def ratio_stats(ours: list, theirs: list):
    """(median, lowest, highest) of the paired ratios ours[i] / theirs[i] of interleaved rounds."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def matmul_floor(size: Size, repeats: int, warmup: int, device=None) -> dict:
    """GFLOP/s of one float32 2-D product (B*T, d) @ (d, ff) in NumPy (CuPy) and in torch, interleaved."""
    import torch
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((size.B * size.T, size.d)).astype(np.float32)
    b = rng.standard_normal((size.d, size.ff)).astype(np.float32)
    where = "cpu" if device is None else device.torch_device
    ta, tb = torch.from_numpy(a.copy()).to(where), torch.from_numpy(b.copy()).to(where)
    if device is not None:
        from numpy_transformer.backend import to_device
        a, b = to_device(a, "cuda"), to_device(b, "cuda")
    syncs = None if device is None else {"ours": device.sync_ours, "torch": device.sync_torch}
    samples = time_interleaved({"ours": lambda: a @ b, "torch": lambda: ta @ tb}, max(repeats, 3), max(warmup, 2),
                               syncs=syncs)
    flops = matmul_flops(size.B * size.T, size.ff, size.d)
    return {"shape": f"({size.B * size.T}, {size.d}) @ ({size.d}, {size.ff})",
            "ours_gflops": flops / statistics.median(samples["ours"]) / 1e9,
            "torch_gflops": flops / statistics.median(samples["torch"]) / 1e9}


ELEMENTWISE_COLUMNS = ["operation", "shape", "ours ns/element", "torch ns/element", "ratio"]


def elementwise_costs(repeats: int, warmup: int, min_sample: float, shape=(2048, 1024)) -> list:
    """ns per element of the elementwise building blocks, ours and torch's, float32, rounds interleaved:
    where a workload's time goes outside the matrix products (one NumPy pass against a fused torch kernel)."""
    import torch

    from numpy_transformer import functional as F
    rng = np.random.default_rng(SEED)
    x, g = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    gamma, beta = rng.standard_normal(shape[-1]).astype(np.float32), rng.standard_normal(shape[-1]).astype(np.float32)
    tx, tg = torch.from_numpy(x.copy()).requires_grad_(True), torch.from_numpy(g.copy())
    tgamma, tbeta = torch.from_numpy(gamma.copy()).requires_grad_(True), torch.from_numpy(beta).requires_grad_(True)
    nnf = torch.nn.functional

    def torch_fb(fn):
        def call():
            tx.grad = tgamma.grad = tbeta.grad = None
            fn().backward(tg)
        return call

    def ours_fb(forward, backward):
        return lambda: backward(g, forward()[-1])

    cases = [
        ("one pass: x * y", lambda: x * g, lambda: tx.detach() * tg),
        ("exp", lambda: np.exp(x), lambda: torch.exp(tx.detach())),
        ("GELU exact, forward", lambda: F.gelu_forward(x), lambda: nnf.gelu(tx.detach())),
        ("GELU exact, forward + backward", ours_fb(lambda: F.gelu_forward(x), F.gelu_backward),
         torch_fb(lambda: nnf.gelu(tx))),
        ("softmax over the last axis, forward + backward", ours_fb(lambda: F.softmax_forward(x), F.softmax_backward),
         torch_fb(lambda: torch.softmax(tx, -1))),
        ("layer norm over the last axis, forward + backward",
         ours_fb(lambda: F.layernorm_forward(x, gamma, beta), F.layernorm_backward),
         torch_fb(lambda: nnf.layer_norm(tx, (shape[-1],), tgamma, tbeta))),
    ]
    rows = []
    for name, ours, theirs in cases:
        samples = time_interleaved({"ours": ours, "torch": theirs}, repeats, warmup, min_sample)
        t = {impl: statistics.median(v) * 1e9 / x.size for impl, v in samples.items()}
        rows.append([name, f"({shape[0]}, {shape[1]})", f"{t['ours']:.2f}", f"{t['torch']:.2f}",
                     f"{ratio_stats(samples['ours'], samples['torch'])[0]:.2f}"])
    return rows


# ------------------------------------------------------------------------------------------- memory

def _status_mb(field_name: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024.0                # kB
    raise OSError(f"/proc/self/status has no {field_name}")


def memory_supported() -> str:
    """"" when the fork + high-water-mark measurement works here, else why not."""
    if not hasattr(os, "fork"):
        return "no os.fork on this system"
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        _status_mb("VmHWM")
    except OSError as error:
        return f"the peak resident memory cannot be reset here ({error})"
    return ""


def _memory_child(build, impl: str, warm) -> dict:
    """In the forked child: ``warm()`` (the same workload at a tiny size: the libraries' first-use set-up,
    imports, kernel tables, thread pools, is no part of a step), then build, then ONE step; the step's peak
    above the memory held before it."""
    if "torch" in sys.modules:
        # a forked child must not use the parent's OpenMP threads (they do not exist here): one thread
        sys.modules["torch"].set_num_threads(1)
    warm()
    bench = build()
    fn = bench.step if bench.step is not None else bench.forward
    gc.collect()
    _release_free_memory()
    traced = impl.startswith("ours")
    if traced:
        tracemalloc.start()
        start_traced = tracemalloc.get_traced_memory()[0]
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")                                         # VmHWM := VmRSS
    before = _status_mb("VmRSS")
    fn()
    result = {"rss_mb": _status_mb("VmHWM") - before}
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["traced_mb"] = (peak - start_traced) / 2**20
    return result


def _release_free_memory() -> None:
    """Hand the memory that building freed back to the system (glibc's ``malloc_trim``), so that the step cannot
    hide its peak in it: memory freed but kept by the allocator still counts as resident."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc: nothing to trim
        pass


def measure_memory(build, impl: str, warm, timeout: float = 900.0) -> dict:
    """Run :func:`_memory_child` in a forked child and read its JSON; ``{"error": ...}`` if it fails."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                                  # the child
        os.close(read_end)
        try:
            result = _memory_child(build, impl, warm)
        except BaseException as error:  # noqa: B036 - everything goes back to the parent as text
            result = {"error": f"{type(error).__name__}: {error}"[:200]}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read_end)
        return {"error": f"timed out after {timeout:.0f} s"}
    with os.fdopen(read_end) as handle:
        text = handle.read()
    return json.loads(text) if text else {"error": "the child died without a result"}


# ------------------------------------------------------------------------------------------- machine

def _first_call(build, impl: str, size: Size) -> None:
    """Build ``impl`` at ``size`` and run its step (its forward for inference) once."""
    bench = build(impl, size, SEED)
    (bench.step or bench.forward)()


def _threads(n) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def machine_info() -> dict:
    import torch
    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "threadpools": []}
    try:
        with open("/proc/cpuinfo") as handle:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import threadpoolctl
        info["threadpools"] = [" ".join(str(part) for part in (p.get("internal_api"), p.get("version"),
                                                               p.get("architecture") and f"{p['architecture']} kernel",
                                                               _threads(p.get("num_threads"))) if part)
                               for p in threadpoolctl.threadpool_info()]
    except ImportError:
        info["threadpools"] = ["threadpoolctl not installed"]
    info["torch_blas"] = ", ".join(part.split("BLAS_INFO=")[1].strip() for part in
                                   torch.__config__.show().replace(",", "\n").splitlines()
                                   if "BLAS_INFO=" in part) or "unknown"
    return info


def busy_warning(info: dict) -> str:
    """A warning when the 1-minute load average says other programs are using the cores ("" when quiet)."""
    load, cores = info["load_before"][0], info["cores_usable"]
    if load <= 0.5 * cores:
        return ""
    return (f"WARNING: the load average is {load:.1f} on {cores} usable cores: other programs are running, so the "
            "times are noisy (the spread columns show by how much); rerun on a quiet machine for figures to quote")


# ------------------------------------------------------------------------------------------- progress

class Progress:
    """One line per finished job: how many of how many, the time so far and an estimate of the time left.

    Each job has a weight, an a-priori guess of its cost; the estimate scales the time so far by the weight
    still to do over the weight done."""

    def __init__(self, weights: list):
        self.total, self.done, self.count, self.jobs = sum(weights), 0.0, 0, len(weights)
        self.start = time.perf_counter()

    @staticmethod
    def clock(seconds: float) -> str:
        return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"

    def finish(self, weight: float, text: str) -> None:
        self.done += weight
        self.count += 1
        elapsed = time.perf_counter() - self.start
        left = elapsed * (self.total - self.done) / max(self.done, 1e-9)
        print(f"[{self.count:3d}/{self.jobs}] {self.clock(elapsed)} elapsed, about {self.clock(left)} left | {text}",
              flush=True)


def _seconds_guess(flops: int) -> float:
    """A rough cost of one call: 50 GFLOP/s, at least one 20 ms sample."""
    return max(flops / 50e9, MIN_SAMPLE_S)


def _memory_weight(flops: int) -> float:
    """A memory job: a fork, a warm-up at the tiny size, building, one step (calibrated on a full run)."""
    return 1.0 + 2 * _seconds_guess(flops)


def _timing_weight(flops: int, rounds: int) -> float:
    """A timing job: ours and torch, forward and step, ``rounds`` samples each (calibrated on a full run)."""
    return 3.3 * rounds * _seconds_guess(flops)


# ------------------------------------------------------------------------------------------- rows

@dataclass
class Row:
    workload: str
    size: str
    skip: str = ""
    error: str = ""
    note: str = ""
    samples: dict = field(default_factory=dict)    # (impl, "fwd" | "f+b") -> seconds per call, one per round
    flops: int = 0
    step_flops: int = 0
    memory: dict = field(default_factory=dict)     # impl -> {"traced_mb", "rss_mb"} / {"peak_mb"} / {"error"}

    def time(self, impl, mode):
        samples = self.samples.get((impl, mode))
        return statistics.median(samples) if samples else None

    def ratio(self, mode):
        if ("ours", mode) not in self.samples:
            return None
        return ratio_stats(self.samples[("ours", mode)], self.samples[("torch", mode)])


@dataclass
class LongRow:
    T: int
    error: str = ""
    samples: dict = field(default_factory=dict)    # impl -> seconds per step, one per round
    memory: dict = field(default_factory=dict)     # impl -> {"rss_mb", "traced_mb"} or {"error"}


def run_row(name: str, size: Size, args, device=None) -> Row:
    """Time one (workload, size): forward, then the step, each with ours and torch interleaved."""
    workload = WORKLOADS[name]
    row = Row(name, size.name, skip=workload.available() or "")
    if row.skip:
        return row
    try:
        benches = {impl: workload.build(impl, size, SEED, device=where)
                   for impl, where in (("ours", "cpu" if device is None else "cuda"),
                                       ("torch", "cpu" if device is None else device.torch_device))}
        row.note = "; ".join(b.note for b in benches.values() if b.note)
        row.flops, row.step_flops = workload.flops(size), workload.flops_step(size) if workload.training else 0
        syncs = None if device is None else {"ours": device.sync_ours, "torch": device.sync_torch}
        if device is not None and not args.no_memory:
            for impl, bench in benches.items():
                row.memory[impl] = device.measure_step_memory(impl, bench.step or bench.forward)
        for mode, attribute in (("fwd", "forward"), ("f+b", "step")):
            fns = {impl: getattr(bench, attribute) for impl, bench in benches.items()}
            if None in fns.values():
                continue
            samples = time_interleaved(fns, args.repeats, args.warmup, args.min_sample, syncs)
            for impl in IMPLS:
                row.samples[(impl, mode)] = samples[impl]
    except Exception as error:  # a broken workload is reported, and the others still run
        row.error = f"{type(error).__name__}: {error}"[:300]
    return row


def describe_row(row: Row) -> str:
    if row.skip or row.error:
        return f"{row.workload} {row.size}: " + (f"skipped: {row.skip}" if row.skip else f"ERROR: {row.error}")
    parts = []
    for mode in ("fwd", "f+b"):
        if row.ratio(mode):
            ratio, low, high = row.ratio(mode)
            parts.append(f"{mode} {_ms(row.time('ours', mode))} / {_ms(row.time('torch', mode))} ms = {ratio:.2f} "
                         f"({low:.2f}-{high:.2f})")
    return f"{row.workload} {row.size}: " + ", ".join(parts)


def run_long(T: int, args, progress: Progress, weight: float) -> LongRow:
    """Time the long-sequence rows at length T, the three implementations interleaved round by round."""
    row = LongRow(T)
    size = long_size(T, args.quick)
    try:
        fns = {impl: build_long(impl, size, SEED).step for impl in LONG_IMPLS}

        def on_round(number, samples):
            if T >= 2048:
                print(f"      T={T} round {number + 1}/{repeats}: "
                      + ", ".join(f"{impl} {v[-1]:.1f} s" for impl, v in samples.items()), flush=True)

        repeats = args.repeats if T < 2048 else min(args.repeats, 3 if T < 8192 else 2)
        row.samples = time_interleaved(fns, repeats, args.warmup, args.min_sample, on_round=on_round)
    except Exception as error:  # a failure (say, out of memory) is reported, and the other lengths still run
        row.error = f"{type(error).__name__}: {error}"[:300]
    times = ", ".join(f"{impl} {_ms(statistics.median(v))} ms" for impl, v in row.samples.items())
    progress.finish(weight, f"long sequences T={T}: " + (row.error or times))
    return row


def _long_weight(T: int, quick: bool) -> float:
    s = long_size(T, quick)
    attention = 7 * attention_core_flops_dense(s)        # full: 6 products; blocked 7; torch about 7
    return _seconds_guess(3 * encoder_layer_flops(s.B, s.T, s.d, s.h, s.ff) + attention)


def attention_core_flops_dense(s: Size) -> int:
    return 2 * matmul_flops(s.T, s.T, s.d // s.h, s.B * s.h)


# ------------------------------------------------------------------------------------------- tables

def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def _memory_cell(row_memory: dict, impl: str, key: str) -> str:
    entry = row_memory.get(impl)
    if entry is None or "unavailable" in entry:
        return "-"
    return "error" if "error" in entry else _fmt(entry.get(key))


def markdown_table(columns, body) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in line) + " |" for line in body])


def table_rows(rows, floors, memory_columns):
    """The time table and the rate-and-memory table, as lists of cells."""
    time_rows, rate_rows = [], []
    for row in rows:
        if row.skip or row.error:
            status = f"skipped: {row.skip}" if row.skip else f"error: {row.error}"
            time_rows.append([row.workload, row.size, status] + [""] * (len(TIME_COLUMNS) - 3))
            rate_rows.append([row.workload, row.size, status] + [""] * (len(RATE_COLUMNS) + len(memory_columns) - 3))
            continue
        cells = [row.workload, row.size]
        for mode in ("fwd", "f+b"):
            stats = row.ratio(mode)
            cells += [_ms(row.time("ours", mode)), _ms(row.time("torch", mode)),
                      "-" if stats is None else f"{stats[0]:.2f}",
                      "-" if stats is None else f"{stats[1]:.2f}-{stats[2]:.2f}"]
        time_rows.append(cells)
        mode, flops = ("f+b", row.step_flops) if ("ours", "f+b") in row.samples else ("fwd", row.flops)
        rates = {impl: flops / row.time(impl, mode) / 1e9 if flops else None for impl in IMPLS}
        floor = floors[row.size]["ours_gflops"]
        memory = [_memory_cell(row.memory, impl, key) for impl, key in
                  ((c.split()[0], {"traced": "traced_mb", "RSS": "rss_mb", "peak": "peak_mb"}[c.split()[1]])
                   for c in memory_columns)]
        rate_rows.append([row.workload, row.size, _fmt(row.flops / 1e9 if row.flops else None, 2),
                          _fmt(rates["ours"]), _fmt(rates["torch"]), _fmt(floor)]
                         + [_fmt(None if r is None else 100 * r / floor, 0) for r in rates.values()] + memory)
    return time_rows, rate_rows


def long_table_rows(long_rows):
    body = []
    for row in long_rows:
        if row.error:
            body.append([f"T={row.T}", f"error: {row.error}"] + [""] * (len(LONG_COLUMNS) - 2))
            continue
        t = {impl: statistics.median(v) for impl, v in row.samples.items()}
        _, low, high = ratio_stats(row.samples["ours blocked"], row.samples["torch"])
        body.append([f"T={row.T}"] + [_ms(t[impl]) for impl in LONG_IMPLS]
                    + [f"{t['ours full'] / t['torch']:.2f}", f"{t['ours blocked'] / t['torch']:.2f}"]
                    + [_memory_cell(row.memory, impl, "rss_mb") for impl in LONG_IMPLS] + [f"{low:.2f}-{high:.2f}"])
    return body


def sizes_line(sizes) -> str:
    s = sizes[0]
    return ("Sizes: " + "; ".join(f"{z.name}: B={z.B}, T={z.T}, d={z.d}, h={z.h}, ff={z.ff}" for z in sizes)
            + f". translator: {s.layers} encoder + {s.layers} decoder layers, vocabulary {s.vocab}; vit: {s.layers} "
            f"pre-norm layers, patch 4, T patches + class token; bert: {s.bert_layers} layers, vocabulary "
            f"{s.bert_vocab}, inference; bert_finetune: the same BERT (at least 3 layers) under a mean-pooling "
            "2-label head, embeddings and the first 2 layers frozen, AdamW on the rest.")


def machine_line(info: dict) -> str:
    """The machine, named: the same words in results.md and in the README."""
    return (f"{info['cpu']}, {info['cores_usable']} usable cores; NumPy {info['numpy']} "
            f"({'; '.join(info['threadpools'])}), PyTorch {info['torch']} ({_threads(info['torch_threads'])}, BLAS "
            f"{info['torch_blas']}), Python {info['python']}")


def render(rows, floors, info, sizes, args, long_rows=(), elementwise=()) -> str:
    """The report, for both modes: the machine, the method, then the tables."""
    gpu = info.get("gpu")
    memory_columns = GPU_MEMORY_COLUMNS if gpu else CPU_MEMORY_COLUMNS
    time_rows, rate_rows = table_rows(rows, floors, memory_columns)
    where = "CUDA" if info.get("torch_device") == "cuda" else "CPU"
    out = [f"# numpy_transformer{' on CuPy' if gpu else ''} vs PyTorch {where}{'' if gpu else ' eager'}", ""]
    if gpu:
        out += [f"GPU: {gpu}; CuPy {info['cupy']} (CUDA runtime {info['cuda_runtime']}), PyTorch CUDA "
                f"{info['torch_cuda']}. Host: {machine_line(info)}.", ""]
        if where != "CUDA":
            out += ["**PyTorch ran on the CPU (--allow-cpu-reference): the ratios are no GPU comparison; this run "
                    "only checks that the script works.**", ""]
    else:
        out += [f"Machine: {machine_line(info)}.", ""]
    load = ", ".join(f"{x:.1f}" for x in info["load_before"]) + " before, " + ", ".join(
        f"{x:.1f}" for x in info["load_after"]) + " after"
    out += [f"Load average (1, 5, 15 min): {load}." + (f" {info['warning']}." if info.get("warning") else ""), ""]
    out += [f"float32; warm-up {args.warmup}, then {args.repeats} rounds, ours and torch taking one sample each per "
            f"round (a sample: at least {args.min_sample * 1e3:.0f} ms of calls); time = median sample, ratio = "
            "median of the rounds' ratios ours / torch (above 1 = slower), spread = their lowest and highest"
            + (", the device drained before every reading of the clock" if gpu else "")
            + f"; `python benchmarks/run.py {' '.join(args.argv)}`.", "", sizes_line(sizes), ""]
    out += ["## Time (ms; ratio = ours / torch, above 1 = slower)", "", markdown_table(TIME_COLUMNS, time_rows), ""]
    out += ["## Rate and memory", "", "Matmul floor (float32 2-D product, " + ("CuPy" if gpu else "NumPy")
            + "): " + "; ".join(f"{n}: {f['shape']} {f['ours_gflops']:.1f} GFLOP/s (torch {f['torch_gflops']:.1f})"
                                for n, f in floors.items()) + ".", "",
            markdown_table(RATE_COLUMNS + memory_columns, rate_rows), ""]
    if gpu:
        memory = ("peak MB: device memory of the first step above what model and inputs held (CuPy's memory-pool "
                  "high-water mark; torch.cuda.max_memory_allocated)")
    else:
        memory = ("MB: peak memory of ONE step (a forward for bert) in a forked child, above what it held before "
                  "the step: RSS = resident memory (VmHWM), traced = our arrays (tracemalloc)")
    out += ["GFLOP fwd: matrix-product FLOPs of one forward pass (2*M*N*K per product; elementwise work not "
            "counted); the rate is of the step (3 x fwd; bert_finetune: the backward of the trainable layers only; "
            f"bert: the forward) over its time; % floor: of the matmul floor. {memory}"
            + ("; - where not measured." if args.no_memory else "."), ""]
    if long_rows:
        s = long_size(LONG_LENGTHS[0], args.quick)
        out += ["## Long sequences", "",
                f"One post-norm encoder layer's training step (ReLU, B={s.B}, d={s.d}, h={s.h}, ff={s.ff}, no mask): "
                "ours with the full (T, T) attention, ours with blocked attention (`attention=\"blocked\"`, "
                "blocks of 1024 queries x 256 keys), PyTorch (`nn.TransformerEncoderLayer`, its memory-efficient CPU "
                "attention). ms per step (median of interleaved rounds), MB = peak resident memory of the step (as "
                "above); spread: the rounds' lowest and highest ratio blocked / torch.", "",
                markdown_table(LONG_COLUMNS, long_table_rows(long_rows)), ""]
    if elementwise:
        out += ["## Elementwise cost", "",
                "Where the time outside the matrix products goes: ns per element of the elementwise building "
                "blocks, float32 (ours: each NumPy ufunc one single-threaded pass over memory; torch: fused kernels "
                "on every core), rounds interleaved as above.", "", markdown_table(ELEMENTWISE_COLUMNS, elementwise),
                ""]
    notes = [f"{row.workload}/{row.size}: {row.note}" for row in rows if row.note]
    if notes:
        out += ["Notes: " + "; ".join(notes) + "."]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------- README and plot

README_TABLES = {"ratios": ("<!-- benchmarks/run.py: ratios -->", "<!-- benchmarks/run.py: end ratios -->"),
                 "long": ("<!-- benchmarks/run.py: long sequences -->",
                          "<!-- benchmarks/run.py: end long sequences -->")}
README_ROWS = [("encoder_layer", "one encoder layer (post-norm)"),
               ("decoder_layer", "one decoder layer (cross-attention)"),
               ("translator", "translator training step (AdamW)"), ("vit", "ViT training step"),
               ("bert_finetune", "BERT fine-tuning step (2 layers frozen)"), ("mha", "multi-head attention block"),
               ("sdpa", "scaled dot-product attention (causal)"), ("feedforward", "GELU feed-forward"),
               ("layernorm", "layer norm"), ("bert", "BERT (MiniLM size) inference, forward only")]


def readme_tables(rows, info, long_rows) -> dict:
    """The README's two generated tables (with the machine they ran on), from the same rows as results.md."""
    ratio = {}
    for row in rows:
        mode = "f+b" if ("ours", "f+b") in row.samples else "fwd"
        stats = row.ratio(mode) if not (row.skip or row.error) else None
        ratio[row.workload, row.size] = "-" if stats is None else f"{stats[0]:.2f}"
    sizes = [s for s in SIZES.values() if any(r.size == s.name for r in rows)]
    header = ["workload"] + [f"{s.name} (B={s.B}, T={s.T}, d={s.d})" for s in sizes]
    body = [[label] + [ratio.get((name, s.name), "-") for s in sizes] for name, label in README_ROWS
            if any(r.workload == name for r in rows)]
    machine = f"Measured on {machine_line(info)}; `benchmarks/results.md` holds the whole run."
    tables = {"ratios": machine + "\n\n" + markdown_table(header, body)}
    if long_rows:
        tables["long"] = markdown_table(LONG_COLUMNS[:-1], [r[:-1] for r in long_table_rows(long_rows)])
    return tables


def update_readme(path: str, tables: dict) -> None:
    """Replace the text between each pair of markers in the README by its table; a missing marker is an error."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    for key, table in tables.items():
        begin, end = README_TABLES[key]
        if begin not in text or end not in text:
            raise ValueError(f"--readme: {path} has no '{begin}' ... '{end}' pair to put the {key} table between")
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + table + "\n" + end + rest.split(end, 1)[1]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def plot_long(long_rows, info, path: str) -> None:
    """Time and peak memory of the long-sequence rows against T, log-log, one line per implementation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in long_rows if not r.error]
    lengths = [r.T for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"ours full": ("tab:red", "o"), "ours blocked": ("tab:blue", "s"), "torch": ("0.3", "^")}
    for impl, (color, marker) in styles.items():
        times = [statistics.median(r.samples[impl]) for r in rows]
        left.plot(lengths, times, color=color, marker=marker, label=impl)
        memory = [(r.T, r.memory.get(impl, {}).get("rss_mb")) for r in rows]
        memory = [(t, m) for t, m in memory if m is not None]
        right.plot([t for t, _ in memory], [m for _, m in memory], color=color, marker=marker, label=impl)
    for axis, title, unit in ((left, "time of one training step", "seconds"),
                              (right, "peak memory of one training step", "MB (resident, above the start)")):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(lengths, [str(t) for t in lengths])
        axis.set_xlabel("sequence length T")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    s = long_size(lengths[0], quick=lengths[0] < LONG_LENGTHS[0])
    figure.suptitle(f"One encoder layer (B={s.B}, d={s.d}, h={s.h}): full vs blocked attention vs PyTorch -- "
                    f"{info['cpu']}, {info['cores_usable']} cores, PyTorch at {_threads(info['torch_threads'])}",
                    fontsize=10)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_outputs(text, rows, floors, info, long_rows, args) -> None:
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(text)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": info, "floors": floors, "rows": [
                {"workload": r.workload, "size": r.size, "skip": r.skip, "error": r.error, "note": r.note,
                 "flops_fwd": r.flops, "memory": r.memory,
                 "times_s": {f"{impl} {mode}": v for (impl, mode), v in r.samples.items()}} for r in rows],
                "long": [{"T": r.T, "error": r.error, "times_s": r.samples, "memory": r.memory} for r in long_rows]},
                handle, indent=1)
    if args.plot and long_rows:
        plot_long(long_rows, info, args.plot)
    if args.readme:
        update_readme(args.readme, readme_tables(rows, info, long_rows))


# ------------------------------------------------------------------------------------------- CPU run

def _preload(workloads) -> None:
    """Import here what the workloads import lazily, so that each forked child does not import it again."""
    import scipy.special  # noqa: F401 - the exact GELU's erf

    import numpy_transformer.models  # noqa: F401
    if any(name.startswith("bert") for name in workloads) and not WORKLOADS["bert"].available():
        import transformers  # noqa: F401


def run_cpu(args, workloads, sizes) -> int:
    info = machine_info()
    info["load_before"] = os.getloadavg()
    info["warning"] = busy_warning(info)
    print(f"CPU: {machine_line(info)}", flush=True)
    if info["warning"]:
        print(info["warning"], file=sys.stderr, flush=True)
    lengths = [] if args.no_long else args.lengths or list(QUICK_LONG_LENGTHS if args.quick else LONG_LENGTHS)
    memory_reason = "" if args.no_memory else memory_supported()
    _preload(workloads)
    if memory_reason:
        print(f"memory not measured: {memory_reason}", file=sys.stderr, flush=True)
    measure = not args.no_memory and not memory_reason
    pairs = [(name, size) for name in workloads for size in sizes]
    rounds = args.warmup + args.repeats
    weights = []
    if measure:   # the memory jobs first: forked from this process before it has computed anything
        weights += [_memory_weight(WORKLOADS[n].flops_step(s)) for n, s in pairs for _ in IMPLS]
        weights += [_long_weight(T, args.quick) for T in lengths for _ in LONG_IMPLS]
    weights += [0.3 * len(sizes) + 2]                                      # the matmul floors, elementwise costs
    weights += [_timing_weight(WORKLOADS[n].flops_step(s), rounds) for n, s in pairs]
    weights += [1.2 * rounds * _long_weight(T, args.quick) for T in lengths]
    progress = Progress(weights)

    memory, long_memory = {}, {}
    if measure:
        for name, size in pairs:
            workload = WORKLOADS[name]
            for impl in IMPLS:
                if workload.available():
                    result = {"error": workload.available()}
                else:
                    result = measure_memory(partial(workload.build, impl, size, SEED), impl,
                                            partial(_first_call, workload.build, impl, QUICK_SIZE))
                memory[name, size.name, impl] = result
                progress.finish(_memory_weight(workload.flops_step(size)),
                                f"memory {name} {size.name} {impl}: " + ", ".join(
                                    f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
        for T in lengths:
            for impl in LONG_IMPLS:
                result = measure_memory(partial(build_long, impl, long_size(T, args.quick), SEED), impl,
                                        partial(_first_call, build_long, impl, long_size(16, quick=True)))
                long_memory[T, impl] = result
                progress.finish(_long_weight(T, args.quick), f"memory long T={T} {impl}: " + ", ".join(
                    f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))

    floors = {}
    for size in sizes:
        floors[size.name] = matmul_floor(size, args.repeats, args.warmup)
    elementwise = [] if args.quick else elementwise_costs(args.repeats, args.warmup, args.min_sample)
    progress.finish(0.3 * len(sizes) + 2, "matmul floors: " + "; ".join(
        f"{n} {f['ours_gflops']:.0f} GFLOP/s (torch {f['torch_gflops']:.0f})" for n, f in floors.items())
        + "; elementwise ours / torch: " + ", ".join(f"{r[0]} {r[4]}" for r in elementwise))
    rows = []
    for name, size in pairs:
        row = run_row(name, size, args)
        row.memory = {impl: memory[name, size.name, impl] for impl in IMPLS if (name, size.name, impl) in memory}
        rows.append(row)
        progress.finish(_timing_weight(WORKLOADS[name].flops_step(size), rounds), describe_row(row))
    long_rows = []
    for T in lengths:
        row = run_long(T, args, progress, 1.2 * rounds * _long_weight(T, args.quick))
        row.memory = {impl: long_memory[T, impl] for impl in LONG_IMPLS if (T, impl) in long_memory}
        long_rows.append(row)
    info["load_after"] = os.getloadavg()
    text = render(rows, floors, info, sizes, args, long_rows, elementwise)
    print()
    print(text)
    print(f"total {Progress.clock(time.perf_counter() - progress.start)}", flush=True)
    write_outputs(text, rows, floors, info, long_rows, args)
    return 1 if any(row.error for row in rows) or any(row.error for row in long_rows) else 0


# ------------------------------------------------------------------------------------------- GPU mode

class CudaDevice:
    """The GPU as both libraries see it: draining the queued work, its name and the memory counters.
    ``torch_device`` is ``"cuda"``, or ``"cpu"`` only with ``--allow-cpu-reference``."""

    def __init__(self, cupy, torch, torch_device: str):
        self.cupy, self.torch, self.torch_device = cupy, torch, torch_device

    def sync_ours(self) -> None:
        self.cupy.cuda.Device().synchronize()

    def sync_torch(self) -> None:
        if self.torch_device == "cuda":
            self.torch.cuda.synchronize()

    def info(self) -> dict:
        name = self.cupy.cuda.runtime.getDeviceProperties(0)["name"]
        info = {"gpu": name.decode() if isinstance(name, bytes) else str(name),
                "cupy": getattr(self.cupy, "__version__", "unknown"), "torch_device": self.torch_device,
                "torch_cuda": getattr(self.torch.version, "cuda", None) or "none"}
        try:
            version = int(self.cupy.cuda.runtime.runtimeGetVersion())
            info["cuda_runtime"] = f"{version // 1000}.{version % 1000 // 10}"
        except Exception:  # not every CuPy build answers
            info["cuda_runtime"] = "unknown"
        return info

    def measure_step_memory(self, impl: str, fn) -> dict:
        """Run ``fn`` once (the first step after building); the device memory it took above what was held, MB.
        ours: CuPy's pool only grows after ``free_all_blocks()``, up to the high-water mark of what was in use;
        torch: ``max_memory_allocated()`` after ``reset_peak_memory_stats()``."""
        if impl == "torch" and self.torch_device != "cuda":
            fn()
            return {"unavailable": "PyTorch runs on the CPU (--allow-cpu-reference)"}
        gc.collect()
        if impl == "ours":
            pool = self.cupy.get_default_memory_pool()
            self.sync_ours()
            pool.free_all_blocks()
            held = pool.used_bytes()
            fn()
            self.sync_ours()
            peak = pool.total_bytes()
        else:
            cuda = self.torch.cuda
            self.sync_torch()
            cuda.reset_peak_memory_stats()
            held = cuda.memory_allocated()
            fn()
            self.sync_torch()
            peak = cuda.max_memory_allocated()
        return {"peak_mb": (peak - held) / 2**20}


def open_cuda(allow_cpu_reference: bool):
    """``(CudaDevice, "")``, or ``(None, what is missing)`` when the GPU mode cannot run here."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as error:
        return None, (f"--device cuda needs CuPy, which is not installed ({error}); install a CuPy wheel that "
                      "matches the machine's CUDA (e.g. `pip install cupy-cuda12x`) on a machine with an NVIDIA GPU")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as error:  # no driver, or CuPy built for another CUDA
        return None, f"--device cuda: CuPy is installed but cannot reach a GPU ({type(error).__name__}: {error})"
    if count < 1:
        return None, "--device cuda: CuPy is installed but sees no GPU (getDeviceCount() = 0)"
    try:
        torch = importlib.import_module("torch")
    except ImportError as error:
        return None, f"--device cuda compares against PyTorch, which is not installed ({error})"
    if torch.cuda.is_available():
        return CudaDevice(cupy, torch, "cuda"), ""
    if allow_cpu_reference:
        return CudaDevice(cupy, torch, "cpu"), ""
    return None, ("--device cuda: PyTorch has no CUDA here (torch.cuda.is_available() is False; torch "
                  f"{torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); install a CUDA build of "
                  "PyTorch, or pass --allow-cpu-reference to compare against PyTorch on the CPU (for testing the "
                  "script only: the ratios are then no GPU comparison)")


def run_gpu(args, workloads, sizes) -> int:
    device, missing = open_cuda(args.allow_cpu_reference)
    if device is None:
        print(missing, file=sys.stderr)
        return 2
    if device.torch_device != "cuda":
        print("WARNING: --allow-cpu-reference: PyTorch runs on the CPU; the ratios are no GPU comparison",
              file=sys.stderr, flush=True)
    info = machine_info()
    info.update(device.info())
    info["load_before"] = os.getloadavg()
    print(f"GPU: {info['gpu']}; cupy {info['cupy']}, torch {info['torch']} on {info['torch_device']}", flush=True)
    pairs = [(name, size) for name in workloads for size in sizes]
    progress = Progress([1.0] * len(sizes) + [_seconds_guess(WORKLOADS[n].flops_step(s)) for n, s in pairs])
    floors = {}
    for size in sizes:
        floors[size.name] = matmul_floor(size, args.repeats, args.warmup, device)
        progress.finish(1.0, f"matmul floor {size.name}: cupy {floors[size.name]['ours_gflops']:.1f} GFLOP/s")
    rows = []
    for name, size in pairs:
        rows.append(run_row(name, size, args, device))
        progress.finish(_seconds_guess(WORKLOADS[name].flops_step(size)), describe_row(rows[-1]))
    info["load_after"] = os.getloadavg()
    text = render(rows, floors, info, sizes, args)
    print()
    print(text)
    write_outputs(text, rows, floors, info, [], args)
    return 1 if any(row.error for row in rows) else 0


# ------------------------------------------------------------------------------------------- main

def profile(name: str, size_name: str) -> int:
    """cProfile of our training step (the forward for inference): the functions by their own time."""
    size = QUICK_SIZE if size_name == QUICK_SIZE.name else SIZES[size_name]
    bench = WORKLOADS[name].build("ours", size, SEED)
    fn = bench.step or bench.forward
    fn()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(3):
        fn()
    profiler.disable()
    print(f"{name} {size_name}: 3 calls of our {'step' if bench.step else 'forward'}; NumPy's operators are charged "
          "to the function whose line runs them")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and lengths, one round: checks that it runs")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--workloads", default=None,
                        help=f"comma-separated, of {', '.join(WORKLOADS)} (default: all of the device's)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds of samples (default 5; --quick 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 1; GPU 3)")
    parser.add_argument("--threads", type=int, default=None, help="limit NumPy's BLAS and torch to N threads")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--no-long", action="store_true", help="skip the long-sequence benchmark")
    parser.add_argument("--lengths", default=None,
                        help="comma-separated T of the long-sequence benchmark (default "
                             + ",".join(map(str, LONG_LENGTHS)) + ")")
    parser.add_argument("--record", action="store_true",
                        help="write " + ", ".join(RECORD.values()) + " (the README between its markers)")
    parser.add_argument("--markdown", metavar="PATH", help="write the report as markdown")
    parser.add_argument("--json", metavar="PATH", help="write the raw samples as JSON")
    parser.add_argument("--plot", metavar="PATH", help="draw the long-sequence plot (PNG)")
    parser.add_argument("--readme", metavar="PATH", help="put the ratio and long-sequence tables into this README")
    parser.add_argument("--profile", nargs=2, metavar=("WORKLOAD", "SIZE"), help="cProfile our side of one workload")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: NumPy vs PyTorch CPU (default); cuda: CuPy vs PyTorch CUDA")
    parser.add_argument("--allow-cpu-reference", action="store_true",
                        help="with --device cuda: let PyTorch run on the CPU when it has no CUDA (testing only)")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    if args.record:
        for key, path in RECORD.items():
            if getattr(args, key) is None:
                setattr(args, key, os.path.join(ROOT, path))
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.profile:
        name, size_name = args.profile
        if name not in WORKLOADS or size_name not in list(SIZES) + [QUICK_SIZE.name]:
            print(f"--profile: got {args.profile}; expected WORKLOAD SIZE from {list(WORKLOADS)}, {list(SIZES)}",
                  file=sys.stderr)
            return 2
        return profile(name, size_name)
    default = [name for name, w in WORKLOADS.items() if args.device in w.devices]
    workloads = default if args.workloads is None else [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        print(f"--workloads: got unknown {unknown}; expected names from {list(WORKLOADS)}", file=sys.stderr)
        return 2
    names = [s for s in args.sizes.split(",") if s]
    if [s for s in names if s not in SIZES]:
        print(f"--sizes: got unknown {[s for s in names if s not in SIZES]}; expected names from {list(SIZES)}",
              file=sys.stderr)
        return 2
    sizes = [QUICK_SIZE] if args.quick else [SIZES[s] for s in names]
    try:
        args.lengths = [int(t) for t in args.lengths.split(",") if t] if args.lengths else None
    except ValueError:
        print(f"--lengths: got {args.lengths!r}; expected comma-separated positive integers", file=sys.stderr)
        return 2
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.warmup = (1 if args.device == "cpu" or args.quick else 3) if args.warmup is None else args.warmup
    args.min_sample = 0.0 if args.quick else MIN_SAMPLE_S
    if args.quick and args.threads is None and not (args.device == "cuda" and not args.allow_cpu_reference):
        args.threads = 1          # no timing to speak of; one thread avoids thread stalls on a busy machine
    limit = None
    if args.threads:
        import threadpoolctl
        import torch
        torch_threads = torch.get_num_threads()
        limit = threadpoolctl.threadpool_limits(args.threads, user_api="blas")
        torch.set_num_threads(args.threads)
    try:
        return (run_gpu if args.device == "cuda" else run_cpu)(args, workloads, sizes)
    finally:   # this process may go on (a test calls main): give the thread counts back
        if limit is not None:
            limit.restore_original_limits()
            torch.set_num_threads(torch_threads)


if __name__ == "__main__":
    sys.exit(main())

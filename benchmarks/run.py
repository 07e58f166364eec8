"""Time our NumPy Transformer against PyTorch CPU eager, in one process, on the same inputs and weights.

    python benchmarks/run.py                      # every workload at sizes small, standard, minilm
    python benchmarks/run.py --quick              # tiny sizes, 1 repeat: checks that everything runs
    python benchmarks/run.py --workloads mha,encoder_layer --sizes standard --repeats 7
    python benchmarks/run.py --markdown benchmarks/results.md
    python benchmarks/run.py --memory encoder_layer standard ours   # one memory measurement (used internally)

Method.

- Time: every callable is called ``--warmup`` times, then ``--repeats`` samples are taken, ours as one block
  then torch as one block (interleaving call by call lets one library's spinning worker threads slow the
  other on a small machine); a sample of a call shorter than 20 ms averages enough calls
  to last 20 ms. The reported time is the median sample. "fwd" is the forward pass (for the training
  workloads: forward + loss), "f+b" is forward + backward (for translator and vit: the whole training step,
  forward, loss, backward and the AdamW update). Both run in float32 with their default threads
  (``--threads N`` limits NumPy's BLAS through threadpoolctl and torch to N; ``--quick`` uses 1), PyTorch
  with autograd recording in "fwd" (a training forward); BERT is inference (ours in eval mode, torch under
  ``inference_mode``). ratio = ours / torch (above 1: we are slower).
- Rate: the matrix-product FLOPs of the workload are counted analytically (``benchmarks/workloads.py``:
  ``2*M*N*K`` per product, backward = 2 x forward's products) and divided by the time. The "matmul floor"
  is the rate of one NumPy float32 2-D product ``(B*T, d) @ (d, ff)`` measured in the same run at the same
  size: "% floor" says how much of the machine's BLAS speed a workload keeps.
- Memory: each (workload, size, implementation) runs in a fresh subprocess, which builds the model and inputs
  and then runs ONE training step (or one forward for inference). "traced" is the peak of the arrays that
  the step allocated, from tracemalloc (NumPy reports its allocations to it; ours only, torch's allocator is
  not traced); "RSS" is the growth of the process high-water mark over the step (``VmHWM``, the
  ``ru_maxrss`` of this process alone). Both
  include what a first step creates and keeps (optimizer state, gradients, caches).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.workloads import QUICK_SIZE, SEED, SIZES, WORKLOADS, Size, matmul_flops  # noqa: E402

MIN_SAMPLE_S = 0.02
IMPLS = ("ours", "torch")


# ------------------------------------------------------------------------------------------- timing

def _one_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _sample(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def time_block(fn, repeats: int, warmup: int, min_sample: float = MIN_SAMPLE_S) -> float:
    """Median seconds per call of ``fn``: ``warmup`` untimed calls, then ``repeats`` samples."""
    for _ in range(warmup):
        fn()
    number = max(1, math.ceil(min_sample / max(_one_call(fn), 1e-7))) if min_sample > 0 else 1
    samples = []
    for _ in range(repeats):
        gc.collect()
        samples.append(_sample(fn, number))
    return statistics.median(samples)


def time_pair(fn_ours, fn_torch, repeats: int, warmup: int, min_sample: float = MIN_SAMPLE_S):
    """Median seconds per call of each callable, timed one block after the other.

    Not interleaved call by call: on a machine with few cores, the worker threads that one library leaves
    spinning after its call (OpenBLAS's, libgomp's) would steal the cores from the other's next call. The
    warm-up at the head of each block absorbs the hand-over.
    """
    return (time_block(fn_ours, repeats, warmup, min_sample), time_block(fn_torch, repeats, warmup, min_sample))


def numpy_matmul_rate(size: Size, repeats: int) -> float:
    """GFLOP/s of NumPy's float32 (B*T, d) @ (d, ff), median of ``repeats`` samples of at least 20 ms."""
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((size.B * size.T, size.d)).astype(np.float32)
    b = rng.standard_normal((size.d, size.ff)).astype(np.float32)
    a @ b
    seconds = time_block(lambda: a @ b, max(repeats, 3), 1)
    return matmul_flops(size.B * size.T, size.ff, size.d) / seconds / 1e9


def matmul_floor(size: Size, repeats: int, warmup: int) -> dict:
    """GFLOP/s of one float32 2-D product (B*T, d) @ (d, ff) in NumPy and in torch."""
    import torch
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((size.B * size.T, size.d)).astype(np.float32)
    b = rng.standard_normal((size.d, size.ff)).astype(np.float32)
    ta, tb = torch.from_numpy(a.copy()), torch.from_numpy(b.copy())
    t_np, t_torch = time_pair(lambda: a @ b, lambda: ta @ tb, max(repeats, 3), max(warmup, 2))
    flops = matmul_flops(size.B * size.T, size.ff, size.d)
    return {"shape": f"({size.B * size.T}, {size.d}) @ ({size.d}, {size.ff})",
            "numpy_gflops": flops / t_np / 1e9, "torch_gflops": flops / t_torch / 1e9}


# ------------------------------------------------------------------------------------------- memory

def peak_rss_mb() -> float:
    """The process's resident-set high-water mark in MB.

    ``VmHWM`` of /proc/self/status where there is one: ``ru_maxrss`` survives ``exec``, so a subprocess
    would start from its parent's high-water mark; the memory map's own mark is fresh in a new process.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0            # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def memory_child(workload: str, size_name: str, impl: str) -> dict:
    """Build one workload, then measure ONE training step (or forward): tracemalloc peak and ru_maxrss growth."""
    size = QUICK_SIZE if size_name == QUICK_SIZE.name else SIZES[size_name]
    bench = WORKLOADS[workload].build(impl, size, SEED)
    fn = bench.step if bench.step is not None else bench.forward
    gc.collect()
    traced = impl == "ours"
    if traced:
        tracemalloc.start()
        start_traced = tracemalloc.get_traced_memory()[0]
    rss_before = peak_rss_mb()
    fn()
    result = {"rss_mb": peak_rss_mb() - rss_before}
    if traced:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["traced_mb"] = (peak - start_traced) / 2**20
        result["held_mb"] = (current - start_traced) / 2**20
    return result


def measure_memory(workload: str, size: Size, impl: str) -> dict:
    """Run :func:`memory_child` in a fresh interpreter and read its JSON line."""
    command = [sys.executable, os.path.abspath(__file__), "--memory", workload, size.name, impl]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- machine

def machine_info() -> dict:
    import torch
    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    try:
        info["cores_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["cores_usable"] = os.cpu_count()
    info["cpu"] = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = []
    try:
        import threadpoolctl
        for entry in threadpoolctl.threadpool_info():
            blas.append(f"{entry.get('internal_api')} {entry.get('version') or ''} "
                        f"kernel={entry.get('architecture', '-')} threads={entry.get('num_threads')} "
                        f"({os.path.basename(entry.get('filepath', ''))})")
    except ImportError:
        blas.append("threadpoolctl not installed")
    info["threadpools"] = blas
    torch_blas = [part.strip() for part in torch.__config__.show().replace(",", "\n").splitlines()
                  if "BLAS_INFO" in part or "LAPACK_INFO" in part]
    info["torch_blas"] = ", ".join(torch_blas) or "unknown"
    info["env"] = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                                               "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    return info


# ------------------------------------------------------------------------------------------- running

@dataclass
class Row:
    workload: str
    size: str
    skip: str = ""
    error: str = ""
    times: dict = field(default_factory=dict)      # (impl, "fwd" | "f+b") -> seconds
    flops: int = 0
    memory: dict = field(default_factory=dict)     # impl -> {"traced_mb", "rss_mb"} or {"error"}
    floor: float | None = None                     # NumPy 2-D matmul GFLOP/s measured right after the row
    note: str = ""


def run_workload(name: str, size: Size, repeats: int, warmup: int, min_sample: float) -> Row:
    workload = WORKLOADS[name]
    row = Row(name, size.name)
    reason = workload.available()
    if reason:
        row.skip = reason
        return row
    try:
        benches = {impl: workload.build(impl, size, SEED) for impl in IMPLS}
        row.note = "; ".join(b.note for b in benches.values() if b.note)
        row.flops = workload.flops(size)
        fwd = time_pair(benches["ours"].forward, benches["torch"].forward, repeats, warmup, min_sample)
        row.times[("ours", "fwd")], row.times[("torch", "fwd")] = fwd
        if workload.training:
            step = time_pair(benches["ours"].step, benches["torch"].step, repeats, warmup, min_sample)
            row.times[("ours", "f+b")], row.times[("torch", "f+b")] = step
        row.floor = numpy_matmul_rate(size, repeats)
    except Exception as error:  # a broken workload is reported, and the others still run
        row.error = f"{type(error).__name__}: {error}"[:300]
    return row


# ------------------------------------------------------------------------------------------- tables

TIME_COLUMNS = ["workload", "size", "ours fwd ms", "torch fwd ms", "fwd ratio", "ours f+b ms", "torch f+b ms",
                "f+b ratio"]
RATE_COLUMNS = ["workload", "size", "GFLOP fwd", "ours GFLOP/s fwd", "torch GFLOP/s fwd", "ours GFLOP/s f+b",
                "torch GFLOP/s f+b", "floor GFLOP/s", "ours % floor", "torch % floor", "ours traced MB", "ours RSS MB",
                "torch RSS MB"]


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def _gflops(flops, seconds):
    return None if not flops or seconds is None else flops / seconds / 1e9


def _fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def _mem(memory: dict, impl: str, key: str):
    entry = memory.get(impl)
    if entry is None:
        return "-"
    if "error" in entry:
        return "error"
    return _fmt(entry.get(key))


def table_rows(rows, floors):
    time_rows, rate_rows = [], []
    for row in rows:
        if row.skip or row.error:
            status = f"skipped: {row.skip}" if row.skip else f"error: {row.error}"
            time_rows.append([row.workload, row.size, status] + [""] * (len(TIME_COLUMNS) - 3))
            rate_rows.append([row.workload, row.size, status] + [""] * (len(RATE_COLUMNS) - 3))
            continue
        t = row.times.get
        time_rows.append([row.workload, row.size, _ms(t(("ours", "fwd"))), _ms(t(("torch", "fwd"))),
                          _ratio(t(("ours", "fwd")), t(("torch", "fwd"))), _ms(t(("ours", "f+b"))),
                          _ms(t(("torch", "f+b"))), _ratio(t(("ours", "f+b")), t(("torch", "f+b")))])
        rates = {}
        for impl in IMPLS:
            rates[impl, "fwd"] = _gflops(row.flops, t((impl, "fwd")))
            rates[impl, "f+b"] = _gflops(3 * row.flops, t((impl, "f+b")))
        floor = row.floor or floors[row.size]["numpy_gflops"]
        # the fraction of the floor: of the training step when there is one, else of the forward
        headline = "f+b" if ("ours", "f+b") in row.times else "fwd"
        percent = {impl: None if rates[impl, headline] is None else 100 * rates[impl, headline] / floor
                   for impl in IMPLS}
        rate_rows.append([row.workload, row.size, _fmt(row.flops / 1e9 if row.flops else None, 2),
                          _fmt(rates["ours", "fwd"]), _fmt(rates["torch", "fwd"]), _fmt(rates["ours", "f+b"]),
                          _fmt(rates["torch", "f+b"]), _fmt(floor), _fmt(percent["ours"], 0), _fmt(percent["torch"], 0),
                          _mem(row.memory, "ours", "traced_mb"), _mem(row.memory, "ours", "rss_mb"),
                          _mem(row.memory, "torch", "rss_mb")])
    return time_rows, rate_rows


def _load(triple) -> str:
    return ", ".join(f"{x:.1f}" for x in triple)


def markdown_table(columns, body) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in line) + " |" for line in body]
    return "\n".join(lines)


def render(rows, floors, info, sizes, args) -> str:
    time_rows, rate_rows = table_rows(rows, floors)
    out = ["# numpy_transformer vs PyTorch CPU eager", ""]
    out.append(f"Machine: {info['cpu']}, {info['cpu_count']} logical cores ({info['cores_usable']} usable); "
               f"Python {info['python']}, NumPy {info['numpy']}, PyTorch {info['torch']} "
               f"({info['torch_threads']} threads, {info['torch_blas']}).")
    out.append("")
    out.append("Thread pools (threadpoolctl): " + "; ".join(info["threadpools"]) + ".")
    out.append("")
    out.append(f"Load average (1, 5, 15 min) before: {_load(info['load_before'])}, after: {_load(info['load_after'])}"
               f" on {info['cores_usable']} cores" + (" -- the machine was shared, so the times are noisy and "
               "multi-threaded BLAS and OpenMP calls suffer most" if max(info['load_before'][0], info['load_after'][0])
               > 1.5 * info['cores_usable'] else "") + ".")
    if info["env"]:
        out.append("")
        out.append("Environment: " + ", ".join(f"{k}={v}" for k, v in info["env"].items()) + ".")
    out.append("")
    out.append(f"float32; warm-up {args.warmup}, median of {args.repeats} samples (each at least "
               f"{args.min_sample * 1e3:.0f} ms of calls), ours then torch, each in one block; `python benchmarks/run.py "
               f"{' '.join(args.argv)}`.")
    out.append("")
    out.append("Sizes: " + "; ".join(f"{s.name}: B={s.B}, T={s.T}, d={s.d}, h={s.h}, ff={s.ff}" for s in sizes)
               + f". translator: {sizes[0].layers} encoder + {sizes[0].layers} decoder layers, vocabulary "
               f"{sizes[0].vocab}; vit: {sizes[0].layers} pre-norm layers, patch 4, T patches + class token; "
               f"bert: {sizes[0].bert_layers} layers, vocabulary {sizes[0].bert_vocab}, inference.")
    out.append("")
    out.append("## Time (ms; ratio = ours / torch, above 1 = slower)")
    out.append("")
    out.append(markdown_table(TIME_COLUMNS, time_rows))
    out.append("")
    out.append("## Rate and memory")
    out.append("")
    out.append("Matmul floor (NumPy float32 2-D product, at the start of the run): "
               + "; ".join(f"{name}: {f['shape']} {f['numpy_gflops']:.1f} GFLOP/s (torch {f['torch_gflops']:.1f})"
                           for name, f in floors.items()) + ".")
    out.append("")
    out.append(markdown_table(RATE_COLUMNS, rate_rows))
    out.append("")
    out.append("GFLOP fwd: matrix-product FLOPs of one forward pass, counted analytically (2*M*N*K per product; "
               "f+b = 3 x fwd: a backward computes two products of each forward product's size; attention counted "
               "dense, the full T x T scores; elementwise work not counted, so layernorm has no rate). "
               "floor: NumPy's (B*T, d) @ (d, ff) rate re-measured right after each row (the load of a shared machine "
               "drifts); % floor: the f+b rate (the fwd rate for bert) over it. "
               "Memory, each in a fresh subprocess over ONE training step after building (a forward for bert): "
               "traced = tracemalloc peak of our arrays; RSS = growth of the process high-water mark VmHWM (MB).")
    notes = [f"{row.workload}/{row.size}: {row.note}" for row in rows if row.note]
    if notes:
        out.append("")
        out.append("Notes: " + "; ".join(notes) + ".")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, 1 repeat, memory of the first workload only: checks that it runs")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per callable (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit NumPy's BLAS (threadpoolctl) and torch to N threads (default: their defaults)")
    parser.add_argument("--markdown", metavar="PATH", help="write the tables as markdown")
    parser.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory", nargs=3, metavar=("WORKLOAD", "SIZE", "IMPL"),
                        help="measure one training step's memory in this process and print JSON")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.memory:
        workload, size_name, impl = args.memory
        if workload not in WORKLOADS or impl not in IMPLS or (size_name not in SIZES and size_name != QUICK_SIZE.name):
            print(f"--memory: got {args.memory}; expected WORKLOAD SIZE ours|torch", file=sys.stderr)
            return 2
        print(json.dumps(memory_child(workload, size_name, impl)))
        return 0

    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        print(f"--workloads: got unknown {unknown}; expected names from {list(WORKLOADS)}", file=sys.stderr)
        return 2
    if args.quick:
        sizes = [QUICK_SIZE]
        args.repeats = args.repeats or 1
        args.warmup = 1 if args.warmup is None else args.warmup
        args.min_sample = 0.0
        if args.threads is None:
            args.threads = 1   # no timing here; one thread avoids thread stalls on a busy machine
    else:
        names = [s for s in args.sizes.split(",") if s]
        unknown = [s for s in names if s not in SIZES]
        if unknown:
            print(f"--sizes: got unknown {unknown}; expected names from {list(SIZES)}", file=sys.stderr)
            return 2
        sizes = [SIZES[s] for s in names]
        args.repeats = args.repeats or 5
        args.warmup = 1 if args.warmup is None else args.warmup
        args.min_sample = MIN_SAMPLE_S

    if args.threads:
        import threadpoolctl
        import torch
        args.blas_limit = threadpoolctl.threadpool_limits(args.threads, user_api="blas")  # held for the run
        torch.set_num_threads(args.threads)
    info = machine_info()
    info["load_before"] = os.getloadavg()
    print(f"CPU: {info['cpu']} ({info['cores_usable']} cores usable); numpy {info['numpy']}, torch {info['torch']} "
          f"({info['torch_threads']} threads, {info['torch_blas']})", flush=True)
    for line in info["threadpools"]:
        print(f"threadpool: {line}", flush=True)
    if info["env"]:
        print("environment: " + ", ".join(f"{k}={v}" for k, v in info["env"].items()), flush=True)

    start = time.perf_counter()
    floors = {}
    for size in sizes:
        floors[size.name] = matmul_floor(size, args.repeats, args.warmup)
        print(f"matmul floor {size.name}: {floors[size.name]['shape']}: numpy "
              f"{floors[size.name]['numpy_gflops']:.1f} GFLOP/s, torch {floors[size.name]['torch_gflops']:.1f}",
              flush=True)

    rows = []
    for name in workloads:
        for size in sizes:
            row = run_workload(name, size, args.repeats, args.warmup, args.min_sample)
            measure = not args.no_memory and (not args.quick or not rows)
            if measure and not row.skip and not row.error:
                row.memory = {impl: measure_memory(name, size, impl) for impl in IMPLS}
            rows.append(row)
            if row.skip:
                print(f"{name:14s} {size.name:9s} skipped: {row.skip}", flush=True)
            elif row.error:
                print(f"{name:14s} {size.name:9s} ERROR: {row.error}", flush=True)
            else:
                t = row.times
                step = (f"f+b {_ms(t.get(('ours', 'f+b')))} / {_ms(t.get(('torch', 'f+b')))} ms "
                        f"= {_ratio(t.get(('ours', 'f+b')), t.get(('torch', 'f+b')))}") if ("ours", "f+b") in t else ""
                print(f"{name:14s} {size.name:9s} fwd {_ms(t[('ours', 'fwd')])} / {_ms(t[('torch', 'fwd')])} ms "
                      f"= {_ratio(t[('ours', 'fwd')], t[('torch', 'fwd')])}  {step}", flush=True)

    info["load_after"] = os.getloadavg()
    text = render(rows, floors, info, sizes, args)
    print()
    print(text)
    print(f"total {time.perf_counter() - start:.1f} s", flush=True)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(text)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": info, "floors": floors,
                       "rows": [{"workload": r.workload, "size": r.size, "skip": r.skip, "error": r.error,
                                 "flops_fwd": r.flops, "note": r.note, "memory": r.memory,
                                 "times_s": {f"{impl} {mode}": v for (impl, mode), v in r.times.items()}}
                                for r in rows]}, handle, indent=1)
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

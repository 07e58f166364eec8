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

GPU mode.

    python benchmarks/run.py --device cuda                        # every GPU workload at every size
    python benchmarks/run.py --device cuda --sizes minilm --workloads translator_clip,bert_finetune
    python benchmarks/run.py --device cuda --markdown benchmarks/results_gpu.md

``--device cuda`` runs the same workloads in one process with our code on CuPy arrays (each model is built on
the host from the same seed as its torch twin, then moved with ``model.to("cuda")``; its inputs with
``to_device``) and PyTorch on CUDA. It needs CuPy that sees a GPU and a CUDA build of PyTorch; when either
is missing it prints what is missing and exits with status 2. ``--allow-cpu-reference`` lets PyTorch run
on the CPU instead when ``torch.cuda.is_available()`` is False: that only checks that the script works
(the tables then say so in bold), and it is never done without the flag.

- Time: as on the CPU (warm-up, default 3 calls here; median of ``--repeats`` samples of at least 20 ms; ours
  as one block, then torch), but a GPU call returns once its kernels are queued, so the device is drained
  before every reading of the clock: ``cupy.cuda.Device().synchronize()`` around our samples,
  ``torch.cuda.synchronize()`` around torch's. :class:`CudaDevice` holds these ``sync`` helpers, the GPU's
  name (``cupy.cuda.runtime.getDeviceProperties(0)["name"]``, in the markdown title block) and the memory
  counters.
- Workloads: the CPU ones, plus ``translator_clip`` (the translator training step with
  ``clip_grad_norm_(1.0)`` between backward and AdamW). ``bert_finetune`` (in both modes) is one fine-tuning
  step of a BertClassifier on a random-weight MiniLM-size BertModel (size ``minilm``: batch 8 x 128) with the
  embeddings and the first 2 layers frozen and AdamW on the rest.
- Rate: the same FLOP counts; the floor is CuPy's float32 ``(B*T, d) @ (d, ff)``.
- Memory: in-process (no subprocesses), over the first training step after building: the growth of CuPy's
  default memory pool (its ``total_bytes()`` high-water after ``free_all_blocks()``) for ours and
  ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()`` for torch, above what the model
  and inputs hold; a column is "-" with a note when its counter does not exist (torch on the CPU).
"""
from __future__ import annotations

import argparse
import gc
import importlib
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

from benchmarks.workloads import (BERT_FROZEN_LAYERS, QUICK_SIZE, SEED, SIZES, TRANSLATOR_CLIP_NORM,  # noqa: E402
                                  WORKLOADS, Size, matmul_flops)

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


def _synced_sample(fn, number: int, sync) -> float:
    """Seconds per call of ``number`` calls, the device drained before each reading of the clock."""
    sync()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - start) / number


def time_block(fn, repeats: int, warmup: int, min_sample: float = MIN_SAMPLE_S, sync=None) -> float:
    """Median seconds per call of ``fn``: ``warmup`` untimed calls, then ``repeats`` samples.

    ``sync`` (GPU mode) waits until the device has finished the queued work; it is called before every reading
    of the clock, because a GPU call returns as soon as its kernels are queued.
    """
    for _ in range(warmup):
        fn()
    if sync is None:
        number = max(1, math.ceil(min_sample / max(_one_call(fn), 1e-7))) if min_sample > 0 else 1
    else:
        number = max(1, math.ceil(min_sample / max(_synced_sample(fn, 1, sync), 1e-7))) if min_sample > 0 else 1
    samples = []
    for _ in range(repeats):
        gc.collect()
        samples.append(_sample(fn, number) if sync is None else _synced_sample(fn, number, sync))
    return statistics.median(samples)


def time_pair(fn_ours, fn_torch, repeats: int, warmup: int, min_sample: float = MIN_SAMPLE_S):
    """Median seconds per call of each callable, timed one block after the other.

    Not interleaved call by call: on a machine with few cores, the worker threads that one library leaves
    spinning after its call (OpenBLAS's, libgomp's) would steal the cores from the other's next call. The
    warm-up at the head of each block absorbs the hand-over.
    """
    return (time_block(fn_ours, repeats, warmup, min_sample), time_block(fn_torch, repeats, warmup, min_sample))


def time_pair_synced(fn_ours, fn_torch, device: "CudaDevice", repeats: int, warmup: int, min_sample: float):
    """:func:`time_pair` on the GPU: each library's own device is drained before each reading of the clock."""
    return (time_block(fn_ours, repeats, warmup, min_sample, device.sync_ours),
            time_block(fn_torch, repeats, warmup, min_sample, device.sync_torch))


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
    step_flops: int = 0                            # FLOPs of the training step (0: 3 x flops)
    memory: dict = field(default_factory=dict)     # impl -> {"traced_mb", "rss_mb"} or {"error"}
    floor: float | None = None                     # NumPy 2-D matmul GFLOP/s measured right after the row
    note: str = ""


def _new_row(name: str, size: Size):
    """The workload and an empty row for it; ``row.skip`` says why when the workload cannot run here."""
    workload = WORKLOADS[name]
    row = Row(name, size.name)
    row.skip = workload.available() or row.skip
    return workload, row


def _describe(row: Row, workload, benches: dict, size: Size) -> None:
    """Fill the row's notes and analytic FLOP counts (shared by the CPU and GPU modes)."""
    row.note = "; ".join(b.note for b in benches.values() if b.note)
    row.flops = workload.flops(size)
    row.step_flops = workload.flops_step(size) if workload.training else 0


def run_workload(name: str, size: Size, repeats: int, warmup: int, min_sample: float) -> Row:
    workload, row = _new_row(name, size)
    if row.skip:
        return row
    try:
        benches = {impl: workload.build(impl, size, SEED) for impl in IMPLS}
        _describe(row, workload, benches, size)
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


def _cpu_memory_cells(row) -> list:
    return [_mem(row.memory, "ours", "traced_mb"), _mem(row.memory, "ours", "rss_mb"),
            _mem(row.memory, "torch", "rss_mb")]


def table_rows(rows, floors, floor_key="numpy_gflops", memory_cells=_cpu_memory_cells, rate_columns=None):
    rate_columns = RATE_COLUMNS if rate_columns is None else rate_columns
    time_rows, rate_rows = [], []
    for row in rows:
        if row.skip or row.error:
            status = f"skipped: {row.skip}" if row.skip else f"error: {row.error}"
            time_rows.append([row.workload, row.size, status] + [""] * (len(TIME_COLUMNS) - 3))
            rate_rows.append([row.workload, row.size, status] + [""] * (len(rate_columns) - 3))
            continue
        t = row.times.get
        time_rows.append([row.workload, row.size, _ms(t(("ours", "fwd"))), _ms(t(("torch", "fwd"))),
                          _ratio(t(("ours", "fwd")), t(("torch", "fwd"))), _ms(t(("ours", "f+b"))),
                          _ms(t(("torch", "f+b"))), _ratio(t(("ours", "f+b")), t(("torch", "f+b")))])
        rates = {}
        for impl in IMPLS:
            rates[impl, "fwd"] = _gflops(row.flops, t((impl, "fwd")))
            rates[impl, "f+b"] = _gflops(row.step_flops or 3 * row.flops, t((impl, "f+b")))
        floor = row.floor or floors[row.size][floor_key]
        # the fraction of the floor: of the training step when there is one, else of the forward
        headline = "f+b" if ("ours", "f+b") in row.times else "fwd"
        percent = {impl: None if rates[impl, headline] is None else 100 * rates[impl, headline] / floor
                   for impl in IMPLS}
        rate_rows.append([row.workload, row.size, _fmt(row.flops / 1e9 if row.flops else None, 2),
                          _fmt(rates["ours", "fwd"]), _fmt(rates["torch", "fwd"]), _fmt(rates["ours", "f+b"]),
                          _fmt(rates["torch", "f+b"]), _fmt(floor), _fmt(percent["ours"], 0), _fmt(percent["torch"], 0)]
                         + memory_cells(row))
    return time_rows, rate_rows


def _load(triple) -> str:
    return ", ".join(f"{x:.1f}" for x in triple)


def markdown_table(columns, body) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in line) + " |" for line in body]
    return "\n".join(lines)


def sizes_line(sizes) -> str:
    return ("Sizes: " + "; ".join(f"{s.name}: B={s.B}, T={s.T}, d={s.d}, h={s.h}, ff={s.ff}" for s in sizes)
            + f". translator: {sizes[0].layers} encoder + {sizes[0].layers} decoder layers, vocabulary "
            f"{sizes[0].vocab}; vit: {sizes[0].layers} pre-norm layers, patch 4, T patches + class token; "
            f"bert: {sizes[0].bert_layers} layers, vocabulary {sizes[0].bert_vocab}, inference; bert_finetune: the "
            f"same BERT (at least {BERT_FROZEN_LAYERS + 1} layers) under a mean-pooling 2-label head, embeddings and "
            f"the first {BERT_FROZEN_LAYERS} layers frozen, AdamW on the rest; translator_clip: translator with "
            f"clip_grad_norm_({TRANSLATOR_CLIP_NORM}) before AdamW.")


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
    out.append(sizes_line(sizes))
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
               "f+b = 3 x fwd: a backward computes two products of each forward product's size, for bert_finetune only "
               "those of the trainable layers and the head; attention counted "
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


# ------------------------------------------------------------------------------------------- GPU mode

class CudaDevice:
    """The GPU as both libraries see it: draining the queued work, the device's name and the memory counters.

    ``cupy`` is the imported CuPy module; ``torch_device`` is ``"cuda"``, or ``"cpu"`` only when the reference
    was explicitly allowed to run on the CPU (``--allow-cpu-reference``).
    """

    def __init__(self, cupy, torch, torch_device: str):
        self.cupy, self.torch, self.torch_device = cupy, torch, torch_device

    def sync_ours(self) -> None:
        self.cupy.cuda.Device().synchronize()

    def sync_torch(self) -> None:
        if self.torch_device == "cuda":
            self.torch.cuda.synchronize()

    def sync(self) -> None:
        self.sync_ours()
        self.sync_torch()

    def name(self) -> str:
        name = self.cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def info(self) -> dict:
        cupy, torch = self.cupy, self.torch
        info = {"gpu": self.name(), "cupy": getattr(cupy, "__version__", "unknown"),
                "torch_device": self.torch_device, "torch_cuda": getattr(torch.version, "cuda", None) or "none"}
        try:
            version = int(cupy.cuda.runtime.runtimeGetVersion())
            info["cuda_runtime"] = f"{version // 1000}.{version % 1000 // 10}"
        except Exception:  # not every CuPy build answers
            info["cuda_runtime"] = "unknown"
        return info

    def memory_unavailable(self, impl: str) -> str:
        """Why the peak device memory of ``impl`` cannot be measured here ("" when it can)."""
        if impl == "ours":
            return "" if hasattr(self.cupy, "get_default_memory_pool") else "CuPy has no get_default_memory_pool"
        return "" if self.torch_device == "cuda" else "PyTorch runs on the CPU (--allow-cpu-reference)"

    def measure_step_memory(self, impl: str, fn) -> dict:
        """Run ``fn`` once (the first step after building) and return the device memory it took, in MB.

        ours: CuPy's default memory pool keeps the blocks that are freed, so after ``free_all_blocks()`` its
        ``total_bytes()`` only grows, up to the high-water mark of what was in use. torch:
        ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``. "peak" is above what the
        model and inputs already held ("held").
        """
        reason = self.memory_unavailable(impl)
        if reason:
            fn()
            return {"unavailable": reason}
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
        return {"held_mb": held / 2**20, "peak_mb": (peak - held) / 2**20}


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


def gpu_matmul_floor(device: CudaDevice, size: Size, repeats: int, warmup: int, min_sample: float) -> dict:
    """GFLOP/s of one float32 2-D product (B*T, d) @ (d, ff) in CuPy and in torch on its device."""
    from numpy_transformer.backend import to_device
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((size.B * size.T, size.d)).astype(np.float32)
    b = rng.standard_normal((size.d, size.ff)).astype(np.float32)
    ca, cb = to_device(a, "cuda"), to_device(b, "cuda")
    ta, tb = (device.torch.from_numpy(x.copy()).to(device.torch_device) for x in (a, b))
    t_ours, t_torch = time_pair_synced(lambda: ca @ cb, lambda: ta @ tb, device, max(repeats, 3), max(warmup, 2),
                                       min_sample)
    flops = matmul_flops(size.B * size.T, size.ff, size.d)
    return {"shape": f"({size.B * size.T}, {size.d}) @ ({size.d}, {size.ff})",
            "cupy_gflops": flops / t_ours / 1e9, "torch_gflops": flops / t_torch / 1e9}


def run_workload_gpu(name: str, size: Size, device: CudaDevice, repeats: int, warmup: int, min_sample: float,
                     memory: bool) -> Row:
    """One row on the GPU: ours on CuPy arrays, torch on its device; the first step measures the memory."""
    workload, row = _new_row(name, size)
    if row.skip:
        return row
    try:
        benches = {"ours": workload.build("ours", size, SEED, device="cuda"),
                   "torch": workload.build("torch", size, SEED, device=device.torch_device)}
        _describe(row, workload, benches, size)
        if memory:
            for impl, bench in benches.items():
                row.memory[impl] = device.measure_step_memory(impl, bench.step or bench.forward)
        fwd = time_pair_synced(benches["ours"].forward, benches["torch"].forward, device, repeats, warmup, min_sample)
        row.times[("ours", "fwd")], row.times[("torch", "fwd")] = fwd
        if workload.training:
            step = time_pair_synced(benches["ours"].step, benches["torch"].step, device, repeats, warmup, min_sample)
            row.times[("ours", "f+b")], row.times[("torch", "f+b")] = step
    except Exception as error:  # a broken workload is reported, and the others still run
        row.error = f"{type(error).__name__}: {error}"[:300]
    return row


GPU_MEMORY_COLUMNS = ["ours peak MB", "torch peak MB"]
GPU_RATE_COLUMNS = RATE_COLUMNS[:RATE_COLUMNS.index("ours traced MB")] + GPU_MEMORY_COLUMNS


def _gpu_memory_cells(row) -> list:
    cells = []
    for impl in IMPLS:
        entry = row.memory.get(impl)
        cells.append("-" if entry is None or "unavailable" in entry else _fmt(entry.get("peak_mb")))
    return cells


def render_gpu(rows, floors, info, sizes, args) -> str:
    time_rows, rate_rows = table_rows(rows, floors, "cupy_gflops", _gpu_memory_cells, GPU_RATE_COLUMNS)
    torch_where = "CUDA" if info["torch_device"] == "cuda" else "CPU"
    out = [f"# numpy_transformer on CuPy vs PyTorch {torch_where}", ""]
    out.append(f"GPU: {info['gpu']}; CuPy {info['cupy']} (CUDA runtime {info['cuda_runtime']}), PyTorch "
               f"{info['torch']} (CUDA {info['torch_cuda']}), NumPy {info['numpy']}, Python {info['python']}; "
               f"host CPU: {info['cpu']}.")
    if info["torch_device"] != "cuda":
        out.append("")
        out.append("**PyTorch ran on the CPU (--allow-cpu-reference): the ratios are no GPU comparison; this run "
                   "only checks that the script works.**")
    out.append("")
    out.append(f"float32; ours on CuPy arrays (`model.to(\"cuda\")`, inputs through `to_device`), torch on "
               f"{info['torch_device']}; warm-up {args.warmup}, median of {args.repeats} samples (each at least "
               f"{args.min_sample * 1e3:.0f} ms of calls), the device drained (CuPy `Device().synchronize()`, "
               f"`torch.cuda.synchronize()`) before every reading of the clock, ours then torch, each in one block; "
               f"`python benchmarks/run.py {' '.join(args.argv)}`.")
    out.append("")
    out.append(sizes_line(sizes))
    out.append("")
    out.append("## Time (ms; ratio = ours / torch, above 1 = slower)")
    out.append("")
    out.append(markdown_table(TIME_COLUMNS, time_rows))
    out.append("")
    out.append("## Rate and device memory")
    out.append("")
    out.append("Matmul floor (CuPy float32 2-D product): "
               + "; ".join(f"{name}: {f['shape']} {f['cupy_gflops']:.1f} GFLOP/s (torch {f['torch_gflops']:.1f})"
                           for name, f in floors.items()) + ".")
    out.append("")
    out.append(markdown_table(GPU_RATE_COLUMNS, rate_rows))
    out.append("")
    memory_note = ("peak MB: device memory of the first training step (the forward for bert) above what the model "
                   "and inputs held after building, in this process: ours = growth of CuPy's default memory pool "
                   "(`get_default_memory_pool().total_bytes()` high-water after `free_all_blocks()`), torch = "
                   "`torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`")
    missing = sorted({entry["unavailable"] for row in rows for entry in row.memory.values() if "unavailable" in entry})
    if args.no_memory:
        memory_note = "device memory not measured (--no-memory)"
    elif missing:
        memory_note += "; omitted (-) where " + "; ".join(missing)
    out.append("GFLOP fwd: matrix-product FLOPs of one forward pass, counted as in the CPU tables (f+b = 3 x fwd, "
               "for bert_finetune only the trainable layers' backward). floor: CuPy's (B*T, d) @ (d, ff) rate at the "
               "start of the run; % floor: the f+b rate (the fwd rate for bert) over it. " + memory_note + ".")
    notes = [f"{row.workload}/{row.size}: {row.note}" for row in rows if row.note]
    if notes:
        out.append("")
        out.append("Notes: " + "; ".join(notes) + ".")
    return "\n".join(out) + "\n"


def _print_row(name: str, size: Size, row: Row, memory_key: str | None = None) -> None:
    if row.skip:
        print(f"{name:14s} {size.name:9s} skipped: {row.skip}", flush=True)
    elif row.error:
        print(f"{name:14s} {size.name:9s} ERROR: {row.error}", flush=True)
    else:
        t = row.times
        step = (f"f+b {_ms(t.get(('ours', 'f+b')))} / {_ms(t.get(('torch', 'f+b')))} ms "
                f"= {_ratio(t.get(('ours', 'f+b')), t.get(('torch', 'f+b')))}") if ("ours", "f+b") in t else ""
        memory = ""
        if memory_key and row.memory:
            memory = "  peak MB " + " / ".join(_fmt(row.memory.get(impl, {}).get(memory_key)) for impl in IMPLS)
        print(f"{name:14s} {size.name:9s} fwd {_ms(t[('ours', 'fwd')])} / {_ms(t[('torch', 'fwd')])} ms "
              f"= {_ratio(t[('ours', 'fwd')], t[('torch', 'fwd')])}  {step}{memory}", flush=True)


def _write_json(path, info, floors, rows) -> None:
    with open(path, "w") as handle:
        json.dump({"machine": info, "floors": floors,
                   "rows": [{"workload": r.workload, "size": r.size, "skip": r.skip, "error": r.error,
                             "flops_fwd": r.flops, "note": r.note, "memory": r.memory,
                             "times_s": {f"{impl} {mode}": v for (impl, mode), v in r.times.items()}}
                            for r in rows]}, handle, indent=1)


def main_gpu(args, workloads, sizes) -> int:
    """``--device cuda``: the same workloads, ours on CuPy and torch on CUDA, in this process."""
    device, missing = open_cuda(args.allow_cpu_reference)
    if device is None:
        print(missing, file=sys.stderr)
        return 2
    # --threads as on the CPU; --quick with the reference on the CPU uses 1 (no timing, a busy machine stalls)
    threads = args.threads or (1 if args.quick and device.torch_device == "cpu" else None)
    torch_threads, blas_limit = device.torch.get_num_threads(), None
    if threads:
        import threadpoolctl
        blas_limit = threadpoolctl.threadpool_limits(threads, user_api="blas")
        device.torch.set_num_threads(threads)
    try:
        return _run_gpu(args, workloads, sizes, device)
    finally:  # this process may go on (a test calls main): give the thread counts back
        if blas_limit is not None:
            blas_limit.restore_original_limits()
            device.torch.set_num_threads(torch_threads)


def _run_gpu(args, workloads, sizes, device: CudaDevice) -> int:
    info = machine_info()
    info.update(device.info())
    print(f"GPU: {info['gpu']}; cupy {info['cupy']} (CUDA runtime {info['cuda_runtime']}), torch {info['torch']} "
          f"on {info['torch_device']} (CUDA {info['torch_cuda']})", flush=True)
    if device.torch_device != "cuda":
        print("WARNING: --allow-cpu-reference: PyTorch runs on the CPU; the ratios are no GPU comparison",
              file=sys.stderr, flush=True)

    start = time.perf_counter()
    floors = {}
    for size in sizes:
        floors[size.name] = gpu_matmul_floor(device, size, args.repeats, args.warmup, args.min_sample)
        print(f"matmul floor {size.name}: {floors[size.name]['shape']}: cupy "
              f"{floors[size.name]['cupy_gflops']:.1f} GFLOP/s, torch {floors[size.name]['torch_gflops']:.1f}",
              flush=True)
    rows = []
    for name in workloads:
        for size in sizes:
            row = run_workload_gpu(name, size, device, args.repeats, args.warmup, args.min_sample,
                                   memory=not args.no_memory)
            rows.append(row)
            _print_row(name, size, row, "peak_mb")
    return _report(render_gpu(rows, floors, info, sizes, args), info, floors, rows, args, start)


def _report(text, info, floors, rows, args, start) -> int:
    """Print the table, write it (--markdown) and the raw numbers (--json); exit 1 if a workload failed."""
    print()
    print(text)
    print(f"total {time.perf_counter() - start:.1f} s", flush=True)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(text)
    if args.json:
        _write_json(args.json, info, floors, rows)
    return 1 if any(row.error for row in rows) else 0


# ------------------------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, 1 repeat, memory of the first workload only: checks that it runs")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--workloads", default=None,
                        help=f"comma-separated, of {', '.join(WORKLOADS)} (default: all of the device's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per callable (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit NumPy's BLAS (threadpoolctl) and torch to N threads (default: their defaults)")
    parser.add_argument("--markdown", metavar="PATH", help="write the tables as markdown")
    parser.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory", nargs=3, metavar=("WORKLOAD", "SIZE", "IMPL"),
                        help="measure one training step's memory in this process and print JSON")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: NumPy vs PyTorch CPU (default); cuda: CuPy vs PyTorch CUDA, in one process")
    parser.add_argument("--allow-cpu-reference", action="store_true",
                        help="with --device cuda: let PyTorch run on the CPU when it has no CUDA (testing the "
                             "script only; the ratios are then no GPU comparison)")
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

    if args.workloads is None:
        workloads = [name for name, w in WORKLOADS.items() if args.device in w.devices]
    else:
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
        if args.threads is None and args.device == "cpu":
            args.threads = 1   # no timing here; one thread avoids thread stalls on a busy machine
    else:
        names = [s for s in args.sizes.split(",") if s]
        unknown = [s for s in names if s not in SIZES]
        if unknown:
            print(f"--sizes: got unknown {unknown}; expected names from {list(SIZES)}", file=sys.stderr)
            return 2
        sizes = [SIZES[s] for s in names]
        args.repeats = args.repeats or 5
        args.warmup = (1 if args.device == "cpu" else 3) if args.warmup is None else args.warmup
        args.min_sample = MIN_SAMPLE_S
    if args.device == "cuda":
        return main_gpu(args, workloads, sizes)

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
            _print_row(name, size, row)

    info["load_after"] = os.getloadavg()
    return _report(render(rows, floors, info, sizes, args), info, floors, rows, args, start)


if __name__ == "__main__":
    sys.exit(main())

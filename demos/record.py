"""Rerun the demos in their default settings and record what they print and how long they take.

Every figure that README.md quotes about a demo (an accuracy, a BLEU score, a run time) comes from the record
this script writes, ``docs/records/demos.json``, and ``tests/test_readme_figures.py`` fails when README.md and
the record disagree. So after a change that moves a figure::

    python demos/record.py                    # every job below, one after the other
    python demos/record.py --only translate   # just these jobs; the others keep their recorded values
    python demos/record.py --list             # the jobs and their commands
    python demos/record.py --readme-only      # run nothing; write the recorded figures into README.md

As each job is recorded its figures are written into README.md (``--no-readme`` leaves README.md alone): only
the figures registered in ``docs/records/figures.json``, with the digits README.md already gives them; the test
names any other figure that differs. The test suite is recorded last, so that it checks a README.md that agrees
with the record.

Times depend on the machine and on what else it runs, so measure on a quiet machine: the record keeps the
machine (CPU model, cores, BLAS library and threads, Python / NumPy / SciPy / PyTorch versions), the date and
the load average before and after each job beside every number.

A job is a command; what it records:

- ``wall_s``: wall-clock seconds of the whole command, start-up and imports included (what a user waits);
- ``cpu_s``: CPU seconds of the process and its children (user + system), which a busy machine changes less;
- ``blas``: the BLAS library and the number of threads it ran with inside the command (the demos choose
  their own; this says what they chose);
- ``metrics``: every line of the form ``label: number`` that the command printed (for example
  ``held-out exact match: 0.953``), plus any figure that the job's own patterns pick out.

To record a new figure, add a :class:`Job` to ``JOBS`` (or a pattern to an existing job), run it with
``--only``, and register the README sentence in ``docs/records/figures.json`` (see ``tests/readme_figures.py``).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = os.path.join(ROOT, "docs", "records", "demos.json")

# Runs a Python script as __main__ and, when it ends, writes the BLAS thread pools it used to a JSON file.
# threadpoolctl only inspects the libraries already loaded, so importing it first changes nothing.
_WRAPPER = r"""
import atexit, json, runpy, sys
report, script = sys.argv[1], sys.argv[2]
def _pools():
    try:
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
    except ImportError:
        pools = []
    with open(report, "w") as handle:
        json.dump([{k: p.get(k) for k in ("internal_api", "version", "num_threads", "user_api")} for p in pools],
                  handle)
atexit.register(_pools)
sys.argv = sys.argv[2:]
sys.path.insert(0, __import__("os").path.dirname(script))
runpy.run_path(script, run_name="__main__")
"""


@dataclass
class Job:
    """One command whose time and printed figures are recorded.

    ``script`` is a Python file (relative to the repository root) run with ``args``; or ``command`` is any
    command line (then the BLAS threads are not known). ``patterns`` maps a metric name to a regular
    expression whose first group is a number in the output, for figures not printed as ``label: number``.
    ``env`` adds environment variables. ``pictures`` maps a picture the README shows (a path in the repository)
    to the file the job writes (``demos_output/<demo>/...``): it is copied there after a successful run, so
    that the README's pictures come from the recorded run too.
    """

    name: str
    script: str | None = None
    args: list[str] = field(default_factory=list)
    command: list[str] | None = None
    patterns: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    pictures: dict[str, str] = field(default_factory=dict)

    def shown(self) -> str:
        parts = ["python", self.script, *self.args] if self.script else ["python", *self.command[1:]] \
            if self.command and self.command[0] == sys.executable else list(self.command or [])
        environment = " ".join(f"{k}={v}" for k, v in self.env.items())
        return (environment + " " if environment else "") + " ".join(parts)


def _demo(name: str, pictures=None, **patterns) -> Job:
    return Job(name, script=f"demos/{name}.py", patterns=patterns, pictures=pictures or {})


JOBS = [
    _demo("01_one_hot"),
    _demo("02_markov_chain"),
    _demo("03_embeddings"),
    _demo("04_positional_encoding"),
    _demo("05_attention", pictures={"docs/images/attention_padding.png":
                                    "demos_output/05_attention/attention_padding.png"}),
    _demo("06_multihead_attention"),
    _demo("06b_feedforward_layernorm"),
    _demo("07_vit_digits"),
    _demo("08_sentiment"),
    _demo("09_gradcheck"),
    _demo("10_gpt"),
    _demo("11_llama", pictures={"docs/images/llama_vs_gpt.png": "demos_output/11_llama/11_compare.png"}),
    _demo("rope"),
    _demo("translate", pictures={"docs/images/translate_cross_attention.png":
                                 "demos_output/translate/translate_cross_attention_layer1.png"}),
    _demo("finetune_bert",
          **{"probe accuracy": r"linear head on frozen embeddings:\s+accuracy ([\d.]+)",
             "probe F1": r"linear head on frozen embeddings:\s+accuracy [\d.]+\s+F1 ([\d.]+)",
             "fine-tuned accuracy": r"fine-tuned [^:]*:\s+accuracy ([\d.]+)",
             "fine-tuned F1": r"fine-tuned [^:]*:\s+accuracy [\d.]+\s+F1 ([\d.]+)"}),
    _demo("attention_view"),
    Job("test_suite", command=[sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        env={"NT_REQUIRE_REFERENCES": "1"},
        patterns={"passed": r"(\d+) passed", "skipped": r"(\d+) skipped", "failed": r"(\d+) failed"}),
]

_METRIC_LINE = re.compile(r"^\s*([A-Za-z][^:\n]{0,80}?):\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$", re.MULTILINE)


def metrics_of(output: str, patterns: dict[str, str]) -> dict[str, float]:
    """Every ``label: number`` line (the last one of each label wins) and the job's own patterns."""
    found = {label.strip(): float(value) for label, value in _METRIC_LINE.findall(output)}
    for name, pattern in patterns.items():
        hits = re.findall(pattern, output, flags=re.MULTILINE)
        if hits:
            found[name] = float(hits[-1])
    return found


# ------------------------------------------------------------------------------------------------ machine
def _version(package: str):
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The machine the figures were measured on (nothing here imports numpy into this process)."""
    probe = subprocess.run([sys.executable, "-c", "import json, numpy, scipy\n"
                            "from threadpoolctl import threadpool_info\n"
                            "print(json.dumps([{k: p.get(k) for k in ('internal_api', 'version', 'num_threads')}"
                            " for p in threadpool_info()]))"], capture_output=True, text=True)
    blas = json.loads(probe.stdout) if probe.returncode == 0 else []
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "blas_default": blas,
    }


def describe(machine_info: dict) -> str:
    """One line naming the machine, for README prose and for this script's summary."""
    return f"{machine_info['usable_cores']}-core {machine_info['cpu']}"


# ------------------------------------------------------------------------------------------------ running
def run_job(job: Job, echo: bool) -> dict:
    # NT_RECORDING names the job being recorded: the test suite, recorded here, cannot yet hold its own run
    env = dict(os.environ, MPLBACKEND="Agg", NT_RECORDING=job.name, **job.env)
    with tempfile.TemporaryDirectory() as scratch:
        pools = os.path.join(scratch, "blas.json")
        if job.script:
            command = [sys.executable, "-c", _WRAPPER, pools, os.path.join(ROOT, job.script), *job.args]
        else:
            command = list(job.command)
        load_before = os.getloadavg()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        lines = []
        for line in process.stdout:
            lines.append(line)
            if echo:
                sys.stdout.write("    | " + line)
        returncode = process.wait()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        blas = None
        if os.path.exists(pools):
            with open(pools) as handle:
                blas = json.load(handle)
    output = "".join(lines)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "command": job.shown(),
        "returncode": returncode,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "blas": blas,
        "metrics": metrics_of(output, job.patterns),
        **({"output_tail": output[-3000:]} if returncode else {}),
    }


def write_atomic(path: str, data: dict) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".demos.", suffix=".json.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, ensure_ascii=False, sort_keys=False)
            out.write("\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="record.py", description="rerun the demos (default settings) and "
                                     "record their figures, times and machine in docs/records/demos.json")
    parser.add_argument("--only", nargs="+", metavar="JOB", help="run only these jobs (see --list)")
    parser.add_argument("--skip", nargs="+", metavar="JOB", default=[], help="run every job but these")
    parser.add_argument("--list", action="store_true", help="list the jobs and their commands, run nothing")
    parser.add_argument("--note", default=None, help="a note kept with the record (e.g. why it was rerun)")
    parser.add_argument("--record", default=RECORD, help="the record file (default docs/records/demos.json)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the jobs' output")
    parser.add_argument("--no-readme", action="store_true",
                        help="leave README.md as it is (by default each new figure is written into README.md, with the "
                             "digits README.md gives it, as soon as its job is recorded)")
    parser.add_argument("--readme-only", action="store_true",
                        help="run nothing: only write the figures already recorded into README.md")
    args = parser.parse_args(argv)
    names = [job.name for job in JOBS]
    for name in (args.only or []) + args.skip:
        if name not in names:
            parser.error(f"unknown job {name!r}; expected one of {', '.join(names)}")
    if args.readme_only:
        update_readme()
        return 0
    if args.list:
        for job in JOBS:
            print(f"{job.name:24s} {job.shown()}")
        return 0
    jobs = [job for job in JOBS if (not args.only or job.name in args.only) and job.name not in args.skip]

    record = {}
    if os.path.exists(args.record):
        with open(args.record, encoding="utf-8") as handle:
            record = json.load(handle)
    here = machine()
    kept = set(record.get("runs", {})) - {job.name for job in jobs}
    if kept and record.get("machine", {}).get("cpu") != here["cpu"]:
        print(f"The record was made on {record.get('machine', {}).get('cpu')!r}, this is {here['cpu']!r}: "
              "rerun every job (no --only / --skip) so that all figures come from one machine.")
        return 2
    runs = record.get("runs", {})
    failed = []
    print(f"Recording {len(jobs)} jobs on a {describe(here)} (load {os.getloadavg()[0]:.2f}) into "
          f"{os.path.relpath(args.record, ROOT)}")
    for job in jobs:
        print(f"\n== {job.name}: {job.shown()}")
        result = run_job(job, echo=not args.quiet)
        runs[job.name] = result
        print(f"== {job.name}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU, "
              f"exit {result['returncode']}, {len(result['metrics'])} figures")
        if result["returncode"]:
            failed.append(job.name)
        elif os.path.abspath(args.record) == RECORD:  # the README's pictures follow the README's record
            for target, made in job.pictures.items():
                shutil.copyfile(os.path.join(ROOT, made), os.path.join(ROOT, target))
                print(f"== {job.name}: copied {made} to {target}")
        record = {  # written after every job, so that an interrupted run keeps what it measured
            "about": "Figures quoted in README.md, written by `python demos/record.py`; checked by "
                     "tests/test_readme_figures.py. Times depend on the machine below and on its load.",
            "machine": here,
            "note": args.note if args.note is not None else record.get("note"),
            "runs": {name: runs[name] for name in [j.name for j in JOBS] if name in runs},
        }
        write_atomic(args.record, record)
        # README.md follows the record job by job, so that the test suite, recorded last, finds the two agreeing
        if not args.no_readme and os.path.abspath(args.record) == RECORD:
            update_readme()
    print(f"\nwrote {os.path.relpath(args.record, ROOT)}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def update_readme() -> None:
    """Write every recorded figure that README.md quotes into README.md (see tests/readme_figures.py)."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import readme_figures

    registry = readme_figures.load_registry()
    path = os.path.join(ROOT, "README.md")
    with open(path, encoding="utf-8") as handle:
        text, changes = readme_figures.rewrite(handle.read(), registry, readme_figures.load_values(registry))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    print("== README.md: " + ("\n  ".join(["updated"] + changes) if changes else "every figure already matches"))
    problems, _ = readme_figures.check_readme()
    for problem in problems:
        print(f"  still to fix by hand: {problem}")


if __name__ == "__main__":
    sys.exit(main())

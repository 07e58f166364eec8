"""Every figure in README.md comes from a recorded run kept in the repository, and equals it.

The records: ``docs/records/demos.json`` (written by ``python demos/record.py``), ``benchmarks/results.md``
(``python benchmarks/run.py``) and ``benchmarks/precision.md`` (``python benchmarks/precision.py``); the registry
of README sentences: ``docs/records/figures.json``. How they fit together: ``tests/readme_figures.py``.
"""
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

import readme_figures as figures

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = figures.load_registry()


def _record_module():
    if "demos_record" not in sys.modules:
        spec = importlib.util.spec_from_file_location("demos_record", ROOT / "demos" / "record.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["demos_record"] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules["demos_record"]


# ------------------------------------------------------------------------------------------------ the README
# While `python demos/record.py` records the test suite, the suite's own run is not in the record yet.
RECORDING = os.environ.get("NT_RECORDING")


def test_every_readme_figure_equals_its_record():
    problems, _ = figures.check_readme()
    if RECORDING:
        problems = [p for p in problems if f"demos:runs/{RECORDING}/" not in p.message]
    assert not problems, "README.md and the records disagree:\n" + "\n".join(map(str, problems))


@pytest.mark.xfail(bool(REGISTRY.get("unrecorded")), strict=True,
                   reason="README.md quotes figures no record backs yet: "
                          + "; ".join(f"{e['text']!r} ({e['why']})" for e in REGISTRY.get("unrecorded", [])))
def test_no_readme_figure_waits_for_a_record():
    assert not REGISTRY.get("unrecorded")


def test_the_demo_record_holds_every_job_and_its_machine():
    record = json.loads((ROOT / "docs" / "records" / "demos.json").read_text(encoding="utf-8"))
    for key in ("cpu", "usable_cores", "python", "numpy", "torch", "blas_default"):
        assert record["machine"].get(key), f"the record does not name the machine's {key}"
    jobs = [job.name for job in _record_module().JOBS]
    recorded = set(record["runs"]) | ({RECORDING} if RECORDING else set())
    assert sorted(recorded) == sorted(jobs), "rerun `python demos/record.py` after adding or removing a job"
    for name, run in record["runs"].items():
        if name == RECORDING:
            continue  # its previous run, about to be replaced
        assert run["returncode"] == 0, f"{name} failed when it was recorded:\n{run.get('output_tail', '')}"
        assert run["wall_s"] > 0 and run["date"] and len(run["load_before"]) == 3, name


# ------------------------------------------------------------------------------------------------ the checker
VALUES = {"demos:translate/metrics/exact": 0.9532, "demos:translate/wall_s": 41.26, "demos:machine/cpu": "AMD EPYC",
          "precision:a/float64 worst": 5.98e-15, "precision:b/float64 worst": 1.1e-15,
          "precision:bert/float64 worst": 5.84e-14, "demos:vit/metrics/acc": 0.978}


def _registry(*figure_entries, not_figures=(), unrecorded=()):
    return {"sources": {}, "figures": list(figure_entries), "not_figures": list(not_figures),
            "unrecorded": list(unrecorded)}


def _problems(readme, registry):
    return figures.check(readme, registry, VALUES)[0]


def test_a_figure_that_equals_its_record_at_the_written_digits_passes():
    registry = _registry({"text": "exact match {} in {} s on a {s},", "keys": [
        "demos:translate/metrics/exact", "demos:translate/wall_s", "demos:machine/cpu"]})
    assert _problems("It reaches exact match 0.953 in 41 s on a AMD EPYC, measured.", registry) == []
    assert _problems("It reaches exact match 0.95 in\n41.3 s on a AMD EPYC, measured.", registry) == []


def test_a_figure_that_differs_from_its_record_fails_and_says_what_to_write():
    registry = _registry({"text": "exact match {} in {} s", "keys": ["demos:translate/metrics/exact",
                                                                   "demos:translate/wall_s"]})
    problems = _problems("exact match 0.965 in 40 s", registry)
    assert len(problems) == 2
    assert "write 0.953" in str(problems[0]) and "write 41" in str(problems[1])


def test_a_figure_no_record_backs_fails():
    registry = _registry({"text": "exact match {}", "keys": ["demos:translate/metrics/exact"]})
    for unbacked in ("BLEU 97.4", "takes 40 s", "98% accurate", "error 6e-15", "about half a minute",
                     "a minute and a half", "peak 66 MB"):
        problems = _problems(f"exact match 0.953; {unbacked}.", registry)
        assert len(problems) == 1 and "no record backs" in str(problems[0]), (unbacked, problems)


def test_code_versions_and_declared_non_figures_are_not_figures():
    readme = ("Run `python demos/translate.py --steps 1.5` then\n```bash\nsleep 40 s; echo 0.965\n```\n"
              "on Python 3.11.7 with PyTorch 2.13 and sizes B=8, T=64.\n<!-- 0.5 -->")
    assert _problems(readme, _registry(not_figures=["PyTorch 2.13"])) == []
    assert len(_problems(readme, _registry())) == 1  # "2.13" alone is a decimal figure


def test_a_registered_sentence_missing_from_the_readme_fails():
    registry = _registry({"text": "exact match {}", "keys": ["demos:translate/metrics/exact"]})
    assert "not found in README.md" in str(_problems("no such sentence", registry)[0])


def test_an_unknown_key_fails():
    registry = _registry({"text": "exact match {}", "keys": ["demos:translate/metrics/nothing"]})
    assert "no record holds" in str(_problems("exact match 0.953", registry)[0])


def test_scaled_and_aggregated_keys():
    registry = _registry(
        {"text": "reaches {}% test accuracy", "keys": [{"key": "demos:vit/metrics/acc", "scale": 100}]},
        {"text": "at most {} except BERT ({})", "keys": [
            {"max": "precision:*/float64 worst", "except": ["precision:bert*"]}, "precision:bert/float64 worst"]})
    assert _problems("it reaches 98% test accuracy, at most 6e-15 except BERT (6e-14).", registry) == []
    problems = _problems("it reaches 97% test accuracy, at most 1e-15 except BERT (6e-14).", registry)
    assert [str(p).split(": the record")[0] for p in problems] == [
        "README.md '97' in 'reaches {}% test accuracy'", "README.md '1e-15' in 'at most {} except BERT ({})'"]


def test_unrecorded_figures_are_listed_and_must_exist():
    entry = {"text": "costs about 30 ms", "why": "no row for it"}
    problems, unrecorded = figures.check("It costs about 30 ms here.", _registry(unrecorded=[entry]), VALUES)
    assert problems == [] and unrecorded == ["'costs about 30 ms': no row for it"]
    problems, _ = figures.check("Nothing here.", _registry(unrecorded=[entry]), VALUES)
    assert "remove the entry" in str(problems[0])


def test_markdown_tables_are_read_by_row_and_column():
    table = ("| workload | size | ours ms | ratio |\n|---|---|---|---|\n| sdpa | small | 0.61 | 1.78 |\n"
             "| bert | small | 1,030.5 | - |\n\n| row | float64 worst | worst tensor |\n|---|---|---|\n"
             "| linear | 8.96e-16 | dbias |\n")
    assert figures.read_markdown_tables(table) == {
        "sdpa/small/ours ms": 0.61, "sdpa/small/ratio": 1.78, "bert/small/ours ms": 1030.5,
        "linear/float64 worst": 8.96e-16}


# ------------------------------------------------------------------------------------------------ the recorder
def test_record_reads_labelled_figures_and_job_patterns():
    record = _record_module()
    output = ("  held-out exact match: 0.953\n  held-out BLEU: 96.6\n  English: the dog\n"
              "  fine-tuned layers 2-5 + head:     accuracy 0.917  F1 0.920\n  held-out exact match: 0.961\n")
    found = record.metrics_of(output, {"tuned": r"fine-tuned [^:]*:\s+accuracy ([\d.]+)"})
    assert found == {"held-out exact match": 0.961, "held-out BLEU": 96.6, "tuned": 0.917}


def test_record_runs_a_job_and_keeps_its_time_threads_and_figures(tmp_path, monkeypatch):
    record = _record_module()
    script = tmp_path / "tiny_demo.py"
    script.write_text("import numpy\nprint('  answer: 42.5')\n", encoding="utf-8")
    monkeypatch.setattr(record, "JOBS", [record.Job("tiny", script=str(script), env={"OPENBLAS_NUM_THREADS": "1"})])
    path = tmp_path / "records" / "demos.json"
    assert record.main(["--record", str(path), "--quiet"]) == 0
    saved = json.loads(path.read_text())
    run = saved["runs"]["tiny"]
    assert run["returncode"] == 0 and run["metrics"] == {"answer": 42.5} and run["wall_s"] > 0
    assert saved["machine"]["cpu"] and saved["machine"]["python"] == ".".join(map(str, sys.version_info[:3]))
    if run["blas"]:  # threadpoolctl is installed with the test extras
        assert {pool["num_threads"] for pool in run["blas"] if pool["user_api"] == "blas"} == {1}

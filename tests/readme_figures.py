"""Every figure README.md quotes comes from a recorded run: the registry, the record readers and the checks.

The registry is ``docs/records/figures.json``. It names the record files (``sources``) and lists each README
sentence that quotes recorded figures (``figures``)::

    {"text": "held-out exact match {} greedy / {} beam",
     "keys": ["demos:runs/translate/metrics/held-out exact match",
              "demos:runs/translate/metrics/held-out exact match (beam)"]}

``text`` is a piece of README.md with ``{}`` where a number stands (``{s}`` for a word, such as the CPU's name,
and ``{*}`` for any text on the line that is not checked, such as a table cell of prose); any run of white
space in it matches any run of white space (so a sentence may wrap). Each ``{}`` is checked
against its key, rounded as README.md writes it: ``0.953`` against a recorded 0.9532 passes, ``0.95`` against
0.9532 too, ``0.954`` fails; ``6e-15`` is compared in the same one-digit scientific form.

A key is ``source:path``. A JSON record is addressed by its nested keys joined with ``/``
(``demos:runs/translate/wall_s``, ``demos:machine/cpu``); a Markdown record by its tables: the first cells of a row
up to its first number, then the column's header (``results:encoder_layer/standard/f+b ratio``,
``precision:linear/float64 worst``). A key may also be an object:

- ``{"key": K, "scale": 100}``: the value times 100 (an accuracy quoted as a percentage);
- ``{"key": K, "divide": 60}``: the value divided by 60 (seconds quoted as minutes);
- ``{"max": PATTERN, "except": [PATTERN, ...]}``: the largest value among the keys matching the glob
  ``PATTERN`` (``precision:*/float64 worst``), leaving out those that match an ``except`` pattern.

The coverage check: outside code (fenced blocks and inline code), every figure-like token of README.md (a
decimal number, a number in scientific notation, a percentage, a number with a unit of time or memory, a
spelled-out duration such as "half a minute") must lie inside a registered ``{}``, inside a ``not_figures``
string (a version number, a size in a configuration), or inside an ``unrecorded`` entry, which lists the
figures still waiting for a record and says why (the test suite reports them as expected failures).
"""
from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "docs" / "records" / "figures.json"
README = ROOT / "README.md"

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?"
# figure-like tokens of prose
_UNITS = r"(?:ms|s|sec|seconds?|min|minutes?|h|hours?|[KMGT]i?B|GFLOP/s|TFLOP/s)"
_WORDS = r"(?:a|an|one|two|three|four|five|six|ten|half an?|a quarter of an?)"
FIGURE = re.compile(
    rf"(?<![\w.])\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.]*\d)"          # 0.953, 97.4, 1.2e-3 (not 3.11.7)
    rf"|(?<![\w.])\d+[eE][-+]?\d+\b"                              # 6e-15
    rf"|(?<![\w.])\d[\d,]*(?:\.\d+)?\s?%"                         # 98%
    rf"|(?<![\w.])\d[\d,]*(?:\.\d+)?\s?{_UNITS}\b"                # 40 s, 66 MB
    rf"|\b{_WORDS}(?:\s+(?:and\s+a\s+half|or\s+(?:less|more|two|so)))?\s+(?:seconds?|minutes?|hours?)\b",
    re.IGNORECASE)


@dataclass
class Problem:
    where: str
    message: str

    def __str__(self):
        return f"{self.where}: {self.message}"


# ------------------------------------------------------------------------------------------------ records
def _flatten(value, prefix, out):
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}/{key}" if prefix else str(key), out)
    elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        out[prefix] = value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}/{index}", out)
    else:
        out[prefix] = value


def _number(cell: str):
    cell = cell.strip().replace(",", "")
    if re.fullmatch(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", cell):
        return float(cell)
    return None


def read_markdown_tables(text: str) -> dict:
    """Every numeric cell of every Markdown table: ``row/column -> value``.

    The row's name is its first cells up to the first number, joined with ``/``; the column's is its header.
    """
    values = {}
    header = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        names = []
        for cell in cells:
            if _number(cell) is not None:
                break
            names.append(cell)
        row = "/".join(names)
        for column, cell in zip(header, cells, strict=False):  # a short row leaves its last cells empty
            value = _number(cell)
            if value is not None:
                key = f"{row}/{column}"
                if key in values and values[key] != value:
                    raise ValueError(f"two different values for {key!r}: {values[key]} and {value}")
                values[key] = value
    return values


def read_source(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        out = {}
        _flatten(json.loads(text), "", out)
        return out
    if path.suffix == ".md":
        return read_markdown_tables(text)
    raise ValueError(f"{path}: expected a .json or .md record")


def load_registry(path: Path = REGISTRY) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_values(registry: dict, root: Path = ROOT) -> dict:
    """``source:path -> value`` over every record the registry names."""
    values = {}
    for source, relative in registry["sources"].items():
        for key, value in read_source(root / relative).items():
            values[f"{source}:{key}"] = value
    return values


def resolve(key, values: dict):
    """The value a registry key stands for (see the module docstring); raises KeyError naming what is missing."""
    if isinstance(key, str):
        if key not in values:
            close = [k for k in values if k.split(":")[0] == key.split(":")[0]
                     and k.rsplit("/", 1)[-1] == key.rsplit("/", 1)[-1]][:5]
            raise KeyError(f"no record holds {key!r}" + (f" (similar: {close})" if close else ""))
        return values[key]
    if "max" in key or "min" in key:
        pattern = key.get("max", key.get("min"))
        chosen = [v for k, v in values.items() if fnmatch.fnmatchcase(k, pattern)
                  and not any(fnmatch.fnmatchcase(k, p) for p in key.get("except", []))
                  and isinstance(v, (int, float))]
        if not chosen:
            raise KeyError(f"no record holds a number matching {pattern!r}")
        return max(chosen) if "max" in key else min(chosen)
    value = resolve(key["key"], values)
    return value * key.get("scale", 1) / key.get("divide", 1)


# ------------------------------------------------------------------------------------------------ comparing
def same_figure(written: str, value) -> bool:
    """Whether ``written`` (as README.md prints it) is ``value`` rounded to the digits ``written`` shows."""
    if isinstance(value, str) or isinstance(value, bool):
        return written == str(value)
    if value is None or not math.isfinite(value):
        return False
    text = written.replace(",", "")
    if "e" in text.lower():
        mantissa = text.lower().split("e")[0]
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return float(text) == float(f"{value:.{digits}e}")
    digits = len(text.split(".")[1]) if "." in text else 0
    rounded = f"{value:.{digits}f}"
    return text.lstrip("+") == ("0" if re.fullmatch(r"-0\.?0*", rounded) else rounded).lstrip("+") or \
        float(text) == float(rounded)


def formatted_like(written: str, value) -> str:
    """``value`` written with the digits of ``written`` (for messages that say what the README should say)."""
    if isinstance(value, str) or not isinstance(value, (int, float)):
        return str(value)
    if "e" in written.lower():
        mantissa = written.lower().split("e")[0]
        return f"{value:.{len(mantissa.split('.')[1]) if '.' in mantissa else 0}e}"
    return f"{value:.{len(written.split('.')[1]) if '.' in written else 0}f}"


def _literal(part: str) -> str:
    """A regular expression for literal text in which any run of white space matches any run of white space."""
    return "".join(r"\s+" if piece.isspace() else re.escape(piece) for piece in re.split(r"(\s+)", part) if piece)


def _pattern(text: str) -> re.Pattern:
    """The regular expression of a registry ``text``: one group per ``{}`` (a number) or ``{s}`` (a word);
    ``{*}`` matches any text on one line, unchecked."""
    pieces = re.split(r"(\{[s*]?\})", text)
    return re.compile("".join(f"({NUMBER})" if piece == "{}" else r"(.+?)" if piece == "{s}" else
                              r"(?:[^\n]*?)" if piece == "{*}" else _literal(piece) for piece in pieces))


def prose(text: str) -> str:
    """README.md with code (fenced blocks, inline code) and HTML comments blanked out, offsets kept."""
    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))

    text = re.sub(r"```.*?```", blank, text, flags=re.S)
    text = re.sub(r"<!--.*?-->", blank, text, flags=re.S)
    return re.sub(r"`[^`\n]*`", blank, text)


def check(readme: str, registry: dict, values: dict) -> tuple[list[Problem], list[str]]:
    """(problems, unrecorded): every mismatch or unbacked figure, and the figures still waiting for a record."""
    problems = []
    covered = []  # (start, end) spans of README.md that are accounted for
    for entry in registry["figures"]:
        text, keys = entry["text"], entry["keys"]
        pattern = _pattern(text)
        if text.count("{}") + text.count("{s}") != len(keys):
            problems.append(Problem(f"figures.json {text!r}", f"{len(keys)} keys for "
                                    f"{text.count('{}') + text.count('{s}')} placeholders"))
            continue
        matches = list(pattern.finditer(readme))
        if not matches:
            problems.append(Problem(f"figures.json {text!r}", "not found in README.md (reworded? then update "
                                                             "the registry)"))
            continue
        for match in matches:
            for index, key in enumerate(keys, start=1):
                written = match.group(index)
                covered.append(match.span(index))
                try:
                    value = resolve(key, values)
                except KeyError as error:
                    problems.append(Problem(f"README.md {written!r} in {text!r}", str(error.args[0])))
                    continue
                if not same_figure(written, value):
                    problems.append(Problem(f"README.md {written!r} in {text!r}", f"the record {key} holds "
                                            f"{value!r}: write {formatted_like(written, value)}"))
    for allowed in registry.get("not_figures", []):
        for match in re.finditer(re.escape(allowed), readme):
            covered.append(match.span())
    unrecorded = []
    for entry in registry.get("unrecorded", []):
        found = list(re.finditer(_literal(entry["text"]), readme))
        if not found:
            problems.append(Problem(f"figures.json unrecorded {entry['text']!r}", "not found in README.md: "
                                    "remove the entry"))
        for match in found:
            covered.append(match.span())
            unrecorded.append(f"{entry['text']!r}: {entry['why']}")
    text = prose(readme)
    for match in FIGURE.finditer(text):
        # a figure counts as backed when it starts inside an accounted-for span: "40 s" whose 40 is a {}
        if any(start <= match.start() < end for start, end in covered):
            continue
        line = readme.count("\n", 0, match.start()) + 1
        problems.append(Problem(f"README.md line {line} {match.group(0)!r}",
                                "a figure that no record backs: register its sentence in docs/records/figures.json"))
    return problems, unrecorded


def rewrite(readme: str, registry: dict, values: dict) -> tuple[str, list[str]]:
    """README.md with every registered figure replaced by its record, written with the same digits.

    Returns the new text and one line per figure changed ("0.965 -> 0.953 (demos:translate/...)"). A figure
    whose key no record holds is left as it is (``check`` reports it).
    """
    edits = {}
    for entry in registry["figures"]:
        for match in _pattern(entry["text"]).finditer(readme):
            for index, key in enumerate(entry["keys"], start=1):
                written = match.group(index)
                try:
                    value = resolve(key, values)
                except KeyError:
                    continue
                if not same_figure(written, value):
                    edits[match.span(index)] = (formatted_like(written, value), f"{written} -> "
                                                f"{formatted_like(written, value)} ({key})")
    text = readme
    for (start, end), (new, _) in sorted(edits.items(), reverse=True):
        text = text[:start] + new + text[end:]
    return text, [line for _, (_, line) in sorted(edits.items())]


def check_readme(root: Path = ROOT) -> tuple[list[Problem], list[str]]:
    registry = load_registry(root / "docs" / "records" / "figures.json")
    return check((root / "README.md").read_text(encoding="utf-8"), registry, load_values(registry, root))

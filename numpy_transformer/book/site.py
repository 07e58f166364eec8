"""The pages of the book, the links between them, and writing the site.

Pages (flat file names, so every link is a plain relative one):

- ``functional.<name>.html`` and ``nn.<name>.html``: the literate view of each source file, in reading order;
- ``derivation.<name>.html``: each ``docs/derivations/*.md``, and ``derivations.html`` for its README;
- ``tests.<folder>.<name>.html``: each test file that an op's page points to;
- ``index.html``: the contents, in the README's reading order.

Links are found, not listed: an op's page links to the derivations that name its file (or that its docstring
names), to the test files that import it, and to the ``nn`` files that import it; each of those pages links
back. A role such as ``:func:`causal_mask``` links to the page and anchor that define the name.
"""
from __future__ import annotations

import html
import pathlib
import posixpath
import re
import time
from dataclasses import dataclass, field

from pygments.formatters import HtmlFormatter

from . import literate, markdown
from .contents import PACKAGE_DIR, REPOSITORY_DIR, ordered_modules

DERIVATIONS_DIR = REPOSITORY_DIR / "docs" / "derivations"
TESTS_DIR = REPOSITORY_DIR / "tests"


@dataclass
class Page:
    """One page: where it comes from, its file name, its title and the pages it links to."""

    kind: str                      # "functional", "nn", "derivation", "derivations", "tests", "index"
    name: str                      # "softmax", "attention", "functional/test_softmax" ...
    source: pathlib.Path | None
    filename: str
    title: str
    summary: str = ""
    derivations: list = field(default_factory=list)
    tests: list = field(default_factory=list)
    modules: list = field(default_factory=list)   # nn pages that use this op, or ops this nn page uses
    code: list = field(default_factory=list)      # for a derivation or a test: the code pages it is about
    sections: list | None = None                  # the literate sections of a source page, cut once


@dataclass
class BuildReport:
    """What ``build`` wrote: the folder, every page's path, and the seconds it took."""

    out_dir: pathlib.Path
    pages: list
    seconds: float

    def __str__(self) -> str:
        return f"{len(self.pages)} pages in {self.seconds:.1f} s: {self.out_dir / 'index.html'}"


def _first_sentence(doc: str | None) -> str:
    if not doc:
        return ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    return first


def _module_doc(path: pathlib.Path) -> str | None:
    import ast

    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class Book:
    """The pages of the site and the index of the names they define."""

    def __init__(self):
        self.pages: dict[str, Page] = {}
        self.symbols: dict[str, str] = {}        # dotted name -> href
        self._collect()
        self._link()

    # ---------------------------------------------------------------------------------- collecting pages

    def _add(self, page: Page) -> Page:
        self.pages[page.filename] = page
        return page

    def _collect(self) -> None:
        for package in ("functional", "nn"):
            for name in ordered_modules(package):
                path = PACKAGE_DIR / package / f"{name}.py"
                doc = _module_doc(path)
                self._add(Page(package, name, path, f"{package}.{name}.html", f"{package}/{name}.py",
                               summary=_words(_first_sentence(doc))))
        if DERIVATIONS_DIR.is_dir():
            readme = DERIVATIONS_DIR / "README.md"
            if readme.exists():
                self._add(Page("derivations", "README", readme, "derivations.html", "Derivations",
                               summary="The longer backward derivations, written out step by step."))
            for path in sorted(DERIVATIONS_DIR.glob("*.md")):
                if path.name == "README.md":
                    continue
                text = path.read_text(encoding="utf-8")
                heading = re.search(r"^# (.+)$", text, flags=re.M)
                title = heading.group(1).strip().replace("`", "") if heading else path.stem
                self._add(Page("derivation", path.stem, path, f"derivation.{path.stem}.html", title))

    def code_pages(self) -> list[Page]:
        return [p for p in self.pages.values() if p.kind in ("functional", "nn")]

    def _test_files(self) -> list[pathlib.Path]:
        return sorted(TESTS_DIR.rglob("test_*.py")) if TESTS_DIR.is_dir() else []

    def _link(self) -> None:
        code_pages = self.code_pages()
        derivations = [p for p in self.pages.values() if p.kind == "derivation"]
        sources = {p.filename: p.source.read_text(encoding="utf-8") for p in code_pages}

        # derivation <-> code: a derivation names "functional/x.py" or "nn/x.py"; a docstring names the .md.
        # A derivation's code pages are listed in the order the derivation names them (its "Code:" line first).
        for derivation in derivations:
            text = derivation.source.read_text(encoding="utf-8")
            named = []
            for page in code_pages:
                named_here = re.search(rf"\b{page.kind}/{page.name}\.py\b", text)
                named_there = f"docs/derivations/{derivation.source.name}" in sources[page.filename]
                if named_here or named_there:
                    page.derivations.append(derivation.filename)
                    named.append((named_here.start() if named_here else len(text), page.filename))
            derivation.code = [filename for _, filename in sorted(named)]

        # nn file -> the functional files it imports
        for page in code_pages:
            if page.kind != "nn":
                continue
            for op in code_pages:
                if op.kind == "functional" and re.search(rf"functional\.{op.name}\b", sources[page.filename]):
                    page.modules.append(op.filename)
                    op.modules.append(page.filename)

        # tests: a test file that imports the module (or lies at tests/<package>/test_<name>*.py)
        for path in self._test_files():
            text = path.read_text(encoding="utf-8")
            relative = path.relative_to(TESTS_DIR).with_suffix("")
            filename = "tests." + ".".join(relative.parts) + ".html"
            tested = []
            for page in code_pages:
                imports = re.search(rf"numpy_transformer\.{page.kind}\.{page.name}\b", text)
                mirrors = relative.parts[0] == page.kind and relative.name.startswith(f"test_{page.name}")
                if imports or mirrors:
                    tested.append(page)
            if not tested:
                continue
            doc = _module_doc(path)
            test_page = self._add(Page("tests", "/".join(relative.parts), path, filename,
                                       f"tests/{'/'.join(relative.parts)}.py", summary=_words(_first_sentence(doc))))
            for page in tested:
                page.tests.append(filename)
                test_page.code.append(page.filename)
        for derivation in derivations:
            text = derivation.source.read_text(encoding="utf-8")
            for match in re.finditer(r"tests/[\w/]+\.py", text):
                filename = "tests." + match.group(0)[len("tests/"):-3].replace("/", ".") + ".html"
                if filename in self.pages and filename not in derivation.tests:
                    derivation.tests.append(filename)

        # the names each code and test page defines, for roles and links
        for page in list(code_pages) + [p for p in self.pages.values() if p.kind == "tests"]:
            module = ("numpy_transformer." + page.kind + "." + page.name) if page.kind != "tests" else None
            if module:
                self.symbols[module] = page.filename
            page.sections = literate.sections(page.source.read_text(encoding="utf-8"))
            for section in page.sections:
                if section.anchor:
                    href = f"{page.filename}#{section.anchor}"
                    if module:
                        self.symbols[f"{module}.{section.anchor}"] = href
                    self.symbols.setdefault(section.anchor, href)

    # ---------------------------------------------------------------------------------- resolving names

    def resolve(self, target: str, here: Page | None = None) -> str | None:
        """The href of a dotted name (``causal_mask``, ``numpy_transformer.nn.Transformer``, ``Module.backward``)."""
        target = target.strip().lstrip("~.")
        if target in self.symbols:
            return self.symbols[target]
        parts = target.split(".")
        if here is not None and here.kind in ("functional", "nn"):
            local = f"numpy_transformer.{here.kind}.{here.name}.{target}"
            if local in self.symbols:
                return self.symbols[local]
        for size in (2, 1):                  # Class.method, then the bare name
            if len(parts) >= size and ".".join(parts[-size:]) in self.symbols:
                return self.symbols[".".join(parts[-size:])]
        if target.startswith("numpy_transformer.") and len(parts) >= 3:
            # a name re-exported by a package (numpy_transformer.nn.Transformer): look in its modules
            package = parts[1]
            for module in ordered_modules(package) if package in ("functional", "nn") else []:
                key = f"numpy_transformer.{package}.{module}.{parts[-1]}"
                if key in self.symbols:
                    return self.symbols[key]
        return None

    # ---------------------------------------------------------------------------------- rendering

    def reading_order(self) -> list[Page]:
        order = [p for p in self.pages.values() if p.kind == "functional"]
        order += [p for p in self.pages.values() if p.kind == "nn"]
        derivations = [p for p in self.pages.values() if p.kind == "derivation"]
        position = {p.filename: i for i, p in enumerate(order)}
        # each derivation follows the first code file it names
        derivations.sort(key=lambda d: (position.get(d.code[0], len(order)) if d.code else len(order), d.name))
        order += derivations
        return order

    def render_all(self) -> dict[str, str]:
        order = self.reading_order()
        neighbours = {p.filename: (order[i - 1] if i else None, order[i + 1] if i + 1 < len(order) else None)
                      for i, p in enumerate(order)}
        out = {"index.html": self._index(order)}
        for page in self.pages.values():
            previous, following = neighbours.get(page.filename, (None, None))
            if page.kind in ("functional", "nn", "tests"):
                body = self._literate(page)
            else:
                body = self._derivation(page)
            out[page.filename] = _document(page.title, self._header(page, previous, following) + body)
        return out

    def _links_bar(self, page: Page) -> str:
        groups = []
        for label, targets in (("Derivation", page.derivations), ("Uses" if page.kind == "nn" else "Used by",
                                                                  page.modules),
                               ("Code", page.code), ("Tests", page.tests)):
            if targets:
                links = ", ".join(f'<a href="{t}">{html.escape(self.pages[t].title)}</a>' for t in targets)
                groups.append(f'<span class="group"><span class="label">{label}</span> {links}</span>')
        return f'<nav class="links">{"".join(groups)}</nav>' if groups else ""

    def _header(self, page: Page, previous: Page | None, following: Page | None) -> str:
        steps = []
        if previous:
            steps.append(f'<a href="{previous.filename}" rel="prev">&larr; {html.escape(previous.title)}</a>')
        if following:
            steps.append(f'<a href="{following.filename}" rel="next">{html.escape(following.title)} &rarr;</a>')
        return (f'<header class="top"><a class="home" href="index.html">numpy_transformer</a>'
                f'<h1>{html.escape(page.title)}</h1><span class="steps">{" ".join(steps)}</span></header>'
                + self._links_bar(page))

    def _notes_html(self, text: str, page: Page) -> str:
        rendered = markdown.render(text, resolve=lambda target: self.resolve(target, page))
        return self._link_paths(rendered)

    def _link_paths(self, rendered: str) -> str:
        """``docs/derivations/x.md``, ``functional/x.py`` and ``tests/.../test_x.py`` as code become links."""
        def derivation(match):
            filename = f"derivation.{match.group(1)}.html"
            return f'<a href="{filename}">{match.group(0)}</a>' if filename in self.pages else match.group(0)

        def code(match):
            filename = f"{match.group(1)}.{match.group(2)}.html"
            return f'<a href="{filename}">{match.group(0)}</a>' if filename in self.pages else match.group(0)

        def test(match):
            filename = "tests." + match.group(1).replace("/", ".") + ".html"
            return f'<a href="{filename}">{match.group(0)}</a>' if filename in self.pages else match.group(0)

        rendered = re.sub(r"<code>docs/derivations/(\w+)\.md</code>", derivation, rendered)
        rendered = re.sub(r"<code>tests/([\w/]+)\.py</code>", test, rendered)
        return re.sub(r"<code>(?:numpy_transformer/)?(functional|nn)/(\w+)\.py</code>", code, rendered)

    def _literate(self, page: Page) -> str:
        source = page.source.read_text(encoding="utf-8")
        source_lines = source.splitlines()
        code_html = literate.highlighted_lines(source)
        rows = []
        for section in page.sections:
            anchor = f' id="{html.escape(section.anchor)}"' if section.anchor else ""
            lines = literate.trimmed(section.lines, source_lines)
            code = "\n".join(f'<span id="L{n}">{code_html[n - 1]}</span>' for n in lines)
            code_cell = f'<pre class="highlight">{code}</pre>' if lines else ""
            if section.kind == "divider":
                rows.append(f'<div class="divider"{anchor}><span>{html.escape(section.title)}</span></div>')
                if not lines:
                    continue
                notes, css = "", "comment"
            elif section.kind == "module":
                notes, css = self._notes_html(section.notes, page), "module"
            elif section.kind == "docstring":
                notes, css = self._notes_html(markdown.docstring_to_markdown(section.notes), page), "docstring"
            elif section.kind == "exercise":
                notes = self._notes_html(f"**Exercise:** {section.notes} (`python -m numpy_transformer.exercises "
                                         f"init DIR` removes the code beside this note.)", page)
                css = "exercise"
            elif section.kind == "comment":
                css = "comment forward" if section.notes.startswith("forward:") else "comment"
                notes = self._notes_html(section.notes, page)
            else:
                notes, css = "", "code-only"
            if not notes and not code_cell:
                continue
            rows.append(f'<section class="row {css}"{anchor}><div class="notes">{notes}</div>'
                        f'<div class="code">{code_cell}</div></section>')
        return '<main class="literate">' + "\n".join(rows) + "</main>"

    def _derivation(self, page: Page) -> str:
        text = page.source.read_text(encoding="utf-8")
        rendered = self._notes_html(text, page)
        rendered = re.sub(r'<a href="([^"#:]*)(#[^"]*)?">(.*?)</a>', self._derivation_link, rendered, flags=re.S)
        # the page's own title is the header's; drop the repeated first heading
        rendered = re.sub(r"^<h1>.*?</h1>\n", "", rendered, count=1)
        return f'<main class="prose">{rendered}</main>'

    def _derivation_link(self, match: re.Match) -> str:
        """A relative link of a derivation, pointed at the book's page of its target; no page, no link."""
        target, fragment, text = match.group(1), match.group(2) or "", match.group(3)
        if target in self.pages:                          # already a page of the book
            return match.group(0)
        path = posixpath.normpath(posixpath.join("docs/derivations", target))
        test = re.fullmatch(r"tests/([\w/]+)\.py", path)
        derivation = re.fullmatch(r"docs/derivations/(\w+)\.md", path)
        code = re.fullmatch(r"numpy_transformer/(functional|nn)/(\w+)\.py", path)
        if derivation:
            name = derivation.group(1)
            filename = "derivations.html" if name == "README" else f"derivation.{name}.html"
        elif code:
            filename = f"{code.group(1)}.{code.group(2)}.html"
        elif test:
            filename = "tests." + test.group(1).replace("/", ".") + ".html"
        else:
            filename = None
        if filename in self.pages:
            return f'<a href="{filename}{fragment}">{text}</a>'
        return text

    def _index(self, order: list[Page]) -> str:
        def entries(kind):
            items = []
            for page in [p for p in order if p.kind == kind]:
                summary = self._link_paths(markdown.render(page.summary)) if page.summary else ""
                summary = re.sub(r"^<p>|</p>\s*$", "", summary.strip())
                items.append(f'<li><a href="{page.filename}">{html.escape(page.title)}</a>'
                             f'<span class="summary">{summary}</span></li>')
            return "<ol>" + "".join(items) + "</ol>"

        tests = [p for p in self.pages.values() if p.kind == "tests"]
        test_items = "".join(f'<li><a href="{p.filename}">{html.escape(p.title)}</a></li>' for p in tests)
        derivations_index = ('<p>The longer derivations, in the same order (<a href="derivations.html">their '
                             'overview</a>):</p>') if "derivations.html" in self.pages else ""
        body = f"""<header class="top"><a class="home" href="index.html">numpy_transformer</a>
<h1>The Transformer in NumPy, as a book</h1></header>
<main class="prose index">
<p>Every piece of the Transformer, forward pass and hand-written backward pass, with the math beside the code
that computes it. Read the pure functions of <code>functional/</code> first, one idea per page, each a pair
<code>out, cache = name_forward(...)</code> / <code>grads = name_backward(dout, cache)</code>; then the
<code>torch.nn</code>-style layers of <code>nn/</code> that chain them; the derivations write out the longer
backward passes step by step. Each page links to its derivation, its tests and the layers that use it.</p>
<p>To write the backward passes yourself: <code>python -m numpy_transformer.exercises init DIR</code>, then
<code>python -m numpy_transformer.exercises check DIR</code>.</p>
<h2>1. The functions: <code>numpy_transformer/functional/</code></h2>
{entries("functional")}
<h2>2. The layers: <code>numpy_transformer/nn/</code></h2>
{entries("nn")}
<h2>3. Derivations: <code>docs/derivations/</code></h2>
{derivations_index}
{entries("derivation")}
<h2>Tests</h2>
<ul class="tests">{test_items}</ul>
</main>"""
        return _document("numpy_transformer: the book", body)


def _document(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="book.css">
</head>
<body>
{body}
</body>
</html>
"""


CSS = """
:root { --notes: #f6f5ef; --rule: #e2e0d6; --ink: #222; --muted: #666; --accent: #8a3b12; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; font: 15px/1.5 "DejaVu Serif", Georgia, serif; }
a { color: #1f4f8f; text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { display: flex; align-items: baseline; gap: 1.2em; padding: 0.6em 1.2em; background: #2b2b2b;
  color: #eee; flex-wrap: wrap; }
header.top a { color: #f0d9a0; }
header.top h1 { font-size: 1.15em; margin: 0; font-family: "DejaVu Sans Mono", monospace; font-weight: normal; }
header.top .steps { margin-left: auto; font-size: 0.9em; display: flex; gap: 1.2em; }
nav.links { padding: 0.4em 1.2em; background: #fbf8ec; border-bottom: 1px solid var(--rule); font-size: 0.9em; }
nav.links .group { margin-right: 1.6em; }
nav.links .label { color: var(--muted); font-variant: small-caps; margin-right: 0.3em; }
main.literate { display: block; }
section.row { display: grid; grid-template-columns: minmax(0, 40%) minmax(0, 60%); border-bottom: 1px solid #f0efe8; }
section.row .notes { background: var(--notes); padding: 0.3em 1.2em; border-right: 1px solid var(--rule); }
section.row .code { padding: 0.35em 0.8em; overflow-x: auto; }
section.row.module .notes { padding-top: 0.9em; padding-bottom: 0.9em; }
section.row.docstring .notes { border-left: 3px solid #b8a46a; }
section.row.forward .notes { border-left: 3px solid #7a9a5a; }
section.row.exercise .notes { background: #fdf0e6; border-left: 3px solid var(--accent); }
.notes p { margin: 0.4em 0; }
.notes ul { margin: 0.3em 0; padding-left: 1.3em; }
.notes code, .prose code { font: 0.86em "DejaVu Sans Mono", monospace; background: #ecebe3; padding: 0 0.2em;
  border-radius: 2px; }
.notes pre, .prose pre { font: 0.82em/1.4 "DejaVu Sans Mono", monospace; background: #fbfbf7; padding: 0.5em;
  overflow-x: auto; border: 1px solid var(--rule); }
.notes pre code, .prose pre code { background: none; padding: 0; }
pre.highlight { margin: 0; font: 12.5px/1.45 "DejaVu Sans Mono", monospace; white-space: pre; background: transparent; }
div.divider { padding: 0.5em 1.2em; font: bold 0.85em "DejaVu Sans", sans-serif; color: var(--muted);
  text-transform: uppercase; letter-spacing: 0.08em; border-bottom: 1px solid var(--rule); background: #efede4; }
div.math { overflow-x: auto; margin: 0.6em 0; }
math { font-size: 1.05em; }
math[display="block"] { margin: 0.2em 0; }
menclose[notation="box"] { border: 1px solid currentColor; padding: 0.15em 0.3em; }
main.prose { max-width: 52em; margin: 0 auto; padding: 1em 1.5em 3em; }
main.prose table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
main.prose th, main.prose td { border: 1px solid var(--rule); padding: 0.3em 0.5em; vertical-align: top; }
main.index ol li { margin: 0.35em 0; }
main.index .summary { display: block; color: var(--muted); font-size: 0.93em; }
main.index ul.tests { columns: 2; font-size: 0.9em; }
"""


def build(out_dir, quiet: bool = True) -> BuildReport:
    """Write every page, ``book.css`` and ``index.html`` into ``out_dir``."""
    start = time.perf_counter()
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    book = Book()
    written = []
    for filename, text in book.render_all().items():
        path = out_dir / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    style = HtmlFormatter(style="friendly").get_style_defs(".highlight")
    (out_dir / "book.css").write_text(CSS + "\n" + style + "\n", encoding="utf-8")
    report = BuildReport(out_dir, sorted(written), time.perf_counter() - start)
    if not quiet:
        print(f"Wrote {report}")
    return report

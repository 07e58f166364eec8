"""The typeset book: every page builds, no untypeset TeX is left, every internal link resolves, the index
follows the README's reading order, nothing is fetched from a network, and Chromium shows the math."""
import contextlib
import html.parser
import io
import pathlib
import re

import numpy as np
import pytest

from numpy_transformer.book.contents import FUNCTIONAL, NN, REPOSITORY_DIR, ordered_modules
from numpy_transformer.book.screenshot import find_chromium, screenshot
from reference import references_required, require

README = (REPOSITORY_DIR / "README.md").read_text()
DERIVATIONS = sorted(p.stem for p in (REPOSITORY_DIR / "docs" / "derivations").glob("*.md") if p.stem != "README")


def require_book_extra():
    """The book's packages (the ``book`` extra, also in ``test``): a skip without them, a failure in CI."""
    for module in ("pygments", "latex2mathml", "markdown_it"):
        require(module)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The book, built by its command line into a temporary folder: (the folder, its pages)."""
    require_book_extra()
    from numpy_transformer.book.__main__ import main

    out = tmp_path_factory.mktemp("book")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([str(out)]) == 0
    assert re.match(rf"Wrote \d+ pages into {re.escape(str(out))} in [0-9.]+ s", printed.getvalue())
    return out, sorted(out.glob("*.html"))


class _Page(html.parser.HTMLParser):
    """The links, ids, resources and visible text of one page (text inside math, pre and code set apart)."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.ids, self.resources, self.text, self._skip = [], set(), [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag in ("script", "img", "iframe", "link", "source", "object", "embed"):
            self.resources.append((tag, attrs.get("src") or attrs.get("href") or ""))
        if tag in ("math", "pre", "code", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("math", "pre", "code", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def parse(path: pathlib.Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_every_page_builds(book):
    out, pages = book
    names = {p.name for p in pages}
    expected = {"index.html", "derivations.html"}
    expected |= {f"functional.{m}.html" for m in ordered_modules("functional")}
    expected |= {f"nn.{m}.html" for m in ordered_modules("nn")}
    expected |= {f"derivation.{d}.html" for d in DERIVATIONS}
    assert expected <= names
    assert any(name.startswith("tests.functional.") for name in names)
    assert (out / "book.css").stat().st_size > 1000


def test_no_untypeset_tex_is_left(book):
    out, pages = book
    for path in pages:
        source = path.read_text(encoding="utf-8")
        text = " ".join(parse(path).text)
        assert "$$" not in text, f"{path.name}: a $$ outside code"
        assert not re.search(r"\$[^$\s][^$]*?[\\^_{][^$]*?\$", text), f"{path.name}: TeX between dollars"
        assert not re.search(r"\\(frac|partial|sum|mathrm|hat|top|odot|sqrt|begin|left|Big|text)\b", text), \
            f"{path.name}: a TeX command outside math"
        assert "<merror" not in source and ".. math::" not in source
    attention = (out / "functional.attention.html").read_text(encoding="utf-8")
    assert attention.count("<math") > 20 and 'display="block"' in attention


def test_every_internal_link_resolves_and_nothing_is_fetched(book):
    out, pages = book
    pages = {path.name: parse(path) for path in pages}
    for name, page in pages.items():
        for href in page.hrefs:
            assert not re.match(r"^[a-z]+:", href), f"{name}: an external link {href}"
            target, _, fragment = href.partition("#")
            target = target or name
            assert target in pages, f"{name}: a link to {href}, which is not a page"
            if fragment:
                assert fragment in pages[target].ids, f"{name}: a link to {href}, which has no such anchor"
        for tag, where in page.resources:
            assert tag == "link" and where == "book.css", f"{name}: loads {tag} {where}; expected nothing but book.css"


def test_an_op_links_to_its_derivation_tests_and_module_and_back(book):
    out, _ = book
    attention = parse(out / "functional.attention.html").hrefs
    assert "derivation.attention.html" in attention
    assert "tests.functional.test_attention.html" in attention
    assert "nn.attention.html" in attention
    assert "functional.attention.html#causal_mask" in attention          # a :func: role
    assert "functional.attention.html" in parse(out / "derivation.attention.html").hrefs
    assert "functional.attention.html" in parse(out / "tests.functional.test_attention.html").hrefs
    assert "functional.attention.html" in parse(out / "nn.attention.html").hrefs
    multihead = parse(out / "derivation.multihead.html").hrefs
    assert "nn.attention.html" in multihead and "functional.heads.html" in multihead


def _readme_reading_order():
    section = README.split("## Reading order", 1)[1].split("\n## ", 1)[0]
    numbered = [line for line in section.splitlines() if re.match(r"^\d+\. ", line)]
    return [name for line in numbered for name in re.findall(r"`(\w+)\.py`", line.split(":")[0])]


def test_the_reading_order_is_the_readmes(book):
    out, _ = book
    readme_order = _readme_reading_order()
    assert set(readme_order) <= set(FUNCTIONAL), "book/contents.py lists every file of the README's reading order"
    assert readme_order == [name for name in FUNCTIONAL if name in readme_order], "in the README's order"
    index = parse(out / "index.html").hrefs
    listed = [href for href in index if href.startswith(("functional.", "nn."))]
    assert listed == [f"functional.{m}.html" for m in ordered_modules("functional")] + \
        [f"nn.{m}.html" for m in ordered_modules("nn")]
    assert NN[0] == "module"
    import numpy_transformer.functional as functional

    docstring_order = re.findall(r"^\d+\. ``(\w+)``", functional.__doc__, flags=re.M)
    assert docstring_order == [name for name in FUNCTIONAL if name in docstring_order]


def test_the_derivations_overview_is_in_the_book_order(book):
    out, _ = book
    overview = (REPOSITORY_DIR / "docs" / "derivations" / "README.md").read_text()
    table_order = re.findall(r"^\| \[(\w+)\.md\]", overview, flags=re.M)
    index = parse(out / "index.html").hrefs
    book_order = [href[len("derivation."):-len(".html")] for href in index if href.startswith("derivation.")]
    assert table_order == book_order
    assert sorted(table_order) == DERIVATIONS


def test_chromium_shows_the_math(book, tmp_path):
    out, _ = book
    chromium = find_chromium()
    if chromium is None:
        message = "chromium is not installed (Debian: apt-get install chromium); the screenshot test needs it"
        if references_required():
            pytest.fail("NT_REQUIRE_REFERENCES is set but " + message)
        pytest.skip(message)
    Image = require("PIL.Image")
    page = out / "functional.attention.html"
    hidden = out / "attention_without_math.html"
    hidden.write_text(page.read_text(encoding="utf-8").replace("</head>", "<style>math { visibility: hidden; }"
                                                                          "</style></head>"), encoding="utf-8")
    with_math = screenshot(page, tmp_path / "with.png", width=1200, height=900, chromium=chromium)
    without = screenshot(hidden, tmp_path / "without.png", width=1200, height=900, chromium=chromium)
    a = np.asarray(Image.open(with_math).convert("L"), dtype=np.int16)
    b = np.asarray(Image.open(without).convert("L"), dtype=np.int16)
    assert a.shape == b.shape == (900, 1200)
    # the formulas' ink (about 3,000 pixels at this size) is what changes, and only in the notes column
    changed = np.abs(a - b) > 30
    assert changed.sum() > 1000, f"only {changed.sum()} pixels differ with the math hidden: Chromium shows no math"
    assert not changed[:, int(0.45 * 1200):].any(), "hiding the math changed the code column"
    assert (a < 100).sum() > 10000, "the page is nearly blank"


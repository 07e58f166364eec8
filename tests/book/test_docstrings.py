"""One math dialect: every docstring formula is Markdown math ($...$, $$...$$) in a raw docstring, and every
formula typesets; help() shows docstrings, never a section-divider comment."""
import ast
import importlib
import inspect
import pkgutil
import pydoc
import re

import pytest

import numpy_transformer
from numpy_transformer.book.contents import PACKAGE_DIR
from reference import require

FILES = sorted(PACKAGE_DIR.rglob("*.py"))
# inline math may run over a line break within a paragraph, never over a blank line
_INLINE = r"\$((?:[^$\n]|\n(?![ \t]*\n))+?)\$"
_CODE_OR_MATH = re.compile(r"``.+?``|`[^`\n]+`|\$\$.+?\$\$|" + _INLINE, re.S)
_FORMULA = re.compile(r"\$\$(.+?)\$\$|" + _INLINE, re.S)


def docstrings(path):
    """(name, literal as written, value) of the module's, each class's and each function's docstring."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            value = getattr(first, "value", None)
            if isinstance(first, ast.Expr) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield getattr(node, "name", "module"), ast.get_source_segment(source, first.value), first.value.value


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_docstring_math_is_markdown_math_in_raw_docstrings(path):
    for name, literal, value in docstrings(path):
        where = f"{path.name}: {name}"
        assert ".. math::" not in value, f"{where}: reStructuredText math; write $$ ... $$"
        assert not re.search(r"\\\\[A-Za-z]", value), f"{where}: a doubled backslash; write a raw docstring"
        if "\\" in value:
            assert literal[:1] in "rR", f"{where}: a backslash in a docstring that is not raw (r\"\"\")"
        prose = _CODE_OR_MATH.sub(" ", value)
        assert not re.search(r"\\(frac|partial|sum|mathrm|hat|top|odot|sqrt|left|Big|text|alpha|beta|gamma|mu|"
                             r"sigma|epsilon|delta|Phi|infty|cdot|times|log|exp|max|min)\b", prose), \
            f"{where}: a TeX command outside $...$"


def test_every_docstring_formula_typesets():
    require("latex2mathml")
    from numpy_transformer.book.markdown import math_to_mathml

    count = 0
    for path in FILES:
        for _, _, value in docstrings(path):
            text = re.sub(r"``.+?``|`[^`\n]+`", " ", value, flags=re.S)
            for match in _FORMULA.finditer(text):
                math_to_mathml(match.group(1) or match.group(2), display=match.group(1) is not None)
                count += 1
    assert count > 100


def _documented_objects():
    for info in pkgutil.walk_packages(numpy_transformer.__path__, "numpy_transformer."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        yield info.name, module
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{info.name}.{name}", obj
            if inspect.isclass(obj):
                for attribute, member in vars(obj).items():
                    member = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if inspect.isfunction(member):
                        yield f"{info.name}.{name}.{attribute}", member


def test_help_shows_docstrings_not_comments():
    leaks = [name for name, obj in _documented_objects() if pydoc.getdoc(obj) != (inspect.getdoc(obj) or "")]
    assert not leaks, f"help() shows the comment above these (give each a docstring): {leaks}"
    text = pydoc.render_doc(numpy_transformer.nn.Module, renderer=pydoc.plaintext)
    assert "# ---" not in text and "extra_repr" in text

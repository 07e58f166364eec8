"""A Python source file cut into sections of notes beside code: the literate view of the book.

A section starts at the module docstring, at a function or class that has a docstring (the docstring is the
note, the ``def`` line the first code), at a function or class without one (an anchor), and at each block of
comment lines. Its code runs until the next section starts. Comments at the end of a code line (the shape
comments) stay with the code. Section-divider comments (``# ---- printing``) become small headings, and the
exercise markers of the backward passes become a note saying what the exercise asks (the end marker is not
shown).

The code is highlighted by Pygments once for the whole file and then split into lines, so a string that spans
several lines is coloured right wherever the file is cut.
"""
from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from dataclasses import dataclass, field

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

_DIVIDER = re.compile(r"^(?:-{3,}|={3,})\s*(?P<title>.*?)\s*-*$")
_BEGIN = re.compile(r"^EXERCISE: (?P<statement>.+)$")
_END = re.compile(r"^END EXERCISE$")


@dataclass
class Section:
    """Notes (Markdown) beside lines of code (1-based numbers in the file)."""

    kind: str                    # "module", "docstring", "comment", "divider", "exercise" or "code"
    notes: str = ""
    lines: list = field(default_factory=list)
    anchor: str | None = None    # the qualified name of a function or class that starts here
    title: str = ""              # a divider's label


def highlighted_lines(source: str) -> list[str]:
    """The HTML of each line of ``source``, highlighted, each line's spans closed on that line."""
    text = highlight(source, PythonLexer(stripnl=False, ensurenl=True), HtmlFormatter(nowrap=True))
    return text.split("\n")[: len(source.splitlines())]


def _comment_lines(source: str) -> dict[int, str]:
    """Line number -> text of a comment that is alone on its line (its ``#`` and one space removed)."""
    comments = {}
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            if not lines[row - 1][:column].strip():
                text = token.string[1:]
                comments[row] = text[1:] if text.startswith(" ") else text
    return comments


def _definitions(tree: ast.Module):
    """(first line, last header line, docstring node or None, qualified name) of every def and class."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                body = child.body
                has_doc = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                           and isinstance(body[0].value.value, str))
                found.append((first, body[0].lineno - 1, body[0] if has_doc else None, name))
                visit(child, name + ".")
    visit(tree, "")
    return found


def sections(source: str) -> list[Section]:
    """Cut ``source`` into sections, in order; every line of code is in exactly one section."""
    tree = ast.parse(source)
    comments = _comment_lines(source)
    by_first_line = {first: (header_end, doc, name) for first, header_end, doc, name in _definitions(tree)}
    skip = set()
    result: list[Section] = []

    module_doc = ast.get_docstring(tree, clean=True)
    if module_doc is not None:
        node = tree.body[0]
        skip.update(range(node.lineno, node.end_lineno + 1))
        result.append(Section("module", notes=module_doc))

    total = len(source.splitlines())
    number, previous_was_comment, previous_was_exercise = 1, False, False
    while number <= total:
        if number in skip:
            number += 1
            continue
        if number in by_first_line:
            header_end, doc, name = by_first_line[number]
            current = result[-1] if result else None
            if doc is not None:
                notes = inspect.cleandoc(doc.value.value)
                result.append(Section("docstring", notes=notes, anchor=name))
                result[-1].lines.extend(range(number, header_end + 1))
                skip.update(range(doc.lineno, doc.end_lineno + 1))
                number = header_end + 1
                previous_was_comment = False
                continue
            # no docstring: the comment right above (if any) introduces it, else a plain anchor
            if current is not None and current.kind == "comment" and not current.lines and current.anchor is None:
                current.anchor = name
            else:
                result.append(Section("code", anchor=name))
        if number in comments:
            text = comments[number]
            divider, begin, end = _DIVIDER.match(text.strip()), _BEGIN.match(text.strip()), _END.match(text.strip())
            if end:
                pass                                            # the end of an exercise is not shown
            elif begin:
                result.append(Section("exercise", notes=begin.group("statement")))
            elif (previous_was_exercise and result[-1].kind == "exercise" and not result[-1].lines
                  and not text.strip().startswith(("forward:", "Plainly"))):
                result[-1].notes += " " + text.strip()         # the exercise's statement goes on
                number += 1
                continue
            elif divider:
                result.append(Section("divider", title=divider.group("title")))
            elif previous_was_comment and result and result[-1].kind == "comment" and not result[-1].lines:
                result[-1].notes += "\n" + text
            else:
                result.append(Section("comment", notes=text))
            previous_was_comment = not (divider or begin or end)
            previous_was_exercise = bool(begin)
            number += 1
            continue
        if not result:
            result.append(Section("code"))
        result[-1].lines.append(number)
        previous_was_comment = previous_was_exercise = False
        number += 1
    return result


def trimmed(lines: list[int], source_lines: list[str]) -> list[int]:
    """``lines`` without the blank lines at either end."""
    start, stop = 0, len(lines)
    while start < stop and not source_lines[lines[start] - 1].strip():
        start += 1
    while stop > start and not source_lines[lines[stop - 1] - 1].strip():
        stop -= 1
    return lines[start:stop]

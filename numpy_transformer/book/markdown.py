r"""Markdown with math, to HTML with MathML: the notes of the book and the derivations.

The text is CommonMark (``markdown-it-py``; raw HTML is shown as text, never passed through) with tables,
plus the project's one math dialect: ``$...$`` inline and ``$$...$$`` on lines of their own for display. Each
formula is converted to MathML by ``latex2mathml`` while the book is built, so a page shows typeset math
offline and without a script; a formula the converter cannot read stops the build with its text and page.

Docstrings get two more touches before the Markdown: the ``Inputs:`` / ``Returns:`` sections become lists
(:func:`docstring_to_markdown`), and Sphinx roles such as ``:func:`softmax_forward``` become links to the
page that defines the name (through the ``resolve`` function the site passes in). A ``*`` between two word
characters, as in the shape ``(B, N, C*P*P)``, is a multiplication, not emphasis.
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable

from latex2mathml.converter import convert as _latex_to_mathml
from markdown_it import MarkdownIt

Resolver = Callable[[str], "str | None"]   # a dotted name -> the href of its page and anchor, or None

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`(?P<tilde>~?)\.?(?P<target>[^`]+)`")
# a role, a code span or a formula: the pieces of a text that are left as they are
_KEEP = re.compile(r"(?P<role>:(?:func|class|meth|mod|attr|data|obj|exc):`[^`]+`)|``.+?``|`[^`\n]+`"
                   r"|\$\$.+?\$\$|\$(?:[^$\n]|\n(?![ \t]*\n))+?\$", re.S)
_WORD_STAR = re.compile(r"(?<=[\w)\]])\*(?=[\w(\[])")
_SECTION = re.compile(r"^(?P<title>[A-Z][A-Za-z ]*(?: / [A-Za-z ]+)?):\s*$")
_ITEM = re.compile(r"^(?P<term>\(?[A-Za-z_][\w]*(?:, [A-Za-z_]\w*)*\)?):\s+(?P<text>.*)$")


class MathError(ValueError):
    """A formula that latex2mathml cannot convert."""


def math_to_mathml(tex: str, display: bool) -> str:
    try:
        mathml = _latex_to_mathml(tex.strip(), display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises several kinds of error on bad input
        raise MathError(f"cannot typeset ${tex}$: {type(error).__name__}: {error}") from None
    if "<merror" in mathml:
        raise MathError(f"cannot typeset ${tex}$: the converter reports an error")
    return mathml


def _math_inline(state, silent: bool) -> bool:
    """``$...$`` (pandoc's rule: no space just inside either dollar, no digit right after the closing one)."""
    src, start = state.src, state.pos
    if src[start] != "$":
        return False
    if src.startswith("$$", start):                       # $$...$$ inside a line: display math
        end = src.find("$$", start + 2)
        if end < 0 or end >= state.posMax:
            return False
        if not silent:
            state.push("math_display_inline", "math", 0).content = src[start + 2:end]
        state.pos = end + 2
        return True
    first = start + 1
    if first >= state.posMax or src[first].isspace():
        return False
    end = first
    while True:
        end = src.find("$", end)
        if end < 0 or end >= state.posMax:
            return False
        if src[end - 1] != "\\":
            break
        end += 1
    if src[end - 1].isspace() or (end + 1 < state.posMax and src[end + 1].isdigit()):
        return False
    if not silent:
        state.push("math_inline", "math", 0).content = src[first:end]
    state.pos = end + 1
    return True


def _math_block(state, start_line: int, end_line: int, silent: bool) -> bool:
    """A display formula: a line starting with ``$$``, up to a line ending with ``$$``."""
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    begin = state.bMarks[start_line] + state.tShift[start_line]
    first = state.src[begin:state.eMarks[start_line]].rstrip()
    if not first.startswith("$$"):
        return False
    rest = first[2:]
    if len(rest.strip()) > 2 and rest.strip().endswith("$$"):
        content, last = rest.strip()[:-2], start_line
    else:
        lines, last, closed = ([rest] if rest.strip() else []), start_line, False
        while last + 1 < end_line:
            last += 1
            text = state.src[state.bMarks[last] + state.tShift[last]:state.eMarks[last]].rstrip()
            if text.endswith("$$"):
                lines.append(text[:-2])
                closed = True
                break
            lines.append(text)
        if not closed:
            return False
        content = "\n".join(lines)
    if silent:
        return True
    state.line = last + 1
    token = state.push("math_block", "math", 0)
    token.block, token.content, token.map = True, content, [start_line, state.line]
    return True


def _highlight(code: str, language: str, attributes) -> str:
    """Fenced ``python`` blocks are highlighted as the code column is; other blocks stay plain."""
    if language.strip().lower() not in ("python", "py"):
        return ""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return f'<pre class="highlight"><code>{highlight(code, PythonLexer(), HtmlFormatter(nowrap=True))}</code></pre>'


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "typographer": False, "highlight": _highlight}).enable("table")
    md.inline.ruler.before("escape", "math_inline", _math_inline)
    md.block.ruler.before("fence", "math_block", _math_block,
                          {"alt": ["paragraph", "reference", "blockquote", "list"]})
    md.add_render_rule("math_inline", lambda self, tokens, i, options, env: math_to_mathml(tokens[i].content, False))
    md.add_render_rule("math_display_inline",
                       lambda self, tokens, i, options, env: math_to_mathml(tokens[i].content, True))
    md.add_render_rule("math_block", lambda self, tokens, i, options, env:
                       f'<div class="math">{math_to_mathml(tokens[i].content, True)}</div>\n')
    return md


_MD = None


def _prepare(text: str, resolve: Resolver | None) -> str:
    """Roles to links and ``a*b`` to an escaped star, outside code spans and math."""
    out, position = [], 0
    for match in _KEEP.finditer(text):
        out.append(_WORD_STAR.sub(r"\\*", text[position:match.start()]))
        out.append(_ROLE.sub(lambda m: _role(m, resolve), match.group(0)) if match.group("role") else match.group(0))
        position = match.end()
    out.append(_WORD_STAR.sub(r"\\*", text[position:]))
    return "".join(out)


def _role(match: re.Match, resolve: Resolver | None) -> str:
    target = match.group("target").strip()
    shown = target.rsplit(".", 1)[-1] if match.group("tilde") else target
    href = resolve(target) if resolve else None
    return f"[`{shown}`]({href})" if href else f"`{shown}`"


def render(text: str, resolve: Resolver | None = None) -> str:
    """Markdown with math to HTML; Sphinx roles resolved to links by ``resolve``."""
    global _MD
    if _MD is None:
        _MD = _markdown()
    return _MD.render(_prepare(text, resolve))


def docstring_to_markdown(doc: str) -> str:
    """A cleaned docstring as Markdown: ``Inputs:`` / ``Returns:`` blocks become lists of ``name``: text."""
    lines, out, index = doc.splitlines(), [], 0
    while index < len(lines):
        line = lines[index]
        header = _SECTION.match(line)
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if header and following.strip() and following[:1].isspace():
            base = len(following) - len(following.lstrip())
            items, index = [], index + 1
            while index < len(lines) and lines[index].strip():
                current = lines[index]
                depth = len(current) - len(current.lstrip())
                if depth < base:
                    break
                if depth == base or not items:
                    items.append(current.strip())
                else:
                    items[-1] += " " + current.strip()
                index += 1
            out += ["", f"**{header.group('title')}**", ""]
            for item in items:
                match = _ITEM.match(item)
                out.append(f"- `{match.group('term')}`: {match.group('text')}" if match else f"- {item}")
            out.append("")
            continue
        out.append(line)
        index += 1
    return "\n".join(out)


def escape(text: str) -> str:
    return html.escape(text, quote=True)

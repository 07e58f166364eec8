"""The derivations say what the code does: a block quoted 'as it is' is the code, a 'plain' block computes the
same numbers, and the names and order agree with the code and the README."""
import re
import textwrap

import numpy as np

from numpy_transformer.book.contents import REPOSITORY_DIR
from numpy_transformer.functional.layernorm import layernorm_backward, layernorm_forward

DERIVATIONS = REPOSITORY_DIR / "docs" / "derivations"


def python_blocks(text):
    """(the paragraph before, the code) of every fenced python block."""
    for match in re.finditer(r"(?:^|\n\n)((?:(?!\n\n).)*?)\n\n```python\n(.*?)```", text, flags=re.S):
        yield match.group(1), match.group(2)


def test_code_quoted_as_it_is_is_the_code():
    quoted = 0
    for path in sorted(DERIVATIONS.glob("*.md")):
        for before, code in python_blocks(path.read_text()):
            named = re.search(r"as it is in `([\w/]+\.py)`", before)
            if not named:
                continue
            source = (REPOSITORY_DIR / named.group(1)).read_text()
            lines = code.rstrip("\n").splitlines()
            indent = re.search(rf"^( *){re.escape(lines[0])}$", source, flags=re.M)
            assert indent, f"{path.name}: {lines[0]!r} is not a line of {named.group(1)}"
            excerpt = textwrap.indent("\n".join(lines), indent.group(1), lambda line: line.strip() != "")
            assert excerpt in source, f"{path.name}: the block quoted as it is in {named.group(1)} is not the code now"
            quoted += 1
    assert quoted >= 1


def test_the_plain_layernorm_formula_computes_what_the_code_does():
    text = (DERIVATIONS / "layernorm.md").read_text()
    plain = next(code for before, code in python_blocks(text) if "Plainly" in before)
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((2, 3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    out, cache = layernorm_forward(x, gamma, beta)
    dout = rng.standard_normal(out.shape)
    expected = layernorm_backward(dout, cache)
    names = {"dout": dout, "xhat": cache["xhat"], "rstd": cache["rstd"], "gamma": gamma, "reduce_axes": (0, 1)}
    exec(plain, {}, names)
    for got, want in zip((names["dx"], names["dgamma"], names["dbeta"]), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_score_matrix_and_the_number_of_keys_have_different_names():
    for text in ((DERIVATIONS / "attention.md").read_text(),
                 (REPOSITORY_DIR / "numpy_transformer/functional/attention.py").read_text().split('"""')[1]):
        assert not re.search(r"\bdS\b|softmax\}?(_\{\\text\{rows\}\})?\(S\)|\bS &=", text)
        assert "A = s" in text or "A &= s" in text


def test_multihead_derives_the_fused_projection():
    text = (DERIVATIONS / "multihead.md").read_text()
    assert "## The fused QKV projection and its backward" in text
    assert "dX = dQ\\, W_Q + dK\\, W_K + dV\\, W_V" in text
    for path in ("numpy_transformer/nn/attention.py", "docs/derivations/README.md"):
        assert "multihead.md" in (REPOSITORY_DIR / path).read_text()


def test_softmax_speaks_of_its_own_axis():
    text = (REPOSITORY_DIR / "numpy_transformer/functional/softmax.py").read_text()
    assert "T x T" not in text and "N \\times N" in text

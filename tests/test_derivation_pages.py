"""The derivation pages of the decoder chapters show the code as it is: every code line in a page's
"The formula in the code" section is a line of the source file it names."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "blocked_attention.md": "numpy_transformer/functional/blocked_attention.py",
    "rmsnorm.md": "numpy_transformer/functional/rmsnorm.py",
    "rope.md": "numpy_transformer/functional/rope.py",
    "gqa.md": "numpy_transformer/functional/gqa.py",
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_formula_in_the_code_is_the_code(page):
    text = (ROOT / "docs" / "derivations" / page).read_text()
    section = text.split("## The formula in the code", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, f"{page}: no python block in 'The formula in the code'"
    source = {line.strip() for line in (ROOT / PAGES[page]).read_text().splitlines()}
    shown = [line.strip() for block in blocks for line in block.splitlines()]
    code = [line for line in shown if line and not line.startswith("#")]
    assert len(code) >= 3
    missing = [line for line in code if line not in source]
    assert missing == [], f"{page} shows lines that are not in {PAGES[page]}: {missing}"
    assert f"docs/derivations/{page}" in (ROOT / PAGES[page]).read_text()  # and the code points to the page

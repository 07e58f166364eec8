"""The GPT demo runs end to end in its quick mode (the cache gives the same tokens as recomputing), and with
--model it continues a prompt with a GPT-2 folder (tiny, random weights, a BPE tokenizer learned here)."""
import json
import os
import re
import subprocess
import sys

import hf_twins
from numpy_transformer.text.bpe import train_byte_level_bpe
from reference import require

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "demos", "10_gpt.py")


def run(tmp_path, *options):
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, os.path.abspath(DEMO), "--out", str(tmp_path), *options],
                            capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_gpt_demo_quick(tmp_path):
    out = run(tmp_path, "--quick")
    for picture in ("10_loss.png", "10_attention.png"):
        assert (tmp_path / picture).stat().st_size > 1000, picture
    assert "step 30/30" in out and "held_out_exact" in out
    exact = re.search(r"exactly right: (\d+) of 500 \((\d\.\d+)\)", out)
    assert exact and 0.0 <= float(exact.group(2)) <= 1.0
    assert out.count("same answers: True") == 1 and out.count("same tokens: True") == 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["held_out_exact_match"] == float(exact.group(2))
    assert metrics["long_cache_seconds"] > 0 and metrics["long_recompute_seconds"] > 0


def test_gpt_demo_continues_a_gpt2_folder(tmp_path):
    transformers = require("transformers")
    tokenizer = train_byte_level_bpe(["The Transformer is a model of attention. " * 3, "Hello world!"],
                                     vocab_size=300)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=2, n_head=4,
                                     n_positions=48, bos_token_id=tokenizer.eos_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path / "gpt2"
    hf_twins.save_tiny("GPT2LMHeadModel", str(folder), spec=(transformers.GPT2LMHeadModel, config))
    tokenizer.save(folder)
    out = run(tmp_path, "--quick", "--model", str(folder), "--prompt", "The Transformer is", "--max-new-tokens", "12")
    assert "2 blocks, width 32, 4 heads" in out
    assert "same tokens: True" in out
    assert "The Transformer is" in out

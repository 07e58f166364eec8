"""The code is clean under the project's lint configuration (ruff.toml: errors, pyflakes, imports, bugbear,
pyupgrade; line length 120). No formatter is run: it would collapse the aligned column of shape comments."""
import pathlib
import subprocess

from reference import require

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = require("ruff")
    result = subprocess.run([ruff.find_ruff_bin(), "check", "--no-cache", str(ROOT)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_configuration_is_the_projects():
    config = (ROOT / "ruff.toml").read_text()
    assert "line-length = 120" in config
    assert 'select = ["E", "F", "I", "B", "UP"]' in config

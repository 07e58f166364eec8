"""CI runs exactly the install-and-test line that README.md gives a new user."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_command():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("pip install")]
    assert len(ci_lines) == 1
    assert f"```bash\n{ci_lines[0]}\n```" in readme

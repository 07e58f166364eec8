"""The demos' shared command line: every number is checked once, in demos/_common.py, with a message that names
the option, what it got and what it expected."""
import argparse
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "demos"))
import _common  # noqa: E402


def _parse(monkeypatch, capsys, *argv, add=None):
    monkeypatch.setattr(sys, "argv", ["demo.py", *argv])
    return _common.setup("demo", "a test", add)


def test_integer_and_real_accept_their_range_and_name_what_they_expect():
    assert _common.integer(1)("3") == 3 and _common.integer(0, 5)("0") == 0
    assert _common.real(0, low_open=True)("1e-3") == 1e-3
    for parse, text, message in [
        (_common.integer(1), "0", "got 0; expected an integer >= 1"),
        (_common.integer(1), "-5", "got -5; expected an integer >= 1"),
        (_common.integer(1, 64), "65", "got 65; expected an integer in [1, 64]"),
        (_common.integer(0), "2.5", "got '2.5'; expected an integer >= 0"),
        (_common.real(0, low_open=True), "0", "got 0; expected a finite number > 0"),
        (_common.real(0), "nan", "got nan; expected a finite number >= 0"),
        (_common.real(0, 1), "inf", "got inf; expected a finite number in [0, 1]"),
        (_common.real(), "x", "got 'x'; expected a finite number"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^{__import__('re').escape(message)}$"):
            parse(text)


def test_plain_int_and_float_options_refuse_negative_and_non_finite_values(monkeypatch, capsys):
    def add(parser):
        parser.add_argument("--epochs", type=int, default=4)
        parser.add_argument("--lr", type=float, default=1e-3)

    assert _parse(monkeypatch, capsys, "--epochs", "0", "--lr", "0.5", add=add).epochs == 0
    for argv, message in [(["--epochs", "-1"], "argument --epochs: got -1; expected an integer >= 0"),
                          (["--lr", "-0.1"], "argument --lr: got -0.1; expected a finite number >= 0"),
                          (["--lr", "inf"], "argument --lr: got inf; expected a finite number >= 0"),
                          (["--seed", "-2"], "argument --seed: got -2; expected an integer >= 0")]:
        with pytest.raises(SystemExit) as stop:
            _parse(monkeypatch, capsys, *argv, add=add)
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_setup_does_not_create_the_output_folder(monkeypatch, capsys, tmp_path):
    args = _parse(monkeypatch, capsys, "--out", str(tmp_path / "pictures"))
    assert not (tmp_path / "pictures").exists()
    _common.done(args.out)
    assert "0 pictures saved to" in capsys.readouterr().out
    path = _common.output_path(args.out, "model.npz")
    assert (tmp_path / "pictures").is_dir() and path == str(tmp_path / "pictures" / "model.npz")


def test_done_counts_in_words(tmp_path, capsys):
    (tmp_path / "one.png").write_bytes(b"x")
    _common.done(str(tmp_path))
    assert "\n1 picture saved to" in capsys.readouterr().out
    (tmp_path / "two.png").write_bytes(b"x")
    _common.done(str(tmp_path))
    assert "\n2 pictures saved to" in capsys.readouterr().out

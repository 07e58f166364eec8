"""Atomic saving of checkpoints and safetensors files: what a killed writer leaves, and how the next save or
load clears it; file permissions; errors that name the file asked for."""
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from numpy_transformer.io.checkpoint import read_checkpoint, save_checkpoint
from numpy_transformer.io.safetensors import load_safetensors, save_safetensors
from numpy_transformer.nn import Linear

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Saves a file and is killed (SIGKILL, as by `kill -9`) after the temporary file is fully written, just
# before the rename: the moment that leaves the largest file behind.
KILLED_WRITER = """
import os, signal, sys
import numpy as np
from numpy_transformer.io.checkpoint import save_checkpoint
from numpy_transformer.io.safetensors import save_safetensors
from numpy_transformer.nn import Linear
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
kind, path = sys.argv[1], sys.argv[2]
if kind == "checkpoint":
    save_checkpoint(path, Linear(64, 64, rng=0))
else:
    save_safetensors(path, {"w": np.ones((64, 64), np.float32)})
"""


def save(kind, path, seed=0):
    if kind == "checkpoint":
        save_checkpoint(path, Linear(64, 64, rng=seed))
    else:
        save_safetensors(path, {"w": np.full((64, 64), seed, np.float32)})


def load(kind, path):
    return read_checkpoint(path) if kind == "checkpoint" else load_safetensors(path)


def killed_save(kind, path):
    """Run a save in another process that is killed mid-way; return what it left in the folder."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, kind, str(path)], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    return sorted(os.listdir(os.path.dirname(path)))


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process ids as on POSIX")
@pytest.mark.parametrize("kind", ["checkpoint", "safetensors"])
def test_what_a_killed_save_leaves_is_removed_by_the_next_save_or_load(tmp_path, kind):
    path = tmp_path / ("model.npz" if kind == "checkpoint" else "model.safetensors")
    left = killed_save(kind, path)
    assert len(left) == 1 and left[0].startswith(".nt-partial.") and left[0].endswith(path.name)
    assert os.path.getsize(tmp_path / left[0]) > 64 * 64 * 4        # a whole file's worth of bytes
    save(kind, path)                                                 # the next save clears it
    assert os.listdir(tmp_path) == [path.name]

    assert killed_save(kind, path) != [path.name]                    # and so does the next load
    load(kind, path)
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.skipif(os.name != "posix", reason="process ids as on POSIX")
def test_only_temporaries_of_gone_writers_are_removed(tmp_path):
    from numpy_transformer.io import atomic

    host = atomic._host_tag()
    live = f"{atomic.TEMPORARY_PREFIX}{host}.{os.getppid()}.0a1b2c3d.model.npz"      # a writer still running
    old = f"{atomic.TEMPORARY_PREFIX}{host}.{os.getppid()}.1a1b2c3d.model.npz"       # running, but untouched for long
    elsewhere = f"{atomic.TEMPORARY_PREFIX}0123abcd.999999999.2a1b2c3d.model.npz"   # another machine's writer
    foreign = [".nt-partial.not-ours", ".model.npz.x1y2.tmp", "notes.txt"]          # names we did not make
    for name in [live, old, elsewhere] + foreign:
        (tmp_path / name).write_bytes(b"partial")
    hours_ago = time.time() - 2 * atomic.STALE_AFTER_SECONDS
    os.utime(tmp_path / old, (hours_ago, hours_ago))
    assert atomic.remove_stale_temporaries(tmp_path) == [old]
    assert sorted(os.listdir(tmp_path)) == sorted([live, elsewhere] + foreign)


@pytest.mark.parametrize("kind", ["checkpoint", "safetensors"])
def test_saved_files_have_the_usual_permissions(tmp_path, kind):
    path = tmp_path / "model.bin"
    previous = os.umask(0o022)
    try:
        save(kind, path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644          # 0o666 less the umask, like any new file
        os.umask(0o027)
        save(kind, tmp_path / "other.bin")
        assert stat.S_IMODE(os.stat(tmp_path / "other.bin").st_mode) == 0o640
        os.chmod(path, 0o600)                                        # a file replaced keeps its permissions
        save(kind, path, seed=1)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(previous)


@pytest.mark.parametrize("kind", ["checkpoint", "safetensors"])
def test_errors_name_the_file_asked_for(tmp_path, kind):
    path = tmp_path / "missing" / "model.bin"
    with pytest.raises(FileNotFoundError) as caught:
        save(kind, path)
    assert str(path) in str(caught.value) and "missing" in str(caught.value) and "partial" not in str(caught.value)
    with pytest.raises(IsADirectoryError, match="folder"):
        save(kind, tmp_path)
    assert os.listdir(tmp_path) == []

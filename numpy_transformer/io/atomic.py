"""Atomic file writing, shared by the checkpoint and safetensors writers.

A file is written in full to a temporary file in the target's own folder, flushed to disk, then renamed over
the target in one step (``os.replace``): a reader sees the old file or the new one, never half of one.

A process killed while writing (``kill -9``, a power cut) cannot remove its temporary file, so temporary files
are named to be recognised later::

    .nt-partial.<host>.<pid>.<random>.<target name>

``<host>`` is a short hash of the machine's name and ``<pid>`` the id of the writing process. Every save (and
every load) in a folder removes the temporary files there whose writer is certainly gone: written on this
machine by a process that no longer exists, or last modified more than :data:`STALE_AFTER_SECONDS` ago
(a process id can be reused, and a writer on another machine sharing the folder cannot be asked). A file
being written right now by a live process is never touched. Removal is best-effort: a folder that cannot be
written to is left as it is.

The new file gets the permissions a new file gets from ``open``: ``0o666`` less the process's umask (usually
``0o644``, readable by everyone, writable by the owner); a file it replaces passes its own permissions on.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import socket
import stat
import time
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["atomic_write", "remove_stale_temporaries", "TEMPORARY_PREFIX", "STALE_AFTER_SECONDS"]

#: the name of every temporary file starts with this
TEMPORARY_PREFIX = ".nt-partial."

#: a temporary file untouched for this long is stale even if a process with its id exists
STALE_AFTER_SECONDS = 3600.0

_NAME_MAX = 255  # the longest file name most file systems allow


def _host_tag() -> str:
    """8 hex digits naming this machine (its host name, hashed: short and free of dots)."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _temporary_name(target_name: str) -> str:
    head = f"{TEMPORARY_PREFIX}{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}."
    return head + target_name[:_NAME_MAX - len(head)]


def _process_exists(pid: int) -> bool:
    if os.name != "posix":                  # elsewhere os.kill(pid, 0) is no harmless question: rely on age
        return True
    try:
        os.kill(pid, 0)                     # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:                         # it exists but belongs to someone else, or we cannot tell
        return True
    return True


def _is_stale(folder: str, name: str, now: float) -> bool:
    """Whether the temporary file ``name`` in ``folder`` was left by a writer that is certainly gone."""
    parts = name[len(TEMPORARY_PREFIX):].split(".", 3)  # host, pid, random, target name
    if len(parts) != 4 or not parts[1].isdigit():
        return False                                     # not one of ours: leave it alone
    host, pid = parts[0], int(parts[1])
    try:
        age = now - os.stat(os.path.join(folder, name)).st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_SECONDS:
        return True
    return host == _host_tag() and pid != os.getpid() and not _process_exists(pid)


def remove_stale_temporaries(folder) -> list[str]:
    """Remove the temporary files that killed writers left in ``folder``; returns the names removed."""
    folder = os.fspath(folder)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if name.startswith(TEMPORARY_PREFIX) and _is_stale(folder, name, now):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))
                removed.append(name)
    return removed


def _create_temporary(path: str, folder: str) -> tuple[int, str]:
    """Open a new temporary file next to ``path``; an error names ``path``, the file the caller asked for."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"cannot save: its folder {folder!r} does not exist (create it "
                                "first)", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot save: it is a folder; expected a file name", path)
    temporary = os.path.join(folder, _temporary_name(os.path.basename(path)))
    try:
        # mode 0o666 less the umask, as for any new file (mkstemp would give 0o600)
        return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), temporary
    except OSError as error:
        raise type(error)(error.errno, f"cannot save ({error.strerror})", path) from None


def atomic_write(path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through ``write(file)`` so that ``path`` is replaced whole or not at all.

    Inputs:
        path: the file to write; its folder must exist
        write: called with a binary file object open for writing; it writes the whole content

    On any error (in ``write`` or on the disk) the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(folder)
    descriptor, temporary = _create_temporary(path, folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):   # a file being replaced passes its permissions on
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    try:  # make the rename itself durable (POSIX); not possible on every platform
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError:
        pass

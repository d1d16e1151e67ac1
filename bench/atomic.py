"""Atomic writes of files and folders, and the one naming scheme for their temporary entries.

A file (or folder) is written under a temporary name in the same folder, flushed to disk, then
renamed into place and the folder itself fsynced: a reader, a rerun after kill -9 or a reboot after
a power cut sees either the old entry or the whole new one, never half.

Every temporary file and folder the project creates is named by :func:`temp_name`::

    .tmp-dreambench-<pid>@<host>+<8 hex>+<final name>

so the next run recognises it (:func:`is_temp_name`) and the step that owns the folder sweeps it
(:func:`sweep_temp_entries`) before it starts: a kill never leaves an entry for good. The writer's
pid and host in the name let a sweep in a shared cache tell an orphan (writer dead) from a file a
live process on this or another machine is still writing.

Files and folders get the mode the process umask gives (0644 / 0755 under umask 022, 0664 / 0775
under 002), as ``open`` and ``mkdir`` would: the kernel applies the umask to the mode 0666 / 0777
we ask for (``tempfile.mkstemp`` would force 0600, which a shared folder or a web server cannot read).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dreambench.hold_points import hold_point

TEMP_PREFIX = ".tmp-dreambench-"
_TEMP_RE = re.compile(r"^\.tmp-dreambench-(?P<pid>\d+)@(?P<host>[A-Za-z0-9.-]*)\+[0-9a-f]{8}\+")
# A temp entry written by another machine cannot be checked for a live writer; one untouched this
# long is an orphan (a save in progress touches its folder far more often than this).
FOREIGN_TEMP_MAX_AGE_S = 24 * 3600
_reclaimed_total = 0
_reclaimed_lock = threading.Lock()
# The final name is in the temp name only so a person can tell what it was; keep well under NAME_MAX.
_MAX_FINAL_CHARS = 120


def this_host() -> str:
    """This machine's name as it appears in temp names and lock files (hostname characters only)."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64]


def temp_name(final_name: str) -> str:
    """A fresh temp name for an entry that will be renamed to ``final_name`` in the same folder."""
    return (
        f"{TEMP_PREFIX}{os.getpid()}@{this_host()}+{secrets.token_hex(4)}+{final_name[:_MAX_FINAL_CHARS]}"
    )


def is_temp_name(name: str) -> bool:
    """True for a name made by :func:`temp_name` (a file or folder nobody reads, only renames)."""
    return name.startswith(TEMP_PREFIX)


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists on this machine (one we may not signal counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_gone(entry: Path) -> bool:
    match = _TEMP_RE.match(entry.name)
    if match is None:
        # A name with our prefix but no owner field: nothing can still be writing it by our rules.
        return True
    if match["host"] == this_host():
        return not pid_alive(int(match["pid"]))
    try:
        return time.time() - entry.lstat().st_mtime > FOREIGN_TEMP_MAX_AGE_S
    except FileNotFoundError:
        return False


def _own_bytes(path: Path) -> int:
    # A hard-linked file (a weights folder links the base model's unchanged files) frees nothing
    # when one of its names goes; a symlink frees only itself.
    info = path.lstat()
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 else 0


def entry_bytes(entry: Path) -> int:
    """Bytes removing a file, or a folder with everything under it, would free (links not followed)."""
    try:
        if not entry.is_dir() or entry.is_symlink():
            return _own_bytes(entry)
        return sum(_own_bytes(p) for p in entry.rglob("*") if not p.is_dir() or p.is_symlink())
    except FileNotFoundError:
        return 0


def remove_entry(entry: Path) -> int:
    """Delete a file or folder; return the bytes it held (0 if it was already gone)."""
    size = entry_bytes(entry)
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except FileNotFoundError:
        return 0
    return size


def sweep_temp_entries(folder: Path, *, recursive: bool = True, exclusive: bool = False) -> int:
    """Delete the temp files and folders a killed writer left in ``folder``; return bytes reclaimed.

    ``exclusive``: the caller holds the lock over ``folder`` (a run directory, a subject), so every
    temp entry in it is an orphan. Otherwise (a cache several runs share) only entries whose writer
    is gone are removed: its pid is dead on this host, or, written on another host, it is untouched
    for :data:`FOREIGN_TEMP_MAX_AGE_S`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    reclaimed = 0
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            children = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for child in children:
            path = Path(child.path)
            if is_temp_name(child.name):
                if exclusive or _writer_gone(path):
                    reclaimed += remove_entry(path)
            elif recursive and child.is_dir(follow_symlinks=False):
                pending.append(path)
    count_reclaimed(reclaimed)
    return reclaimed


def count_reclaimed(n: int) -> None:
    """Add ``n`` bytes to this process's reclaimed total (for sweeps of names this module did not make)."""
    global _reclaimed_total
    with _reclaimed_lock:
        _reclaimed_total += n


def reclaimed_bytes() -> int:
    """Bytes every sweep of this process has reclaimed so far (`bench run` reports the growth)."""
    return _reclaimed_total


def fsync_directory(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp_file(folder: Path, final_name: str) -> tuple[int, Path]:
    while True:
        tmp = folder / temp_name(final_name)
        try:
            # 0o666 & ~umask, like open(); O_EXCL so two writers never share a temp file.
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably, with the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        hold_point(f"atomic-write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _fsync_tree(folder: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(folder):
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            if os.path.islink(path):
                continue  # a link to a file elsewhere (e.g. the base model's): not ours to flush
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_directory(Path(dirpath))


@contextlib.contextmanager
def atomic_directory(path: Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temp folder beside ``path``; on success flush it and rename it to ``path``.

    On an exception the temp folder is removed; after kill -9 it stays, recognisably named, for
    the owning step's sweep. ``replace``: an existing ``path`` is replaced (the old one is first
    renamed to a temp name, so a kill leaves either folder whole). With ``replace=False`` an
    existing ``path`` wins and the new folder is discarded: for caches whose contents are
    determined by their name, where a concurrent writer may have finished first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name(path.name)
    os.mkdir(tmp, 0o777)  # 0o777 & ~umask, like mkdir
    try:
        yield tmp
        _fsync_tree(tmp)
        hold_point(f"atomic-directory:{path.name}")
        if path.exists() and replace:
            old = path.parent / temp_name(path.name)
            os.rename(path, old)
            os.rename(tmp, path)
            fsync_directory(path.parent)
            remove_entry(old)
        elif not path.exists():
            try:
                os.rename(tmp, path)
            except OSError:
                # Another writer renamed its folder into place first (same name, same contents).
                if replace or not path.is_dir():
                    raise
        fsync_directory(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

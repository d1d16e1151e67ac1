"""bench/atomic.py: the umask's file modes, fsync of the folder after the rename, recognisable temp
names, sweeps that spare live writers, and atomic folders."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dreambench import atomic
from dreambench.atomic import (
    FOREIGN_TEMP_MAX_AGE_S,
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    is_temp_name,
    sweep_temp_entries,
    temp_name,
)


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_and_folders_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert _mode(tmp_path / "a.txt") == 0o666 & ~umask  # 0644 under 022, 0664 under 002
    with atomic_directory(tmp_path / "weights") as tmp:
        (tmp / "unet").mkdir()
        (tmp / "unet" / "config.json").write_text("{}")
    assert _mode(tmp_path / "weights") == 0o777 & ~umask
    assert _mode(tmp_path / "weights" / "unet" / "config.json") == 0o666 & ~umask


def test_the_folder_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[Path, bool]] = []
    real = atomic.fsync_directory

    def record(folder: Path) -> None:
        synced.append((Path(folder), (tmp_path / "r.json").exists()))
        real(folder)

    monkeypatch.setattr(atomic, "fsync_directory", record)
    atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert synced == [(tmp_path, True)], "the parent folder is flushed once the new name is in it"


def test_temp_names_are_recognisable_and_carry_the_writer(tmp_path: Path) -> None:
    name = temp_name("results.json")
    assert is_temp_name(name) and name.endswith("+results.json")
    assert f"{os.getpid()}@" in name
    assert not is_temp_name("results.json") and not is_temp_name(".hidden")
    # A temp file beside the target while it is written; none after.
    atomic_write_text(tmp_path / "x.txt", "1")
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _temp_entry(folder: Path, pid: int, host: str, final: str, size: int, as_dir: bool = False) -> Path:
    entry = folder / f"{atomic.TEMP_PREFIX}{pid}@{host}+0123abcd+{final}"
    if as_dir:
        (entry / "unet").mkdir(parents=True)
        (entry / "unet" / "weights.bin").write_bytes(b"w" * size)
    else:
        entry.write_bytes(b"t" * size)
    return entry


def test_sweep_removes_orphans_and_spares_live_writers(tmp_path: Path) -> None:
    host, dead = atomic.this_host(), _dead_pid()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    orphan_dir = _temp_entry(deep, dead, host, "weights", 1000, as_dir=True)
    orphan_file = _temp_entry(tmp_path, dead, host, "0-0.png", 10)
    live = _temp_entry(tmp_path, os.getpid(), host, "1-0.png", 20)
    foreign_fresh = _temp_entry(tmp_path, 1, "another-host", "x.npy", 30)
    foreign_old = _temp_entry(tmp_path, 1, "another-host", "y.npy", 40)
    old = time.time() - FOREIGN_TEMP_MAX_AGE_S - 60
    os.utime(foreign_old, (old, old))
    keep = tmp_path / "results.json"
    keep.write_text("{}")

    assert sweep_temp_entries(tmp_path, recursive=False) == 10 + 40
    assert orphan_dir.exists(), "not recursive: the subfolder is left alone"
    assert sweep_temp_entries(tmp_path) == 1000
    assert not orphan_dir.exists() and not orphan_file.exists() and not foreign_old.exists()
    assert live.exists() and foreign_fresh.exists() and keep.exists()
    # Under the folder's lock every temp entry is an orphan (a Ray worker on another host died).
    assert sweep_temp_entries(tmp_path, exclusive=True) == 20 + 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "results.json"]
    assert atomic.reclaimed_bytes() >= 1100


def test_atomic_directory_replaces_keeps_or_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "weights"
    with atomic_directory(target) as tmp:
        assert is_temp_name(tmp.name) and not target.exists()
        (tmp / "v").write_text("1")
    with atomic_directory(target) as tmp:
        (tmp / "v").write_text("2")
    assert (target / "v").read_text() == "2", "replace=True: the new folder wins"
    with atomic_directory(target, replace=False) as tmp:
        (tmp / "v").write_text("3")
    assert (target / "v").read_text() == "2", "replace=False: an existing folder wins"
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "other") as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("save failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights"], "no temp folder after a failure"

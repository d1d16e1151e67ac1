"""The embedding cache's batched writes: one flush per batch, whole entries or none, no temp files left."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dreambench.atomic import is_temp_name, temp_name
from dreambench.metrics import embedding_cache
from dreambench.metrics.embedder import EmbedderId
from dreambench.metrics.embedding_cache import EmbeddingCache

ID = EmbedderId("timm", "ViT-S/16", "smoke:seed0", "ab" * 32)


def _vectors(n: int, dim: int = 8) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(f"{i:064x}", rng.standard_normal(dim).astype(np.float32)) for i in range(n)]


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if is_temp_name(p.name)]


def test_put_many_flushes_once_per_batch_and_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(embedding_cache, "_SYNCFS", lambda fd: calls.append(fd) or 0)
    cache = EmbeddingCache(ID, root=tmp_path)
    items = _vectors(40)
    cache.put_many("images", items)
    assert len(calls) == 1
    got = cache.get_many("images", [sha for sha, _ in items])
    assert all(np.array_equal(got[sha], v) for sha, v in items)
    assert _temp_files(tmp_path) == []


def test_put_many_without_syncfs_fsyncs_each_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(embedding_cache, "_SYNCFS", None)
    monkeypatch.setattr(embedding_cache.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    EmbeddingCache(ID, root=tmp_path).put_many("images", _vectors(3))
    assert len(synced) >= 3


def test_a_failing_batch_leaves_whole_entries_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EmbeddingCache(ID, root=tmp_path)
    items = _vectors(5)
    real_replace = os.replace
    renamed: list[str] = []

    def replace_then_fail(src: str | Path, dst: str | Path) -> None:
        if str(dst).endswith(".npy"):  # (os.replace also writes the cache's id.json)
            if len(renamed) == 2:
                raise OSError("disk gone")
            renamed.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(embedding_cache.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="disk gone"):
        cache.put_many("images", items)
    monkeypatch.undo()
    got = cache.get_many("images", [sha for sha, _ in items])
    assert len(got) == 2 and all(np.array_equal(got[sha], v) for sha, v in items[:2])
    assert _temp_files(tmp_path) == []


def test_first_write_sweeps_temp_files_of_a_dead_writer(tmp_path: Path) -> None:
    cache = EmbeddingCache(ID, root=tmp_path)
    shard = cache.folder / "images" / "00"
    shard.mkdir(parents=True)
    # A temp file named by a process that no longer exists (pid 2**22 + 1 is above pid_max's default).
    orphan = shard / temp_name("x.npy").replace(f"-{os.getpid()}@", f"-{2**22 + 1}@")
    orphan.write_bytes(b"half a vector")
    cache.put_many("images", _vectors(1))
    assert not orphan.exists()

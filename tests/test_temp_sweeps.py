"""Each step that owns a folder sweeps the temp entries killed writers left there before it writes:
the dataset fetch (beside the destination), the embedding cache, the report folder. Entries of a
live writer are kept (another run may be writing the same shared cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dreambench.atomic import TEMP_PREFIX, is_temp_name, this_host
from dreambench.dataset.fetch import fetch_dataset
from dreambench.errors import BenchError
from dreambench.metrics.embedder import EmbedderId
from dreambench.metrics.embedding_cache import EmbeddingCache


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _left_by(pid: int, folder: Path, final: str) -> Path:
    """A temp folder as a writer with ``pid`` on this host would have left it, with a file inside."""
    entry = folder / f"{TEMP_PREFIX}{pid}@{this_host()}+0123abcd+{final}"
    entry.mkdir(parents=True)
    (entry / "part").write_bytes(b"x" * 100)
    return entry


def test_fetch_sweeps_a_killed_fetch_stage_and_keeps_a_live_one(tmp_path: Path) -> None:
    dead = _left_by(_dead_pid(), tmp_path, "dreambooth.fetch")
    live = _left_by(os.getpid(), tmp_path, "dreambooth.fetch")
    with pytest.raises(BenchError, match="download of"):
        fetch_dataset(tmp_path / "dreambooth", url=f"file://{tmp_path}/absent.tar.gz", progress=False)
    assert not dead.exists() and live.exists()
    assert [p.name for p in tmp_path.iterdir() if is_temp_name(p.name)] == [live.name], "nothing else left"


def test_embedding_cache_sweeps_before_its_first_write(tmp_path: Path) -> None:
    cache = EmbeddingCache(EmbedderId("timm", "vit_small_patch16_224", "smoke:seed0", "0" * 64), root=tmp_path)
    dead = _left_by(_dead_pid(), cache.folder / "images" / "ab", "ab" + "0" * 62 + ".npy")
    cache.put("images", "ab" + "1" * 62, np.ones(4, dtype=np.float32) / 2)
    assert not dead.exists()
    assert not [p for p in tmp_path.rglob("*") if is_temp_name(p.name)]

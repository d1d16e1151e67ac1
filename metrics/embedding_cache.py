"""On-disk embedding cache, keyed by (embedder id, content sha256).

Layout: `cache_root()/embeddings/<embedder id key>/`
    id.json                              the full EmbedderId, for humans and audits
    images/<sha[:2]>/<sha256>.npy        one float32 vector per image, keyed by the file-bytes sha256
    texts/<sha[:2]>/<sha256>.npy         one per text, keyed by sha256 of its utf-8 bytes

One file per item, written with an atomic rename: a kill -9 (or a power cut) leaves either no file
or a whole one, concurrent readers never see a partial vector, and concurrent writers of the same
item write the same bytes. A file that still fails to load (disk trouble) counts as a miss and is
rewritten.

Writes come a batch at a time (`put_many`): every vector of the batch goes to its own temp file
(named by `dreambench.atomic.temp_name`, so the first write of a later process sweeps what a
killed writer left), then one flush of the filesystem (syncfs) makes them all durable, then each
is renamed into place. One flush per batch instead of one fsync per vector, and the same
guarantee: a name only ever points at flushed, whole bytes. The renames themselves are not
flushed; an entry a power cut loses is a cache miss, recomputed next time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from dreambench.atomic import atomic_write_json, sweep_temp_entries, temp_name
from dreambench.cache_root import cache_root
from dreambench.errors import BenchError
from dreambench.metrics.embedder import EmbedderId

KINDS = ("images", "texts")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2) (flush one filesystem), or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.syncfs  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_SYNCFS = _load_syncfs()


def flush_files(paths: list[Path], folder: Path) -> None:
    """Make the bytes of `paths` (all on `folder`'s filesystem) durable with one syncfs call, or
    one fsync per file where syncfs is unavailable or fails."""
    if _SYNCFS is not None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _npy_bytes(vector: np.ndarray) -> bytes:
    vector = np.asarray(vector, dtype=np.float32)
    if vector.ndim != 1:
        raise ValueError(f"expected one (D,) vector, got shape {vector.shape}")
    buffer = io.BytesIO()
    np.save(buffer, vector, allow_pickle=False)
    return buffer.getvalue()


def text_sha256(text: str) -> str:
    """The cache key of a text: sha256 of its utf-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeddings of one embedder. `get`/`put` single vectors (D,), float32, unit length."""

    def __init__(self, embedder_id: EmbedderId, root: Path | None = None) -> None:
        self.embedder_id = embedder_id
        self.folder = (root if root is not None else cache_root() / "embeddings") / embedder_id.key
        self._id_written = False

    def _path(self, kind: str, sha256: str) -> Path:
        if kind not in KINDS:
            raise BenchError(f"unknown embedding kind {kind!r}; valid: {', '.join(KINDS)}")
        if not _SHA256.fullmatch(sha256):
            raise BenchError(f"bad sha256 {sha256!r}: expected 64 lowercase hex digits")
        return self.folder / kind / sha256[:2] / f"{sha256}.npy"

    def get(self, kind: str, sha256: str) -> np.ndarray | None:
        """The cached vector, or None when absent (or unreadable)."""
        path = self._path(kind, sha256)
        try:
            vector = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):
            return None
        if vector.ndim != 1 or vector.dtype != np.float32 or not np.all(np.isfinite(vector)):
            return None
        return vector

    def get_many(self, kind: str, sha256s: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached vectors for the keys present; missing keys are left out."""
        found: dict[str, np.ndarray] = {}
        for sha in sha256s:
            if sha not in found and (vector := self.get(kind, sha)) is not None:
                found[sha] = vector
        return found

    def put(self, kind: str, sha256: str, vector: np.ndarray) -> None:
        """Store one vector (see `put_many`)."""
        self.put_many(kind, [(sha256, vector)])

    def put_many(self, kind: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store (sha256, vector) pairs with one flush to disk for all of them (module docstring)."""
        staged = [(self._path(kind, sha), _npy_bytes(vector)) for sha, vector in items]
        if not staged:
            return
        if not self._id_written:
            # First write of this process: remove the temp files of killed writers (bench/atomic.py).
            sweep_temp_entries(self.folder)
            atomic_write_json(self.folder / "id.json", self.embedder_id.as_dict())
            self._id_written = True
        temps: list[Path] = []
        try:
            for final, data in staged:
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp = final.parent / temp_name(final.name)
                # 0o666 & ~umask like open(); O_EXCL: a temp file is never shared by two writers.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                temps.append(tmp)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            flush_files(temps, self.folder)
            for tmp, (final, _) in zip(temps, staged):
                os.replace(tmp, final)
        except BaseException:
            for tmp in temps:
                tmp.unlink(missing_ok=True)
            raise

"""On-disk embedding cache, keyed by (embedder id, content sha256).

Layout: `cache_root()/embeddings/<embedder id key>/`
    id.json                              the full EmbedderId, for humans and audits
    images/<sha[:2]>/<sha256>.npy        one float32 vector per image, keyed by the file-bytes sha256
    texts/<sha[:2]>/<sha256>.npy         one per text, keyed by sha256 of its utf-8 bytes

One file per item, written with an atomic rename: a kill -9 leaves either no file or a whole one,
concurrent readers never see a partial vector, and concurrent writers of the same item write the
same bytes. A file that still fails to load (disk trouble) counts as a miss and is rewritten.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dreambench.atomic import atomic_write_bytes, atomic_write_json
from dreambench.cache_root import cache_root
from dreambench.errors import BenchError
from dreambench.metrics.embedder import EmbedderId

KINDS = ("images", "texts")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
        vector = np.asarray(vector, dtype=np.float32)
        if vector.ndim != 1:
            raise ValueError(f"expected one (D,) vector, got shape {vector.shape}")
        if not self._id_written:
            atomic_write_json(self.folder / "id.json", self.embedder_id.as_dict())
            self._id_written = True
        buffer = io.BytesIO()
        np.save(buffer, vector, allow_pickle=False)
        atomic_write_bytes(self._path(kind, sha256), buffer.getvalue())

"""A benchmark subject: a few real photos of one thing, its class noun and whether it is alive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["live", "object"]
KINDS: tuple[Kind, ...] = ("live", "object")


@dataclass(frozen=True)
class Subject:
    """One subject of the benchmark.

    name: folder name (e.g. "dog6"); class_noun: the paper's class (e.g. "dog");
    kind: "live" subjects use the live prompt list, "object" subjects the object list;
    image_paths: the real images, sorted by file name; image_sha256: sha256 of each file's bytes,
    same order (the key of the embedding cache); category: the dataset's own category where it has
    categories beyond live/object (e.g. "animal", "style"; its declaration maps each to a kind),
    None where the kind is the category.
    """

    name: str
    class_noun: str
    kind: Kind
    image_paths: tuple[Path, ...]
    image_sha256: tuple[str, ...]
    category: str | None = None

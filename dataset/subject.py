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
    members: empty for a single subject. A subject group (a pair dataset's entry, e.g.
    "backpack+dog") lists the subjects it is made of; its own image_paths / image_sha256 are theirs,
    concatenated in member order, and its class noun joins theirs. Only a method that declares
    ``subject_groups = True`` (dreambench.method) is given one; each generated image is scored
    against each member (metrics/subject_groups.py).
    """

    name: str
    class_noun: str
    kind: Kind
    image_paths: tuple[Path, ...]
    image_sha256: tuple[str, ...]
    category: str | None = None
    members: tuple[Subject, ...] = ()

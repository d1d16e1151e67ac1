"""A subject of your own: a folder of photos, a class noun and a kind."""

from __future__ import annotations

from pathlib import Path

from dreambench.dataset.images import IMAGE_SUFFIXES, file_sha256
from dreambench.dataset.subject import KINDS, Kind, Subject
from dreambench.errors import BenchError


def custom_subject(
    directory: Path, class_noun: str, kind: str = "object", name: str | None = None
) -> Subject:
    """A Subject from `directory`: its *.jpg/*.jpeg/*.png/*.webp files (any case), sorted by name.

    `name` defaults to the folder name; `kind` picks the prompt list ("object" or "live").
    Raises BenchError for a missing folder, a folder without images, an empty class noun or a bad kind.
    """
    directory = Path(directory).expanduser()
    if kind not in KINDS:
        raise BenchError(f"unknown subject kind {kind!r}; valid: {', '.join(KINDS)}")
    if not class_noun.strip():
        raise BenchError(f"custom subject {directory} needs a class noun (e.g. 'dog', 'backpack')")
    if not directory.is_dir():
        raise BenchError(f"custom subject folder {directory} not found")
    paths = tuple(
        sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    )
    if not paths:
        raise BenchError(f"no images in {directory}; valid extensions: {', '.join(IMAGE_SUFFIXES)}")
    checked_kind: Kind = "live" if kind == "live" else "object"
    return Subject(
        name=name or directory.resolve().name,
        class_noun=class_noun.strip(),
        kind=checked_kind,
        image_paths=paths,
        image_sha256=tuple(file_sha256(p) for p in paths),
    )

"""A subject of your own: a folder of photos, a class noun and a kind.

Everything about the folder is checked when the subject is built, before any run directory is
written: every image must decode (a non-image `.jpg` is a one-line error naming the file, not a
per-subject failure after training started) and there must be at least MIN_SUBJECT_IMAGES of
them. Two is the floor for every method: the real-images ceiling scores distinct real pairs, and
a training method that sees one photo learns that photo, not the subject (DreamBench's subjects
have 4-6).
"""

from __future__ import annotations

from pathlib import Path

from dreambench.dataset.images import IMAGE_SUFFIXES, file_sha256, load_image
from dreambench.dataset.subject import KINDS, Kind, Subject
from dreambench.errors import BenchError

MIN_SUBJECT_IMAGES = 2


def custom_subject(
    directory: Path, class_noun: str, kind: str = "object", name: str | None = None
) -> Subject:
    """A Subject from `directory`: its *.jpg/*.jpeg/*.png/*.webp files (any case), sorted by name.

    `name` defaults to the folder name; `kind` picks the prompt list ("object" or "live").
    Raises BenchError for a missing folder, fewer than MIN_SUBJECT_IMAGES images, an image that
    does not decode, an empty class noun or a bad kind.
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
    if len(paths) < MIN_SUBJECT_IMAGES:
        raise BenchError(
            f"custom subject {directory} has {len(paths)} image(s); a subject needs at least "
            f"{MIN_SUBJECT_IMAGES} (training methods and the real-images ceiling need more than one view)"
        )
    for path in paths:
        load_image(path)  # raises a one-line BenchError naming the file that does not decode
    checked_kind: Kind = "live" if kind == "live" else "object"
    return Subject(
        name=name or directory.resolve().name,
        class_noun=class_noun.strip(),
        kind=checked_kind,
        image_paths=paths,
        image_sha256=tuple(file_sha256(p) for p in paths),
    )

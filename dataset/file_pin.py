"""Image files of a subject folder, pinned by a manifest or, until one is recorded, not.

DreamBench++ and CustomConcept101 are published as archives on Google Drive, not as repositories
whose files dreambench could hash when it was written. Their committed manifests pin what could be
read (the layout, names, classes and prompt text at a source revision) and record each image's
sha256 once someone builds the manifest from a real copy (``python -m dreambench.dataset.<module>
DIR``). Until then, an image's sha256 is computed from the copy it is loaded from (still the key
of every embedding and score), and `bench dataset verify` says, file by file, that nothing was
checked, never that the copy matches.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dreambench.atomic import atomic_write_text
from dreambench.dataset.images import IMAGE_SUFFIXES, file_sha256

NOT_PINNED = "not pinned"


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted by name (none when it is missing)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def folder_images(folder: Path, pinned: dict[str, str] | None) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    """(paths, sha256s) of a subject's images: the pinned files, or the copy's own files hashed."""
    if pinned is not None:
        names = sorted(pinned)
        return tuple(folder / n for n in names), tuple(pinned[n] for n in names)
    paths = image_files(folder)
    return tuple(paths), tuple(file_sha256(p) for p in paths)


def check_file(path: Path, rel: str, expected: str | None) -> str | None:
    """One problem line for the file at `path` (shown as `rel`), or None when it matches its pin."""
    if not path.is_file():
        return f"{rel}: missing"
    if expected is None:
        return f"{rel}: {NOT_PINNED} (no sha256 recorded in the manifest; nothing checked)"
    actual = file_sha256(path)
    if actual != expected:
        return f"{rel}: sha256 mismatch (expected {expected[:12]}..., got {actual[:12]}...)"
    return None


def check_folder(folder: Path, rel: str, pinned: dict[str, str] | None) -> list[str]:
    """Problems of one subject folder against its pinned images (or 'not pinned' per image)."""
    if not folder.is_dir():
        return [f"{rel}/: subject folder missing"]
    problems: list[str] = []
    if pinned is None:
        files = image_files(folder)
        if not files:
            return [f"{rel}/: no images"]
        for path in files:
            problem = check_file(path, f"{rel}/{path.name}", None)
            if problem:
                problems.append(problem)
        return problems
    for name, sha in sorted(pinned.items()):
        problem = check_file(folder / name, f"{rel}/{name}", sha)
        if problem:
            problems.append(problem)
    for path in image_files(folder):
        if path.name not in pinned:
            problems.append(f"{rel}/{path.name}: unexpected image (not in the manifest)")
    return problems


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write a manifest as committed manifests are written (sorted keys, indented), atomically."""
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def record_manifest(argv: list[str], module: str, manifest: Path, build: Callable[[Path], dict[str, Any]]) -> None:
    """``python -m <module> DIR``: write the manifest with the sha256s recorded from the copy at DIR
    (`bench dataset verify --dataset NAME --record` does the same into the user's cache)."""
    if len(argv) != 2:
        sys.exit(f"usage: python -m {module} /path/to/the/copy")
    write_manifest(manifest, build(Path(argv[1])))

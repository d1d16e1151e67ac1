"""The official DreamBooth dataset: load its 30 subjects and verify the files against the manifest."""

from __future__ import annotations

from pathlib import Path

from dreambench.dataset.images import IMAGE_SUFFIXES, file_sha256
from dreambench.dataset.location import resolve_data_dir, subject_root
from dreambench.dataset.manifest import DREAMBOOTH_COMMIT, DREAMBOOTH_REPO, load_manifest
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError

_FIX_HINT = "run `bench dataset verify` to list every problem, or `bench dataset fetch` into a fresh folder"


def load_subjects(data: str | Path | None = None, *, check_files: bool = True) -> list[Subject]:
    """All 30 subjects of the manifest, sorted by name, with image paths under the resolved folder.

    `data` is resolved by `resolve_data_dir` (--data, $DREAMBENCH_DATA, cache).
    With `check_files` (the default) every image is checked by `check_subject_files` (present, and
    its bytes hash to the manifest's sha256); without, the caller checks only the subjects it uses,
    so a file missing from one subject does not block runs of the others.
    """
    root = resolve_data_dir(data)
    subjects: list[Subject] = []
    for name, entry in sorted(load_manifest()["subjects"].items()):
        files = sorted(entry["images"])
        paths = tuple(root / name / f for f in files)
        subjects.append(
            Subject(
                name=name,
                class_noun=entry["class_noun"],
                kind=entry["kind"],
                image_paths=paths,
                image_sha256=tuple(entry["images"][f] for f in files),
            )
        )
    if check_files:
        check_subject_files(subjects)
    return subjects


def check_subject_files(subjects: list[Subject]) -> None:
    """Raise BenchError naming the first missing folder or image of `subjects`, or the first image
    whose bytes do not hash to its manifest sha256.

    The bytes are hashed on every run (~100 MB for all 30 subjects: a fraction of a second): the
    sha256 is the embedding-cache key, so a modified copy scored under the manifest's hash would
    report the genuine image's cached figures, or poison the cache for the genuine file.
    """
    for subject in subjects:
        folder = subject.image_paths[0].parent if subject.image_paths else None
        if folder is not None and not folder.is_dir():
            raise BenchError(f"subject folder {folder} is missing; {_FIX_HINT}")
        for path, expected in zip(subject.image_paths, subject.image_sha256):
            if not path.is_file():
                raise BenchError(f"image {path} of subject {subject.name!r} is missing; {_FIX_HINT}")
            actual = file_sha256(path)
            if actual != expected:
                raise BenchError(
                    f"image {path} differs from {DREAMBOOTH_REPO}@{DREAMBOOTH_COMMIT[:7]} "
                    f"(sha256 {actual[:12]}..., expected {expected[:12]}...); {_FIX_HINT}"
                )


def verify_dataset(data_dir: Path) -> list[str]:
    """Problems found when checking `data_dir` (clone root or dataset/ folder) against the manifest.

    Each problem is one line: a missing file, a sha256 mismatch, or an image (or subject folder)
    the pinned commit does not have. An empty list means the dataset is byte-identical.
    """
    data_dir = Path(data_dir)
    root = subject_root(data_dir)
    if root is None:
        return [f"{data_dir}: no google/dreambooth dataset here"]
    manifest = load_manifest()
    pinned = f"{DREAMBOOTH_REPO}@{DREAMBOOTH_COMMIT[:7]}"
    problems: list[str] = []

    def check(rel: str, expected: str) -> None:
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            return
        actual = file_sha256(path)
        if actual != expected:
            problems.append(f"{rel}: sha256 mismatch (expected {expected[:12]}..., got {actual[:12]}...)")

    for rel, sha in sorted(manifest["files"].items()):
        check(rel, sha)
    for name, entry in sorted(manifest["subjects"].items()):
        folder = root / name
        if not folder.is_dir():
            problems.append(f"{name}/: subject folder missing")
            continue
        for file, sha in sorted(entry["images"].items()):
            check(f"{name}/{file}", sha)
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.name not in entry["images"]:
                problems.append(f"{name}/{path.name}: unexpected image (not in {pinned})")
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.name.startswith(".") and path.name not in manifest["subjects"]:
            problems.append(f"{path.name}/: unexpected folder (not a subject of {pinned})")
    return problems

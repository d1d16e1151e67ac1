"""The official DreamBooth dataset, declared once (`DREAMBOOTH`): its 30 subjects, loaded and
verified against the pinned manifest; fetched by dataset/fetch.py; located by dataset/location.py."""

from __future__ import annotations

from pathlib import Path

from dreambench.dataset.declaration import DatasetDeclaration
from dreambench.dataset.images import IMAGE_SUFFIXES, file_sha256
from dreambench.dataset.location import DREAMBOOTH_LOCATION, subject_root
from dreambench.dataset.manifest import DREAMBOOTH_COMMIT, DREAMBOOTH_REPO, MANIFEST_PATH, load_manifest
from dreambench.dataset.prompts import PROMPT_SETS, PROMPTS_DIR
from dreambench.dataset.subject import Subject


def load_subjects(data: str | Path | None = None, *, check_files: bool = True) -> list[Subject]:
    """All 30 subjects of the manifest, sorted by name, with image paths under the resolved folder.

    `data` is resolved by `resolve_data_dir` (--data, $DREAMBENCH_DATA, cache).
    With `check_files` (the default) every image is checked (present, and its bytes hash to the
    manifest's sha256); without, the caller checks only the subjects it uses
    (`DREAMBOOTH.check_files`), so a file missing from one subject does not block runs of the others.
    """
    return DREAMBOOTH.subjects(data, check_files=check_files)


def subjects_under(root: Path) -> list[Subject]:
    """The manifest's subjects with image paths under `root` (the folder holding the subject folders)."""
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
    return subjects


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


def _fetch(dest: Path, progress: bool) -> Path:
    from dreambench.dataset.fetch import fetch_dataset  # fetch.py verifies with this module

    return fetch_dataset(dest, progress=progress)


DREAMBOOTH = DatasetDeclaration(
    location=DREAMBOOTH_LOCATION,
    revision=DREAMBOOTH_COMMIT,
    manifest=MANIFEST_PATH,
    prompt_sets={"dreambench": PROMPTS_DIR / PROMPT_SETS["dreambench"]},
    default_prompt_set="dreambench",
    load=subjects_under,
    verify=verify_dataset,
    fetch=_fetch,
)

"""DreamBench++ (Peng et al., "DreamBench++: A Human-Aligned Benchmark for Personalized Image
Generation", yuangpeng/dreambench_plus), declared once (`DREAMBENCH_PLUS`): 150 images, one per
subject, in the categories animal, human (live templates), object and style (object templates).

Layout, as the repository's own loader (dreambench_plus/dreambench_plus_dataset.py) reads it:
``images/**/<NN>.jpg`` beside ``captions/**/<NN>.txt`` with the same relative path; a file's
category is its parent folder's name. Caption line 1 is the subject ("kitten"), lines 2-10 its nine
prompts (0-3 photorealistic, 4-6 style, 7-8 imaginative), each naming the subject in words. The
subjects are named as that loader names them: ``live_subject_animal_00_kitten``,
``object_03_backpack``, ``style_12_...``.

The prompts ship with the images, not in the repository, so the prompt set is read from the copy:
each caption becomes a template by writing its first mention of the subject as ``{0} {1}``; with
no identifier it renders the published caption (whitespace runs collapsed). Its sha256, over every
template, is what results record. The published protocol renders one image per prompt (seed 42,
guidance 7.5, 100 steps: ``--images-per-prompt 1``); its metrics are the ``dreambench-plus``
metric preset's, the GPT-4o judge aside.

The data is a Google Drive archive dreambench does not download: point ``--data`` (or
``$DREAMBENCH_PLUS_DATA``) at the unpacked ``data/`` folder or the clone holding it. Pin: the
repository commit whose README names the archive; no file sha256 yet (see dataset/file_pin.py).
``python -m dreambench.dataset.dreambench_plus DIR`` records them from a copy.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from dreambench.dataset.declaration import DatasetDeclaration
from dreambench.dataset.file_pin import check_file, record_manifest
from dreambench.dataset.images import file_sha256
from dreambench.dataset.location import DataLocation
from dreambench.dataset.manifest import load_manifest, manifest_sha256
from dreambench.dataset.prompts import PromptSet
from dreambench.dataset.subject import Kind, Subject
from dreambench.errors import BenchError

NAME = "dreambench-plus"
MANIFEST_PATH = Path(__file__).resolve().parent / "data" / "dreambench_plus_manifest.json"
CATEGORIES: dict[str, Kind] = {"animal": "live", "human": "live", "object": "object", "style": "object"}
N_PROMPTS = 9


def locate(path: Path) -> Path | None:
    """The folder holding images/ and captions/: `path` itself or `path`/data."""
    path = Path(path)
    for candidate in (path, path / "data"):
        if (candidate / "images").is_dir() and (candidate / "captions").is_dir():
            return candidate
    return None


def _pinned_files() -> dict[str, str] | None:
    files: dict[str, str] | None = load_manifest(MANIFEST_PATH)["files"]
    return files


def _caption_files(root: Path) -> list[str]:
    """Relative paths (captions/...) of every caption: the manifest's, or the copy's when unpinned."""
    pinned = _pinned_files()
    if pinned is not None:
        return sorted(rel for rel in pinned if rel.startswith("captions/"))
    return sorted(p.relative_to(root).as_posix() for p in (root / "captions").rglob("*.txt"))


def _image_of(caption_rel: str) -> str:
    return "images/" + caption_rel.removeprefix("captions/").removesuffix(".txt") + ".jpg"


def _read_caption(root: Path, rel: str) -> tuple[str, list[str]]:
    """(subject, nine prompts) of one caption file; BenchError naming the file when malformed."""
    path = root / rel
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise BenchError(f"cannot read caption file {path}: {exc.strerror or exc}") from None
    lines = [line for line in lines if line]
    if len(lines) != 1 + N_PROMPTS:
        raise BenchError(
            f"caption file {path} has {len(lines)} non-empty lines; DreamBench++ captions have "
            f"{1 + N_PROMPTS} (the subject, then {N_PROMPTS} prompts)"
        )
    return lines[0], lines[1:]


def _subject_name(rel: str, subject: str) -> str:
    """The repository loader's collection id: `live_subject_animal_00_kitten`, `object_03_backpack`."""
    category = Path(rel).parent.name
    prefix = f"live_subject_{category}" if category in ("animal", "human") else category
    return "_".join([prefix, Path(rel).stem, subject.lower().replace(" ", "_")])


def _category(root: Path, rel: str) -> str:
    category = Path(rel).parent.name
    if category not in CATEGORIES:
        raise BenchError(
            f"{root / rel}: category folder {category!r} is not one of DreamBench++'s ({', '.join(CATEGORIES)})"
        )
    return category


def load(root: Path) -> list[Subject]:
    """One subject per caption file (its image beside it), sorted by name."""
    pinned = _pinned_files()
    subjects = []
    for rel in _caption_files(root):
        subject, _ = _read_caption(root, rel)
        image = _image_of(rel)
        path = root / image
        sha = pinned[image] if pinned is not None else (file_sha256(path) if path.is_file() else "0" * 64)
        category = _category(root, rel)
        subjects.append(
            Subject(
                name=_subject_name(rel, subject),
                class_noun=subject,
                kind=CATEGORIES[category],
                image_paths=(path,),
                image_sha256=(sha,),
                category=category,
            )
        )
    if not subjects:
        raise BenchError(f"no caption files under {root / 'captions'}; is it a copy of DreamBench++'s data/?")
    return sorted(subjects, key=lambda s: s.name)


def _template(caption: str, subject: str, where: str) -> str:
    """`caption` with its first mention of `subject` (any case) written as "{0} {1}"."""
    match = re.search(re.escape(subject), caption, flags=re.IGNORECASE)
    if match is None:
        raise BenchError(f"{where}: the prompt {caption!r} does not name the subject {subject!r}")

    def escaped(text: str) -> str:
        return text.replace("{", "{{").replace("}", "}}")

    return f"{escaped(caption[: match.start()])}{{0}} {{1}}{escaped(caption[match.end() :])}"


def prompt_set(root: Path) -> PromptSet:
    """The nine prompts of every subject, read from the captions of the copy at `root`."""
    subjects: dict[str, tuple[str, ...]] = {}
    for rel in _caption_files(root):
        subject, prompts = _read_caption(root, rel)
        where = str(root / rel)
        subjects[_subject_name(rel, subject)] = tuple(_template(p, subject, where) for p in prompts)
    return PromptSet(
        name=NAME,
        version=f"captions-{manifest_sha256(MANIFEST_PATH)[:12]}",
        object=(),
        live=(),
        subjects=dict(sorted(subjects.items())),
    )


def verify(root: Path) -> list[str]:
    """One line per missing, changed, unexpected or not-yet-pinned file of the copy at `root`."""
    pinned = _pinned_files()
    problems: list[str] = []
    present = sorted(
        p.relative_to(root).as_posix()
        for folder in ("images", "captions")
        for p in (root / folder).rglob("*")
        if p.is_file()
    )
    if pinned is None:
        for rel in present:
            problem = check_file(root / rel, rel, None)
            if problem:
                problems.append(problem)
        return problems or [f"{root}: no files under images/ or captions/"]
    for rel, sha in sorted(pinned.items()):
        problem = check_file(root / rel, rel, sha)
        if problem:
            problems.append(problem)
    problems += [f"{rel}: unexpected file (not in the manifest)" for rel in present if rel not in pinned]
    return problems


def build_manifest(data: Path) -> dict[str, Any]:
    """The committed manifest with the sha256 of every image and caption of the copy at `data`."""
    root = locate(Path(data))
    if root is None:
        raise BenchError(f"no DreamBench++ images/ and captions/ at {data}")
    manifest = load_manifest(MANIFEST_PATH)
    files = {}
    for folder in ("images", "captions"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                files[path.relative_to(root).as_posix()] = file_sha256(path)
    manifest["files"] = files
    return manifest


DREAMBENCH_PLUS = DatasetDeclaration(
    location=DataLocation(
        name=NAME,
        title="DreamBench++",
        source="yuangpeng/dreambench_plus",
        env_var="DREAMBENCH_PLUS_DATA",
        locate=locate,
    ),
    revision=load_manifest(MANIFEST_PATH)["commit"],
    manifest=MANIFEST_PATH,
    load=load,
    verify=verify,
    prompt_sets={NAME: prompt_set},
    default_prompt_set=NAME,
    categories=CATEGORIES,
    build_manifest=build_manifest,
)


if __name__ == "__main__":
    record_manifest(sys.argv, "dreambench.dataset.dreambench_plus", MANIFEST_PATH, build_manifest)

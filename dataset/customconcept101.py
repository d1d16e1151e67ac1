"""CustomConcept101 (Kumari et al., "Multi-Concept Customization of Text-to-Image Diffusion",
adobe-research/custom-diffusion, `customconcept101/`), declared once (`CUSTOMCONCEPT101`): its 101
single concepts of 3-15 images each, with the 20 prompts its dataset.json assigns each concept.

Subjects are the folders of ``benchmark_dataset/`` (``scene_barn``, ``pet_cat1``, ...), as
``dataset.json`` names them; a subject's category is its folder's prefix (``pet``, ``plushie``,
``scene``, ...), and ``pet`` and ``person`` use live templates. The class noun is the phrase after
``<new1>`` in the concept's instance prompt ("cow plushie"); its prompt file's ``{}`` stands for
``<new1> noun``, shipped as ``{0} {1}`` (dataset/prompts/customconcept101.json).

The images come from a Google Drive archive that dreambench does not download: unzip
``benchmark_dataset.zip`` and point ``--data`` (or ``$DREAMBENCH_CUSTOMCONCEPT101_DATA``) at the
folder holding ``benchmark_dataset/`` (a clone's ``customconcept101/`` folder), at a clone's root,
or at ``benchmark_dataset/`` itself. The paper's own text alignment is CLIPScore (2.5 x max(cos, 0));
dreambench reports raw cosines unless a metric preset says otherwise. Two-concept compositions
(``dataset_multiconcept.json``) are the subject groups of dataset/customconcept101_pairs.py.

Pin: the source commit, the concepts and prompt text read from it; no image sha256 yet (see
dataset/file_pin.py). ``python -m dreambench.dataset.customconcept101 DIR`` records them from a copy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dreambench.dataset.declaration import DatasetDeclaration
from dreambench.dataset.file_pin import check_folder, folder_images, image_files, record_manifest
from dreambench.dataset.images import file_sha256
from dreambench.dataset.location import DataLocation
from dreambench.dataset.manifest import load_manifest
from dreambench.dataset.subject import Kind, Subject
from dreambench.errors import BenchError

NAME = "customconcept101"
MANIFEST_PATH = Path(__file__).resolve().parent / "data" / "customconcept101_manifest.json"
PROMPTS_PATH = Path(__file__).resolve().parent / "prompts" / "customconcept101.json"
IMAGES_FOLDER = "benchmark_dataset"
LIVE_CATEGORIES = frozenset({"pet", "person"})
CATEGORIES: dict[str, Kind] = {
    category: ("live" if category in LIVE_CATEGORIES else "object")
    for category in sorted({entry["category"] for entry in load_manifest(MANIFEST_PATH)["subjects"].values()})
}


def locate(path: Path) -> Path | None:
    """The folder holding the concept folders: `path`/benchmark_dataset,
    `path`/customconcept101/benchmark_dataset, or `path` itself when it holds concept folders."""
    path = Path(path)
    for candidate in (path / IMAGES_FOLDER, path / NAME / IMAGES_FOLDER):
        if candidate.is_dir():
            return candidate
    subjects = load_manifest(MANIFEST_PATH)["subjects"]
    if path.is_dir() and any((path / name).is_dir() for name in subjects):
        return path
    return None


def load(root: Path) -> list[Subject]:
    """Every concept of the manifest, sorted by name, with its images under `root`."""
    subjects = []
    for name, entry in sorted(load_manifest(MANIFEST_PATH)["subjects"].items()):
        paths, shas = folder_images(root / name, entry["images"])
        if not paths:
            raise BenchError(
                f"concept folder {root / name} has no images; {CUSTOMCONCEPT101.command_hint('verify')}"
            )
        subjects.append(
            Subject(
                name=name,
                class_noun=entry["class_noun"],
                kind=CATEGORIES[entry["category"]],
                image_paths=paths,
                image_sha256=shas,
                category=entry["category"],
            )
        )
    return subjects


def verify(root: Path) -> list[str]:
    """One line per missing, changed, unexpected or not-yet-pinned file of the copy at `root`."""
    subjects = load_manifest(MANIFEST_PATH)["subjects"]
    problems: list[str] = []
    for name, entry in sorted(subjects.items()):
        problems += check_folder(root / name, name, entry["images"])
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.name.startswith(".") and path.name not in subjects:
            problems.append(f"{path.name}/: unexpected folder (not a concept of dataset.json)")
    return problems


def build_manifest(data: Path) -> dict[str, Any]:
    """The committed manifest with every concept's image sha256s recorded from the copy at `data`."""
    root = locate(Path(data))
    if root is None:
        raise BenchError(f"no {IMAGES_FOLDER}/ of CustomConcept101 at {data}")
    manifest = load_manifest(MANIFEST_PATH)
    for name, entry in manifest["subjects"].items():
        files = image_files(root / name)
        if not files:
            raise BenchError(f"concept folder {root / name} has no images")
        entry["images"] = {p.name: file_sha256(p) for p in files}
    manifest["images_pinned"] = True
    return manifest


CUSTOMCONCEPT101 = DatasetDeclaration(
    location=DataLocation(
        name=NAME,
        title="CustomConcept101",
        source="adobe-research/custom-diffusion",
        env_var="DREAMBENCH_CUSTOMCONCEPT101_DATA",
        locate=locate,
    ),
    revision=load_manifest(MANIFEST_PATH)["commit"],
    manifest=MANIFEST_PATH,
    load=load,
    verify=verify,
    prompt_sets={NAME: PROMPTS_PATH},
    default_prompt_set=NAME,
    categories=CATEGORIES,
    build_manifest=build_manifest,
)


if __name__ == "__main__":
    record_manifest(sys.argv, "dreambench.dataset.customconcept101", MANIFEST_PATH, build_manifest)

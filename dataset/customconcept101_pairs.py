"""CustomConcept101's two-concept compositions (adobe-research/custom-diffusion
``customconcept101/dataset_multiconcept.json``), declared once (`CUSTOMCONCEPT101_PAIRS`,
``--dataset customconcept101-pairs``): each subject is a group of two CustomConcept101 concepts
with the 12 composition prompts of its ``prompt_filename_compose`` file.

Layout, as the repository ships it (read at c9c8be2): ``dataset_multiconcept.json`` is a list of
``[concept 1, concept 2, {"prompt_filename_compose": "prompts/<a>_<b>.txt"}]``, each concept
``{"instance_prompt": "photo of a <new1> cat", "instance_data_dir": "./benchmark_dataset/pet_cat1",
...}``; a composition file holds one prompt per line with ``{0}`` and ``{1}`` for the two
concepts ("{0} playing with {1}."). ``--data`` (or ``$DREAMBENCH_CUSTOMCONCEPT101_PAIRS_DATA``)
points at the clone's ``customconcept101/`` folder with ``benchmark_dataset.zip`` unzipped into
it, or at the clone's root. The pin is CustomConcept101's (its manifest; no image sha256 until
recorded); the composition list is read from the copy and enters the run identity through the
prompt set's sha256 (each group's name and prompts).

A group is named ``<concept 1>+<concept 2>`` (its members are the CustomConcept101 subjects of
the two folders, images hashed from the copy as in `customconcept101`). Where the source fills
``{0}`` / ``{1}`` with "<new1> cat" / "<new2> dog", dreambench writes each concept's noun from its
instance prompt ("cat", "dog"): one identifier per subject cannot name two concepts, so the
prompts name classes, like UNO's pairs; a method gets both concepts through ``subject.members``.
The pairs and prompts are read from the copy (they ship with the repository, beside the images).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from dreambench.dataset.customconcept101 import CATEGORIES, IMAGES_FOLDER, MANIFEST_PATH
from dreambench.dataset.declaration import DatasetDeclaration
from dreambench.dataset.dreambooth_pairs import pair_name
from dreambench.dataset.file_pin import check_folder, folder_images
from dreambench.dataset.images import file_sha256
from dreambench.dataset.location import DataLocation
from dreambench.dataset.manifest import load_manifest
from dreambench.dataset.prompts import PromptSet
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError

NAME = "customconcept101-pairs"
JSON_NAME = "dataset_multiconcept.json"


def locate(path: Path) -> Path | None:
    """The folder holding dataset_multiconcept.json and benchmark_dataset/: `path` or
    `path`/customconcept101."""
    path = Path(path)
    for candidate in (path, path / "customconcept101"):
        if (candidate / JSON_NAME).is_file() and (candidate / IMAGES_FOLDER).is_dir():
            return candidate
    return None


def _noun(instance_prompt: Any, token: str, where: str) -> str:
    """The phrase after <newN> in "photo of a <new1> cat"."""
    if not isinstance(instance_prompt, str) or token not in instance_prompt:
        raise BenchError(f"{where}: instance_prompt {instance_prompt!r} does not name {token}")
    noun = instance_prompt.split(token, 1)[1].strip()
    if not noun:
        raise BenchError(f"{where}: instance_prompt {instance_prompt!r} has no noun after {token}")
    return noun


def _folder(concept: Any, where: str) -> str:
    path = concept.get("instance_data_dir") if isinstance(concept, dict) else None
    if not isinstance(path, str):
        raise BenchError(f"{where}: needs an 'instance_data_dir' string")
    name = PurePosixPath(path).name
    if name not in load_manifest(MANIFEST_PATH)["subjects"]:
        raise BenchError(f"{where}: {path} is not a concept of CustomConcept101's dataset.json")
    return name


def pairs_of(root: Path) -> list[dict[str, Any]]:
    """``[{"subjects": [a, b], "nouns": [n1, n2], "prompts": [...], "compose": file}]`` in file order."""
    path = root / JSON_NAME
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise BenchError(f"{path}: expected a non-empty list of [concept, concept, compose] entries")
    pairs: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(entries):
        where = f"{path} entry {i}"
        if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[2], dict):
            raise BenchError(f"{where}: expected [concept 1, concept 2, {{prompt_filename_compose}}]")
        folders = [_folder(entry[k], where) for k in (0, 1)]
        nouns = [_noun(entry[k].get("instance_prompt"), f"<new{k + 1}>", where) for k in (0, 1)]
        compose = entry[2].get("prompt_filename_compose")
        if not isinstance(compose, str):
            raise BenchError(f"{where}: needs a 'prompt_filename_compose' string")
        prompts = _compose_prompts(root / compose, nouns)
        pair = {"subjects": folders, "nouns": nouns, "prompts": prompts, "compose": compose}
        name = pair_name(folders)
        if name in pairs and pairs[name] != pair:
            raise BenchError(f"{where}: pair {name!r} appears twice with different prompts")
        pairs.setdefault(name, pair)
    return list(pairs.values())


def _compose_prompts(path: Path, nouns: list[str]) -> list[str]:
    """The composition file's prompts with {0} / {1} written as the two concepts' nouns."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise BenchError(f"cannot read composition prompts {path}: {exc.strerror or exc}") from None
    prompts = []
    for line in (line for line in lines if line):
        try:
            prompts.append(" ".join(line.format(*nouns).split()))
        except (IndexError, KeyError, ValueError):
            raise BenchError(f"{path}: prompt {line!r} uses fields other than {{0}} and {{1}}") from None
    if not prompts:
        raise BenchError(f"{path}: no prompts")
    return prompts


def _member(images: Path, name: str) -> Subject:
    entry = load_manifest(MANIFEST_PATH)["subjects"][name]
    paths, shas = folder_images(images / name, entry["images"])
    if not paths:
        raise BenchError(f"concept folder {images / name} has no images")
    return Subject(
        name=name,
        class_noun=entry["class_noun"],
        kind=CATEGORIES[entry["category"]],
        image_paths=paths,
        image_sha256=shas,
        category=entry["category"],
    )


def load(root: Path) -> list[Subject]:
    """One group subject per composition (members: the two concepts), sorted by name."""
    groups = []
    for pair in pairs_of(root):
        members = tuple(_member(root / IMAGES_FOLDER, name) for name in pair["subjects"])
        groups.append(
            Subject(
                name=pair_name(pair["subjects"]),
                class_noun=" and ".join(pair["nouns"]),
                kind="live" if any(m.kind == "live" for m in members) else "object",
                image_paths=tuple(p for m in members for p in m.image_paths),
                image_sha256=tuple(s for m in members for s in m.image_sha256),
                members=members,
            )
        )
    return sorted(groups, key=lambda s: s.name)


def prompt_set(root: Path) -> PromptSet:
    """Each composition's prompts, as per-subject templates without identifier fields."""
    pairs = pairs_of(root)
    digest = file_sha256(root / JSON_NAME)[:12]
    return PromptSet(
        name=NAME,
        version=f"multiconcept-{digest}",
        object=(),
        live=(),
        subjects={
            pair_name(p["subjects"]): tuple(t.replace("{", "{{").replace("}", "}}") for t in p["prompts"])
            for p in pairs
        },
    )


def verify(root: Path) -> list[str]:
    """The compositions' concept folders, file by file ("not pinned" until CustomConcept101's
    manifest records the images; the composition files are read, not pinned)."""
    subjects = load_manifest(MANIFEST_PATH)["subjects"]
    used = sorted({name for pair in pairs_of(root) for name in pair["subjects"]})
    problems = [f"{JSON_NAME}: not pinned (read from the copy; nothing checked)"]
    for name in used:
        problems += check_folder(root / IMAGES_FOLDER / name, name, subjects[name]["images"])
    return problems


CUSTOMCONCEPT101_PAIRS = DatasetDeclaration(
    location=DataLocation(
        name=NAME,
        title="CustomConcept101 compositions",
        source="adobe-research/custom-diffusion",
        env_var="DREAMBENCH_CUSTOMCONCEPT101_PAIRS_DATA",
        locate=locate,
    ),
    revision=load_manifest(MANIFEST_PATH)["commit"],
    manifest=MANIFEST_PATH,
    load=load,
    verify=verify,
    prompt_sets={NAME: prompt_set},
    default_prompt_set=NAME,
)

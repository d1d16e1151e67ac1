"""Subject pairs on DreamBench (bytedance/UNO ``datasets/dreambench_multiip.json``), declared once
(`DREAMBOOTH_PAIRS`, ``--dataset dreambooth-pairs``): each subject is a group of two DreamBooth
subjects, with the pair's own prompts (30 pairs x 25 prompts per UNO's README).

Layout, as UNO ships it: its ``datasets/`` folder holds ``dreambench_multiip.json`` (a list of
``{"prompt": str, "image_paths": ["./dreambooth/dataset/<subject>/<file>", ...]}``) and the
google/dreambooth repository as the submodule ``datasets/dreambooth``. ``--data`` (or
``$DREAMBENCH_PAIRS_DATA``) points at a UNO clone or its ``datasets/`` folder; when the submodule
is not checked out there, the images come from the DreamBooth copy (``$DREAMBENCH_DATA`` or the
cache). The images are google/dreambooth's, pinned by its manifest (dataset/data/dreambooth_manifest.json).

A pair is the ordered subject pair of an entry's ``image_paths``, named ``<a>+<b>``; its prompts
are the entries' prompts in file order. They name the subjects by class ("a backpack and a
stuffed animal in the jungle"), so they become per-subject templates with no identifier field.
The pair list, its prompts and the file's sha256 become the versioned data file
dataset/data/dreambooth_pairs.json when recorded from a copy (``python -m
dreambench.dataset.dreambooth_pairs DIR`` or ``bench dataset verify --dataset dreambooth-pairs
--record``); until then they are read from the copy's JSON, and verify says it is not pinned.

Only methods that declare ``subject_groups = True`` run on it (dreambench.method); each image is
scored against each subject of its pair (metrics/subject_groups.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from dreambench.dataset.declaration import DatasetDeclaration
from dreambench.dataset.file_pin import NOT_PINNED, record_manifest
from dreambench.dataset.images import file_sha256
from dreambench.dataset.location import DREAMBOOTH_LOCATION, DataLocation, subject_root
from dreambench.dataset.manifest import load_manifest, manifest_sha256
from dreambench.dataset.prompts import PromptSet
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError

NAME = "dreambooth-pairs"
DATA_PATH = Path(__file__).resolve().parent / "data" / "dreambooth_pairs.json"
JSON_NAME = "dreambench_multiip.json"
GROUP_SEPARATOR = "+"


def _data() -> dict[str, Any]:
    data: dict[str, Any] = load_manifest(DATA_PATH)
    return data


def _recorded_pairs() -> list[dict[str, Any]] | None:
    pairs: list[dict[str, Any]] | None = _data()["pairs"]
    return pairs


def locate(path: Path) -> Path | None:
    """The folder holding dreambench_multiip.json (`path` or `path`/datasets); once the pairs are
    recorded, a DreamBooth copy alone will do."""
    path = Path(path)
    for candidate in (path, path / "datasets"):
        if (candidate / JSON_NAME).is_file():
            return candidate
    if _recorded_pairs() is not None and subject_root(path) is not None:
        return path
    return None


def images_root(root: Path) -> Path:
    """The folder holding the DreamBooth subject folders: UNO's submodule under `root`, `root`
    itself (a DreamBooth copy), else the DreamBooth location ($DREAMBENCH_DATA, the cache)."""
    for candidate in (root / "dreambooth", root):
        found = subject_root(candidate)
        if found is not None and found.is_dir():
            return found
    return DREAMBOOTH_LOCATION.resolve(None)


def _entry_subject(path: Any, where: str) -> tuple[str, str]:
    """(subject, file) of one of an entry's image_paths ("./dreambooth/dataset/<subject>/<file>")."""
    parts = PurePosixPath(str(path)).parts if isinstance(path, str) else ()
    if len(parts) < 2:
        raise BenchError(f"{where}: image path {path!r} is not <...>/<subject>/<file>")
    return parts[-2], parts[-1]


def parse_entries(entries: Any, where: str) -> list[dict[str, Any]]:
    """UNO's entries -> pairs ``[{"subjects": [a, b], "prompts": [...], "references": [[fa, fb], ...]}]``
    in order of first appearance; BenchError naming the first malformed entry."""
    subjects = load_manifest()["subjects"]
    if not isinstance(entries, list) or not entries:
        raise BenchError(f"{where}: expected a non-empty JSON list of {{prompt, image_paths}} entries")
    pairs: dict[tuple[str, ...], dict[str, Any]] = {}
    for i, entry in enumerate(entries):
        at = f"{where} entry {i}"
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("prompt"), str)
            or not entry["prompt"].strip()
        ):
            raise BenchError(f"{at}: needs a non-empty 'prompt' string")
        paths = entry.get("image_paths")
        if not isinstance(paths, list) or len(paths) != 2:
            raise BenchError(f"{at}: 'image_paths' must list the two subjects' images")
        named = [_entry_subject(p, at) for p in paths]
        for subject, file in named:
            if subject not in subjects or file not in subjects[subject]["images"]:
                raise BenchError(f"{at}: {subject}/{file} is not an image of google/dreambooth's dataset")
        key = tuple(s for s, _ in named)
        if key[0] == key[1]:
            raise BenchError(f"{at}: both images are of subject {key[0]!r}; a pair names two subjects")
        pair = pairs.setdefault(key, {"subjects": list(key), "prompts": [], "references": []})
        pair["prompts"].append(" ".join(entry["prompt"].split()))
        pair["references"].append([f for _, f in named])
    return list(pairs.values())


def _read_json(root: Path) -> Any:
    path = root / JSON_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from None


def pairs_of(root: Path) -> list[dict[str, Any]]:
    """The recorded pairs, or those of the copy's dreambench_multiip.json while none are recorded."""
    recorded = _recorded_pairs()
    if recorded is not None:
        return recorded
    return parse_entries(_read_json(root), str(root / JSON_NAME))


def pair_name(subjects: list[str]) -> str:
    return GROUP_SEPARATOR.join(subjects)


def load(root: Path) -> list[Subject]:
    """One group subject per pair (members: the two DreamBooth subjects), sorted by name."""
    from dreambench.dataset.dreambooth import subjects_under

    singles = {s.name: s for s in subjects_under(images_root(root))}
    groups = []
    for pair in pairs_of(root):
        members = tuple(singles[name] for name in pair["subjects"])
        groups.append(
            Subject(
                name=pair_name(pair["subjects"]),
                class_noun=" and ".join(m.class_noun for m in members),
                # A pair with a live subject counts as live in the live/object split.
                kind="live" if any(m.kind == "live" for m in members) else "object",
                image_paths=tuple(p for m in members for p in m.image_paths),
                image_sha256=tuple(s for m in members for s in m.image_sha256),
                members=members,
            )
        )
    return sorted(groups, key=lambda s: s.name)


def _escaped(prompt: str) -> str:
    return prompt.replace("{", "{{").replace("}", "}}")


def prompt_set(root: Path) -> PromptSet:
    """Each pair's prompts, as per-subject templates without identifier fields."""
    pairs = pairs_of(root)
    recorded = _data()["json_sha256"]
    origin = (
        f"recorded-{manifest_sha256(DATA_PATH)[:12]}"
        if _recorded_pairs() is not None
        else f"copy-{(recorded or file_sha256(root / JSON_NAME))[:12]}"
    )
    return PromptSet(
        name=NAME,
        version=f"uno-multiip-{origin}",
        object=(),
        live=(),
        subjects={pair_name(p["subjects"]): tuple(_escaped(t) for t in p["prompts"]) for p in pairs},
    )


def verify(root: Path) -> list[str]:
    """Problems of the copy at `root`: dreambench_multiip.json against its recorded sha256 (or "not
    pinned"), the pairs' images against the DreamBooth manifest."""
    from dreambench.dataset.dreambooth import verify_dataset

    problems: list[str] = []
    expected = _data()["json_sha256"]
    path = root / JSON_NAME
    if path.is_file():
        actual = file_sha256(path)
        if expected is None:
            problems.append(
                f"{JSON_NAME}: {NOT_PINNED} (no sha256 recorded in {DATA_PATH.name}; nothing checked)"
            )
        elif actual != expected:
            problems.append(
                f"{JSON_NAME}: sha256 mismatch (expected {expected[:12]}..., got {actual[:12]}...)"
            )
    elif _recorded_pairs() is None:
        problems.append(f"{JSON_NAME}: missing")
    used = {name for pair in pairs_of(root) for name in pair["subjects"]}
    for problem in verify_dataset(images_root(root)):
        first = problem.split("/", 1)[0]
        if first in used:
            problems.append(f"dreambooth/dataset/{problem}")
    return problems


def build_manifest(data: Path) -> dict[str, Any]:
    """The data file with the pair list, prompts and sha256 of the copy's dreambench_multiip.json."""
    root = locate(Path(data))
    if root is None or not (root / JSON_NAME).is_file():
        raise BenchError(f"no {JSON_NAME} at {data} (a UNO clone or its datasets/ folder)")
    manifest = _data()
    manifest["pairs"] = parse_entries(_read_json(root), str(root / JSON_NAME))
    manifest["json_sha256"] = file_sha256(root / JSON_NAME)
    manifest["note"] = f"Pairs and sha256 recorded from a copy of {manifest['source']['path']}."
    return manifest


DREAMBOOTH_PAIRS = DatasetDeclaration(
    location=DataLocation(
        name=NAME,
        title="DreamBooth pairs",
        source="bytedance/UNO",
        env_var="DREAMBENCH_PAIRS_DATA",
        locate=locate,
    ),
    revision=_data()["source"]["commit"] or "unpinned",
    manifest=DATA_PATH,
    load=load,
    verify=verify,
    prompt_sets={NAME: prompt_set},
    default_prompt_set=NAME,
    build_manifest=build_manifest,
)


if __name__ == "__main__":
    record_manifest(sys.argv, "dreambench.dataset.dreambooth_pairs", DATA_PATH, build_manifest)

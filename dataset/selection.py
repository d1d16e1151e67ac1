"""Pick which subjects a run covers: a dataset's `all`, `live`, `objects`, its own categories,
`a,b,c` or `@file.txt`, plus subjects of your own (`resolve_subjects`, what a run request calls)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreambench.dataset.location import DEFAULT_DATASET
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError, did_you_mean

GROUPS: tuple[str, ...] = ("all", "live", "objects")


def _names_from_file(path: Path) -> list[str]:
    """One subject name per line; `#` starts a comment; blank lines are ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read subject list {path}: {exc.strerror or exc}") from None
    names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [n for n in names if n]


def select_subjects(spec: str, subjects: list[Subject]) -> list[Subject]:
    """The subjects named by `spec`.

    Groups keep the order of `subjects`: `all`, `live` (kind == "live"), `objects`
    (kind == "object"), and each category of the dataset's own (e.g. `animal`). An explicit list (`a,b,c` or `@file.txt`) keeps the requested order and
    drops repeats. An unknown name raises the standard "did you mean" BenchError.
    """
    spec = spec.strip()
    if spec == "all":
        return list(subjects)
    if spec == "live":
        return [s for s in subjects if s.kind == "live"]
    if spec == "objects":
        return [s for s in subjects if s.kind == "object"]
    categories = sorted({s.category for s in subjects if s.category} - {s.name for s in subjects})
    if spec in categories:
        return [s for s in subjects if s.category == spec]
    if spec.startswith("@"):
        source = spec[1:]
        names = _names_from_file(Path(source).expanduser())
    else:
        source = "--subjects"
        names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise BenchError(f"no subjects named in {source!r}; valid: {', '.join(GROUPS)}, a,b,c or @file.txt")
    by_name = {s.name: s for s in subjects}
    chosen: dict[str, Subject] = {}
    for name in names:
        if name not in by_name:
            raise did_you_mean(name, [*by_name, *GROUPS, *categories], "subject")
        chosen.setdefault(name, by_name[name])
    return list(chosen.values())


def resolve_subjects(
    *,
    dataset: str = DEFAULT_DATASET,
    subjects: str | None = None,
    data: str | Path | None = None,
    subject_dirs: Sequence[str | Path] = (),
    class_nouns: Sequence[str] = (),
    kinds: Sequence[str] = (),
) -> tuple[list[Subject], dict[str, Any]]:
    """The subjects a run covers and the dataset record its results and identity hold.

    `subjects` selects from `dataset` (see `select_subjects`; default `all`, or none when
    `subject_dirs` are given); `data` is where the dataset's copy lives (else its environment
    variable, else the cache). Each of `subject_dirs` is a subject of your own with its class noun
    (`class_nouns`, one per folder) and kind (`kinds`, default "object"). Only the selected
    subjects' files are checked (hashed against the pin): one missing image blocks runs of its own
    subject, not of the others.

    The record is the declaration's `{"name", "repo", "commit", "manifest_sha256"}` when dataset
    subjects are selected, plus `"custom": {name: {"class_noun", "kind", "images": [sha256]}}`
    for subjects of your own. Raises BenchError for an unknown dataset, a bad selection, a custom
    subject whose name clashes, or no subject at all.
    """
    from dreambench.dataset.custom import custom_subject
    from dreambench.dataset.registry import get_dataset

    declaration = get_dataset(dataset)  # an unknown name fails first, even with only custom subjects
    if class_nouns and len(class_nouns) != len(subject_dirs):
        raise BenchError(
            f"{len(subject_dirs)} --subject-dir but {len(class_nouns)} --class-noun; give one class noun per folder"
        )
    if subject_dirs and not class_nouns:
        raise BenchError("--subject-dir needs a --class-noun for each folder (e.g. --class-noun dog)")
    if len(kinds) > len(subject_dirs):
        raise BenchError(
            f"{len(kinds)} --kind for {len(subject_dirs)} --subject-dir; give at most one per folder"
        )
    all_kinds = list(kinds) + ["object"] * (len(subject_dirs) - len(kinds))
    custom = [
        custom_subject(Path(d), noun, kind) for d, noun, kind in zip(subject_dirs, class_nouns, all_kinds)
    ]

    spec = subjects if subjects is not None else (None if custom else "all")
    chosen: list[Subject] = []
    record: dict[str, Any] = {}
    if spec is not None:
        chosen = select_subjects(spec, declaration.subjects(data, check_files=False))
        declaration.check_files(chosen)
        record = declaration.record()
    names = {s.name for s in chosen}
    for subject in custom:
        if subject.name in names:
            raise BenchError(
                f"custom subject {subject.name!r} clashes with a selected subject of the same name; rename its folder"
            )
        names.add(subject.name)
    if custom:
        record["custom"] = {
            s.name: {"class_noun": s.class_noun, "kind": s.kind, "images": list(s.image_sha256)}
            for s in custom
        }
    chosen += custom
    if not chosen:
        raise BenchError(
            "no subjects selected; use --subjects all|live|objects|a,b,c or --subject-dir DIR --class-noun NOUN"
        )
    return chosen, record

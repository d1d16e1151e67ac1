"""Pick which subjects a run covers: `all`, `live`, `objects`, `a,b,c` or `@file.txt`."""

from __future__ import annotations

from pathlib import Path

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
    (kind == "object"). An explicit list (`a,b,c` or `@file.txt`) keeps the requested order and
    drops repeats. An unknown name raises the standard "did you mean" BenchError.
    """
    spec = spec.strip()
    if spec == "all":
        return list(subjects)
    if spec == "live":
        return [s for s in subjects if s.kind == "live"]
    if spec == "objects":
        return [s for s in subjects if s.kind == "object"]
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
            raise did_you_mean(name, [*by_name, *GROUPS], "subject")
        chosen.setdefault(name, by_name[name])
    return list(chosen.values())

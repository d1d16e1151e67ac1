"""Hand-edited or damaged results.json files, read by every command that reads them.

`bench leaderboard` (every format), `bench report` and `bench compare` validate each file against
schema 1 (leaderboard/results.py): a missing or mistyped field is one line naming the file and the
field, exit 2, nothing written. A field optional by schema (older files lack it) is read, and what
is shown instead is said.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from results_factory import results_document

from dreambench.cli import main


def _subject(kind: str, value: float) -> dict[str, Any]:
    figures = {"dino": value, "clip_i": value, "clip_t": value / 3}
    per_prompt = {str(p): {k: v + p / 100 for k, v in figures.items()} for p in range(2)}
    return {"kind": kind, "class_noun": "dog", "identifier": "sks", **figures, "per_prompt": per_prompt}


def _document() -> dict[str, Any]:
    doc = results_document({"dog": _subject("live", 0.6), "can": _subject("object", 0.5)})
    doc["ci"] = {"overall": {"dino": [0.5, 0.6]}, "subjects": {"dog": {"dino": [0.55, 0.65]}}}
    return doc


def _write(root: Path, name: str, doc: dict[str, Any]) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(doc))
    return run_dir


def _edit(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    doc = _document()
    change(doc)
    return doc


#: damage -> (the edited document, what the error line must name)
DAMAGE: dict[str, tuple[dict[str, Any], str]] = {
    "subject without kind": (_edit(lambda d: d["subjects"]["dog"].pop("kind")), "subjects.dog.kind"),
    "subject of an unknown kind": (
        _edit(lambda d: d["subjects"]["dog"].update(kind="animal")),
        "subjects.dog.kind='animal'; valid: live, object",
    ),
    "per_prompt a list": (
        _edit(lambda d: d["subjects"]["dog"].update(per_prompt=[0.1, 0.2])),
        "subjects.dog.per_prompt=[0.1, 0.2]",
    ),
    "per_prompt figure a string": (
        _edit(lambda d: d["subjects"]["dog"]["per_prompt"]["1"].update(dino="high")),
        "subjects.dog.per_prompt.1.dino='high'",
    ),
    "ci a list": (_edit(lambda d: d.update(ci=[1, 2])), "ci=[1, 2]"),
    "ci bounds reversed": (
        _edit(lambda d: d["ci"]["subjects"]["dog"].update(dino=[0.7, 0.6])),
        "ci.subjects.dog.dino=[0.7, 0.6]",
    ),
    "cost a string": (_edit(lambda d: d.update(cost="cheap")), "cost='cheap'"),
    "stamp a list": (_edit(lambda d: d.update(stamp=[])), "stamp=[]"),
    "embedder a string": (
        _edit(lambda d: d["metrics"]["dino"].update(embedder="dino")),
        "metrics.dino.embedder='dino'",
    ),
}

COMMANDS: dict[str, Callable[[Path, Path, Path], list[str]]] = {
    "leaderboard csv": lambda bad, good, out: ["leaderboard", str(bad), "--format", "csv", "-o", str(out / "b.csv")],
    "leaderboard html": lambda bad, good, out: [
        "leaderboard", str(bad), str(good), "--format", "html", "-o", str(out / "b.html"),
    ],  # fmt: skip
    "leaderboard md": lambda bad, good, out: ["leaderboard", str(bad), "-o", str(out / "b.md")],
    "report": lambda bad, good, out: ["report", str(bad), "-o", str(out / "report")],
    "compare (current)": lambda bad, good, out: ["compare", str(good), str(bad)],
    "compare (baseline)": lambda bad, good, out: ["compare", str(bad), str(good)],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_malformed_results_file_is_one_line_naming_file_and_field(
    damage: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, field = DAMAGE[damage]
    bad = _write(tmp_path, "bad", doc)
    good = _write(tmp_path, "good", _document())
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(COMMANDS[command](bad, good, out)) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    assert str(bad / "results.json") in lines[0] and field in lines[0], lines[0]
    assert not out.exists() and captured.out == ""


def test_files_without_the_optional_sections_stay_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What results_factory writes (no ci, no per_prompt) is a valid schema-1 file of an earlier
    version: every reader accepts it; compare says what its intervals rest on instead."""
    older = results_document({"dog": {"kind": "live", "dino": 0.6, "clip_i": 0.7, "clip_t": 0.2}})
    base = _write(tmp_path, "base", older)
    current = _write(tmp_path, "current", older)
    out = tmp_path / "out"
    for fmt in ("csv", "html", "md", "json"):
        assert main(["leaderboard", str(base), "--format", fmt, "-o", str(out / f"b.{fmt}")]) == 0
    capsys.readouterr()
    assert main(["compare", str(base), str(current)]) == 0
    printed = capsys.readouterr().out
    assert f"the current run ({current / 'results.json'}) records no bootstrap intervals (ci)" in printed
    assert "the current run records no per-prompt figures for 1 subject(s) (dog)" in printed

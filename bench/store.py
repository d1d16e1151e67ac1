"""The run directory: where every file of a run lives, and how each is read and written.

Layout (one folder per resolved config)::

    runs/<method>-<preset>-<hash>/
      config.json  stamp.json  results.json
      subjects/<name>/prepare/                 the method's workdir (weights, caches)
      subjects/<name>/images/<p>-<s>.png       one image per (prompt index, sample index)
      subjects/<name>/images.jsonl             prompt, seed, sha256 of every image
      subjects/<name>/scores.jsonl             one line per image (or one for real-real pairs)
      subjects/<name>/pres/<k>.png, pres.jsonl   "a {class}" samples for PRES (when asked for)
      subjects/<name>/optional_scores.json     PRES / DIV with the sha256s they were computed from
      subjects/<name>/cost.json                wall seconds of each stage when it last did work

A step is done only when all its files exist; every file is written to a temp path and renamed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreambench.atomic import atomic_write_json, atomic_write_text
from dreambench.errors import BenchError


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise BenchError(
                f"{path} line {number} is not valid JSON; delete the file to redo that step"
            ) from None
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def image_name(prompt_idx: int, sample_idx: int) -> str:
    return f"{prompt_idx}-{sample_idx}.png"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def stamp_path(self) -> Path:
        return self.root / "stamp.json"

    @property
    def results_path(self) -> Path:
        return self.root / "results.json"

    def subject_dir(self, subject: str) -> Path:
        return self.root / "subjects" / subject

    def prepare_dir(self, subject: str) -> Path:
        return self.subject_dir(subject) / "prepare"

    def images_dir(self, subject: str) -> Path:
        return self.subject_dir(subject) / "images"

    def image_path(self, subject: str, prompt_idx: int, sample_idx: int) -> Path:
        return self.images_dir(subject) / image_name(prompt_idx, sample_idx)

    def read_images_index(self, subject: str) -> list[dict[str, Any]]:
        return _read_jsonl(self.subject_dir(subject) / "images.jsonl")

    def write_images_index(self, subject: str, rows: list[dict[str, Any]]) -> None:
        rows = sorted(rows, key=lambda r: (r["prompt_idx"], r["sample_idx"]))
        _write_jsonl(self.subject_dir(subject) / "images.jsonl", rows)

    def pres_dir(self, subject: str) -> Path:
        return self.subject_dir(subject) / "pres"

    def read_jsonl(self, path: Path) -> list[dict[str, Any]]:
        return _read_jsonl(path)

    def write_jsonl(self, path: Path, rows: list[dict[str, Any]]) -> None:
        _write_jsonl(path, rows)

    def read_scores(self, subject: str) -> list[dict[str, Any]]:
        return _read_jsonl(self.subject_dir(subject) / "scores.jsonl")

    def write_scores(self, subject: str, rows: list[dict[str, Any]]) -> None:
        _write_jsonl(self.subject_dir(subject) / "scores.jsonl", rows)

    def sweep_temp_files(self, subject: str | None = None) -> None:
        """Delete temp files a killed process left (never read, only renamed): in a subject's
        folder, or with no subject in the run directory's top level."""
        if subject is None:
            tmps = list(self.root.glob(".*.tmp")) if self.root.is_dir() else []
        else:
            folder = self.subject_dir(subject)
            tmps = list(folder.rglob(".*.tmp")) if folder.is_dir() else []
        for tmp in tmps:
            tmp.unlink(missing_ok=True)

    def read_cost(self, subject: str) -> dict[str, float]:
        """Wall seconds per stage of the last time each stage did work (kept across resumes)."""
        path = self.subject_dir(subject) / "cost.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def record_cost(self, subject: str, **stages: float) -> dict[str, float]:
        cost = {**self.read_cost(subject), **stages}
        atomic_write_json(self.subject_dir(subject) / "cost.json", cost)
        return cost

    def write_json(self, path: Path, obj: Any) -> None:
        atomic_write_json(path, obj)

    def check_config(self, config: dict[str, Any]) -> None:
        """Refuse to mix runs: an existing config.json must equal this run's config."""
        if self.config_path.exists():
            try:
                existing = json.loads(self.config_path.read_text())
            except json.JSONDecodeError:
                raise BenchError(
                    f"{self.config_path} is not valid JSON; delete it to start the run afresh"
                ) from None
            if existing != json.loads(json.dumps(config, default=str)):
                raise BenchError(
                    f"{self.root} holds a run with a different config; use another --out or delete it"
                )

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
                                               (null: unknown, its record was lost to damage)
      subjects/<name>/summary.json             the subject's figures once it finished (its row)
      subjects/<name>/error.txt                why it failed (first line), then the traceback

A step is done only when all its files exist; every file is written to a temp path and renamed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreambench.atomic import (
    atomic_write_json,
    atomic_write_text,
    count_reclaimed,
    remove_entry,
    sweep_temp_entries,
)
from dreambench.cost import is_well_formed, repaired_costs, valid_stage_costs
from dreambench.errors import BenchError


def _read_jsonl_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(the rows of a jsonl index that parse as JSON objects, how many lines did not).

    For files the runner can rebuild (images.jsonl, scores.jsonl, pres.jsonl): a damaged line
    (a truncated file, bytes that are not UTF-8) means "redo that part", never a failure.
    """
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    rows: list[dict[str, Any]] = []
    damaged = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            damaged += 1
    return rows, damaged


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
        """The rows of images.jsonl that parse (a damaged line's image is rendered again)."""
        return _read_jsonl_rows(self.subject_dir(subject) / "images.jsonl")[0]

    def write_images_index(self, subject: str, rows: list[dict[str, Any]]) -> None:
        rows = sorted(rows, key=lambda r: (r["prompt_idx"], r["sample_idx"]))
        _write_jsonl(self.subject_dir(subject) / "images.jsonl", rows)

    def pres_dir(self, subject: str) -> Path:
        return self.subject_dir(subject) / "pres"

    def read_jsonl(self, path: Path) -> list[dict[str, Any]]:
        """The rows of a rebuildable index that parse (damaged lines are skipped: redone)."""
        return _read_jsonl_rows(path)[0]

    def write_jsonl(self, path: Path, rows: list[dict[str, Any]]) -> None:
        _write_jsonl(path, rows)

    def read_scores(self, subject: str) -> list[dict[str, Any]]:
        """scores.jsonl's rows, or [] when any line is damaged: the scores are recomputed from the
        images (cheap: the embeddings are cached)."""
        rows, damaged = _read_jsonl_rows(self.subject_dir(subject) / "scores.jsonl")
        return [] if damaged else rows

    def write_scores(self, subject: str, rows: list[dict[str, Any]]) -> None:
        _write_jsonl(self.subject_dir(subject) / "scores.jsonl", rows)

    def sweep_temp_files(self, subject: str | None = None) -> int:
        """Delete the temp files and folders a killed process left (never read, only renamed) in a
        subject's folder, or with no subject in the run directory's top level; return the bytes
        reclaimed. The caller holds the run's lock (bench/run_lock.py), so every temp entry there is
        an orphan. Names of earlier versions (``.<name>.<random>.tmp`` files, ``.weights.<random>/``
        folders) are swept too."""
        if subject is None:
            folder, recursive = self.root, False
        else:
            folder, recursive = self.subject_dir(subject), True
        if not folder.is_dir():
            return 0
        reclaimed = sweep_temp_entries(folder, recursive=recursive, exclusive=True)
        legacy = list(folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"))
        if subject is not None:
            legacy += [p for p in self.prepare_dir(subject).glob(".weights.*") if p.is_dir()]
        legacy_bytes = sum(remove_entry(p) for p in legacy)
        count_reclaimed(legacy_bytes)
        return reclaimed + legacy_bytes

    def sweep_all_temp_files(self) -> int:
        """`sweep_temp_files` over the top level and every subject; the bytes reclaimed."""
        subjects = self.root / "subjects"
        names = sorted(p.name for p in subjects.iterdir() if p.is_dir()) if subjects.is_dir() else []
        return self.sweep_temp_files() + sum(self.sweep_temp_files(name) for name in names)

    def read_cost(self, subject: str) -> dict[str, dict[str, Any] | None]:
        """Cost of each stage the last time it did work (kept across resumes); ``None`` for a stage
        whose cost is unknown (`repair_cost`). A damaged cost.json reads as no record, never as a
        failure."""
        path = self.subject_dir(subject) / "cost.json"
        try:
            return valid_stage_costs(json.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}

    def repair_cost(self, subject: str, stages: tuple[str, ...]) -> str | None:
        """Rewrite a damaged cost.json (not JSON, wrong shape, a bad record; or missing where
        stages left their outputs) with its well-formed records kept and the other `stages`
        marked unknown until they do work again; return what was wrong, or None when nothing was."""
        path = self.subject_dir(subject) / "cost.json"
        try:
            obj: Any = json.loads(path.read_text())
        except FileNotFoundError:
            # Stages did work here before (their outputs are on disk) and left no record.
            if not any((self.subject_dir(subject) / f).is_file() for f in ("images.jsonl", "scores.jsonl")):
                return None
            obj, problem = {}, "is missing"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            obj, problem = {}, "is not valid JSON"
        else:
            if is_well_formed(obj):
                return None
            problem = "does not hold stage -> {wall_s, device_s, peak_device_mib, peak_host_mib}"
        atomic_write_json(path, repaired_costs(obj, stages))
        return problem

    def record_cost(self, subject: str, **stages: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
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

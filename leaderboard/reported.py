"""Published rows: figures reported in papers, shipped as a versioned data file
(leaderboard/data/reported.json) and shown by `bench leaderboard --reported`, never re-measured and
never taken by `bench compare`.

The file: ``{"schema": "dreambench.reported", "schema_version": 1, "version": str, "notes": [str],
"rows": [row]}``, each row

    method       the method's name in dreambench where it has one ("dreambooth"), else the paper's
    base_model   as the source names it ("Imagen", "Stable Diffusion"), or null
    figures      {"dino": float | null, "clip_i": ..., "clip_t": ..., other metric names ...}
    source       {"paper": "arXiv:2208.12242", "title": str, "table": "Table 1", "row": str,
                  "checked": whether the figures were checked against the paper's text}
    protocol     as far as the source states it (null: not stated): dataset, metric_protocol,
                 references, images_per_prompt, dino, clip, clip_t_text, scale

Where a row goes (`beside`): next to measured rows only when every measured run is calibrated and
agrees with each protocol field the source states: dataset (results.json dataset.name),
metric_protocol and images_per_prompt and clip_t_text (results.json protocol), scale (1: the core
metrics' convention is raw cosine). Fields the source leaves unstated do not block the match; the
row names them. Every row is listed in the reported section either way.

Importing this module is cheap (no torch, no numpy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dreambench.errors import BenchError
from dreambench.leaderboard.results import RunResults

SCHEMA = "dreambench.reported"
SCHEMA_VERSION = 1
PROTOCOL_FIELDS: tuple[str, ...] = (
    "dataset", "metric_protocol", "references", "images_per_prompt", "dino", "clip", "clip_t_text", "scale",
)  # fmt: skip
_ROW_FIELDS = ("method", "base_model", "figures", "source", "protocol")
_SOURCE_FIELDS = ("paper", "table", "row", "checked")


@dataclass(frozen=True)
class ReportedRow:
    """One published row (see the module docstring for the fields)."""

    method: str
    base_model: str | None
    figures: dict[str, float | None]
    source: dict[str, Any]
    protocol: dict[str, Any]

    @property
    def source_text(self) -> str:
        """E.g. "arXiv:2208.12242 Table 1, 'DreamBooth (Imagen)' (not checked against the paper)"."""
        text = f"{self.source['paper']} {self.source['table']}, {self.source['row']!r}"
        return text if self.source["checked"] else f"{text} (not checked against the paper)"

    @property
    def protocol_text(self) -> str:
        """The stated protocol fields, then the unstated ones, e.g. "images_per_prompt=4; unstated: clip"."""
        stated = "; ".join(f"{k}={v}" for k, v in self.protocol.items() if v is not None)
        unstated = [k for k, v in self.protocol.items() if v is None]
        return stated + (f"; unstated: {', '.join(unstated)}" if unstated else "")

    def mismatch(self, runs: list[RunResults]) -> str | None:
        """None when the row may stand beside `runs` (module docstring), else the first reason."""
        if not runs:
            return "no measured runs"
        for run in runs:
            if not run.calibrated:
                return f"{run.run_dir.name} is uncalibrated"
            protocol = run.raw.get("protocol") or {}
            measured = {
                "dataset": (run.raw.get("dataset") or {}).get("name"),
                "metric_protocol": protocol.get("metric_protocol"),
                "images_per_prompt": protocol.get("images_per_prompt"),
                "clip_t_text": protocol.get("clip_t_text"),
                "scale": 1 if run.metric_conventions.get("dino", "raw cosine").startswith("raw cosine") else None,
            }
            for key, value in measured.items():
                stated = self.protocol.get(key)
                if stated is not None and stated != value:
                    return f"{key} {stated} (reported) vs {value} ({run.run_dir.name})"
        return None


@dataclass(frozen=True)
class ReportedRows:
    """The data file: its version, notes and rows."""

    version: str
    notes: tuple[str, ...]
    rows: tuple[ReportedRow, ...]


def default_path() -> Path:
    """The shipped data file (package data of dreambench.leaderboard)."""
    return Path(str(resources.files("dreambench.leaderboard") / "data" / "reported.json"))


def load_reported(path: Path | None = None) -> ReportedRows:
    """Read and check the reported rows (one-line BenchError naming the file and the bad field)."""
    path = default_path() if path is None else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: cannot read the reported rows ({exc})") from None

    def bad(what: str) -> BenchError:
        return BenchError(f"{path}: {what}")

    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise bad(f"not a reported-rows file (schema must be {SCHEMA!r})")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise bad(f"schema_version {data.get('schema_version')!r}; this dreambench reads {SCHEMA_VERSION}")
    if not isinstance(data.get("version"), str) or not isinstance(data.get("rows"), list):
        raise bad("needs a string 'version' and a list 'rows'")
    rows = []
    for i, row in enumerate(data["rows"]):
        where = f"rows[{i}]"
        if not isinstance(row, dict) or any(k not in row for k in _ROW_FIELDS):
            raise bad(f"{where} needs the fields {', '.join(_ROW_FIELDS)}")
        source, protocol, figures = row["source"], row["protocol"], row["figures"]
        if not isinstance(source, dict) or any(k not in source for k in _SOURCE_FIELDS):
            raise bad(f"{where}.source needs {', '.join(_SOURCE_FIELDS)}: every row says where it was read")
        if not isinstance(protocol, dict) or set(protocol) != set(PROTOCOL_FIELDS):
            raise bad(f"{where}.protocol needs exactly {', '.join(PROTOCOL_FIELDS)} (null: not stated)")
        if not isinstance(figures, dict) or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in figures.values()
        ):
            raise bad(f"{where}.figures must map metric names to numbers or null")
        rows.append(
            ReportedRow(
                method=str(row["method"]),
                base_model=None if row["base_model"] is None else str(row["base_model"]),
                figures={k: None if v is None else float(v) for k, v in figures.items()},
                source=dict(source),
                protocol={k: protocol[k] for k in PROTOCOL_FIELDS},
            )
        )
    return ReportedRows(version=data["version"], notes=tuple(map(str, data.get("notes") or ())), rows=tuple(rows))

"""Leaderboard as JSON: a stable, machine-readable structure (unrounded numbers).

```jsonc
{
  "format": "dreambench-leaderboard", "format_version": 2,
  "metrics": ["dino", "clip_i", "clip_t", ...],                // the core ones, then any other some run has
  "prompt_set": {"name": ..., "version": ..., "sha256": ...},   // shared by all runs (checked)
  "metric_versions": {"dino": 1, ...},                          // union over runs (checked equal)
  "footnotes": ["† uncalibrated: ..."], "notes": [...],
  "subjects": ["backpack", ...],                                // union over runs, sorted
  "overall_subjects": {"common_to_all_runs": true | false, "subjects": ["backpack", ...] | null},
      // true when the runs scored different subjects: every run's overall, live and object
      // figures are then means over "subjects" (the ones all runs scored), with "ci": null
  "reported": [{"method", "base_model", "figures", "source", "protocol", "beside_measured"}],
      // `--reported` (leaderboard/reported.py): published, not re-measured; [] without it
  "runs": [                                                     // leaderboard order
    {"rank": 1, "label": "real-images", "run_dir": "runs/...", "method": ..., "preset": ...,
     "metric_preset": "dreambooth" | null, "dataset": "dreambooth", "config_hash": ..., "calibrated": true, "uncalibrated_reasons": [],
     "overall": {"n_subjects": 30, "dino": {"value": 0.77, "ci": [lo, hi] | null}, ...},
         // a metric besides the core ones appears where the run (or subject) has it
     "live": {...} | null, "object": {...} | null,
     "subjects": {"dog6": {"kind": "live", "dino": {"value": ..., "ci": null}, ...}},
     "failures": {"dog7": "reason"},
     "groups": {"cat+dog": {"cat": {"dino": ...}, "dog": {...}, "mean": {...}, "min": {...}}}}
         // subject groups only (pair datasets); {} otherwise
  ]
}
```
"""

from __future__ import annotations

import json
from typing import Any

from dreambench.leaderboard.table import Aggregate, Entry, Figure, Leaderboard

FORMAT_NAME = "dreambench-leaderboard"
# 2: "overall_subjects"; overall / live / object are means over the common subjects when the runs'
# subject sets differ.
FORMAT_VERSION = 2


def leaderboard_dict(board: Leaderboard) -> dict[str, Any]:
    """The structure documented in the module docstring."""
    first = board.entries[0].run
    versions: dict[str, int] = {}
    for entry in board.entries:
        versions.update(entry.run.metric_versions)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "metrics": list(board.metrics()),
        "prompt_set": first.prompt_set,
        "metric_versions": versions,
        "footnotes": list(board.footnotes),
        "notes": list(board.notes),
        "subjects": list(board.subjects),
        "overall_subjects": {
            "common_to_all_runs": board.common_subjects is not None,
            "subjects": None if board.common_subjects is None else list(board.common_subjects),
        },
        # `--reported`: published figures, not re-measured (leaderboard/reported.py).
        "reported": [
            {
                "method": r.method,
                "base_model": r.base_model,
                "figures": r.figures,
                "source": r.source,
                "protocol": r.protocol,
                "beside_measured": r in board.reported_beside(),
            }
            for r in board.reported
        ],
        "runs": [
            {
                "rank": rank,
                "label": entry.label,
                "run_dir": str(entry.run.run_dir),
                "method": entry.run.method,
                "kind": entry.run.method_kind,
                "base_model": entry.run.base_model,
                "preset": entry.run.preset,
                "metric_preset": entry.run.metric_preset,
                "dataset": entry.dataset,
                "config_hash": entry.run.config_hash,
                "calibrated": entry.run.calibrated,
                "uncalibrated_reasons": entry.run.uncalibrated_reasons,
                "scoring_precision": entry.run.scoring_precision,
                "overall": _aggregate(entry.overall),
                "live": None if entry.live is None else _aggregate(entry.live),
                "object": None if entry.objects is None else _aggregate(entry.objects),
                "subjects": {
                    name: {"kind": board.subject_kinds.get(name)} | _figures(figures)
                    for name, figures in sorted(entry.subjects.items())
                },
                "failures": dict(sorted(entry.run.failures.items())),
                # Subject groups (pair datasets): per group, each subject's figures, "mean" and "min".
                "groups": _groups(board, entry),
            }
            for rank, entry in enumerate(board.entries, start=1)
        ],
    }


def _groups(board: Leaderboard, entry: Entry) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for e, group, name, figures in board.group_rows():
        if e is entry:
            out.setdefault(group, {})[name] = {m: figures.get(m) for m in board.metrics() if m in figures}
    return out


def render_json(board: Leaderboard) -> str:
    """`leaderboard_dict` as indented JSON text with sorted keys (ends with a newline)."""
    return json.dumps(leaderboard_dict(board), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _figures(figures: dict[str, Figure]) -> dict[str, Any]:
    return {m: {"value": f.value, "ci": None if f.ci is None else list(f.ci)} for m, f in figures.items()}


def _aggregate(agg: Aggregate) -> dict[str, Any]:
    return {"n_subjects": agg.n_subjects} | _figures(agg.figures) | _figures(agg.optional)

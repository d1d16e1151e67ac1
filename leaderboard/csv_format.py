"""Leaderboard as CSV: one header row, then per run its overall, live, object and subject rows.

Numbers are unrounded (Python's shortest round-trip repr); a null figure or a missing CI bound is
an empty cell. The `scope` column says what a row aggregates: `overall`, `live`, `object` or
`subject:<name>`. Aggregate rows fill `n_subjects` and `failures` (a count); a failed subject's row
has empty figures and its reason in `error`. When the runs scored different subjects, the aggregate
rows are means over the subjects common to all runs (`n_subjects` is their count) without interval
bounds (leaderboard/table.py). The metrics besides the core ones that some run computed (DINOv2,
PRES, DIV, outside metrics) get the same three columns each, after CSV_COLUMNS, in display order.
`dataset` names the dataset each run scored. Runs that scored subject groups (a pair dataset) add
rows of scope `group:<group>:<subject>`, `group:<group>:mean` and `group:<group>:min` (and
`group:all groups:mean|min` over every group), figures without intervals.
"""

from __future__ import annotations

import csv
import io

from dreambench.leaderboard.results import METRICS
from dreambench.leaderboard.table import REPORTED_MARK, Aggregate, Entry, Figure, Leaderboard

CSV_COLUMNS: tuple[str, ...] = (
    "run",
    "label",
    "method",
    "kind",
    "preset",
    "calibrated",
    "scope",
    "n_subjects",
    *(col for m in METRICS for col in (m, f"{m}_ci_low", f"{m}_ci_high")),
    "failures",
    "error",
    "scoring_precision",  # "fp32" (the protocol) or "bf16"; after the others, so they keep their place
    "base_model",
    "metric_preset",  # metrics/presets.py: embedders, pairing, scale (one per leaderboard)
    "dataset",  # results.json dataset name ("dreambooth" for results written before it was recorded)
)


def _metric_columns(metric: str) -> tuple[str, str, str]:
    return (metric, f"{metric}_ci_low", f"{metric}_ci_high")


def render_csv(board: Leaderboard) -> str:
    """The leaderboard as CSV text (rows in leaderboard order, subjects alphabetical)."""
    out = io.StringIO()
    columns = (*CSV_COLUMNS, *(c for m in board.optional_metrics() for c in _metric_columns(m)))
    # `--reported`: published rows (scope "reported", not re-measured) and where each was read.
    columns += ("source", "protocol") if board.reported else ()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for entry in board.entries:
        writer.writerow(_aggregate_row(entry, "overall", entry.overall))
        for scope, agg in (("live", entry.live), ("object", entry.objects)):
            if agg is not None:
                writer.writerow(_aggregate_row(entry, scope, agg))
        for subject in board.subjects:
            if subject in entry.subjects:
                writer.writerow(_base(entry, f"subject:{subject}") | _figure_cells(entry.subjects[subject]))
            elif subject in entry.run.failures:
                writer.writerow(_base(entry, f"subject:{subject}") | {"error": entry.run.failures[subject]})
    # Subject groups: scope "group:<group>:<subject | mean | min>" ("all groups" over every group).
    for entry, group, name, figures in board.group_rows():
        cells = {m: _number(figures.get(m)) for m in METRICS if m in figures}
        writer.writerow(_base(entry, f"group:{group}:{name}") | cells)
    for row in board.reported:
        figures = {m: _number(v) for m, v in row.figures.items()}
        writer.writerow(
            {"label": f"{row.method} {REPORTED_MARK}", "method": row.method, "kind": "reported", "scope": "reported"}
            | {"base_model": row.base_model or "", "source": row.source_text, "protocol": row.protocol_text}
            | figures
        )
    return out.getvalue()


def _base(entry: Entry, scope: str) -> dict[str, str]:
    return {
        "run": str(entry.run.run_dir),
        "label": entry.label,
        "method": entry.run.method,
        "kind": entry.run.method_kind,
        "preset": entry.run.preset,
        "calibrated": "true" if entry.run.calibrated else "false",
        "scoring_precision": entry.run.scoring_precision,
        "base_model": entry.run.base_model,
        "metric_preset": entry.run.metric_preset or "",
        "dataset": entry.dataset,
        "scope": scope,
    }


def _aggregate_row(entry: Entry, scope: str, agg: Aggregate) -> dict[str, str]:
    row = _base(entry, scope) | _figure_cells(agg.figures) | _figure_cells(agg.optional)
    row["n_subjects"] = "" if agg.n_subjects is None else str(agg.n_subjects)
    if scope == "overall":
        row["failures"] = str(len(entry.run.failures))
    return row


def _figure_cells(figures: dict[str, Figure]) -> dict[str, str]:
    cells: dict[str, str] = {}
    for m, fig in figures.items():
        value, low, high = _metric_columns(m)
        cells[value] = _number(fig.value)
        cells[low] = _number(None if fig.ci is None else fig.ci[0])
        cells[high] = _number(None if fig.ci is None else fig.ci[1])
    return cells


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)

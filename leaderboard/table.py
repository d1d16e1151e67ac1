"""Format-independent leaderboard: runs -> entries -> text tables (md / html render these).

Conventions, shared by every output format:

- Row order: overall DINO descending; runs without a DINO figure last; ties by label. (The
  real-images ceiling therefore usually comes first; it is an ordinary row.)
- A run's label is its method name; where two runs share a method it becomes "method (preset)",
  and where those collide too, "method (preset, run-dir-name)".
- Columns: the core metrics (DINO, CLIP-I, CLIP-T), then every other metric some run computed
  (DINOv2, PRES, DIV, outside metrics), in declaration order (metrics/metric_registry.py); a
  metric this process has no declaration for is still shown, under its name, after the others. A
  header is the metric's display name, with "↓" when lower is better (results.json's
  `higher_is_better`). Each metric also gets a per-subject table.
- Text cells show the metric's declared decimals (3); a null figure (CLIP-T of the real-images ceiling) is "n/a". A figure
  with a confidence interval `ci: {metric: [low, high]}` is "0.612 ± 0.021" when the interval
  reaches equally far on both sides (at 3 decimals), else "0.383 [-0.061, 0.712]": bootstrap
  intervals are often asymmetric, and a half-width would misstate both ends.
- Overall, live and object figures compare rows over the same subjects. When every run scored the
  same subjects they are the runs' own (with their intervals). Otherwise they are recomputed as
  means over the subjects common to all rows (the titles and a note say so, and which subjects
  were left out); the intervals are then omitted, since each run's bootstrap covers its own
  subject set. Runs with no scored subject in common are refused (one-line BenchError).
- Uncalibrated runs (any figure from random-weight models) carry a dagger after their label and
  the tables get the UNCALIBRATED_FOOTNOTE.
- Runs scored in reduced precision (`--scoring-precision bf16`; fp16 autocast on CUDA before the
  precision was recorded) carry a section sign (PRECISION_MARK) and the REDUCED_PRECISION_FOOTNOTE.
- Runs whose method declared a deviation from the preset's render protocol carry a double dagger
  and the tables get a footnote naming the method, the fields and the reason.
- Per-subject tables: a subject the run failed on is "failed"; one the run did not cover is "—".
- The overall table names each row's run preset ("Preset": protocol, method hyperparameters,
  render protocol) and metric preset ("Metrics": embedders, pairing, scale; metrics/presets.py).
  Rows scored under different metric presets are refused, so "Metrics" is one name per table;
  it is shown so that a table read on its own says which convention its numbers follow.
- Every table names the dataset its runs scored (results.json "dataset"."name"; "dreambooth" for
  results written before datasets were named): the overall table's last column. Runs on
  different datasets are refused (leaderboard/compatibility.py).
- Subject groups (a pair dataset, metrics/subject_groups.py): the per-subject tables show each
  group's mean; the "Subject groups" table shows, per run and group, each subject's figures, the
  group mean and the group minimum, and over all groups the mean and the mean of the minima.
- Reported rows (`bench leaderboard --reported`, leaderboard/reported.py): figures read from papers,
  in their own table "Reported, not re-measured" (every row, its source and stated protocol, and
  whether it stands beside the measured rows); a row whose stated protocol matches every measured
  run is also appended to the overall table, its method marked REPORTED_MARK. Every format shows them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dreambench.errors import BenchError
from dreambench.leaderboard.compatibility import (
    check_comparable,
    dataset_name,
    embedder_notes,
    render_deviation,
)
from dreambench.leaderboard.reported import ReportedRow
from dreambench.leaderboard.results import METRICS, RunResults
from dreambench.metrics.metric_registry import METRIC_TITLES, display_order, find_metric

__all__ = ["METRIC_TITLES"]  # metric name -> display name, re-exported for the report and plot
DECIMALS = 3
DAGGER = "†"
UNCALIBRATED_FOOTNOTE = (
    f"{DAGGER} uncalibrated: computed with random-weight models (smoke preset); "
    "not comparable to published numbers"
)
DOUBLE_DAGGER = "‡"
PRECISION_MARK = "§"
REDUCED_PRECISION_FOOTNOTE = (
    f"{PRECISION_MARK} scored in reduced precision (bf16, or fp16 autocast): figures deviate from fp32 "
    "scoring (measured in docs/PERFORMANCE.md); `bench compare` refuses to compare them with fp32 runs"
)
NOT_APPLICABLE = "n/a"
REPORTED_MARK = "(reported, not re-measured)"
FAILED = "failed"
ABSENT = "—"


def metric_decimals(metric: str) -> int:
    """The decimals a metric's figures are shown with (its declaration's; DECIMALS otherwise)."""
    spec = find_metric(metric)
    return DECIMALS if spec is None else spec.decimals


def _extra_metrics(run: RunResults, section: dict[str, Any]) -> list[str]:
    """The metrics besides the core ones that `section` (an overall or subject entry) holds: the
    names the run's "metrics" section declares."""
    return [m for m in run.metrics if m not in METRICS and m in section]


@dataclass(frozen=True)
class Figure:
    """One number of the leaderboard: a mean (None = does not apply) and an optional CI."""

    value: float | None
    ci: tuple[float, float] | None = None
    decimals: int = DECIMALS

    @property
    def half_width(self) -> float | None:
        return None if self.ci is None else (self.ci[1] - self.ci[0]) / 2

    def text(self) -> str:
        """ "0.612", "0.612 ± 0.021" (symmetric at 3 decimals) or "0.383 [-0.061, 0.712]"."""
        if self.value is None:
            return NOT_APPLICABLE
        d = self.decimals
        value = f"{self.value:.{d}f}"
        if self.ci is None:
            return value
        low, high = self.ci
        below, above = f"{self.value - low:.{d}f}", f"{high - self.value:.{d}f}"
        if below == above:
            return f"{value} ± {above}"
        return f"{value} [{low:.{d}f}, {high:.{d}f}]"


@dataclass(frozen=True)
class Aggregate:
    """Figures over a group of subjects (all, live or object) of one run."""

    n_subjects: int | None
    figures: dict[str, Figure]
    # The other metrics (DINOv2, PRES, DIV, outside ones) the group's subjects computed.
    optional: dict[str, Figure] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """One run in the leaderboard."""

    run: RunResults
    label: str
    overall: Aggregate
    live: Aggregate | None
    objects: Aggregate | None
    subjects: dict[str, dict[str, Figure]]

    @property
    def marks(self) -> str:
        """The uncalibrated dagger, the render-deviation double dagger and the reduced-precision
        section sign, where they apply."""
        return (
            ("" if self.run.calibrated else DAGGER)
            + (DOUBLE_DAGGER if render_deviation(self.run) else "")
            + (PRECISION_MARK if self.run.reduced_precision else "")
        )

    @property
    def marked_label(self) -> str:
        """The label with its marks (uncalibrated, render deviation, reduced precision)."""
        return f"{self.label}{self.marks}"

    @property
    def marked_method(self) -> str:
        return f"{self.run.method}{self.marks}"

    @property
    def dataset(self) -> str:
        """The dataset the run scored (see `dataset_name`)."""
        return dataset_name(self.run)

    def subject_text(self, subject: str, metric: str) -> str:
        if subject in self.subjects:
            figure = self.subjects[subject].get(metric)
            return ABSENT if figure is None else figure.text()
        if subject in self.run.failures:
            return FAILED
        return ABSENT


@dataclass(frozen=True)
class TextTable:
    """A rendered table: header and rows of strings; `numeric[i]` says column i is right-aligned."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]


@dataclass(frozen=True)
class Leaderboard:
    """Entries in leaderboard order, the union of their subjects, and notes on the comparison."""

    entries: tuple[Entry, ...]
    subjects: tuple[str, ...]
    subject_kinds: dict[str, str]
    notes: tuple[str, ...]
    # The subjects the overall / live / object figures are means over, when the runs' subject sets
    # differ (the subjects every run scored); None when every run scored the same subjects.
    common_subjects: tuple[str, ...] | None = None
    # Published rows shown with `--reported` (leaderboard/reported.py), in the data file's order.
    reported: tuple[ReportedRow, ...] = ()

    @property
    def footnotes(self) -> tuple[str, ...]:
        uncalibrated = any(not e.run.calibrated for e in self.entries)
        notes = [UNCALIBRATED_FOOTNOTE] if uncalibrated else []
        if any(e.run.reduced_precision for e in self.entries):
            notes.append(REDUCED_PRECISION_FOOTNOTE)
        for e in self.entries:
            deviation = render_deviation(e.run)
            if deviation:
                fields = ", ".join(f"{k}={v!r}" for k, v in (deviation.get("fields") or {}).items())
                notes.append(
                    f"{DOUBLE_DAGGER} {e.label} deviates from the preset's render protocol"
                    f"{' (' + fields + ')' if fields else ''}: {deviation.get('reason', '')}"
                )
        return tuple(notes)

    def optional_metrics(self) -> tuple[str, ...]:
        """The metrics besides the core ones that at least one run computed, in display order."""
        found = {m for e in self.entries for m in _extra_metrics(e.run, e.run.overall)}
        return tuple(display_order(found))

    def metrics(self) -> tuple[str, ...]:
        """Every metric shown: the core ones, then `optional_metrics`."""
        return (*METRICS, *self.optional_metrics())

    def column_title(self, metric: str) -> str:
        """A metric's header: its display name, "↓" after it when lower is better."""
        higher = next(
            (
                e.run.metrics[metric]["higher_is_better"]
                for e in self.entries
                if "higher_is_better" in e.run.metrics.get(metric, {})
            ),
            True,
        )
        title = METRIC_TITLES.get(metric, metric)
        return title if higher else f"{title} ↓"

    def overall_table(self) -> TextTable:
        optional = self.optional_metrics()
        header = (
            "Method",
            "Kind",
            "Preset",
            "Metrics",
            *(self.column_title(m) for m in (*METRICS, *optional)),
        )
        header += ("Subjects", "Calibrated", "Failures", "Base model", "Run", "Dataset")
        rows = tuple(
            (
                e.marked_method,
                e.run.method_kind,
                e.run.preset,
                e.run.metric_preset or ABSENT,
                *(e.overall.figures[m].text() for m in METRICS),
                *(e.overall.optional[m].text() if m in e.overall.optional else ABSENT for m in optional),
                _count_text(e.overall.n_subjects),
                "yes" if e.run.calibrated else "no",
                str(len(e.run.failures)),
                e.run.base_model,
                e.run.run_dir.name,
                e.dataset,
            )
            for e in self.entries
        )
        rows += tuple(
            (
                f"{r.method} {REPORTED_MARK}",
                "reported",
                ABSENT,
                ABSENT,
                *(_reported_text(r, m) for m in (*METRICS, *optional)),
                ABSENT,
                ABSENT,
                ABSENT,
                r.base_model or ABSENT,
                r.source_text,
                ABSENT,
            )
            for r in self.reported_beside()
        )
        numeric = (
            False,
            False,
            False,
            False,
            *(True for _ in METRICS),
            *(True for _ in optional),
            True,
            False,
            True,
            False,
            False,
            False,
        )
        return TextTable(f"Overall (mean over {self._scope('subjects')})", header, rows, numeric)

    def _scope(self, unrestricted: str, by_kind: str = "") -> str:
        """What the aggregate tables average over, for their titles."""
        if self.common_subjects is None:
            return unrestricted
        return f"the {len(self.common_subjects)} subjects common to all rows{by_kind}; intervals omitted"

    def split_table(self) -> TextTable:
        header: tuple[str, ...] = ("Method", "Preset")
        numeric: tuple[bool, ...] = (False, False)
        for kind in ("live", "object"):
            header += (
                f"{kind.capitalize()} subjects",
                *(f"{self.column_title(m)} ({kind})" for m in METRICS),
            )
            numeric += (True,) * (1 + len(METRICS))
        rows = []
        for e in self.entries:
            row: tuple[str, ...] = (e.marked_method, e.run.preset)
            for agg in (e.live, e.objects):
                if agg is None:
                    row += (ABSENT, *(ABSENT for _ in METRICS))
                else:
                    row += (_count_text(agg.n_subjects), *(agg.figures[m].text() for m in METRICS))
            rows.append(row)
        scope = self._scope("subjects of each kind", by_kind=", by kind")
        return TextTable(f"Live vs object subjects (mean over {scope})", header, tuple(rows), numeric)

    def subject_tables(self) -> tuple[TextTable, ...]:
        """One table per metric: a row per subject, a column per run."""
        tables = []
        for metric in self.metrics():
            header = ("Subject", "Kind", *(e.marked_label for e in self.entries))
            rows = tuple(
                (s, self.subject_kinds.get(s, ""), *(e.subject_text(s, metric) for e in self.entries))
                for s in self.subjects
            )
            numeric = (False, False, *(True for _ in self.entries))
            tables.append(TextTable(f"Per subject: {self.column_title(metric)}", header, rows, numeric))
        return tuple(tables)

    def cost_table(self) -> TextTable:
        """What each run cost (results.json "cost"): beside the scores, so cost is never hidden."""
        header = (
            "Method",
            "Preset",
            "Wall total",
            "Wall / subject",
            "Device hours",
            "Peak device MiB",
            "Peak host MiB",
        )
        rows = []
        for e in self.entries:
            total = (e.run.raw.get("cost") or {}).get("total") or {}
            rows.append(
                (
                    e.marked_method,
                    e.run.preset,
                    _duration_text(total.get("wall_s")),
                    _duration_text(total.get("wall_s_per_subject")),
                    ABSENT if total.get("device_s") is None else f"{total['device_s'] / 3600:.2f}",
                    ABSENT if total.get("peak_device_mib") is None else f"{total['peak_device_mib']:.0f}",
                    ABSENT if total.get("peak_host_mib") is None else f"{total['peak_host_mib']:.0f}",
                )
            )
        numeric = (False, False, True, True, True, True, True)
        return TextTable(
            "Cost (wall time of the stages that did work; peaks over the run)", header, tuple(rows), numeric
        )

    def group_rows(self) -> list[tuple[Entry, str, str, dict[str, Any]]]:
        """(entry, group, row, figures) for every subject group some run scored: a row per subject
        of the group, then "mean" and "min"; per run with groups, "all groups" "mean" and "min"
        (the mean over groups of the group means and of the group minima). Empty without groups."""
        out: list[tuple[Entry, str, str, dict[str, Any]]] = []
        for e in self.entries:
            for name, section in sorted(e.run.subjects.items()):
                if not isinstance(section.get("members"), dict):
                    continue
                for member, figures in section["members"].items():
                    out.append((e, name, member, figures))
                out.append((e, name, "mean", section))
                out.append((e, name, "min", section.get("group_min") or {}))
            if isinstance(e.run.raw.get("overall_group_min"), dict):
                out.append((e, "all groups", "mean", e.run.overall))
                out.append((e, "all groups", "min", e.run.raw["overall_group_min"]))
        return out

    def group_table(self) -> TextTable | None:
        """`group_rows` as a table; None when no run scored subject groups."""
        rows = self.group_rows()
        if not rows:
            return None

        def text(figures: dict[str, Any], m: str) -> str:
            if m not in figures:
                return ABSENT
            value = figures[m]
            return Figure(None if value is None else float(value), decimals=metric_decimals(m)).text()

        header = ("Method", "Group", "Subject", *(self.column_title(m) for m in METRICS))
        body = tuple((e.marked_method, g, r, *(text(f, m) for m in METRICS)) for e, g, r, f in rows)
        return TextTable(
            "Subject groups: each image scored against each subject of its group (mean and minimum over them)",
            header,
            body,
            (False, False, False, *(True for _ in METRICS)),
        )

    def reported_beside(self) -> tuple[ReportedRow, ...]:
        """The reported rows whose stated protocol matches every measured run."""
        runs = [e.run for e in self.entries]
        return tuple(r for r in self.reported if r.mismatch(runs) is None)

    def reported_table(self) -> TextTable | None:
        """Every reported row with its source and protocol; None without `--reported`."""
        if not self.reported:
            return None
        metrics = display_order({m for r in self.reported for m in r.figures})
        runs = [e.run for e in self.entries]
        header = ("Method", "Base model", *(METRIC_TITLES.get(m, m) for m in metrics))
        header += ("Source", "Protocol (as the source states it)", "Beside the measured rows")
        rows = tuple(
            (
                r.method,
                r.base_model or ABSENT,
                *(_reported_text(r, m) for m in metrics),
                r.source_text,
                r.protocol_text,
                "yes" if r.mismatch(runs) is None else f"no: {r.mismatch(runs)}",
            )
            for r in self.reported
        )
        numeric = (False, False, *(True for _ in metrics), False, False, False)
        return TextTable("Reported, not re-measured (figures read from papers)", header, rows, numeric)

    def measured_tables(self) -> tuple[TextTable, ...]:
        """The tables of the measured runs: overall, live/object, cost, one per metric."""
        return (self.overall_table(), self.split_table(), self.cost_table(), *self.subject_tables())

    def tables(self) -> tuple[TextTable, ...]:
        """`measured_tables`, the subject-group table where runs scored groups, then the reported
        table with `--reported`."""
        extra = [t for t in (self.group_table(), self.reported_table()) if t is not None]
        return (*self.measured_tables(), *extra)


def build_leaderboard(runs: list[RunResults], reported: Sequence[ReportedRow] = ()) -> Leaderboard:
    """Check the runs are comparable (BenchError if not) and arrange them into a Leaderboard;
    `reported`: published rows to show beside them (`--reported`)."""
    if not runs:
        raise BenchError("no runs to put on the leaderboard; pass run directories written by `bench run`")
    check_comparable(runs)
    labels = _labels(runs)
    subject_sets = [frozenset(run.subjects) for run in runs]
    common: tuple[str, ...] | None = None
    if len(set(subject_sets)) > 1:
        common = tuple(sorted(frozenset.intersection(*subject_sets)))
        if not common:
            scored = "; ".join(
                f"{label}: {_names_text(sorted(s))}" for label, s in zip(labels, subject_sets, strict=True)
            )
            raise BenchError(
                f"the runs share no scored subject, so their overall figures cannot be compared ({scored}); "
                "run every method on the same --subjects"
            )
    entries = [
        Entry(
            run=run,
            label=labels[i],
            overall=_aggregate(run, run.overall, default_n=len(run.subjects))
            if common is None
            else _mean_over(run, common),
            live=_kind_aggregate(run, "live", common),
            objects=_kind_aggregate(run, "object", common),
            subjects={name: _figures(run, entry) for name, entry in run.subjects.items()},
        )
        for i, run in enumerate(runs)
    ]
    entries.sort(key=_order)

    kinds: dict[str, str] = {}
    for run in runs:
        for name, entry in run.subjects.items():
            if entry.get("kind") is not None:
                kinds.setdefault(name, str(entry["kind"]))
    names = {name for run in runs for name in (*run.subjects, *run.failures)}
    notes = list(embedder_notes(runs))
    if common is not None:
        left_out = "; ".join(
            f"{e.label}: {_names_text(sorted(set(e.run.subjects) - set(common)))}"
            for e in entries
            if set(e.run.subjects) - set(common)
        )
        notes.append(
            f"The runs scored different subjects: overall, live and object figures are means over the "
            f"{len(common)} subjects every row scored ({_names_text(common)}), not the runs' own overall "
            f"figures; left out: {left_out}. Their bootstrap intervals cover each run's own subjects "
            "and are not shown for these means."
        )
    return Leaderboard(
        entries=tuple(entries),
        subjects=tuple(sorted(names)),
        subject_kinds=kinds,
        notes=tuple(notes),
        common_subjects=common,
        reported=tuple(reported),
    )


def _reported_text(row: ReportedRow, metric: str) -> str:
    """A reported figure at the metric's decimals; "n/a" for null, "—" when the source has none."""
    if metric not in row.figures:
        return ABSENT
    value = row.figures[metric]
    return NOT_APPLICABLE if value is None else f"{value:.{metric_decimals(metric)}f}"


def _names_text(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _mean_over(run: RunResults, names: Sequence[str]) -> Aggregate:
    """Mean over ``names`` of each figure of ``run`` (its subjects' own figures), without intervals:
    the same definition as the run's overall (metrics/aggregate.py: mean over the subjects that
    have the figure; None when none has it)."""

    def mean(metric: str) -> Figure:
        values = [run.subjects[n][metric] for n in names if run.subjects[n].get(metric) is not None]
        return Figure(math.fsum(values) / len(values) if values else None, decimals=metric_decimals(metric))

    extra = [m for m in run.metrics if m not in METRICS and any(m in run.subjects[n] for n in names)]
    optional = {m: mean(m) for m in extra}
    return Aggregate(n_subjects=len(names), figures={m: mean(m) for m in METRICS}, optional=optional)


def _kind_aggregate(run: RunResults, kind: str, common: Sequence[str] | None) -> Aggregate | None:
    """The run's live / object aggregate: its own, or the mean over the common subjects of that kind."""
    if common is None:
        section = run.overall_live if kind == "live" else run.overall_object
        return None if section is None else _aggregate(run, section)
    names = [n for n in common if run.subjects[n].get("kind") == kind]
    return _mean_over(run, names) if names else None


def _order(entry: Entry) -> tuple[bool, float, str]:
    dino = entry.overall.figures["dino"].value
    return (dino is None, -(dino or 0.0), entry.label)


def _labels(runs: list[RunResults]) -> list[str]:
    labels = [run.method for run in runs]
    methods = Counter(labels)
    labels = [f"{r.method} ({r.preset})" if methods[r.method] > 1 else r.method for r in runs]
    taken = Counter(labels)
    return [
        f"{r.method} ({r.preset}, {r.run_dir.name})" if taken[lab] > 1 else lab
        for r, lab in zip(runs, labels, strict=True)
    ]


def _figure(section: dict[str, Any], metric: str) -> Figure:
    ci = (section.get("ci") or {}).get(metric)
    return Figure(
        value=None if section.get(metric) is None else float(section[metric]),
        ci=None if ci is None else (float(ci[0]), float(ci[1])),
        decimals=metric_decimals(metric),
    )


def _figures(run: RunResults, section: dict[str, Any]) -> dict[str, Figure]:
    """A subject's figures: the core metrics, and the others it has."""
    return {m: _figure(section, m) for m in (*METRICS, *_extra_metrics(run, section))}


def _aggregate(run: RunResults, section: dict[str, Any], default_n: int | None = None) -> Aggregate:
    n = section.get("n_subjects", default_n)
    return Aggregate(
        n_subjects=None if n is None else int(n),
        figures={m: _figure(section, m) for m in METRICS},
        optional={m: _figure(section, m) for m in _extra_metrics(run, section)},
    )


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ABSENT
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _count_text(n: int | None) -> str:
    return NOT_APPLICABLE if n is None else str(n)

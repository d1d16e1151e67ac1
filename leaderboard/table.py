"""Format-independent leaderboard: runs -> entries -> text tables (md / html render these).

Conventions, shared by every output format:

- Row order: overall DINO descending; runs without a DINO figure last; ties by label. (The
  real-images ceiling therefore usually comes first; it is an ordinary row.)
- A run's label is its method name; where two runs share a method it becomes "method (preset)",
  and where those collide too, "method (preset, run-dir-name)".
- Text cells show 3 decimals; a null figure (CLIP-T of the real-images ceiling) is "n/a"; a figure
  with a confidence interval `ci: {metric: [low, high]}` is "0.612 ± 0.021" (half-width).
- Uncalibrated runs (any figure from random-weight models) carry a dagger after their label and
  the tables get the UNCALIBRATED_FOOTNOTE.
- Per-subject tables: a subject the run failed on is "failed"; one the run did not cover is "—".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from dreambench.errors import BenchError
from dreambench.leaderboard.compatibility import check_comparable, embedder_notes
from dreambench.leaderboard.results import METRICS, RunResults

METRIC_TITLES: dict[str, str] = {"dino": "DINO", "clip_i": "CLIP-I", "clip_t": "CLIP-T"}
DECIMALS = 3
DAGGER = "†"
UNCALIBRATED_FOOTNOTE = (
    f"{DAGGER} uncalibrated: computed with random-weight models (smoke preset); "
    "not comparable to published numbers"
)
NOT_APPLICABLE = "n/a"
FAILED = "failed"
ABSENT = "—"
# Optional metrics (paper, Table 3), shown only when some run computed them.
OPTIONAL_METRICS = ("pres", "div")
OPTIONAL_TITLES = {"pres": "PRES ↓", "div": "DIV"}


@dataclass(frozen=True)
class Figure:
    """One number of the leaderboard: a mean (None = does not apply) and an optional CI."""

    value: float | None
    ci: tuple[float, float] | None = None

    @property
    def half_width(self) -> float | None:
        return None if self.ci is None else (self.ci[1] - self.ci[0]) / 2

    def text(self) -> str:
        if self.value is None:
            return NOT_APPLICABLE
        if self.half_width is None:
            return f"{self.value:.{DECIMALS}f}"
        return f"{self.value:.{DECIMALS}f} ± {self.half_width:.{DECIMALS}f}"


@dataclass(frozen=True)
class Aggregate:
    """Figures over a group of subjects (all, live or object) of one run."""

    n_subjects: int | None
    figures: dict[str, Figure]


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
    def marked_label(self) -> str:
        """The label with the uncalibrated dagger where it applies."""
        return self.label if self.run.calibrated else f"{self.label}{DAGGER}"

    @property
    def marked_method(self) -> str:
        return self.run.method if self.run.calibrated else f"{self.run.method}{DAGGER}"

    def subject_text(self, subject: str, metric: str) -> str:
        if subject in self.subjects:
            return self.subjects[subject][metric].text()
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

    @property
    def footnotes(self) -> tuple[str, ...]:
        uncalibrated = any(not e.run.calibrated for e in self.entries)
        return (UNCALIBRATED_FOOTNOTE,) if uncalibrated else ()

    def optional_metrics(self) -> tuple[str, ...]:
        """Optional metrics (PRES, DIV) that at least one run computed."""
        return tuple(
            m for m in OPTIONAL_METRICS if any(m in (e.run.raw.get("overall") or {}) for e in self.entries)
        )

    def overall_table(self) -> TextTable:
        optional = self.optional_metrics()
        header = (
            "Method",
            "Preset",
            *(METRIC_TITLES[m] for m in METRICS),
            *(OPTIONAL_TITLES[m] for m in optional),
        )
        header += ("Subjects", "Calibrated", "Failures", "Run")
        rows = tuple(
            (
                e.marked_method,
                e.run.preset,
                *(e.overall.figures[m].text() for m in METRICS),
                *(
                    Figure(e.run.raw["overall"].get(m)).text() if m in e.run.raw["overall"] else ABSENT
                    for m in optional
                ),
                _count_text(e.overall.n_subjects),
                "yes" if e.run.calibrated else "no",
                str(len(e.run.failures)),
                e.run.run_dir.name,
            )
            for e in self.entries
        )
        numeric = (
            False,
            False,
            *(True for _ in METRICS),
            *(True for _ in optional),
            True,
            False,
            True,
            False,
        )
        return TextTable("Overall (mean over subjects)", header, rows, numeric)

    def split_table(self) -> TextTable:
        header: tuple[str, ...] = ("Method", "Preset")
        numeric: tuple[bool, ...] = (False, False)
        for kind in ("live", "object"):
            header += (f"{kind.capitalize()} subjects", *(f"{METRIC_TITLES[m]} ({kind})" for m in METRICS))
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
        return TextTable(
            "Live vs object subjects (mean over subjects of each kind)", header, tuple(rows), numeric
        )

    def subject_tables(self) -> tuple[TextTable, ...]:
        """One table per metric: a row per subject, a column per run."""
        tables = []
        for metric in METRICS:
            header = ("Subject", "Kind", *(e.marked_label for e in self.entries))
            rows = tuple(
                (s, self.subject_kinds.get(s, ""), *(e.subject_text(s, metric) for e in self.entries))
                for s in self.subjects
            )
            numeric = (False, False, *(True for _ in self.entries))
            tables.append(TextTable(f"Per subject: {METRIC_TITLES[metric]}", header, rows, numeric))
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

    def tables(self) -> tuple[TextTable, ...]:
        return (self.overall_table(), self.split_table(), self.cost_table(), *self.subject_tables())


def build_leaderboard(runs: list[RunResults]) -> Leaderboard:
    """Check the runs are comparable (BenchError if not) and arrange them into a Leaderboard."""
    if not runs:
        raise BenchError("no runs to put on the leaderboard; pass run directories written by `bench run`")
    check_comparable(runs)
    labels = _labels(runs)
    entries = [
        Entry(
            run=run,
            label=labels[i],
            overall=_aggregate(run.overall, default_n=len(run.subjects)),
            live=None if run.overall_live is None else _aggregate(run.overall_live),
            objects=None if run.overall_object is None else _aggregate(run.overall_object),
            subjects={name: _figures(entry) for name, entry in run.subjects.items()},
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
    return Leaderboard(
        entries=tuple(entries),
        subjects=tuple(sorted(names)),
        subject_kinds=kinds,
        notes=tuple(embedder_notes(runs)),
    )


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


def _figures(section: dict[str, Any]) -> dict[str, Figure]:
    ci = section.get("ci") or {}
    return {
        m: Figure(
            value=None if section.get(m) is None else float(section[m]),
            ci=None if ci.get(m) is None else (float(ci[m][0]), float(ci[m][1])),
        )
        for m in METRICS
    }


def _aggregate(section: dict[str, Any], default_n: int | None = None) -> Aggregate:
    n = section.get("n_subjects", default_n)
    return Aggregate(n_subjects=None if n is None else int(n), figures=_figures(section))


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ABSENT
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _count_text(n: int | None) -> str:
    return NOT_APPLICABLE if n is None else str(n)

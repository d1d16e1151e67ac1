"""The regression gate: compare a current run against a baseline run, metric by metric.

For each metric (the core ones, and every other metric both runs computed, in display order:
metrics/metric_registry.py): baseline and current figure (mean over subjects), delta = current - baseline,
a paired bootstrap interval of the delta and a sign-flip permutation p-value
(metrics/statistics.py `paired_comparison`), and a verdict:

- ``regressed``: the metric got worse by more than its tolerance, i.e. ``delta < -max_drop`` for a
  higher-is-better metric (``delta > max_drop`` for a lower-is-better one); with
  ``require_significance`` additionally the interval of the delta lies wholly on the worse side
  of 0. A regressed metric fails the gate.
- ``not significant``: worse by more than the tolerance, but the interval reaches 0 and
  ``require_significance`` is on: passes.
- ``improved``: the interval lies wholly on the better side of 0.
- ``ok``: anything else (within tolerance, or no resolvable change).
- ``n/a``: the metric does not apply to a run (CLIP-T of the real-images ceiling); never fails.

Both runs must be comparable (`check_comparable`: prompt set and metric versions), scored with
the same embedders (a gate across embedders would compare different measurements), and cover
the same subjects; otherwise BenchError names the problem. Pure logic: no printing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dreambench.errors import BenchError
from dreambench.leaderboard.compatibility import check_comparable
from dreambench.leaderboard.results import METRICS, RunResults
from dreambench.metrics.metric_registry import (
    BUILTIN_METRICS,
    METRIC_TITLES,
    display_order,
    find_metric,
    metrics,
)

#: Largest tolerated drop per built-in metric (in its units) when --max-drop does not say otherwise:
#: each declaration's `max_drop`.
DEFAULT_MAX_DROP: dict[str, float] = {m.name: m.max_drop for m in BUILTIN_METRICS}
MAX_DROP_EXAMPLE = "dino=0.01,clip_i=0.01,clip_t=0.005"


def default_max_drop() -> dict[str, float]:
    """Every declared metric's default tolerance (built-ins, plugins, registered ones)."""
    return {name: m.max_drop for name, m in metrics().items()}

REGRESSED = "regressed"
NOT_SIGNIFICANT = "not significant"
IMPROVED = "improved"
OK = "ok"
NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class MetricComparison:
    """One metric of the comparison; the numbers are None where the metric does not apply."""

    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    n_subjects: int
    max_drop: float
    higher_is_better: bool
    verdict: str
    subject_deltas: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.verdict == REGRESSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "current": self.current,
            "delta": self.delta,
            "ci": None if self.ci is None else [self.ci[0], self.ci[1]],
            "p_value": self.p_value,
            "n_subjects": self.n_subjects,
            "max_drop": self.max_drop,
            "higher_is_better": self.higher_is_better,
            "verdict": self.verdict,
            "subject_deltas": self.subject_deltas,
        }


@dataclass(frozen=True)
class Comparison:
    """The gate's outcome: per-metric comparisons of `current` against `baseline`."""

    baseline: RunResults
    current: RunResults
    metrics: tuple[MetricComparison, ...]
    require_significance: bool
    n_boot: int
    level: float
    seed: int
    notes: tuple[str, ...] = ()

    @property
    def regressions(self) -> tuple[MetricComparison, ...]:
        return tuple(m for m in self.metrics if m.failed)

    @property
    def passed(self) -> bool:
        return not self.regressions

    def to_dict(self) -> dict[str, Any]:
        from dreambench.metrics.statistics import BOOTSTRAP_METHOD, PERMUTATION_METHOD

        return {
            "passed": self.passed,
            "regressions": [m.metric for m in self.regressions],
            "baseline": _run_dict(self.baseline),
            "current": _run_dict(self.current),
            "require_significance": self.require_significance,
            "statistics": {
                "interval": f"paired {BOOTSTRAP_METHOD}",
                "p_value": PERMUTATION_METHOD,
                "n_boot": self.n_boot,
                "level": self.level,
                "seed": self.seed,
            },
            "metrics": {m.metric: m.to_dict() for m in self.metrics},
            "notes": list(self.notes),
        }


def parse_max_drop(text: str | None) -> dict[str, float]:
    """Tolerances from "dino=0.01,clip_i=0.01,clip_t=0.005"; unnamed metrics keep their default.

    Raises BenchError naming the bad item and the valid metric names.
    """
    tolerances = default_max_drop()
    if text is None:
        return tolerances
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise _bad_max_drop(text, "no METRIC=NUMBER item")
    for item in items:
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep:
            raise _bad_max_drop(item, "expected METRIC=NUMBER")
        if name not in tolerances:
            raise _bad_max_drop(item, f"unknown metric {name!r}")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise _bad_max_drop(item, f"{value!r} is not a number >= 0")
        tolerances[name] = number
    return tolerances


def compare_runs(
    baseline: RunResults,
    current: RunResults,
    max_drop: dict[str, float] | None = None,
    require_significance: bool = False,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare `current` against `baseline` on every metric (module docstring for the verdicts)."""
    tolerances = _tolerances(max_drop)
    _check_settings(n_boot, level)
    _check_comparable(baseline, current)
    results = [
        _compare_metric(
            baseline, current, metric, tolerances.get(metric, 0.0), require_significance, n_boot, level, seed
        )
        for metric in compared_metrics(baseline, current)
    ]
    return Comparison(
        baseline=baseline,
        current=current,
        metrics=tuple(results),
        require_significance=require_significance,
        n_boot=n_boot,
        level=level,
        seed=seed,
        notes=tuple(_notes(baseline, current, results)),
    )


def compared_metrics(baseline: RunResults, current: RunResults) -> list[str]:
    """The core metrics, then every other metric both runs computed (recorded in "metrics" and
    "overall"), in display order."""
    both = [
        m
        for m in baseline.metrics
        if m not in METRICS and m in current.metrics and m in baseline.overall and m in current.overall
    ]
    return [*METRICS, *display_order(both)]


def _tolerances(max_drop: dict[str, float] | None) -> dict[str, float]:
    """The default tolerances with the caller's, validated, on top (a metric this process has no
    declaration for tolerates no drop unless given one)."""
    tolerances = default_max_drop()
    if max_drop is not None:
        unknown = sorted(set(max_drop) - set(tolerances))
        if unknown:
            raise BenchError(f"max_drop names unknown metric(s) {unknown}; valid: {', '.join(tolerances)}")
        for name, value in max_drop.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise BenchError(f"max_drop[{name!r}] is {value!r}; give a number >= 0 (e.g. 0.01)")
        tolerances.update({name: float(value) for name, value in max_drop.items()})
    return tolerances


def _check_settings(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise BenchError(f"n_boot (--n-boot) is {n_boot}; it must be at least 1 (e.g. 2000)")
    if not 0.0 < level < 1.0:
        raise BenchError(f"level (--level) is {level}; it must lie strictly between 0 and 1 (e.g. 0.95)")


def _check_comparable(baseline: RunResults, current: RunResults) -> None:
    """Refuse (one line) runs whose numbers do not measure the same thing."""
    check_comparable([baseline, current])
    _check_same_precision(baseline, current)
    _check_same_embedders(baseline, current)
    _check_same_subjects(baseline, current)


def _compare_metric(
    baseline: RunResults,
    current: RunResults,
    metric: str,
    tolerance: float,
    require_significance: bool,
    n_boot: int,
    level: float,
    seed: int,
) -> MetricComparison:
    """One metric: the paired comparison over common subjects and its verdict."""
    from dreambench.metrics.statistics import paired_comparison

    higher_is_better = _higher_is_better(baseline, current, metric)
    try:
        paired = paired_comparison(
            baseline.subjects, current.subjects, metric, n_boot=n_boot, level=level, seed=seed
        )
    except ValueError as exc:  # per-prompt figures of one subject cover different prompts
        raise BenchError(
            f"cannot compare {baseline.run_dir} and {current.run_dir}: {exc}; "
            "compare runs made with the same prompts"
        ) from None
    if paired is None:
        return MetricComparison(
            metric=metric,
            baseline=_figure(baseline, metric),
            current=_figure(current, metric),
            delta=None,
            ci=None,
            p_value=None,
            n_subjects=0,
            max_drop=tolerance,
            higher_is_better=higher_is_better,
            verdict=NOT_APPLICABLE,
        )
    ci = (paired.ci_low, paired.ci_high)
    return MetricComparison(
        metric=metric,
        baseline=paired.baseline,
        current=paired.current,
        delta=paired.delta,
        ci=ci,
        p_value=paired.p_value,
        n_subjects=paired.n_subjects,
        max_drop=tolerance,
        higher_is_better=higher_is_better,
        verdict=_verdict(paired.delta, ci, tolerance, higher_is_better, require_significance),
        subject_deltas=paired.subject_deltas,
    )


def _notes(baseline: RunResults, current: RunResults, results: list[MetricComparison]) -> list[str]:
    notes = []
    for m in results:
        if m.verdict != NOT_APPLICABLE:
            continue
        missing = [
            name for name, run in (("baseline", baseline), ("current", current)) if run.overall.get(m.metric) is None
        ]
        if len(missing) == 1:
            notes.append(f"{m.metric} does not apply to the {missing[0]} run: not compared")
    for name, run in (("baseline", baseline), ("current", current)):
        # Optional by schema (docs/RESULTS.md): what the gate uses instead, said once per run.
        if run.raw.get("ci") is None:
            notes.append(
                f"the {name} run ({run.path}) records no bootstrap intervals (ci): the gate's "
                "intervals are its own paired ones, computed from the per-subject figures"
            )
        flat = sorted(s for s, entry in run.subjects.items() if not entry.get("per_prompt"))
        if flat and run.method != "real-images":
            notes.append(
                f"the {name} run records no per-prompt figures for {len(flat)} subject(s) "
                f"({', '.join(flat[:3])}{', ...' if len(flat) > 3 else ''}): their intervals resample subjects only"
            )
    if not (baseline.calibrated and current.calibrated):
        notes.append(
            "uncalibrated run(s) (smoke embedders or random-weight / self-trained models): the gate detects "
            "changed outputs, not changes comparable to published numbers"
        )
    return notes


def regression_text(m: MetricComparison, level: float) -> str:
    """One regressed metric in a line: baseline -> current, delta, interval, p, tolerance."""
    if m.delta is None or m.ci is None or m.baseline is None or m.current is None:
        return f"{METRIC_TITLES.get(m.metric, m.metric)}: n/a"
    direction = "fell" if m.higher_is_better else "rose"
    return (
        f"{METRIC_TITLES.get(m.metric, m.metric)} {direction} from {m.baseline:.4f} to {m.current:.4f} "
        f"(delta {m.delta:+.4f}, {level * 100:g}% CI [{m.ci[0]:+.4f}, {m.ci[1]:+.4f}], "
        f"p {p_value_text(m.p_value)}; tolerance {m.max_drop:.4g})"
    )


def p_value_text(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _verdict(
    delta: float,
    ci: tuple[float, float],
    max_drop: float,
    higher_is_better: bool,
    require_significance: bool,
) -> str:
    # Express everything as "gain" (positive = better) so both metric directions share one rule.
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * delta
    gain_low, gain_high = sorted((sign * ci[0], sign * ci[1]))
    if gain < -max_drop:
        if require_significance and gain_high >= 0:
            return NOT_SIGNIFICANT
        return REGRESSED
    if gain_low > 0:
        return IMPROVED
    return OK


def _figure(run: RunResults, metric: str) -> float | None:
    value = run.overall.get(metric)
    return None if value is None else float(value)


def _higher_is_better(baseline: RunResults, current: RunResults, metric: str) -> bool:
    # check_comparable has refused runs that disagree; a file that does not record the direction
    # gets the metric's declaration's.
    for run in (baseline, current):
        spec = run.metrics.get(metric)
        if spec is not None and "higher_is_better" in spec:
            return bool(spec["higher_is_better"])
    declared = find_metric(metric)
    return True if declared is None else declared.higher_is_better


def _check_same_precision(baseline: RunResults, current: RunResults) -> None:
    # A gate compares one measurement with the same measurement: bf16 moves per-subject figures by
    # up to ~1e-3 (docs/PERFORMANCE.md), which would be the arithmetic's difference, not the method's.
    a, b = baseline.scoring_precision, current.scoring_precision
    if a != b:
        raise BenchError(
            f"cannot compare {baseline.run_dir} and {current.run_dir}: scoring precision differs "
            f"({a} vs {b}); rescore both with the same --scoring-precision (fp32 is the protocol)"
        )


def _check_same_embedders(baseline: RunResults, current: RunResults) -> None:
    for metric in compared_metrics(baseline, current):
        a, b = baseline.embedder_ids.get(metric), current.embedder_ids.get(metric)
        if a is not None and b is not None and a != b:
            raise BenchError(
                f"cannot compare {baseline.run_dir} and {current.run_dir}: metrics.{metric}.embedder "
                f"differs ({a} vs {b}); gate a run against a baseline made with the same metric preset"
            )


def _check_same_subjects(baseline: RunResults, current: RunResults) -> None:
    only_base = sorted(set(baseline.subjects) - set(current.subjects))
    only_cur = sorted(set(current.subjects) - set(baseline.subjects))
    if not only_base and not only_cur:
        return
    parts = []
    if only_base:
        parts.append(f"current run {current.run_dir} lacks {_subject_list(only_base, current)}")
    if only_cur:
        parts.append(f"baseline run {baseline.run_dir} lacks {_subject_list(only_cur, baseline)}")
    raise BenchError(
        f"cannot compare: {'; '.join(parts)}; run both over the same subjects (bench run --subjects ...)"
    )


def _subject_list(names: list[str], run: RunResults) -> str:
    failures = run.failures
    return ", ".join(f"{n} (failed: {failures[n]})" if n in failures else n for n in names)


def _run_dict(run: RunResults) -> dict[str, Any]:
    return {
        "path": str(run.path),
        "method": run.method,
        "preset": run.preset,
        "config_hash": run.config_hash,
        "calibrated": run.calibrated,
        "scoring_precision": run.scoring_precision,
        "overall": {m: run.overall.get(m) for m in (*METRICS, *(m for m in run.metrics if m in run.overall and m not in METRICS))},
    }


def _bad_max_drop(item: str, why: str) -> BenchError:
    return BenchError(
        f"--max-drop item {item!r}: {why}; expected METRIC=NUMBER with METRIC one of "
        f"{', '.join(metrics())} (e.g. {MAX_DROP_EXAMPLE})"
    )

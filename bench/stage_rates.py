"""A run's per-stage rates, and the time of a whole benchmark they extrapolate to (``bench cost``).

Every figure is a count divided by seconds, both read from the run's own cost records in
results.json (bench/cost.py): class priors (images rendered / seconds), training (seconds /
optimizer steps), the rest of ``prepare`` (model loading, latents, saving; seconds per prepared
subject), rendering (images / seconds) and scoring (generated + real images embedded / seconds).
One-off seconds (compilation, loading the scoring networks) are taken out of the rates and counted
once. A workload (``PAPER_WORKLOAD``: the whole ``paper`` benchmark) multiplies
them out. The rates hold for the run's own protocol (resolution, sampler steps), which the table
names; a stage with nothing counted (class priors all cached, a run older than the counts) is
"not measured" and the total says which terms it lacks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreambench.errors import BenchError


@dataclass(frozen=True)
class Workload:
    """The work of one whole benchmark run, in the units the rates count."""

    name: str
    subjects: int
    classes: int
    class_images_per_class: int
    train_steps_per_subject: int
    renders: int
    scored_images: int
    source: str


# The DreamBooth dataset (30 subjects of 15 class nouns, 158 real images), its prompt set (25
# prompts x 4 images per subject = 3,000 renders) and the dreambooth method's `paper` preset
# (1,000 class images per class, 1,000 train steps); tests/test_stage_rates.py checks these
# against the dataset, prompt set and preset.
PAPER_WORKLOAD = Workload(
    name="paper",
    subjects=30,
    classes=15,
    class_images_per_class=1000,
    train_steps_per_subject=1000,
    renders=3000,
    scored_images=3158,
    source="DreamBooth dataset and prompt set, dreambooth `paper` preset",
)


@dataclass(frozen=True)
class StageRate:
    """One row: ``count`` units of work in ``seconds``; ``rate`` = count / seconds (``per_unit`` for
    training and the rest of prepare: seconds per step or per subject). None where not measured."""

    stage: str
    unit: str
    count: int | None
    seconds: float | None
    rate: float | None
    per_unit: float | None
    note: str = ""


def read_results(run: Path) -> dict[str, Any]:
    """results.json of run directory ``run`` (or the file itself); one line when it is not there."""
    path = run / "results.json" if run.is_dir() else run
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"{run}: no results.json; give a run directory that `bench run` finished") from None
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not readable as results.json ({exc})") from None


def _subject_records(results: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    return [
        cost[stage]
        for subject in (results.get("subjects") or {}).values()
        if isinstance(cost := subject.get("cost"), dict) and isinstance(cost.get(stage), dict)
    ]


def _sum(records: list[dict[str, Any]], key: str) -> float | None:
    """Sum of ``key`` over records, None unless every record has it (a partial sum is no rate)."""
    values = [r.get(key) for r in records]
    if not values or any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
        return None
    return math.fsum(values)


def _once(records: list[dict[str, Any]]) -> float:
    """The one-off seconds of ``records`` (``compile_s``, ``load_s``): paid once per process, not per item."""
    return math.fsum(r.get(k) or 0.0 for r in records for k in ("compile_s", "load_s"))


def _counted(stage: str, unit: str, records: list[dict[str, Any]]) -> StageRate:
    """``unit`` per second over ``records``, net of their one-off seconds."""
    count, seconds = _sum(records, unit), _sum(records, "wall_s")
    if count is None or seconds is None:
        return StageRate(stage, unit, None, seconds, None, None, "not recorded by this run")
    once = _once(records)
    net = seconds - once
    if count == 0 or net <= 0:
        return StageRate(stage, unit, int(count), net, None, None, "nothing done in this run (cached)")
    note = f"{once:.1f} s one-off compile / load counted apart" if once else ""
    return StageRate(stage, unit, int(count), net, count / net, net / count, note)


def stage_rates(results: dict[str, Any]) -> dict[str, StageRate]:
    """The rows of ``bench cost``, computed from the subjects' cost records in ``results``."""
    prepares = _subject_records(results, "prepare")
    parts = [r.get("parts") or {} for r in prepares]
    priors = [p["class_priors"] for p in parts if "class_priors" in p]
    trains = [p["train"] for p in parts if "train" in p]
    renders, scores = _subject_records(results, "render"), _subject_records(results, "score")
    rows = {
        "class_priors": _counted("class priors", "images", priors),
        "train": _counted("train", "steps", trains),
        "render": _counted("render", "images", renders),
        "score": _counted("score", "images", scores),
    }
    once = _once(priors + trains + renders + scores)
    # The rest of prepare: its time less the parts the method reported, per prepared subject.
    whole = _sum(prepares, "wall_s")
    if prepares and whole is not None and all(p.keys() >= {"class_priors", "train"} for p in parts):
        other = whole - math.fsum(p["class_priors"]["wall_s"] + p["train"]["wall_s"] for p in parts)
        rows["prepare_other"] = StageRate(
            "prepare, other",
            "subjects",
            len(prepares),
            other,
            len(prepares) / other if other > 0 else None,
            other / len(prepares),
            "model load, latents, saving",
        )
    else:
        rows["prepare_other"] = StageRate(
            "prepare, other", "subjects", None, None, None, None, "not recorded by this run"
        )
    rows["once"] = StageRate("compile / load", "once", 1, once, None, once, "one-off, paid once per process")
    return rows


@dataclass(frozen=True)
class Term:
    """One term of the extrapolation: ``work`` units at the run's rate take ``seconds``."""

    stage: str
    work: str
    seconds: float | None


def extrapolate(rows: dict[str, StageRate], workload: Workload = PAPER_WORKLOAD) -> list[Term]:
    """The workload's time, stage by stage, at the rates of ``rows`` (None where a rate is missing)."""

    def at(row: str, units: float) -> float | None:
        per_unit = rows[row].per_unit
        return None if per_unit is None else units * per_unit

    w = workload
    class_images = w.classes * w.class_images_per_class
    steps = w.subjects * w.train_steps_per_subject
    return [
        Term(
            "class priors",
            f"{w.classes} classes x {w.class_images_per_class:,} images",
            at("class_priors", class_images),
        ),
        Term("train", f"{w.subjects} subjects x {w.train_steps_per_subject:,} steps", at("train", steps)),
        Term("compile / load", "once per process", rows["once"].per_unit),
        Term("prepare, other", f"{w.subjects} subjects", at("prepare_other", w.subjects)),
        Term("render", f"{w.renders:,} images", at("render", w.renders)),
        Term("score", f"{w.scored_images:,} images", at("score", w.scored_images)),
    ]


def _sampler(results: dict[str, Any]) -> dict[str, Any]:
    record = results.get("render_protocol") or {}
    effective = (record.get("deviation") or {}).get("effective") or record.get("protocol") or {}
    return effective.get("sampler") or {}


def _sampler_words(sampler: dict[str, Any]) -> str:
    return f"{sampler.get('resolution')} px, {sampler.get('steps')} {sampler.get('scheduler')} steps"


def protocol_line(results: dict[str, Any]) -> str:
    """The run's rendering protocol in words (what the rates hold for), and whether it is the paper's."""
    from dreambench.reference_impl.render_protocol import render_protocol_for

    sampler = _sampler(results)
    if not sampler:
        return "protocol: nothing rendered"
    line = (
        f"protocol: {_sampler_words(sampler)}, guidance {sampler.get('guidance')} "
        f"(preset {results.get('run', {}).get('preset')!r})"
    )
    paper = render_protocol_for("dreambooth").sampler.as_dict()
    if any(sampler.get(k) != paper[k] for k in ("resolution", "steps", "scheduler", "guidance")):
        line += f"; NOT the paper protocol ({_sampler_words(paper)}): the extrapolation is of this one"
    return line


def cost_report(results: dict[str, Any], workload: Workload = PAPER_WORKLOAD) -> dict[str, Any]:
    """Everything ``bench cost`` shows, as data (its ``--json``)."""
    rows = stage_rates(results)
    terms = extrapolate(rows, workload)
    known = [t.seconds for t in terms if t.seconds is not None]
    missing = [t.stage for t in terms if t.seconds is None]
    return {
        "run_dir": results.get("run", {}).get("run_dir"),
        "device": (results.get("stamp") or {}).get("device"),
        "calibrated": bool(results.get("calibrated")),
        "protocol": protocol_line(results),
        "native_resolution": results.get("run", {}).get("native_resolution"),
        "stages": {
            key: {
                "stage": r.stage,
                "unit": r.unit,
                "count": r.count,
                "seconds": r.seconds,
                "rate_per_s": r.rate,
                "seconds_per_unit": r.per_unit,
                "note": r.note,
            }
            for key, r in rows.items()
        },
        "workload": workload.__dict__,
        "extrapolation": [{"stage": t.stage, "work": t.work, "seconds": t.seconds} for t in terms],
        "total_seconds": math.fsum(known) if not missing else None,
        "total_seconds_known_terms": math.fsum(known),
        "missing_terms": missing,
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _rate_text(key: str, row: dict[str, Any]) -> str:
    if key == "train" and row["seconds_per_unit"] is not None:
        return f"{row['seconds_per_unit'] * 1000:.1f} ms/step"
    if key == "prepare_other" and row["seconds_per_unit"] is not None:
        return f"{row['seconds_per_unit']:.1f} s/subject"
    if row["rate_per_s"] is not None:
        return f"{row['rate_per_s']:.3f} {row['unit']}/s"
    return row["note"] or "-"


def format_report(report: dict[str, Any]) -> str:
    """The plain-text table ``bench cost`` prints."""
    label = "" if report["calibrated"] else "  (random weights: timing only)"
    lines = [f"run {report['run_dir']}{label}", f"device: {report['device']}; {report['protocol']}", ""]
    lines.append(f"{'stage':<16}{'work':>16}{'seconds':>12}  rate")
    for key in ("class_priors", "train", "prepare_other", "render", "score"):
        row = report["stages"][key]
        work = "-" if row["count"] is None else f"{row['count']:,} {row['unit']}"
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        note = f"  ({row['note']})" if row["note"] and _rate_text(key, row) != row["note"] else ""
        lines.append(f"{row['stage']:<16}{work:>16}{seconds:>12}  {_rate_text(key, row)}{note}")
    w = report["workload"]
    lines += ["", f"whole `{w['name']}` benchmark at these rates ({w['source']}):"]
    for term in report["extrapolation"]:
        lines.append(f"  {term['stage']:<16}{term['work']:<28}{_duration(term['seconds']):>14}")
    if report["total_seconds"] is not None:
        lines.append(f"  {'total':<44}{_duration(report['total_seconds']):>14}")
    else:
        lines.append(
            f"  {'total':<44}{'incomplete':>14}  (known terms {_duration(report['total_seconds_known_terms'])}; "
            f"not measured: {', '.join(report['missing_terms'])})"
        )
    return "\n".join(lines)

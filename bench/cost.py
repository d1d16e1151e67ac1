"""What a stage cost: wall seconds, device seconds, peak device memory and peak host memory.

Measured around each stage of each subject (prepare, render, score) and stored in the subject's
cost.json, so a method's cost sits beside its score in results and the leaderboard.

Beside its times a record may hold the work it did (``WORK_FIELDS``: images made or scored, train
steps, compile and scorer-load seconds paid once) and, for ``prepare``, the ``parts`` a method reports (class
priors, training: dreambench.method ``prepare_work``), each with its own ``wall_s`` and work; the
rates of ``bench cost`` (bench/stage_rates.py) divide one by the other.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _host_peak_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@contextmanager
def measure_stage(device: str) -> Iterator[dict[str, Any]]:
    """Yields a dict that is filled on exit: wall_s, device_s (GPU runs only), peak_device_mib, peak_host_mib.

    peak_host_mib is the process peak so far (the OS keeps no per-stage peak); peak_device_mib is
    the CUDA allocator's peak within the stage.
    """
    cuda = device.startswith("cuda") and "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized()
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    record: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        yield record
    finally:
        if cuda:
            import torch

            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
        record["wall_s"] = round(wall, 3)
        record["device_s"] = round(wall, 3) if device.startswith("cuda") else None
        record["peak_device_mib"] = (
            round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda else None
        )
        record["peak_host_mib"] = round(_host_peak_mib(), 1)


COST_FIELDS: tuple[str, ...] = ("wall_s", "device_s", "peak_device_mib", "peak_host_mib")
#: The work a record (or one of its parts) may count: images made or scored, optimizer steps, and
#: one-off seconds included in its wall time (compilation, loading the scoring networks), paid once
#: per process rather than per item. Absent = not counted.
WORK_FIELDS: tuple[str, ...] = ("images", "steps", "compile_s", "load_s")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_part(part: Any) -> bool:
    return (
        isinstance(part, dict)
        and _is_number(part.get("wall_s"))
        and all(k in ("wall_s", *WORK_FIELDS) for k in part)
        and all(_is_number(part[k]) and part[k] >= 0 for k in part)
    )


def _is_record(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    parts = record.get("parts")
    return (
        all(record.get(k) is None or _is_number(record.get(k)) for k in COST_FIELDS)
        and all(k not in record or (_is_number(record[k]) and record[k] >= 0) for k in WORK_FIELDS)
        and (
            parts is None
            or (isinstance(parts, dict) and all(isinstance(n, str) and _is_part(p) for n, p in parts.items()))
        )
    )


def _kept(record: dict[str, Any]) -> dict[str, Any]:
    """A well-formed record reduced to the known fields (work and parts only where present)."""
    kept = {k: record.get(k) for k in COST_FIELDS}
    kept.update({k: record[k] for k in WORK_FIELDS if k in record})
    if record.get("parts"):
        kept["parts"] = {name: dict(part) for name, part in record["parts"].items()}
    return kept


def valid_stage_costs(obj: Any) -> dict[str, dict[str, Any] | None]:
    """The well-formed ``{stage: record}`` entries of a parsed cost.json, with ``None`` for a stage
    whose cost is unknown (its record was lost to a damaged cost.json); anything else: dropped.

    cost.json is bookkeeping, not a result: a damaged one must never fail a subject, and a record
    that is not a mapping of numbers (or None) to the known fields would break the run's totals.
    """
    if not isinstance(obj, dict):
        return {}
    kept: dict[str, dict[str, Any] | None] = {}
    for stage, record in obj.items():
        if not isinstance(stage, str):
            continue
        if record is None:
            kept[stage] = None
        elif _is_record(record):
            kept[stage] = _kept(record)
    return kept


def is_well_formed(obj: Any) -> bool:
    """True when a parsed cost.json is an object of stage -> record (or None: unknown) throughout."""
    return isinstance(obj, dict) and all(
        isinstance(stage, str) and (record is None or _is_record(record)) for stage, record in obj.items()
    )


def repaired_costs(obj: Any, stages: tuple[str, ...]) -> dict[str, dict[str, Any] | None]:
    """What a damaged cost.json becomes: its well-formed records kept, every other stage of
    `stages` marked unknown (None) until that stage does work again. A stage's wall time cannot be
    recomputed without redoing the stage, so it is never guessed."""
    kept = valid_stage_costs(obj)
    return {**{stage: None for stage in stages}, **{s: r for s, r in kept.items() if r is not None}}


def _work_total(records: list[dict[str, Any]], key: str) -> float | int:
    """The sum of ``key`` over ``records``: an int for counts, seconds rounded to the millisecond."""
    values = [r[key] for r in records]
    if key in ("images", "steps"):
        return int(sum(values))
    return round(math.fsum(values), 3)


def summarize_costs(subject_costs: dict[str, dict[str, dict[str, Any] | None]]) -> dict[str, Any]:
    """Run totals from per-subject ``{stage: record}``: seconds add up, peaks take the maximum.

    Returns ``{"stages": {stage: totals}, "total": totals, "n_subjects": n, "unknown": {subject:
    [stage, ...]}}`` where totals hold wall_s, device_s (None on CPU), peak_device_mib (None on
    CPU), peak_host_mib and wall_s_per_subject (for "total"). A stage whose cost is unknown (None)
    adds nothing to the totals and is listed under "unknown", so the totals are known to be short.
    """

    def combine(records: list[dict[str, Any]]) -> dict[str, Any]:
        def total(key: str) -> float | None:
            values = [r[key] for r in records if r.get(key) is not None]
            # fsum: the same records give the same total whatever order the subjects ran in.
            return round(math.fsum(values), 3) if values else None

        def peak(key: str) -> float | None:
            values = [r[key] for r in records if r.get(key) is not None]
            return max(values) if values else None

        combined: dict[str, Any] = {
            "wall_s": total("wall_s") or 0.0,
            "device_s": total("device_s"),
            "peak_device_mib": peak("peak_device_mib"),
            "peak_host_mib": peak("peak_host_mib"),
        }
        # Work adds up like seconds, but only where every record counted it: a total over some
        # of the records would be divided by the time of all of them.
        combined.update({k: _work_total(records, k) for k in WORK_FIELDS if all(k in r for r in records)})
        if records and all(r.get("parts") for r in records):
            names = set.intersection(*(set(r["parts"]) for r in records))
            combined["parts"] = {
                name: {
                    k: _work_total([r["parts"][name] for r in records], k)
                    for k in ("wall_s", *WORK_FIELDS)
                    if all(k in r["parts"][name] for r in records)
                }
                for name in sorted(names)
            }
        return combined

    stages: dict[str, list[dict[str, Any]]] = {}
    unknown: dict[str, list[str]] = {}
    for subject, cost in sorted(subject_costs.items()):
        for stage, record in cost.items():
            if record is None:
                unknown.setdefault(subject, []).append(stage)
            else:
                stages.setdefault(stage, []).append(record)
    everything = [r for records in stages.values() for r in records]
    # The run's total is time and memory only: images rendered and images scored do not add up.
    total = {k: v for k, v in combine(everything).items() if k in COST_FIELDS}
    n = len(subject_costs)
    total["wall_s_per_subject"] = round(total["wall_s"] / n, 3) if n else None
    return {
        "stages": {s: combine(r) for s, r in sorted(stages.items())},
        "total": total,
        "n_subjects": n,
        "unknown": {subject: sorted(names) for subject, names in unknown.items()},
    }

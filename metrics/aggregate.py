"""Aggregation: image rows -> (subject, prompt) -> subject -> overall.

Conventions (DreamBooth paper, as in DESIGN.md):

* A subject's DINO / CLIP-I is the mean cosine over all (generated, real) pairs. Each image row
  holds its mean over the subject's ``n_real`` real images, so with the same ``n_real`` for every
  row the subject mean of the rows equals the all-pairs mean.
* A subject's CLIP-T is the mean over its images of cosine(image, prompt text).
* Overall is the mean over subjects (each subject weighs the same). The pooled all-pairs mean
  (each pair weighs the same) is recorded beside it as ``<metric>_all_pairs``.
* ``None`` means "does not apply" (CLIP-T of the real-images ceiling) and stays ``None``.
* Which metrics, and how much each subject weighs in the pooled mean, comes from the metrics'
  declarations (metrics/metric_registry.py): per-image metrics weigh n_real pairs per image when
  they pair with the real images, one otherwise; an optional metric brings its own weight.
* Every sum runs in a fixed order (subjects by name, prompts by index, images by (prompt, sample))
  and is exactly rounded (``math.fsum``): the same scores give bit-identical figures whatever the
  order in which subjects were run, by which executor, or over how many invocations.

Pure functions over plain dicts; no I/O, no torch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from dreambench.metrics.metric_registry import CORE_METRICS, metrics
from dreambench.metrics.metric_spec import MetricSpec, SubjectScore


def _row_metrics() -> list[MetricSpec]:
    """The metrics scores.jsonl rows hold: the core ones, and the preset ones where computed."""
    return [m for m in metrics().values() if m.availability != "optional"]


def _mean(values: Sequence[float]) -> float:
    # fsum is exactly rounded, so the mean does not depend on the order of the values.
    return math.fsum(values) / len(values)


def _image_order(row: Mapping[str, Any]) -> tuple[int, int]:
    return (int(row["prompt_idx"]), int(row.get("sample_idx", 0)))


def summarize_subject_images(rows: Sequence[Mapping[str, Any]], n_real: int) -> dict[str, Any]:
    """Per-subject figures from per-image rows (each with prompt_idx and metric values).

    Returns ``{metric: mean, "per_prompt": {idx: {metric: mean}}, "pair_counts": {metric: pairs}}``
    where pair_counts weigh the subject in the pooled all-pairs mean: n_images * n_real for the
    image-image metrics, n_images for CLIP-T. Under a pairing with one real image per generated
    image (dreambench-plus) the caller passes ``n_real=1``.
    """
    if not rows:
        raise ValueError("no image rows to summarize")
    out: dict[str, Any] = {}
    rows = sorted(rows, key=_image_order)
    by_prompt: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_prompt[int(row["prompt_idx"])].append(row)
    declared = [
        m
        for m in _row_metrics()
        if m.availability == "core" or all(row.get(m.name) is not None for row in rows)
    ]
    metrics = tuple(m.name for m in declared)
    for metric in metrics:
        values = [row[metric] for row in rows if row.get(metric) is not None]
        out[metric] = _mean(values) if values else None
    out["per_prompt"] = {
        str(p): {m: (_mean([r[m] for r in group]) if group[0].get(m) is not None else None) for m in metrics}
        for p, group in sorted(by_prompt.items())
    }
    out["pair_counts"] = {m.name: len(rows) * (n_real if m.pairing == "real" else 1) for m in declared}
    return out


def mean_per_prompt(values: Sequence[float], prompt_idx: Sequence[int]) -> SubjectScore:
    """A per-image optional metric of one subject: the mean over its images (each weighs one) and
    the mean per prompt, like the core metrics."""
    if not values or len(values) != len(prompt_idx):
        raise ValueError(f"need one value per image, got {len(values)} values for {len(prompt_idx)} images")
    by_prompt: dict[int, list[float]] = defaultdict(list)
    for p, v in zip(prompt_idx, values, strict=True):
        by_prompt[int(p)].append(v)
    per_prompt = {p: _mean(group) for p, group in sorted(by_prompt.items())}
    return SubjectScore(value=_mean(values), weight=len(values), per_prompt=per_prompt)


def summarize_real_pairs(scores: Mapping[str, float], n_real: int) -> dict[str, Any]:
    """Per-subject figures for the real-images ceiling: distinct-pair means, CLIP-T does not apply."""
    n_pairs = n_real * (n_real - 1) // 2
    out: dict[str, Any] = {}
    pair_counts: dict[str, int] = {}
    for m in _row_metrics():
        if m.pairing != "real":  # CLIP-T: no prompt
            if m.availability == "core":
                out[m.name], pair_counts[m.name] = None, 0
        elif m.availability == "core" or scores.get(m.name) is not None:
            out[m.name], pair_counts[m.name] = scores[m.name], n_pairs
    out["pair_counts"] = pair_counts
    return out


def summarize_overall(subjects: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean over subjects and pooled all-pairs mean of each metric (``None`` where it doesn't apply)."""
    out: dict[str, Any] = {"n_subjects": len(subjects)}
    subjects = dict(sorted(subjects.items()))
    optional = [
        m for m in metrics() if m not in CORE_METRICS and any(m in s for s in subjects.values())
    ]
    for metric in (*CORE_METRICS, *optional):
        present = [s for s in subjects.values() if s.get(metric) is not None]
        if metric in optional:
            out[f"{metric}_n_subjects"] = len(present)
        if not present:
            out[metric] = None
            out[f"{metric}_all_pairs"] = None
            continue
        out[metric] = _mean([s[metric] for s in present])
        weights = [s["pair_counts"][metric] for s in present]
        out[f"{metric}_all_pairs"] = math.fsum(w * s[metric] for w, s in zip(weights, present)) / sum(
            weights
        )
    return out


def add_optional_metrics(summary: dict[str, Any], scores: Mapping[str, SubjectScore]) -> None:
    """Merge optional metrics' subject figures (PRES, DIV, ...) into a subject summary made by
    `summarize_subject_images`: the figure, its per-prompt figures and its weight for the pooled mean."""
    for name, score in scores.items():
        summary[name] = score.value
        for prompt, value in (score.per_prompt or {}).items():
            summary["per_prompt"].setdefault(str(prompt), {})[name] = value
        summary["pair_counts"][name] = score.weight

"""Aggregation: image rows -> (subject, prompt) -> subject -> overall.

Conventions (DreamBooth paper, as in DESIGN.md):

* A subject's DINO / CLIP-I is the mean cosine over all (generated, real) pairs. Each image row
  holds its mean over the subject's ``n_real`` real images, so with the same ``n_real`` for every
  row the subject mean of the rows equals the all-pairs mean.
* A subject's CLIP-T is the mean over its images of cosine(image, prompt text).
* Overall is the mean over subjects (each subject weighs the same). The pooled all-pairs mean
  (each pair weighs the same) is recorded beside it as ``<metric>_all_pairs``.
* ``None`` means "does not apply" (CLIP-T of the real-images ceiling) and stays ``None``.
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

METRICS: tuple[str, ...] = ("dino", "clip_i", "clip_t")
# Image metrics only some metric presets compute (dreambench-plus's DINOv2): summarised like METRICS
# where the rows have them, absent otherwise.
PRESET_METRICS: tuple[str, ...] = ("dinov2",)
# Computed only on request (PRES, DIV): absent from a subject that did not compute them.
OPTIONAL_METRICS: tuple[str, ...] = ("pres", "div")


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
    metrics = (*METRICS, *(m for m in PRESET_METRICS if all(row.get(m) is not None for row in rows)))
    for metric in metrics:
        values = [row[metric] for row in rows if row.get(metric) is not None]
        out[metric] = _mean(values) if values else None
    out["per_prompt"] = {
        str(p): {m: (_mean([r[m] for r in group]) if group[0].get(m) is not None else None) for m in metrics}
        for p, group in sorted(by_prompt.items())
    }
    out["pair_counts"] = {"dino": len(rows) * n_real, "clip_i": len(rows) * n_real, "clip_t": len(rows)}
    out["pair_counts"].update({m: len(rows) * n_real for m in metrics if m in PRESET_METRICS})
    return out


def summarize_real_pairs(scores: Mapping[str, float], n_real: int) -> dict[str, Any]:
    """Per-subject figures for the real-images ceiling: distinct-pair means, CLIP-T does not apply."""
    n_pairs = n_real * (n_real - 1) // 2
    out: dict[str, Any] = {
        "dino": scores["dino"],
        "clip_i": scores["clip_i"],
        "clip_t": None,
        "pair_counts": {"dino": n_pairs, "clip_i": n_pairs, "clip_t": 0},
    }
    for metric in PRESET_METRICS:
        if scores.get(metric) is not None:
            out[metric] = scores[metric]
            out["pair_counts"][metric] = n_pairs
    return out


def summarize_overall(subjects: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean over subjects and pooled all-pairs mean of each metric (``None`` where it doesn't apply)."""
    out: dict[str, Any] = {"n_subjects": len(subjects)}
    subjects = dict(sorted(subjects.items()))
    optional = [m for m in (*PRESET_METRICS, *OPTIONAL_METRICS) if any(m in s for s in subjects.values())]
    for metric in (*METRICS, *optional):
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


def add_optional_metrics(
    summary: dict[str, Any],
    n_real: int,
    pres: tuple[float, int] | None = None,
    div: Mapping[str, Any] | None = None,
    images_per_prompt: int = 0,
) -> None:
    """Merge PRES (value, number of class samples) and DIV ({"div", "per_prompt"}) into a subject
    summary made by `summarize_subject_images`, with their weights for the pooled means."""
    if pres is not None:
        value, n_samples = pres
        summary["pres"] = value
        summary["pair_counts"]["pres"] = n_samples * n_real
    if div is not None:
        summary["div"] = div["div"]
        for prompt, value in div["per_prompt"].items():
            summary["per_prompt"].setdefault(str(prompt), {})["div"] = value
        pairs = images_per_prompt * (images_per_prompt - 1) // 2
        summary["pair_counts"]["div"] = len(div["per_prompt"]) * pairs

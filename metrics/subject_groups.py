"""Scoring a subject group (a pair dataset's entry): each generated image against each subject of
the group, then the group's mean and minimum.

For a generated image i of a group with subjects m = 1..k, the Scorer gives per-subject figures
f_m(i) exactly as for a single subject (DINO / CLIP-I against subject m's real images under the
metric preset's pairing; CLIP-T against the prompt, the same for every m). The group's figures:

    mean(i) = (1/k) sum_m f_m(i)        the image's row in scores.jsonl (what tables rank)
    min(i)  = min_m f_m(i)              the subject the image renders worst

and per group: each subject's figure (mean over images of f_m), the group's mean (mean over
images of mean(i), equal to the mean over subjects of their figures) and its minimum (mean over
images of min(i): an image that shows only one of the two subjects scores low here even when
the other images show only the other).

UNO's multi-subject evaluation (bytedance/UNO eval/evaluate_clip_dino_score_multi_subject.py)
averages the per-subject similarities of each image, as a third party's reading of its lines
260-268 reports; the script itself could not be read here, so the mean is UNO's figure as far as
that reading goes, and the minimum is dreambench's own addition, declared here and recorded as
`GROUP_SCORING` in every group run's dataset record (part of its identity).

Pure functions over plain dicts; no I/O, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

GROUP_SCORING = "per subject; group mean and per-image minimum over its subjects (v1)"


def _is_figure(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def group_image_rows(member_rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per generated image from each member's rows (same image order in each).

    Returns ``{metric: mean over members, "group_min": {metric: min}, "members": {name: row}}``; a
    figure that is None for some member ("does not apply") is None in the mean and min.
    """
    names = list(member_rows)
    if not names:
        raise ValueError("a subject group has no members")
    n = {len(rows) for rows in member_rows.values()}
    if len(n) != 1:
        raise ValueError(f"members scored different numbers of images: {sorted(n)}")
    out: list[dict[str, Any]] = []
    for i in range(n.pop()):
        rows = [member_rows[name][i] for name in names]
        metrics = [
            k for k, v in rows[0].items() if _is_figure(v) and all(_is_figure(r.get(k, "")) for r in rows)
        ]
        row: dict[str, Any] = {}
        low: dict[str, Any] = {}
        for metric in metrics:
            values = [r[metric] for r in rows]
            if any(v is None for v in values):
                row[metric] = low[metric] = None
            else:
                row[metric] = math.fsum(values) / len(values)
                low[metric] = min(values)
        row["group_min"] = low
        row["members"] = {name: dict(r) for name, r in zip(names, rows)}
        out.append(row)
    return out


def summarize_group(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """The group's per-subject figures and its minimum, from `group_image_rows` rows:
    ``{"members": {name: {metric: mean over images}}, "group_min": {metric: mean over images}}``."""

    def mean(values: list[Any]) -> Any:
        return None if not values or any(v is None for v in values) else math.fsum(values) / len(values)

    names = list(rows[0]["members"]) if rows else []
    return {
        "members": {
            name: {m: mean([r["members"][name].get(m) for r in rows]) for m in metrics} for name in names
        },
        "group_min": {m: mean([r["group_min"].get(m) for r in rows]) for m in metrics},
    }


def overall_group_min(
    subjects: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]
) -> dict[str, Any] | None:
    """Mean over the groups among `subjects` of each group's minimum (None when there is no group)."""
    groups = [s["group_min"] for _, s in sorted(subjects.items()) if isinstance(s.get("group_min"), dict)]
    if not groups:
        return None
    out: dict[str, Any] = {}
    for m in metrics:
        values = [g.get(m) for g in groups]
        out[m] = None if any(v is None for v in values) else math.fsum(values) / len(values)
    return out

"""The one builder of synthetic results.json documents for the tests (leaderboard, compare,
report): each test makes its own per-subject figures and this wraps them in the file's envelope,
with the aggregates computed the way metrics/aggregate.py defines them (mean over subjects)."""

from __future__ import annotations

from statistics import mean
from typing import Any

METRICS = ("dino", "clip_i", "clip_t")
REAL_EMBEDDER = {"backend": "timm", "arch": "vit_small_patch16_224.dino", "weights": "dino", "sha256": "aa11"}
SMOKE_EMBEDDER = {
    "backend": "timm",
    "arch": "vit_small_patch16_224.dino",
    "weights": "random-seed-0",
    "sha256": "bb22",
}
UNCALIBRATED_REASON = (
    "metric preset 'smoke' scores with smoke embedders (seeded or self-trained weights), not the protocol's networks"
)


def aggregate(subjects: dict[str, dict[str, Any]], names: list[str]) -> dict[str, Any] | None:
    """Mean over ``names`` of each metric (null when no subject has it); None for no subjects."""
    if not names:
        return None
    out: dict[str, Any] = {"n_subjects": len(names)}
    for m in METRICS:
        values = [subjects[n][m] for n in names if subjects[n].get(m) is not None]
        out[m] = mean(values) if values else None
        out[f"{m}_all_pairs"] = out[m]
    return out


def results_document(
    subjects: dict[str, dict[str, Any]],
    *,
    method: str = "dreambooth",
    preset: str = "default",
    method_kind: str = "finetune",
    config_hash: str = "3f2a9c1e",
    run_name: str | None = None,
    calibrated: bool = True,
    embedder: dict[str, str] | None = None,
    metric_version: int = 1,
    convention: str = "raw cosine in [-1, 1]",
    prompt_version: str = "1",
    prompt_sha256: str = "c0ffee",
    images_per_prompt: int = 4,
    clip_t_text: str = "identifier removed",
    failures: dict[str, str] | None = None,
    overall_ci: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """A schema-1 results.json dict around ``subjects`` (name -> per-subject figures and kind)."""
    embedder = embedder or (REAL_EMBEDDER if calibrated else SMOKE_EMBEDDER)
    overall = aggregate(subjects, list(subjects))
    assert overall is not None, "a results file has at least one finished subject"
    if overall_ci:
        overall["ci"] = overall_ci
    run_name = run_name or f"{method}-{preset}-{config_hash}"
    return {
        "schema_version": 1,
        "run": {
            "method": method,
            "method_kind": method_kind,
            "method_preset": preset,
            "method_config": {},
            "preset": preset,
            "metric_preset": "dreambooth" if calibrated else "smoke",
            "config_hash": config_hash,
            "run_dir": f"runs/{run_name}",
        },
        "calibrated": calibrated,
        "uncalibrated_reasons": [] if calibrated else [UNCALIBRATED_REASON],
        "dataset": {
            "name": "dreambooth",
            "repo": "google/dreambooth",
            "commit": "4f887af",
            "manifest_sha256": "dd",
        },
        "prompt_set": {"name": "dreambench", "version": prompt_version, "sha256": prompt_sha256},
        "protocol": {
            "images_per_prompt": images_per_prompt,
            "base_seed": 0,
            "clip_t_text": clip_t_text,
            "aggregation": "mean over subjects",
        },
        "metrics": {
            m: {
                "version": metric_version,
                "higher_is_better": True,
                "convention": convention,
                "embedder": embedder,
            }
            for m in METRICS
        },
        "subjects": subjects,
        "overall": overall,
        "overall_live": aggregate(subjects, [n for n in subjects if subjects[n]["kind"] == "live"]),
        "overall_object": aggregate(subjects, [n for n in subjects if subjects[n]["kind"] == "object"]),
        "failures": dict(failures or {}),
        "cost": {
            "stages": {},
            "n_subjects": len(subjects),
            "total": {
                "wall_s": 90.0 * len(subjects),
                "wall_s_per_subject": 90.0,
                "device_s": None,
                "peak_device_mib": None,
                "peak_host_mib": 2048.0,
            },
        },
        "stamp": {
            "dreambench_version": "0.1.0",
            "git": {"commit": "abcdef1234567890", "dirty": False},
            "device": "cpu",
            "date": "2026-11-26T07:30:00Z",
        },
    }

"""Uncertainty of benchmark figures: hierarchical bootstrap intervals and paired comparisons.

The benchmark's figure is a mean over subjects of per-subject means, and each subject's mean is
itself (for generated images) the mean over its prompts of per-prompt means. Both levels are
samples: the 30 subjects stand for "subjects people personalise", the 25 prompts for "prompts
people write". The intervals here therefore resample both levels (two-stage bootstrap):

1. draw n subjects with replacement from the n subjects;
2. for each drawn subject with ``per_prompt`` figures, draw its k prompts with replacement from
   its k prompts and take their mean; a subject without ``per_prompt`` (the real-images ceiling)
   keeps its recorded figure;
3. the replicate is the mean of the n drawn subject means.

The interval is the percentile interval of the replicates. Resampling both levels is slightly
conservative (the prompt noise is counted once at each level), which is the safe side for a gate.

Inputs are results.json ``subjects`` mappings (docs/RESULTS.md): name -> {"dino": float | None,
..., "per_prompt": {"0": {"dino": float | None, ...}, ...}}. ``None`` means "does not apply" and
such subjects are left out, as the overall figure leaves them out.

A subject's prompt values are shifted so their mean equals the subject's recorded figure: with
the same number of images per prompt they already do, and where they don't (fewer images for one
prompt) the interval stays centred on the figure that results.json reports.

Pure numpy; every random draw comes from a ``numpy.random.Generator`` built from ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dreambench.metrics.metric_registry import display_order, metrics

BOOTSTRAP_METHOD = "hierarchical percentile bootstrap (subjects, then prompts within subjects)"
PERMUTATION_METHOD = "paired sign-flip permutation test over subjects (two-sided)"
#: Up to this many subjects the permutation test enumerates all 2^n sign vectors.
EXACT_PERMUTATION_MAX_SUBJECTS = 16
# Bound on the elements of one block of bootstrap draws (memory stays ~tens of MB at any n_boot).
_BLOCK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class PairedResult:
    """Current run minus baseline run on one metric, over the subjects both score.

    ``delta`` = mean over subjects of (current - baseline) = current mean - baseline mean;
    ``[ci_low, ci_high]`` its paired hierarchical bootstrap interval; ``p_value`` the two-sided
    sign-flip permutation p-value for "no difference"; ``subject_deltas`` per subject.
    """

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n_subjects: int
    baseline: float
    current: float
    subject_deltas: dict[str, float]


def bootstrap_ci(
    subjects: Mapping[str, Mapping[str, Any]],
    metric: str,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile interval of the mean over subjects, by two-stage bootstrap (module docstring).

    Returns None when the metric is None (or absent) for every subject.
    """
    _check_settings(n_boot, level)
    values = [v for v in (_subject_values(s, metric) for s in subjects.values()) if v is not None]
    if not values:
        return None
    replicates = _two_stage_replicates(values, n_boot, np.random.default_rng(seed))
    return _percentile_interval(replicates, level)


def subject_ci(
    subject: Mapping[str, Any],
    metric: str,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile interval of one subject's figure, resampling its prompts.

    None when the subject has no ``per_prompt`` figures for the metric or the metric is None.
    """
    _check_settings(n_boot, level)
    values = _subject_values(subject, metric)
    if values is None or not _has_prompts(subject, metric):
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(n_boot, len(values)))
    return _percentile_interval(values[draws].mean(axis=1), level)


def paired_comparison(
    baseline_subjects: Mapping[str, Mapping[str, Any]],
    current_subjects: Mapping[str, Mapping[str, Any]],
    metric: str,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    n_perm: int = 10_000,
) -> PairedResult | None:
    """Compare two runs on the same subjects (and, where both have them, the same prompts).

    Subjects are paired by name and prompts by index: the bootstrap resamples subjects and, within
    a subject, prompt indices, drawing the same prompts from both runs. Because the figures are
    means, that equals the two-stage bootstrap of the per-prompt differences. The p-value is a
    sign-flip permutation test over the subject deltas (`sign_flip_p_value`).

    Subjects where either run's figure is None are left out; returns None when none is left.
    Raises ValueError when the runs hold different subjects, or one subject's prompts differ.
    """
    _check_settings(n_boot, level)
    if set(baseline_subjects) != set(current_subjects):
        only_base = sorted(set(baseline_subjects) - set(current_subjects))
        only_cur = sorted(set(current_subjects) - set(baseline_subjects))
        raise ValueError(f"subjects differ: only in baseline {only_base}, only in current {only_cur}")
    names: list[str] = []
    differences: list[np.ndarray] = []
    base_figures: list[float] = []
    cur_figures: list[float] = []
    for name in sorted(baseline_subjects):
        base, cur = baseline_subjects[name], current_subjects[name]
        diff = _paired_values(name, base, cur, metric)
        if diff is None:
            continue
        names.append(name)
        differences.append(diff)
        base_figures.append(float(base[metric]))
        cur_figures.append(float(cur[metric]))
    if not names:
        return None
    boot_seed, perm_seed = np.random.SeedSequence(seed).spawn(2)
    replicates = _two_stage_replicates(differences, n_boot, np.random.default_rng(boot_seed))
    low, high = _percentile_interval(replicates, level)
    deltas = np.asarray(cur_figures) - np.asarray(base_figures)
    return PairedResult(
        delta=float(deltas.mean()),
        ci_low=low,
        ci_high=high,
        p_value=sign_flip_p_value(deltas, n_perm=n_perm, rng=np.random.default_rng(perm_seed)),
        n_subjects=len(names),
        baseline=float(np.mean(base_figures)),
        current=float(np.mean(cur_figures)),
        subject_deltas={n: float(d) for n, d in zip(names, deltas, strict=True)},
    )


def sign_flip_p_value(
    deltas: np.ndarray | list[float],
    n_perm: int = 10_000,
    rng: np.random.Generator | None = None,
) -> float:
    """Two-sided p-value of "the paired deltas are symmetric about 0" by flipping their signs.

    Statistic: |sum of deltas|. Exact over all 2^n sign vectors when n <=
    EXACT_PERMUTATION_MAX_SUBJECTS; otherwise Monte-Carlo with ``n_perm`` random sign vectors and
    the add-one estimate (1 + hits) / (1 + n_perm), which never reports p = 0.
    """
    d = np.asarray(deltas, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"need a non-empty 1-d array of deltas, got shape {d.shape}")
    observed = abs(d.sum())
    # Sign vectors that reproduce |sum| up to float rounding count as "as extreme" (ties -> p = 1).
    tolerance = 1e-12 * max(1.0, float(np.abs(d).sum()))
    if d.size <= EXACT_PERMUTATION_MAX_SUBJECTS:
        codes = np.arange(2**d.size)[:, None]
        signs = ((codes >> np.arange(d.size)) & 1) * 2 - 1
        hits = int((np.abs(signs @ d) >= observed - tolerance).sum())
        return hits / 2**d.size
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    rng = rng if rng is not None else np.random.default_rng(0)
    hits = 0
    block = max(1, _BLOCK_ELEMENTS // d.size)
    for start in range(0, n_perm, block):
        size = min(block, n_perm - start)
        signs = rng.integers(0, 2, size=(size, d.size)) * 2 - 1
        hits += int((np.abs(signs @ d) >= observed - tolerance).sum())
    return (1 + hits) / (1 + n_perm)


def intervals_for_results(
    results: Mapping[str, Any], n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Bootstrap intervals for a results.json dict: overall, per kind, and per subject.

    Returns ``{"overall": {metric: [low, high]}, "overall_live": {...}, "overall_object": {...},
    "subjects": {name: {metric: [low, high]}}, "method", "n_boot", "level", "seed"}``. A metric
    that does not apply (None for every subject; or, per subject, no ``per_prompt``) has no key, so
    each group maps only metrics with an interval; a group without subjects is ``{}``. The metrics
    are every declared one (metrics/metric_registry.py) and those the results' "metrics" section names.
    """
    subjects: Mapping[str, Mapping[str, Any]] = results["subjects"]
    names = display_order([*metrics(), *(results.get("metrics") or {})])
    groups = {
        "overall": subjects,
        "overall_live": {n: s for n, s in subjects.items() if s.get("kind") == "live"},
        "overall_object": {n: s for n, s in subjects.items() if s.get("kind") == "object"},
    }
    out: dict[str, Any] = {}
    for key, members in groups.items():
        out[key] = _interval_dict(names, lambda m, members=members: bootstrap_ci(members, m, n_boot, level, seed))
    out["subjects"] = {
        name: _interval_dict(names, lambda m, s=s: subject_ci(s, m, n_boot, level, seed))
        for name, s in sorted(subjects.items())
    }
    out.update(method=BOOTSTRAP_METHOD, n_boot=n_boot, level=level, seed=seed)
    return out


def _interval_dict(names: list[str], interval: Any) -> dict[str, list[float]]:
    found = {m: interval(m) for m in names}
    return {m: [ci[0], ci[1]] for m, ci in found.items() if ci is not None}


def _check_settings(n_boot: int, level: float) -> None:
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def _prompt_order(key: str) -> tuple[int, int | str]:
    """Prompt keys are stringified indices ("0".."24"): order them numerically."""
    return (0, int(key)) if str(key).lstrip("-").isdigit() else (1, str(key))


def _prompt_figures(subject: Mapping[str, Any], metric: str) -> dict[str, float]:
    per_prompt = subject.get("per_prompt") or {}
    return {
        str(k): float(v[metric])
        for k, v in sorted(per_prompt.items(), key=lambda kv: _prompt_order(kv[0]))
        if v.get(metric) is not None
    }


def _has_prompts(subject: Mapping[str, Any], metric: str) -> bool:
    return bool(_prompt_figures(subject, metric))


def _centred(values: np.ndarray, figure: float) -> np.ndarray:
    """Shift values so their mean is `figure` (see the module docstring)."""
    return values - values.mean() + figure


def _subject_values(subject: Mapping[str, Any], metric: str) -> np.ndarray | None:
    """The values the bootstrap draws from for one subject: its prompt figures, else its figure."""
    figure = subject.get(metric)
    if figure is None:
        return None
    prompts = _prompt_figures(subject, metric)
    if not prompts:
        return np.array([float(figure)])
    return _centred(np.fromiter(prompts.values(), dtype=float), float(figure))


def _paired_values(
    name: str, base: Mapping[str, Any], cur: Mapping[str, Any], metric: str
) -> np.ndarray | None:
    """Per-prompt differences (current - baseline) of one subject, or its one figure difference."""
    if base.get(metric) is None or cur.get(metric) is None:
        return None
    delta = float(cur[metric]) - float(base[metric])
    base_prompts, cur_prompts = _prompt_figures(base, metric), _prompt_figures(cur, metric)
    if not base_prompts or not cur_prompts:
        return np.array([delta])
    if base_prompts.keys() != cur_prompts.keys():
        only_base = sorted(set(base_prompts) - set(cur_prompts), key=_prompt_order)
        only_cur = sorted(set(cur_prompts) - set(base_prompts), key=_prompt_order)
        raise ValueError(
            f"subject {name!r}: prompts differ for {metric} (only in baseline {only_base}, "
            f"only in current {only_cur})"
        )
    diffs = np.array([cur_prompts[k] - base_prompts[k] for k in base_prompts])
    return _centred(diffs, delta)


def _two_stage_replicates(values: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot bootstrap means over subjects; `values[i]` is subject i's prompt values (k_i >= 1).

    Subjects are padded to a (n, k_max) matrix; a drawn subject with k prompts draws k prompt
    indices in [0, k) and the draws past k are masked out, so ragged subjects vectorise.
    """
    n = len(values)
    counts = np.array([len(v) for v in values])
    k_max = int(counts.max())
    padded = np.zeros((n, k_max))
    for i, v in enumerate(values):
        padded[i, : len(v)] = v
    out = np.empty(n_boot)
    block = max(1, _BLOCK_ELEMENTS // (n * k_max))
    for start in range(0, n_boot, block):
        size = min(block, n_boot - start)
        drawn = rng.integers(0, n, size=(size, n))
        if k_max == 1:
            subject_means = padded[drawn, 0]
        else:
            k = counts[drawn][..., None]
            # floor(u * k) is uniform on [0, k); the minimum guards the u -> 1 rounding edge.
            # (Faster than Generator.integers with an array bound.)
            prompts = np.minimum((rng.random((size, n, k_max)) * k).astype(np.intp), k - 1)
            picked = padded[drawn[..., None], prompts]
            keep = np.arange(k_max) < k
            subject_means = np.where(keep, picked, 0.0).sum(axis=-1) / k[..., 0]
        out[start : start + size] = subject_means.mean(axis=1)
    return out


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)

"""metrics/statistics.py: hierarchical bootstrap intervals, paired comparison, sign-flip test.

Synthetic benchmarks: subject s, prompt p scores mu + subject effect (sd SUBJECT_SD) + prompt noise
(sd PROMPT_SD), so the population mean of the overall figure is mu.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dreambench.leaderboard.results import load_results
from dreambench.leaderboard.table import build_leaderboard
from dreambench.metrics.statistics import (
    BOOTSTRAP_METHOD,
    EXACT_PERMUTATION_MAX_SUBJECTS,
    bootstrap_ci,
    intervals_for_results,
    paired_comparison,
    sign_flip_p_value,
    subject_ci,
)

SUBJECT_SD = 0.05
PROMPT_SD = 0.1


def synthetic_subjects(
    rng: np.random.Generator, n_subjects: int = 30, n_prompts: int = 25, mu: float = 0.6
) -> dict[str, dict[str, Any]]:
    """results.json-style subjects: DINO and CLIP-I with per_prompt figures, CLIP-T null."""
    subjects: dict[str, dict[str, Any]] = {}
    for i in range(n_subjects):
        dino = mu + rng.normal(0, SUBJECT_SD) + rng.normal(0, PROMPT_SD, n_prompts)
        clip_i = dino + 0.2
        subjects[f"subject{i:02d}"] = {
            "kind": "live" if i % 3 == 0 else "object",
            "dino": float(dino.mean()),
            "clip_i": float(clip_i.mean()),
            "clip_t": None,
            "per_prompt": {
                str(p): {"dino": float(dino[p]), "clip_i": float(clip_i[p]), "clip_t": None}
                for p in range(n_prompts)
            },
        }
    return subjects


def shifted(subjects: dict[str, dict[str, Any]], metric: str, shift: float) -> dict[str, dict[str, Any]]:
    """A copy where every subject and prompt figure of `metric` moved by `shift`."""
    out = copy.deepcopy(subjects)
    for entry in out.values():
        entry[metric] += shift
        for prompt in entry["per_prompt"].values():
            prompt[metric] += shift
    return out


def width(ci: tuple[float, float] | None) -> float:
    assert ci is not None
    return ci[1] - ci[0]


# --- bootstrap_ci -------------------------------------------------------------------------------


def test_interval_covers_true_mean_at_about_nominal_rate() -> None:
    rng = np.random.default_rng(12345)
    mu, trials = 0.6, 200
    covered = 0
    for trial in range(trials):
        ci = bootstrap_ci(synthetic_subjects(rng, mu=mu), "dino", n_boot=500, seed=trial)
        assert ci is not None
        covered += ci[0] <= mu <= ci[1]
    # Nominal 95%; the two-stage bootstrap is slightly conservative. Binomial sd over 200 trials ~1.5%.
    assert 0.90 <= covered / trials <= 0.99, covered


def test_interval_contains_the_figure_and_matches_normal_theory_without_prompts() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0.5, 0.1, 200)
    subjects = {f"s{i}": {"dino": float(v)} for i, v in enumerate(values)}
    low, high = bootstrap_ci(subjects, "dino", n_boot=4000) or (0.0, 0.0)
    assert low < values.mean() < high
    # One-level bootstrap of a mean: half-width ~ 1.96 * sd / sqrt(n) (independent reference).
    expected = 1.96 * values.std(ddof=0) / np.sqrt(values.size)
    assert (high - low) / 2 == pytest.approx(expected, rel=0.1)


def test_prompt_level_resampling_widens_the_interval() -> None:
    # With the subject figures fixed, only the per-prompt resampling can add width.
    subjects = synthetic_subjects(np.random.default_rng(3))
    without_prompts = {n: {k: v for k, v in s.items() if k != "per_prompt"} for n, s in subjects.items()}
    assert width(bootstrap_ci(subjects, "dino")) > width(bootstrap_ci(without_prompts, "dino"))


def test_interval_shrinks_with_more_subjects() -> None:
    rng = np.random.default_rng(11)
    few = width(bootstrap_ci(synthetic_subjects(rng, n_subjects=10), "dino", n_boot=1000))
    many = width(bootstrap_ci(synthetic_subjects(rng, n_subjects=100), "dino", n_boot=1000))
    assert many < 0.6 * few  # ~ sqrt(10 / 100) = 0.32 in expectation


def test_seed_determinism() -> None:
    subjects = synthetic_subjects(np.random.default_rng(5))
    assert bootstrap_ci(subjects, "dino", seed=3) == bootstrap_ci(subjects, "dino", seed=3)
    assert bootstrap_ci(subjects, "dino", seed=3) != bootstrap_ci(subjects, "dino", seed=4)
    assert paired_comparison(subjects, subjects, "dino", seed=1) == paired_comparison(
        subjects, subjects, "dino", seed=1
    )


def test_null_metric_gives_no_interval_and_null_subjects_are_left_out() -> None:
    subjects = synthetic_subjects(np.random.default_rng(5), n_subjects=6)
    assert bootstrap_ci(subjects, "clip_t") is None
    assert subject_ci(subjects["subject00"], "clip_t") is None
    # A subject whose figure is null does not pull the interval anywhere.
    with_null = copy.deepcopy(subjects)
    with_null["extra"] = {"kind": "object", "dino": None, "clip_i": None, "clip_t": None}
    assert bootstrap_ci(with_null, "dino") == bootstrap_ci(subjects, "dino")


def test_ragged_prompt_counts_are_resampled_within_each_subject() -> None:
    # Subject a: 3 prompts, all 0.2; subject b: 25 prompts, all 0.8. Replicates can only be
    # means of {0.2, 0.8} draws -> within [0.2, 0.8]; padded zeros must never leak in.
    subjects = {
        "a": {"dino": 0.2, "per_prompt": {str(p): {"dino": 0.2} for p in range(3)}},
        "b": {"dino": 0.8, "per_prompt": {str(p): {"dino": 0.8} for p in range(25)}},
    }
    low, high = bootstrap_ci(subjects, "dino", n_boot=2000) or (0.0, 0.0)
    assert low == pytest.approx(0.2) and high == pytest.approx(0.8)


def test_prompt_values_are_centred_on_the_recorded_subject_figure() -> None:
    # per_prompt means 0.5 but results.json says 0.6 (e.g. a prompt with fewer images): the
    # interval follows the recorded figure.
    subject = {"dino": 0.6, "per_prompt": {"0": {"dino": 0.4}, "1": {"dino": 0.6}}}
    low, high = subject_ci(subject, "dino", n_boot=2000) or (0.0, 0.0)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.7)


def test_subject_ci_width_follows_prompt_noise() -> None:
    rng = np.random.default_rng(21)
    values = rng.normal(0.6, PROMPT_SD, 25)
    subject = {
        "dino": float(values.mean()),
        "per_prompt": {str(p): {"dino": float(v)} for p, v in enumerate(values)},
    }
    low, high = subject_ci(subject, "dino", n_boot=4000) or (0.0, 0.0)
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(1.96 * values.std() / 5, rel=0.15)
    assert subject_ci({"dino": 0.6}, "dino") is None  # no per_prompt (real-images ceiling)


@pytest.mark.parametrize(("n_boot", "level"), [(0, 0.95), (100, 1.0), (100, 0.0)])
def test_bad_settings_are_refused(n_boot: int, level: float) -> None:
    with pytest.raises(ValueError):
        bootstrap_ci({"a": {"dino": 0.5}}, "dino", n_boot=n_boot, level=level)


# --- paired_comparison --------------------------------------------------------------------------


def test_identical_runs_have_zero_delta_and_p_one() -> None:
    subjects = synthetic_subjects(np.random.default_rng(1))
    result = paired_comparison(subjects, copy.deepcopy(subjects), "dino")
    assert result is not None
    assert (result.delta, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert result.n_subjects == 30 and set(result.subject_deltas.values()) == {0.0}


def test_constant_shift_is_detected() -> None:
    base = synthetic_subjects(np.random.default_rng(2))
    result = paired_comparison(base, shifted(base, "dino", 0.05), "dino")
    assert result is not None
    assert result.delta == pytest.approx(0.05)
    assert result.ci_low > 0 and result.ci_high == pytest.approx(0.05)
    assert result.p_value < 0.001
    assert result.current - result.baseline == pytest.approx(0.05)
    assert all(d == pytest.approx(0.05) for d in result.subject_deltas.values())


def test_paired_interval_is_narrower_than_the_unpaired_one() -> None:
    # Pairing removes the subject effect that both runs share: a noisy +0.01 shift is resolved.
    rng = np.random.default_rng(4)
    base = synthetic_subjects(rng)
    current = copy.deepcopy(base)
    for entry in current.values():
        noise = rng.normal(0.01, 0.01, len(entry["per_prompt"]))
        for prompt, eps in zip(entry["per_prompt"].values(), noise):
            prompt["dino"] += float(eps)
        entry["dino"] = float(np.mean([p["dino"] for p in entry["per_prompt"].values()]))
    result = paired_comparison(base, current, "dino")
    assert result is not None and result.ci_low > 0
    assert result.ci_high - result.ci_low < 0.2 * width(bootstrap_ci(current, "dino"))


def test_paired_none_handling() -> None:
    base = synthetic_subjects(np.random.default_rng(6), n_subjects=5)
    assert paired_comparison(base, base, "clip_t") is None
    # A subject whose figure one run lacks is left out of the pairing.
    current = copy.deepcopy(base)
    current["subject00"]["clip_i"] = None
    result = paired_comparison(base, current, "clip_i")
    assert result is not None and result.n_subjects == 4 and "subject00" not in result.subject_deltas


def test_paired_refuses_different_subjects_or_prompts() -> None:
    base = synthetic_subjects(np.random.default_rng(8), n_subjects=4)
    fewer = {k: v for k, v in base.items() if k != "subject03"}
    with pytest.raises(ValueError, match="subject03"):
        paired_comparison(base, fewer, "dino")
    other_prompts = copy.deepcopy(base)
    other_prompts["subject01"]["per_prompt"]["99"] = other_prompts["subject01"]["per_prompt"].pop("0")
    with pytest.raises(ValueError, match="subject01.*prompts differ"):
        paired_comparison(base, other_prompts, "dino")


def test_paired_without_per_prompt_uses_subject_deltas() -> None:
    base = {f"s{i}": {"dino": 0.7 + 0.01 * i} for i in range(8)}
    current = {f"s{i}": {"dino": 0.7 + 0.01 * i + (0.02 if i % 2 else -0.01)} for i in range(8)}
    result = paired_comparison(base, current, "dino", n_boot=4000)
    assert result is not None
    assert result.delta == pytest.approx(0.005)
    # Subject-level paired bootstrap of {+0.02 x4, -0.01 x4}: bounded by the extremes.
    assert -0.01 <= result.ci_low < 0.005 < result.ci_high <= 0.02


# --- sign_flip_p_value --------------------------------------------------------------------------


def brute_force_p(deltas: list[float]) -> float:
    """Independent reference: the 2^n sign-flipped sums, built by doubling one subject at a time."""
    sums = np.zeros(1)
    for d in deltas:
        sums = np.concatenate([sums + d, sums - d])
    return float(np.mean(np.abs(sums) >= abs(sum(deltas)) - 1e-12))


@pytest.mark.parametrize(
    "deltas",
    [[0.01, 0.02, -0.005, 0.03, 0.01], [0.05] * 6, [0.1, -0.1, 0.2, -0.2], [0.0, 0.0, 0.0]],
)
def test_exact_sign_flip_matches_brute_force(deltas: list[float]) -> None:
    assert sign_flip_p_value(deltas) == pytest.approx(brute_force_p(deltas))


def test_exact_all_same_sign_gives_the_minimum_p() -> None:
    n = EXACT_PERMUTATION_MAX_SUBJECTS
    assert sign_flip_p_value([0.05] * n) == pytest.approx(2 / 2**n)


def test_monte_carlo_sign_flip_agrees_with_exact_and_is_seeded() -> None:
    rng = np.random.default_rng(9)
    deltas = rng.normal(0.01, 0.03, EXACT_PERMUTATION_MAX_SUBJECTS + 4)
    exact = brute_force_p(list(deltas))
    first = sign_flip_p_value(deltas, n_perm=20_000, rng=np.random.default_rng(0))
    assert first == pytest.approx(exact, abs=0.02)
    assert first == sign_flip_p_value(deltas, n_perm=20_000, rng=np.random.default_rng(0))


# --- intervals_for_results ----------------------------------------------------------------------


def test_intervals_for_results_shape_and_leaderboard_round_trip(tmp_path: Path) -> None:
    subjects = synthetic_subjects(np.random.default_rng(10), n_subjects=6)
    subjects["ceiling"] = {"kind": "object", "dino": 0.77, "clip_i": 0.88, "clip_t": None}
    intervals = intervals_for_results({"subjects": subjects}, n_boot=300, seed=2)
    assert intervals["method"] == BOOTSTRAP_METHOD
    assert (intervals["n_boot"], intervals["level"], intervals["seed"]) == (300, 0.95, 2)
    assert set(intervals["overall"]) == {"dino", "clip_i"}  # clip_t is null everywhere
    assert intervals["overall"]["dino"] == list(bootstrap_ci(subjects, "dino", 300, 0.95, 2) or ())
    live = {n: s for n, s in subjects.items() if s["kind"] == "live"}
    assert intervals["overall_live"]["clip_i"] == list(bootstrap_ci(live, "clip_i", 300, 0.95, 2) or ())
    assert intervals["subjects"]["ceiling"] == {}  # no per_prompt
    assert set(intervals["subjects"]["subject01"]) == {"dino", "clip_i"}
    for group in ("overall", "overall_live", "overall_object"):
        for low, high in intervals[group].values():
            assert low <= high

    # Placed as overall.ci, the intervals pass results.json validation and show as ± half-widths.
    results = _results_json(subjects)
    results["overall"]["ci"] = intervals["overall"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    entry = build_leaderboard([load_results(path)]).entries[0]
    low, high = intervals["overall"]["dino"]
    assert entry.overall.figures["dino"].half_width == pytest.approx((high - low) / 2)


def test_intervals_for_results_without_subjects_of_a_kind() -> None:
    subjects = synthetic_subjects(np.random.default_rng(10), n_subjects=2)
    for entry in subjects.values():
        entry["kind"] = "object"
    assert intervals_for_results({"subjects": subjects}, n_boot=50)["overall_live"] == {}


def _results_json(subjects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    overall: dict[str, Any] = {"n_subjects": len(subjects)}
    for m in ("dino", "clip_i", "clip_t"):
        values = [s[m] for s in subjects.values() if s.get(m) is not None]
        overall[m] = float(np.mean(values)) if values else None
    return {
        "schema_version": 1,
        "run": {"method": "dreambooth", "preset": "default"},
        "calibrated": True,
        "prompt_set": {"name": "dreambench", "version": "1", "sha256": "c0ffee"},
        "metrics": {m: {"version": 1, "higher_is_better": True} for m in ("dino", "clip_i", "clip_t")},
        "subjects": subjects,
        "overall": overall,
    }

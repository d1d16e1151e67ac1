"""PRES: the pure function against an independent loop, its invariances and its metadata."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dreambench.metrics.metric_registry import get_metric
from dreambench.metrics.preservation import pres_score


def loop_reference(class_dino: np.ndarray, real_dino: np.ndarray) -> float:
    total = 0.0
    for c in class_dino:
        for r in real_dino:
            total += float(c @ r) / (math.sqrt(float(c @ c)) * math.sqrt(float(r @ r)))
    return total / (len(class_dino) * len(real_dino))


@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 3), (4, 5, 16), (8, 3, 384)])
def test_matches_a_loop(n: int, m: int, d: int) -> None:
    rng = np.random.default_rng(n * 100 + m)
    class_dino, real_dino = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    assert pres_score(class_dino, real_dino) == pytest.approx(
        loop_reference(class_dino, real_dino), abs=1e-12
    )


def test_identical_embeddings_give_one() -> None:
    real = np.random.default_rng(0).normal(size=(5, 384)).astype(np.float32)
    assert pres_score(np.repeat(real[:1], 4, axis=0), real[:1]) == pytest.approx(1.0, abs=1e-6)
    assert pres_score(real[:1] * 3.0, real[:1]) == pytest.approx(1.0, abs=1e-6)  # scale-free


def test_permutation_invariance_and_range() -> None:
    rng = np.random.default_rng(2)
    class_dino, real_dino = rng.normal(size=(6, 32)), rng.normal(size=(4, 32))
    score = pres_score(class_dino, real_dino)
    assert -1.0 <= score <= 1.0
    assert pres_score(class_dino[::-1], real_dino[[2, 0, 3, 1]]) == pytest.approx(score, abs=1e-12)


def test_drift_scores_higher_than_a_preserved_prior() -> None:
    """Class samples that copy the subject (drift) score above unrelated class samples: lower is better."""
    rng = np.random.default_rng(3)
    real = rng.normal(size=(4, 64))
    drifted = real[rng.integers(0, 4, size=8)] + 0.1 * rng.normal(size=(8, 64))
    preserved = rng.normal(size=(8, 64))
    assert pres_score(drifted, real) > pres_score(preserved, real)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        pres_score(np.zeros((2, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError):
        pres_score(np.ones((2, 4)), np.ones((2, 5)))
    with pytest.raises(ValueError):
        pres_score(np.ones((0, 4)), np.ones((2, 4)))


def test_metric_metadata() -> None:
    METRIC = get_metric("pres")
    assert METRIC.name == "pres" and METRIC.version == 1
    assert METRIC.higher_is_better is False
    assert METRIC.convention == "raw cosine in [-1, 1]"

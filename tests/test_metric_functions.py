"""Pure metric functions against an independent reference written here with explicit loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dreambench.metrics.functions import (
    clip_t_text,
    cosine_matrix,
    distinct_pairs_mean_cosine,
    mean_pairwise_cosine,
    paired_cosine,
    per_image_mean_cosine,
)


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    dot = sum(float(a) * float(b) for a, b in zip(u, v))
    return dot / (math.sqrt(sum(float(a) ** 2 for a in u)) * math.sqrt(sum(float(b) ** 2 for b in v)))


def _ref_all_pairs(gen: np.ndarray, real: np.ndarray) -> float:
    total = 0.0
    for g in gen:
        for r in real:
            total += _cos(g, r)
    return total / (len(gen) * len(real))


def _ref_distinct_pairs(x: np.ndarray) -> float:
    total, count = 0.0, 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            total += _cos(x[i], x[j])
            count += 1
    return total / count


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_cosine_matrix_matches_loops(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(3, 7)) * 4.0  # unnormalised on purpose
    c = cosine_matrix(a, b)
    assert c.shape == (5, 3)
    for i in range(5):
        for j in range(3):
            assert c[i, j] == pytest.approx(_cos(a[i], b[j]), abs=1e-12)


def test_mean_pairwise_and_per_image_match_loops(rng: np.random.Generator) -> None:
    gen, real = rng.normal(size=(6, 16)), rng.normal(size=(4, 16))
    assert mean_pairwise_cosine(gen, real) == pytest.approx(_ref_all_pairs(gen, real), abs=1e-12)
    per_image = per_image_mean_cosine(gen, real)
    assert per_image.shape == (6,)
    for i in range(6):
        assert per_image[i] == pytest.approx(_ref_all_pairs(gen[i : i + 1], real), abs=1e-12)
    # The subject score is the mean of the per-image scores (all pairs weigh the same).
    assert float(per_image.mean()) == pytest.approx(mean_pairwise_cosine(gen, real), abs=1e-12)


def test_distinct_pairs_matches_loops_and_excludes_self_pairs(rng: np.random.Generator) -> None:
    x = rng.normal(size=(5, 8))
    assert distinct_pairs_mean_cosine(x) == pytest.approx(_ref_distinct_pairs(x), abs=1e-12)
    # Including the self-pairs (all 1.0) would give a different, inflated number.
    assert distinct_pairs_mean_cosine(x) != pytest.approx(mean_pairwise_cosine(x, x), abs=1e-6)


def test_paired_cosine_matches_loops(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(4, 9)), rng.normal(size=(4, 9))
    out = paired_cosine(a, b)
    assert out.shape == (4,)
    for i in range(4):
        assert out[i] == pytest.approx(_cos(a[i], b[i]), abs=1e-12)


def test_identical_and_opposite_vectors_hit_the_ends_of_the_range(rng: np.random.Generator) -> None:
    x = rng.normal(size=(3, 5))
    assert mean_pairwise_cosine(x[:1], x[:1]) == pytest.approx(1.0, abs=1e-12)
    assert mean_pairwise_cosine(x[:1], -x[:1]) == pytest.approx(-1.0, abs=1e-12)
    assert distinct_pairs_mean_cosine(np.repeat(x[:1], 4, axis=0)) == pytest.approx(1.0, abs=1e-12)
    # Raw cosine: no x100, no clamp.
    assert np.all(np.abs(cosine_matrix(x, -x)) <= 1.0 + 1e-12)


def test_permutation_invariance(rng: np.random.Generator) -> None:
    gen, real = rng.normal(size=(7, 10)), rng.normal(size=(5, 10))
    pg, pr = rng.permutation(7), rng.permutation(5)
    assert mean_pairwise_cosine(gen[pg], real[pr]) == pytest.approx(
        mean_pairwise_cosine(gen, real), abs=1e-12
    )
    assert distinct_pairs_mean_cosine(real[pr]) == pytest.approx(distinct_pairs_mean_cosine(real), abs=1e-12)
    np.testing.assert_allclose(per_image_mean_cosine(gen[pg], real), per_image_mean_cosine(gen, real)[pg])
    np.testing.assert_allclose(paired_cosine(gen[pg], gen[::-1][pg]), paired_cosine(gen, gen[::-1])[pg])


def test_scale_invariance_of_rows(rng: np.random.Generator) -> None:
    gen, real = rng.normal(size=(3, 6)), rng.normal(size=(2, 6))
    scaled = gen * np.array([[0.1], [3.0], [250.0]])
    assert mean_pairwise_cosine(scaled, real) == pytest.approx(mean_pairwise_cosine(gen, real), abs=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cosine_matrix(np.ones((2, 3)), np.ones((2, 4))), "dims differ"),
        (lambda: cosine_matrix(np.ones(3), np.ones((2, 3))), "2-D"),
        (lambda: cosine_matrix(np.zeros((1, 3)), np.ones((2, 3))), "all-zero row"),
        (lambda: distinct_pairs_mean_cosine(np.ones((1, 3))), "at least 2"),
        (lambda: mean_pairwise_cosine(np.ones((0, 3)), np.ones((2, 3))), "at least one"),
        (lambda: paired_cosine(np.ones((2, 3)), np.ones((3, 3))), "same shape"),
    ],
)
def test_bad_shapes_are_refused(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("prompt", "identifier", "expected"),
    [
        ("a sks dog in the snow", "sks", "a dog in the snow"),
        ("sks dog", "sks", "dog"),
        ("a dog named sks", "sks", "a dog named"),
        ("a  sks   backpack  on the beach", "sks", "a backpack on the beach"),
        ("a photo of sks, a dog", "sks", "a photo of, a dog"),
        ("a <new1> cat", "<new1>", "a cat"),
        ("a sksy dog with sks", "sks", "a sksy dog with"),  # only the whole token goes
        ("a sks dog", "", "a sks dog"),
        ("a dog in the snow", "sks", "a dog in the snow"),
    ],
)
def test_clip_t_text_removes_the_identifier_token(prompt: str, identifier: str, expected: str) -> None:
    assert clip_t_text(prompt, identifier) == expected


def test_clip_t_text_keeps_the_identifier_when_asked() -> None:
    assert clip_t_text("a sks dog in the snow", "sks", keep_identifier=True) == "a sks dog in the snow"

"""Pure metric functions over embeddings: numpy in, floats / arrays out.

Convention (DreamBench protocol): raw cosine similarity in [-1, 1]; no x100, no clamp. Inputs are
embedding matrices with one row per item; rows need not be unit length (they are normalised here),
but every row must be non-zero.

    DINO / CLIP-I of one subject = mean_pairwise_cosine(generated, real)
    real-images ceiling          = distinct_pairs_mean_cosine(real)
    CLIP-T per image             = paired_cosine(image_embeddings, text_embeddings)
"""

from __future__ import annotations

import re

import numpy as np


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, dim) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} has an all-zero row: cosine is undefined")
    return x / norms


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C[i, j] = <a_i, b_j> / (|a_i| |b_j|).

    a: (N, D), b: (M, D) -> (N, M) float64, values in [-1, 1].
    """
    ua, ub = _unit_rows(a, "a"), _unit_rows(b, "b")
    if ua.shape[1] != ub.shape[1]:
        raise ValueError(f"embedding dims differ: {ua.shape[1]} vs {ub.shape[1]}")
    return ua @ ub.T


def per_image_mean_cosine(gen: np.ndarray, real: np.ndarray) -> np.ndarray:
    """s_i = (1/M) sum_j cos(gen_i, real_j): each generated image's mean similarity to the real set.

    gen: (N, D), real: (M, D) -> (N,). The per-image DINO / CLIP-I score written to scores.jsonl.
    """
    if len(real) == 0:
        raise ValueError("real is empty: need at least one real image")
    return cosine_matrix(gen, real).mean(axis=1)


def mean_pairwise_cosine(gen: np.ndarray, real: np.ndarray) -> float:
    """(1/(N M)) sum_i sum_j cos(gen_i, real_j): mean over all N*M (generated, real) pairs.

    gen: (N, D), real: (M, D) -> float. This is DINO (or CLIP-I) of one subject; it equals the mean
    of `per_image_mean_cosine(gen, real)`.
    """
    if len(gen) == 0 or len(real) == 0:
        raise ValueError("need at least one generated and one real embedding")
    return float(cosine_matrix(gen, real).mean())


def distinct_pairs_mean_cosine(x: np.ndarray) -> float:
    """(2/(M(M-1))) sum_{i<j} cos(x_i, x_j): mean over the M(M-1)/2 distinct pairs.

    x: (M, D), M >= 2 -> float. On a subject's real images this is the real-images ceiling
    (DreamBooth paper: DINO 0.774, CLIP-I 0.885). Self-pairs (always 1) are excluded.
    """
    if len(x) < 2:
        raise ValueError(f"need at least 2 embeddings for distinct pairs, got {len(x)}")
    c = cosine_matrix(x, x)
    upper = np.triu_indices(len(x), k=1)
    return float(c[upper].mean())


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """c_i = cos(a_i, b_i): row-wise cosine of two aligned matrices.

    a: (N, D), b: (N, D) -> (N,). CLIP-T of image i is paired_cosine(images, texts)[i].
    """
    ua, ub = _unit_rows(a, "a"), _unit_rows(b, "b")
    if ua.shape != ub.shape:
        raise ValueError(f"paired inputs must have the same shape, got {ua.shape} and {ub.shape}")
    return np.einsum("nd,nd->n", ua, ub)


def clip_t_text(prompt: str, identifier: str, keep_identifier: bool = False) -> str:
    """The text CLIP-T compares an image with: the prompt without the subject identifier.

    "a sks dog in the snow", "sks" -> "a dog in the snow". The identifier is removed as a whole
    whitespace-delimited token (not inside other words; trailing punctuation is kept), whitespace is
    collapsed and ends stripped. An empty identifier or
    keep_identifier=True returns the prompt unchanged (DreamBench default: identifier removed,
    since the rare token means nothing to CLIP).
    """
    if keep_identifier or not identifier.strip():
        return prompt
    # A whole whitespace-delimited token, possibly followed by punctuation ("of sks, a dog").
    without = re.sub(rf"(?<!\S){re.escape(identifier.strip())}(?=[\s,.;:!?]|$)", " ", prompt)
    without = re.sub(r"\s+", " ", without).strip()
    return re.sub(r" ([,.;:!?])", r"\1", without)

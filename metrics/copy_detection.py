"""Copy detection: how many generated images are copies of one of the subject's reference photos.

A method that returns (or memorises) its reference photos scores above the real-images ceiling on
DINO and CLIP-I while doing none of the task; `copy_rate` names it. Declared as "copy_rate" in
metrics/metric_registry.py (optional: `bench run --extra-metrics copy_rate`; lower is better).

The rule, for one subject with reference photos r_1..r_M and a generated image g:

    embedding test, per image embedder e of the declaration (DINO, CLIP):
        ceiling_e = max over distinct pairs i < j of cos(e(r_i), e(r_j))       (needs M >= 2)
        g is an e-copy when max_j cos(e(g), e(r_j)) > ceiling_e
    pixel test (exact, resized, re-encoded or centre-cropped copies):
        t(x) = x as RGB, squashed to 32x32 by box averaging, in [0, 1]; for a reference photo also
               its centre square so reduced (the crop training pipelines take)
        d(g, r_j) = min over the variants v of r_j of mean |t(g) - v|
        limit = min(0.015, half the smallest d between two distinct reference photos)
        g is a pixel copy when min_j d(g, r_j) < limit
    g is a copy when it is a pixel copy, or an e-copy for every embedder e.

    copy_rate(subject) = copies / generated images;  per prompt the same over the prompt's images;
    overall = mean over subjects (metrics/aggregate.py).

Why these thresholds. The reference photos are distinct photographs of the same subject; the two
most alike of them are the closest that two genuinely different pictures of it come in that
embedder. A generated image closer to one reference photo than that pair is to each other is, to
the embedder, nearer to a duplicate of the photo than to a new picture of the subject; a faithful
new rendition (another pose, scene or style) stays below it. The maximum (not the mean) keeps the
rule conservative: an image must beat the subject's own most similar pair. Both embedders must
agree because DINO alone is fooled by layout (the same object on the same background) and CLIP
alone by semantics. The embedding test cannot run on a subject with one reference photo; the
pixel test then decides alone.

The pixel test is independent of any network. Measured on the 30 DreamBooth subjects: a reference
photo centre-cropped or squashed to 512 px and re-encoded as JPEG (quality 60-75) lies within
0.005 of its source, two distinct reference photos of one subject never closer than 0.027
(red_cartoon: drawings on white), a flat image of a subject's mean colour at least 0.051 from
every photo. 0.015 sits between them; halving the subject's own closest pair keeps burst shots
(two near-identical photos) from turning a new image into a "copy" of both.

Under the `smoke` metric presets the embedders have random weights: the embedding test still
applies the same rule to their features (an exact copy has cosine 1 with its photo, so it passes
wherever no two reference photos share a feature vector), but the ceiling has no perceptual
meaning and the result is uncalibrated like every smoke figure; the pixel test means the same
there as anywhere.

Per image the decision is recorded (optional_scores.json "per_image": file name -> {"value":
1.0 | 0.0, "by": the tests that fired, "nearest": the closest reference photo's file name}); the
report marks copies in its gallery.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dreambench.metrics.metric_spec import SubjectImages, SubjectScore

if TYPE_CHECKING:
    from PIL import Image

    from dreambench.metrics.scorer import Scorer

#: Side of the reduced image the pixel test compares.
THUMB_SIDE = 32
#: Largest mean absolute difference (per channel, in [0, 1]) of a pixel copy.
PIXEL_LIMIT = 0.015


def thumbnail(image: Image.Image, centre_square: bool = False) -> np.ndarray:
    """(THUMB_SIDE, THUMB_SIDE, 3) float64 in [0, 1]: the image squashed by box averaging, or its
    centre square when `centre_square`."""
    from PIL import Image as PILImage

    image = image.convert("RGB")
    if centre_square:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    small = image.resize((THUMB_SIDE, THUMB_SIDE), PILImage.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255


def pixel_distances(generated: np.ndarray, references: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """(M,) distance of one generated thumbnail to each reference photo: the smallest mean absolute
    difference over the photo's variants."""
    return np.array([min(float(np.abs(generated - v).mean()) for v in variants) for variants in references])


def pixel_limit(references: list[tuple[np.ndarray, ...]]) -> float:
    """PIXEL_LIMIT, or half the smallest distance between two distinct reference photos if less."""
    closest = [
        min(float(np.abs(a - b).mean()) for a in references[i] for b in references[j])
        for i in range(len(references))
        for j in range(i + 1, len(references))
    ]
    return min([PIXEL_LIMIT, *(d / 2 for d in closest)])


def embedding_ceiling(real: np.ndarray) -> float | None:
    """max over distinct pairs i < j of cos(real_i, real_j) for (M, D) L2-normalised rows; None
    when M < 2 (no pair: the embedding test does not apply)."""
    if len(real) < 2:
        return None
    sims = real @ real.T
    return float(sims[np.triu_indices(len(real), k=1)].max())


def decide(
    pixel_dist: np.ndarray,
    limit: float,
    gen_emb: dict[str, np.ndarray],
    real_emb: dict[str, np.ndarray],
) -> list[tuple[bool, list[str], int]]:
    """Per generated image (copy?, tests that fired, index of the nearest reference photo).

    pixel_dist: (N, M) pixel distances; gen_emb / real_emb: network -> (N, D) / (M, D)
    L2-normalised embeddings."""
    fired: list[list[str]] = [["pixels"] if row.min() < limit else [] for row in pixel_dist]
    # Every embedder sees the same M photos: with fewer than two, no embedding test applies.
    applies = bool(real_emb) and all(embedding_ceiling(real) is not None for real in real_emb.values())
    if applies:
        for network, real in real_emb.items():
            ceiling = embedding_ceiling(real)
            nearest = (gen_emb[network] @ real.T).max(axis=1)
            for i, sim in enumerate(nearest):
                if sim > ceiling:
                    fired[i].append(network)
    return [
        (
            "pixels" in tests or (applies and all(n in tests for n in real_emb)),
            tests,
            int(pixel_dist[i].argmin()),
        )
        for i, tests in enumerate(fired)
    ]


def score(scorer: Scorer, images: SubjectImages) -> SubjectScore:
    """copy_rate of one subject (the declaration's computation): the share of generated images that
    are copies, per prompt too, each image weighing one in the pooled mean; per-image decisions."""
    from dreambench.dataset.images import load_image
    from dreambench.metrics.aggregate import mean_per_prompt
    from dreambench.metrics.metric_registry import get_metric

    networks = get_metric("copy_rate").networks
    real_refs, gen_refs = list(images.real), list(images.generated)
    real_emb = dict(zip(networks, scorer._image_embeddings(real_refs, networks)))
    gen_emb = dict(zip(networks, scorer._image_embeddings(gen_refs, networks)))
    references = []
    for ref in real_refs:
        photo = load_image(Path(ref.path))
        references.append((thumbnail(photo), thumbnail(photo, centre_square=True)))
    dist = np.stack([pixel_distances(thumbnail(load_image(Path(r.path))), references) for r in gen_refs])
    decisions = decide(dist, pixel_limit(references), gen_emb, real_emb)
    values = [1.0 if copy else 0.0 for copy, _, _ in decisions]
    per_image: dict[str, dict[str, Any]] = {
        Path(ref.path).name: {"value": value, "by": tests, "nearest": Path(real_refs[k].path).name}
        for ref, value, (_, tests, k) in zip(gen_refs, values, decisions)
    }
    rate = mean_per_prompt(values, images.prompt_idx)
    return SubjectScore(rate.value, rate.weight, rate.per_prompt, per_image)

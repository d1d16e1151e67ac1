"""DIV: how varied a method's images of one (subject, prompt) are (DreamBooth paper, Table 3).

    DIV(subject, prompt p) = (2 / (K (K-1))) sum_{i<j} LPIPS(x_{p,i}, x_{p,j})     K images of p (4)
    DIV(subject)           = mean over the subject's prompts of DIV(subject, p)
    DIV(overall)           = mean over subjects of DIV(subject)                     (the runner's job)

LPIPS is metrics/lpips_net.py (AlexNet, v0.1, images resized to 256x256). Higher = more diverse;
K identical images give 0. Declared as "div" in metrics/metric_registry.py. Convention: raw LPIPS distance (>= 0, no x100). Only images rendered
from the same prompt are compared, so DIV measures variation across seeds, not across prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from dreambench.errors import BenchError
from dreambench.metrics.metric_spec import SubjectImages, SubjectScore

if TYPE_CHECKING:
    from PIL import Image

    from dreambench.metrics.lpips_net import LpipsNet
    from dreambench.metrics.scorer import Scorer

def mean_distinct_pairs(dist_matrix: np.ndarray) -> float:
    """(2 / (K (K-1))) sum_{i<j} D[i, j]: mean of the strict upper triangle of a (K, K) matrix, K >= 2.

    The diagonal (self-distances, 0) is excluded; the lower triangle is ignored (D is symmetric).
    """
    d = np.asarray(dist_matrix, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"dist_matrix must be square (K, K), got shape {d.shape}")
    if d.shape[0] < 2:
        raise ValueError(f"need at least 2 items for distinct pairs, got {d.shape[0]}")
    return float(d[np.triu_indices(d.shape[0], k=1)].mean())


def div_for_prompt(net: LpipsNet, images: Sequence[Image.Image]) -> float:
    """DIV of one (subject, prompt): mean LPIPS over the distinct pairs of its K >= 2 images."""
    if len(images) < 2:
        raise BenchError(f"DIV needs at least 2 images of a prompt, got {len(images)}")
    return mean_distinct_pairs(net.distance_matrix(images))


def div_for_subject(
    net: LpipsNet, images_by_prompt: Mapping[int, Sequence[Image.Image]]
) -> dict[str, object]:
    """DIV of one subject: {"div": mean over prompts, "per_prompt": {prompt index: DIV of that prompt}}.

    Every prompt counts once, whatever its number of images (>= 2 each). All the subject's images
    go through the network together (faster); pairs are still formed only within a prompt.
    """
    if not images_by_prompt:
        raise BenchError("DIV needs the images of at least one prompt, got none")
    prompts = sorted(images_by_prompt)
    for p in prompts:
        if len(images_by_prompt[p]) < 2:
            raise BenchError(
                f"DIV needs at least 2 images of a prompt, got {len(images_by_prompt[p])} for prompt {p}"
            )
    matrices = net.distance_matrices([images_by_prompt[p] for p in prompts])
    per_prompt = {int(p): mean_distinct_pairs(m) for p, m in zip(prompts, matrices)}
    return {"div": float(np.mean(list(per_prompt.values()))), "per_prompt": per_prompt}


def score(scorer: Scorer, images: SubjectImages) -> SubjectScore:
    """DIV of one subject (the declaration's computation): per-prompt figures, and a weight of
    K (K-1) / 2 pairs per prompt in the pooled mean."""
    result = scorer.score_diversity(images.by_prompt())
    per_prompt: dict[int, float] = result["per_prompt"]  # type: ignore[assignment]
    pairs = images.images_per_prompt * (images.images_per_prompt - 1) // 2
    return SubjectScore(value=float(result["div"]), weight=len(per_prompt) * pairs, per_prompt=per_prompt)  # type: ignore[arg-type]

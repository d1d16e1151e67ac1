"""PRES: prior preservation / language drift (DreamBooth paper, Table 3).

The fine-tuned model is prompted with the bare class, "a {class_noun}" (no identifier), and its
samples are compared with the subject's real images:

    PRES(subject) = (1 / (N M)) sum_i sum_j cos(DINO(class sample_i), DINO(real_j))
    PRES(overall) = mean over subjects of PRES(subject)                        (the runner's job)

Lower = better: a model that kept its class prior draws varied members of the class, not copies
of the subject. A model that drifted (every "dog" is now the subject dog) scores near the
real-images ceiling. Convention: raw cosine in [-1, 1] of DINO ViT-S/16 CLS embeddings, all N*M
(class sample, real) pairs, no x100 -- the same pairing as the DINO metric. Declared as "pres" in
metrics/metric_registry.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dreambench.metrics.functions import mean_pairwise_cosine
from dreambench.metrics.metric_spec import SubjectImages, SubjectScore

if TYPE_CHECKING:
    from dreambench.metrics.scorer import Scorer

def pres_score(class_dino: np.ndarray, real_dino: np.ndarray) -> float:
    """PRES of one subject. class_dino: (N, D) DINO embeddings of the "a {class}" samples;
    real_dino: (M, D) of the subject's real images -> mean cosine over all N*M pairs, in [-1, 1]."""
    return mean_pairwise_cosine(class_dino, real_dino)


def score(scorer: Scorer, images: SubjectImages) -> SubjectScore:
    """PRES of one subject (the declaration's computation), weighing N * M pairs in the pooled mean."""
    value = scorer.score_preservation(list(images.real), list(images.class_samples))
    return SubjectScore(value=value, weight=len(images.class_samples) * len(images.real))

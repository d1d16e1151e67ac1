"""PRES: prior preservation / language drift (DreamBooth paper, Table 3).

The fine-tuned model is prompted with the bare class, "a {class_noun}" (no identifier), and its
samples are compared with the subject's real images:

    PRES(subject) = (1 / (N M)) sum_i sum_j cos(DINO(class sample_i), DINO(real_j))
    PRES(overall) = mean over subjects of PRES(subject)                        (the runner's job)

Lower = better: a model that kept its class prior draws varied members of the class, not copies
of the subject. A model that drifted (every "dog" is now the subject dog) scores near the
real-images ceiling. Convention: raw cosine in [-1, 1] of DINO ViT-S/16 CLS embeddings, all N*M
(class sample, real) pairs, no x100 -- the same pairing as the DINO metric.
"""

from __future__ import annotations

import numpy as np

from dreambench.metrics.functions import mean_pairwise_cosine

METRIC: dict[str, object] = {
    "name": "pres",
    "version": 1,
    "higher_is_better": False,
    "convention": "raw cosine in [-1, 1]",
    "definition": (
        "mean over all (class-prompt sample, real image) pairs of the cosine of DINO ViT-S/16 CLS "
        "embeddings; class samples are rendered by the fine-tuned model from 'a {class}' (no identifier)"
    ),
}


def pres_score(class_dino: np.ndarray, real_dino: np.ndarray) -> float:
    """PRES of one subject. class_dino: (N, D) DINO embeddings of the "a {class}" samples;
    real_dino: (M, D) of the subject's real images -> mean cosine over all N*M pairs, in [-1, 1]."""
    return mean_pairwise_cosine(class_dino, real_dino)

"""Per-image seeds.

Each image's seed is a hash of (base seed, subject, prompt index, sample index), so any image can be
rebuilt alone and results do not depend on run order, batch composition or how many workers ran
the job. Methods feed it to a fresh CPU ``torch.Generator``.
"""

from __future__ import annotations

import hashlib


def image_seed(base_seed: int, subject: str, prompt_idx: int, sample_idx: int) -> int:
    """A 63-bit seed from sha256("base_seed/subject/prompt_idx/sample_idx")."""
    digest = hashlib.sha256(f"{base_seed}/{subject}/{prompt_idx}/{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)

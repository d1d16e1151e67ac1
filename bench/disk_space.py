"""Refuse to start work that cannot fit on disk.

A method may define ``estimated_disk_bytes(subject, n_images) -> int``: the most it writes for
one subject at a time (weights, latents, class priors, images). The runner sums the estimate over
the subjects that still have work and compares it with the free space where the run is written.
Methods that delete their weights after rendering count them once, not per subject.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError

if TYPE_CHECKING:
    from dreambench.method import MethodHandle

# A PNG of a 512 px render is ~0.4-0.6 MB; count generously.
IMAGE_BYTES = 700_000


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_disk_space(
    method: MethodHandle, subjects: Sequence[Any], n_images: int, run_dir: Path, keep_weights: bool
) -> None:
    """BenchError (one line) when the free space under ``run_dir`` is below what the run will write."""
    if not subjects:
        return
    per_subject = [method.estimated_disk_bytes(s, n_images) for s in subjects]
    images = IMAGE_BYTES * n_images * len(subjects)
    # Weights are deleted after each subject unless kept: the peak is the largest single subject.
    needed = images + (sum(per_subject) if keep_weights else max(per_subject))
    free = shutil.disk_usage(_existing_parent(run_dir)).free
    if free < needed:
        hint = "" if not keep_weights else ", or drop --keep-weights"
        raise BenchError(
            f"not enough disk space under {_existing_parent(run_dir)}: this run writes about {_gib(needed)} "
            f"({len(subjects)} subject(s)), {_gib(free)} free; free some space or use --out on a bigger disk{hint}"
        )

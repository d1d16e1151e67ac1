"""The real-images ceiling: the subject's own photos scored against each other.

Not a generator: the harness sees ``scores_real_pairs = True`` and scores DINO and CLIP-I as the
mean cosine over distinct real-real pairs within each subject (paper, Table 1 "Real Images":
DINO 0.774, CLIP-I 0.885). CLIP-T does not apply. Imports nothing from diffusers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.errors import BenchError

if TYPE_CHECKING:
    from PIL import Image

    from dreambench.dataset.subject import Subject


class RealImages:
    """The ceiling row. ``prepare`` and ``identifier`` are trivial; ``generate`` is never called."""

    name = "real-images"
    kind = "none"  # the ceiling: the subject's own photos, nothing generated
    scores_real_pairs = True

    @dataclass(frozen=True)
    class Config:
        pass

    PRESETS: dict[str, Config] = {"default": Config()}

    def __init__(
        self, config: Config, device: str = "auto", seed: int = 0, keep_weights: bool = False
    ) -> None:
        self.config = config

    def prepare(self, subject: Subject, workdir: Path) -> None:
        if len(subject.image_paths) < 2:
            raise BenchError(
                f"subject {subject.name!r} has {len(subject.image_paths)} image(s); the real-images ceiling needs at least 2"
            )

    def identifier(self, subject: Subject) -> str:
        return ""

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        raise BenchError("real-images does not generate images; it scores real-real pairs")

    def release(self) -> None:
        pass

"""Test-only methods for fault-tolerance tests (importable as `fault_methods:<Class>` with tests/
on the path). Each is a small, real Method: flat seeded-noise images, like docs/examples/mean_color.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dreambench.dataset.subject import Subject
from dreambench.hold_points import hold_point


class SlowNoise:
    """Seeded noise images. ``generate`` passes the hold point ``slow-noise-generate:<subject>``
    (bench/hold_points.py), so a test can stop the process exactly there and kill it.

    ``fail_subject``: a subject whose prepare() raises (an injected failure), unless the file
    named by ``fail_unless_file`` exists (so a rerun can succeed after the "fix").
    """

    name = "slow-noise"

    @dataclass(frozen=True)
    class Config:
        fail_subject: str = ""
        fail_unless_file: str = ""

    PRESETS = {"default": Config()}

    def __init__(self, config: Config) -> None:
        self.config = config

    def prepare(self, subject: Subject, workdir: Path) -> None:
        if subject.name == self.config.fail_subject and not (
            self.config.fail_unless_file and os.path.exists(self.config.fail_unless_file)
        ):
            raise FloatingPointError(f"loss is nan at step 3 for {subject.name}")
        workdir.mkdir(parents=True, exist_ok=True)

    def identifier(self, subject: Subject) -> str:
        return "sks"

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        images = []
        hold_point(f"slow-noise-generate:{subject.name}")
        for seed in seeds:
            pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
            images.append(Image.fromarray(pixels))
        return images

    def release(self) -> None:
        pass

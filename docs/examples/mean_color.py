"""A complete outside method for dreambench, in one file: the "mean colour" baseline.

It "learns" a subject by averaging the colour of its real images and renders every prompt as a
flat image of that colour with a little seeded noise. Useless as a generator, useful as a worked
example of the Method contract (bench/method.py) and as a sanity floor: it shows what DINO and
CLIP-I give for colour alone.

    bench run --method docs/examples/mean_color.py:MeanColor --subjects dog,can --method-args noise=0.1

(by its file; or ``--method mean_color:MeanColor`` with this folder on PYTHONPATH), or register it
through the entry-point group ``dreambench.methods`` in your package's pyproject.toml. Editing
this file and running again renders into a new run directory: the file's digest is part of the
run's identity (dreambench.code_identity).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dreambench.dataset.images import load_image
from dreambench.dataset.subject import Subject


class MeanColor:
    """Flat images of the subject's mean colour, plus seeded noise."""

    name = "mean-color"
    version = "1"  # optional (dreambench.method): part of the method's code identity

    @dataclass(frozen=True)
    class Config:
        size: int = 64  # output side in pixels
        noise: float = 0.05  # std of the per-pixel noise, in [0, 1] units

    PRESETS = {"default": Config()}

    def __init__(self, config: Config) -> None:
        self.config = config
        self._color: np.ndarray | None = None

    def prepare(self, subject: Subject, workdir: Path) -> None:
        done = workdir / "mean_color.json"
        if not done.exists():  # idempotent: the output file is the done marker
            pixels = [
                np.asarray(load_image(p).resize((32, 32)), dtype=np.float64) / 255
                for p in subject.image_paths
            ]
            workdir.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(np.mean(pixels, axis=(0, 1, 2)).tolist()))
        self._color = np.array(json.loads(done.read_text()))

    def identifier(self, subject: Subject) -> str:
        return "sks"

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        assert self._color is not None, "prepare() first"
        images = []
        for seed in seeds:  # one generator per image: an image does not depend on its batch
            rng = np.random.default_rng(seed)
            noise = rng.normal(0.0, self.config.noise, (self.config.size, self.config.size, 3))
            pixels = np.clip(self._color + noise, 0, 1)
            images.append(Image.fromarray((pixels * 255).round().astype(np.uint8)))
        return images

    def release(self) -> None:
        self._color = None

    def estimated_disk_bytes(self, subject: Subject, n_images: int) -> int:
        return 1_000

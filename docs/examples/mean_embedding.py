"""An encoder-style (tuning-free) outside method for dreambench, in one file.

Encoder-based methods (IP-Adapter, BLIP-Diffusion, ...) load one model for the whole run and
condition on a subject's real images when they generate; nothing is trained per subject. This
example has that shape with a model small enough to build anywhere: a seeded random convolutional
encoder maps the subject's reference images to a colour, and every prompt renders as a flat image
of that colour with seeded noise. Useless as a generator; a worked example of the contract's
run-level hooks (dreambench.method):

* ``setup(context)`` builds the model once, on the run's device, for all subjects;
* ``generate(subject, workdir, prompts, seeds)`` conditions on ``subject``'s images, passed
  explicitly (no state left behind by ``prepare``);
* ``consumed_images(subject)`` says which of the subject's images it looked at (the first
  ``max_references`` in file-name order), recorded in results.json;
* ``release()`` keeps the shared model for the next subject; ``teardown()`` drops it at the end.

    bench run --method mean_embedding:MeanEmbedding --subjects dog,can --preset smoke

(with this folder on PYTHONPATH), or register it through the entry-point group
``dreambench.methods`` in your package's pyproject.toml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreambench.dataset.images import load_image
from dreambench.dataset.subject import Subject
from dreambench.method import RunContext


def _encoder(seed: int) -> torch.nn.Module:
    """A small random-weight image encoder (seeded, so every process builds the same one)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
        torch.nn.Sigmoid(),
    )
    torch.random.set_rng_state(generator_state)  # leave the caller's global RNG as it was
    return model.eval()


class MeanEmbedding:
    """Flat images of a colour encoded from the subject's reference images, plus seeded noise."""

    name = "mean-embedding"
    kind = "encoder"

    @dataclass(frozen=True)
    class Config:
        size: int = 64  # output side in pixels
        noise: float = 0.05  # std of the per-pixel noise, in [0, 1] units
        max_references: int = 3  # how many of the subject's images condition generation

    PRESETS = {"default": Config()}

    def __init__(self, config: Config) -> None:
        if config.max_references < 1:
            raise ValueError(f"max_references={config.max_references} must be at least 1")
        self.config = config
        self._model: torch.nn.Module | None = None
        self._device = "cpu"

    # -- run level -----------------------------------------------------------------------------

    def setup(self, context: RunContext) -> None:
        self._device = context.device
        self._model = _encoder(seed=0).to(self._device)

    def teardown(self) -> None:
        self._model = None

    # -- per subject ---------------------------------------------------------------------------

    def consumed_images(self, subject: Subject) -> list[Path]:
        return sorted(subject.image_paths, key=lambda p: Path(p).name)[: self.config.max_references]

    def prepare(self, subject: Subject, workdir: Path) -> None:
        pass  # nothing to train: the subject's images condition generation directly

    def identifier(self, subject: Subject) -> str:
        return ""  # prompts use the class noun only ("a dog on the beach")

    @torch.no_grad()
    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        assert self._model is not None, "setup() first"
        references = torch.stack(
            [
                torch.from_numpy(np.asarray(load_image(p).resize((64, 64)), dtype=np.float32) / 255).permute(
                    2, 0, 1
                )
                for p in self.consumed_images(subject)
            ]
        ).to(self._device)
        # Several references are combined by averaging their encodings.
        color = self._model(references).mean(dim=0).cpu().numpy().astype(np.float64)
        images = []
        for seed in seeds:  # one generator per image: an image does not depend on its batch
            noise = torch.randn(
                (self.config.size, self.config.size, 3), generator=torch.Generator().manual_seed(seed)
            ).numpy()
            pixels = np.clip(color + self.config.noise * noise, 0, 1)
            images.append(Image.fromarray((pixels * 255).round().astype(np.uint8)))
        return images

    def release(self) -> None:
        pass  # the shared model stays loaded for the next subject

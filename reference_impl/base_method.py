"""The ``base-model`` method: the floor row — the base model with no fine-tuning at all.

The identifier is "" so prompts read "a dog in the jungle": the model is asked for the class, not
the subject, which is what DINO/CLIP-I of an unpersonalised model measure. ``prepare`` loads no
weights (it only records the base model's provenance); the model is loaded on the first
``generate`` and dropped by ``release``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dreambench.atomic import atomic_write_json
from dreambench.reference_impl.base_model import (
    SD15_REPO,
    Components,
    autocast_dtype,
    free_memory,
    load_base_model,
    locate_base_model,
    resolve_device,
)
from dreambench.reference_impl.dreambooth import sampler_settings, validate_common
from dreambench.reference_impl.render import render
from dreambench.reference_impl.tiny_model import TINY_MODEL_ID, TINY_RESOLUTION

if TYPE_CHECKING:
    from PIL import Image

    from dreambench.dataset.subject import Subject


class BaseModel:
    """The un-personalised base model: the floor row of the leaderboard."""

    name = "base-model"

    @dataclass(frozen=True)
    class Config:
        """Sampling settings; the same meaning and sources as DreamBooth.Config's fields."""

        base_model: str = SD15_REPO
        # "" = the pinned revision for SD15_REPO, "main" for other hub ids.
        base_revision: str = ""
        scheduler: Literal["ddim", "pndm", "dpm++", "euler", "euler-a", "ddpm"] = "ddim"
        sampling_steps: int = 50
        guidance_scale: float = 7.5
        resolution: int = 512
        render_batch_size: int = 25
        mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"

    PRESETS: dict[str, Config] = {
        # Paper evaluation setting for SD (render.py): DDIM 50 steps, CFG 7.5, 512 px.
        "paper": Config(),
        # diffusers README inference: the model's scheduler (PNDM for SD 1.5), 50 steps, CFG 7.5.
        "diffusers": Config(scheduler="pndm"),
        # Embedded tiny model (uncalibrated), the same sampler as dreambooth's smoke preset.
        "smoke": Config(
            base_model=TINY_MODEL_ID,
            sampling_steps=8,
            resolution=TINY_RESOLUTION,
            render_batch_size=50,
            mixed_precision="no",
        ),
    }

    def __init__(
        self, config: Config, device: str = "auto", seed: int = 0, keep_weights: bool = False
    ) -> None:
        validate_common(config, self.name)
        self.config = config
        self.device = resolve_device(device)
        self.seed = seed
        self.keep_weights = keep_weights  # nothing is fine-tuned, so nothing to keep or delete
        self.calibrated = config.base_model != TINY_MODEL_ID
        self._model: Components | None = None

    def check_ready(self) -> None:
        """Fail now, before a run writes anything, if the base model cannot be found (one line)."""
        locate_base_model(self.config.base_model, self.config.base_revision)

    def prepare(self, subject: Subject, workdir: Path) -> None:
        """Nothing to train; records which base model renders (``workdir/base_model.json``) for provenance."""
        record = Path(workdir) / "base_model.json"
        if not record.is_file():
            _, description = locate_base_model(self.config.base_model, self.config.base_revision)
            atomic_write_json(record, description)

    def identifier(self, subject: Subject) -> str:
        return ""

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        if self._model is None:
            self._model = load_base_model(self.config.base_model, self.config.base_revision, self.device)
        return render(
            self._model.pipeline(),
            prompts,
            seeds,
            sampler_settings(self.config),
            self.device,
            batch_size=self.config.render_batch_size,
            autocast_dtype=autocast_dtype(self.config.mixed_precision, self.device),
        )

    def release(self) -> None:
        self._model = None
        free_memory(self.device)

"""The ``base-model`` method: the floor row — the base model with no fine-tuning at all.

The identifier is "" so prompts read "a dog in the jungle": the model is asked for the class, not
the subject, which is what DINO/CLIP-I of an unpersonalised model measure. ``prepare`` loads no
weights (it only records the base model's provenance); the model is loaded on the first
``generate`` and dropped by ``release``.

``ModelSettings`` holds the fields every diffusers-based method shares (base model, images per
pipeline call); dreambooth, dreambooth-lora and textual-inversion configs inherit it too. The
sampler is not among them: it is the run preset's render protocol (reference_impl/render_protocol.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.atomic import atomic_write_json
from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import (
    SD15_REPO,
    Components,
    autocast_dtype,
    free_memory,
    is_calibrated,
    load_base_model,
    locate_base_model,
    native_resolution,
    resolve_device,
)
from dreambench.reference_impl.checked_settings import CheckedSettings, at_least, non_empty
from dreambench.reference_impl.dreambooth_trainer import MixedPrecision
from dreambench.reference_impl.precision_policy import RenderPrecision, inference_components
from dreambench.reference_impl.render import SamplerSettings, render
from dreambench.reference_impl.render_protocol import method_sampler
from dreambench.reference_impl.tiny_trained import TINY_TRAINED_ID

if TYPE_CHECKING:
    from PIL import Image

    from dreambench.dataset.subject import Subject
    from dreambench.method import RunContext


@dataclass(frozen=True)
class ModelSettings(CheckedSettings):
    """Fields shared by every diffusers-based method's Config (checked when built)."""

    # Base model: hub id (pinned revision), a local diffusers folder, or "tiny" (embedded).
    base_model: str = field(default=SD15_REPO, metadata=non_empty())
    # "" = the pinned SD15_REVISION for SD15_REPO, "main" for other hub ids (recorded as resolved).
    base_revision: str = ""
    # Images per pipeline call; images depend on it bitwise (render.py), keep it fixed per run.
    # 25 divides the harness's 50-image render chunks and the 25 prompts.
    render_batch_size: int = field(default=25, metadata=at_least(1))
    # "autocast" (fp32 weights, mixed_precision autocast on CUDA) or "bf16-weights" (bf16 copies of
    # the networks, no autocast; reference_impl/precision_policy.py). Moves pixels; class priors too.
    render_precision: RenderPrecision = "autocast"


def require_sampler(sampler: SamplerSettings | None, method: str) -> SamplerSettings:
    """The sampler a method renders with; a one-line error when the run's protocol never arrived."""
    if sampler is None:
        raise BenchError(
            f"method {method}: no render protocol yet; the harness hands it over in setup(context), "
            "or pass sampler=SamplerSettings(...) when using the method directly"
        )
    return sampler


class DiffusersMethod:
    """What every diffusers-based method shares (base-model, dreambooth, dreambooth-lora,
    textual-inversion, ip-adapter): construction from a checked Config, the run-level settings
    from ``setup(context)`` (dreambench.method) and the base model's readiness check.

    The keyword arguments are for using a method directly (tests, notebooks); the harness builds
    it as ``cls(config)`` and hands device, seed, weights policy and the run preset's sampler to
    ``setup``.
    """

    name: str
    config: ModelSettings
    _model: Components | None = None

    def __init__(
        self,
        config: ModelSettings,
        device: str = "auto",
        seed: int = 0,
        keep_weights: bool = False,
        sampler: SamplerSettings | None = None,
    ) -> None:
        # Every field's type and range was checked when the config was built (Config.__post_init__).
        self.config = config
        self.device = resolve_device(device)
        self.seed = seed
        self.keep_weights = keep_weights
        # The run preset's sampler (evaluation images and class priors), handed over by setup().
        self.sampler = sampler
        # Read by the harness: results on random-weight models (tiny, random:...) are uncalibrated.
        self.calibrated = is_calibrated(config.base_model)
        # A rendering deviation that follows from the configured model (e.g. SDXL's native size).
        self.render_deviation = self._declared_render_deviation()

    # A deviation intrinsic to a method class (dreambench.method); subclasses whose deviation
    # depends on their configuration override _declared_render_deviation instead.
    render_deviation: dict[str, object] | None = None

    def _declared_render_deviation(self) -> dict[str, object] | None:
        return type(self).render_deviation

    @property
    def base_model(self) -> str:
        """What the method renders with (dreambench.method): the configured base model."""
        return self.config.base_model

    @property
    def native_resolution(self) -> int | None:
        """The base model's native size (dreambench.method; base_model.native_resolution)."""
        return native_resolution(self.config.base_model, self.config.base_revision)

    def setup(self, context: RunContext) -> None:
        """Run-level settings (dreambench.method): device, seed, weights policy, render protocol."""
        if context.device != self.device:
            self._model = None
        self.device = context.device
        self.seed = context.seed
        self.keep_weights = context.keep_weights
        # The instance: a method's render deviation may depend on its base model (SDXL, lora.py).
        self.sampler = method_sampler(context, self)

    def check_ready(self) -> None:
        """Fail now, before a run writes anything, if the base model cannot be found (one line)."""
        locate_base_model(self.config.base_model, self.config.base_revision)

    def _render(self, model: Components, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        """``model`` under the run preset's sampler, as every diffusers method renders (render.py).
        Every subclass Config has ``mixed_precision`` (BaseModel's own, or TrainSettings').
        ``render_precision="bf16-weights"``: bf16 copies of ``model``'s networks, no autocast."""
        bf16 = self.config.render_precision == "bf16-weights"
        if bf16:
            model = inference_components(model)
        return render(
            model.pipeline(),
            prompts,
            seeds,
            require_sampler(self.sampler, self.name),
            self.device,
            batch_size=self.config.render_batch_size,
            autocast_dtype=None if bf16 else autocast_dtype(self.config.mixed_precision, self.device),  # type: ignore[attr-defined]
        )


class BaseModel(DiffusersMethod):
    """The un-personalised base model: the floor row of the leaderboard."""

    name = "base-model"
    kind = "none"  # the floor: no subject information at all
    # It uses no subject information, so a subject group (a pair dataset) is its floor as well.
    subject_groups = True

    @dataclass(frozen=True)
    class Config(ModelSettings):
        """The base model and how it renders (bf16 autocast on CUDA only); the sampler is the run preset's."""

        mixed_precision: MixedPrecision = "bf16"

    PRESETS: dict[str, Config] = {
        "paper": Config(),
        "diffusers": Config(),
        # Embedded tiny model (uncalibrated).
        "smoke": Config(base_model=TINY_TRAINED_ID, render_batch_size=50, mixed_precision="no"),
    }

    def prepare(self, subject: Subject, workdir: Path) -> None:
        """Nothing to train; records which base model renders (``workdir/base_model.json``) for provenance."""
        record = Path(workdir) / "base_model.json"
        if not record.is_file():
            _, description = locate_base_model(self.config.base_model, self.config.base_revision)
            atomic_write_json(record, description)

    def identifier(self, subject: Subject) -> str:
        return ""

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        if self._model is None:
            self._model = load_base_model(self.config.base_model, self.config.base_revision, self.device)
        return self._render(self._model, prompts, seeds)

    def release(self) -> None:
        self._model = None
        free_memory(self.device)

"""The ``ip-adapter`` method: a tuning-free row, IP-Adapter conditioned on the subject's real photos.

Recipe (IP-Adapter, Ye et al. 2023, https://arxiv.org/abs/2308.06721; weights
https://huggingface.co/h94/IP-Adapter): the base model's UNet gets decoupled cross-attention
layers for image features; a CLIP image encoder embeds the reference images, a projection turns
each embedding into 4 context tokens. Nothing is trained per subject. dreambench loads it through
diffusers' own loader, ``StableDiffusionPipeline.load_ip_adapter(folder, subfolder, weight_name,
image_encoder_folder)`` (diffusers/loaders/ip_adapter.py), then ``set_ip_adapter_scale(scale)``;
the tiny random adapter of the smoke preset goes through the same call.

* **One model for all subjects**: the run-level ``setup(context)`` loads base model + adapter once;
  ``teardown()`` frees it. ``release()`` keeps it for the next subject.
* **Image prompt**: the subject's real images (the first ``max_references`` in file-name order, 0 =
  all), decoded by dreambench.dataset.images (frame 0, EXIF orientation, RGB) and preprocessed by
  the pipeline's ``CLIPImageProcessor`` (shortest side to the encoder's size, centre crop,
  CLIP mean/std), as ``load_ip_adapter`` sets it up.
* **Several images, combined** (``combine``): ``"tokens"`` (default) passes them as one list to
  the one adapter, which is what diffusers supports for a multi-image prompt
  (``ip_adapter_image=[[img_1, ..., img_n]]``; diffusers docs, using-diffusers/ip_adapter.md,
  "Multi IP-Adapter": "Pass the ... style images as a list"): each image becomes 4 tokens and the
  adapter's cross-attention attends over all 4n at once. ``"mean"`` averages the n CLIP image
  embeddings first (4 tokens, as for a single image). The unconditional branch gets zero image
  embeddings in both cases (diffusers' ``encode_image``). The embeddings are computed once per
  ``generate`` call and passed to every pipeline call (``ip_adapter_image_embeds``), so an image
  does not depend on its batch.
* **Prompts**: identifier "" so prompts read "a dog in the jungle": the subject comes from the
  image prompt only.
* **Sampler**: the run preset's render protocol (reference_impl/render_protocol.py), as for
  every method. On an SDXL base (the ``sdxl`` preset: SDXL base 1.0 with h94's
  ``sdxl_models/ip-adapter_sdxl.safetensors``) it renders at SDXL's native size, declared as a
  render deviation (reference_impl/sdxl.py), as dreambooth-lora on SDXL does.

``prepare`` trains nothing; it writes ``ip_adapter.json`` (base model, adapter files and sha256,
reference images and their sha256, scale, combine rule) into the subject's prepare folder.
Preset values and their sources: docs/METHODS.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dreambench.atomic import atomic_write_json
from dreambench.errors import BenchError
from dreambench.reference_impl.base_method import ModelSettings, require_sampler
from dreambench.reference_impl.base_model import (
    SDXL_REPO,
    Components,
    autocast_dtype,
    free_memory,
    is_calibrated,
    load_base_model,
    locate_base_model,
    quiet_loading,
    resolve_device,
)
from dreambench.reference_impl.checked_settings import at_least, non_empty, non_negative
from dreambench.reference_impl.dreambooth_trainer import MixedPrecision
from dreambench.reference_impl.ip_adapter_weights import (
    IP_ADAPTER_REPO,
    PUBLISHED,
    AdapterFiles,
    check_fits,
    locate_ip_adapter,
)
from dreambench.reference_impl.render import SamplerSettings, render
from dreambench.reference_impl.render_protocol import method_sampler
from dreambench.reference_impl.sdxl import sdxl_render_deviation
from dreambench.reference_impl.tiny_ip_adapter import TINY_ADAPTER_ID
from dreambench.reference_impl.tiny_trained import TINY_TRAINED_ID

if TYPE_CHECKING:
    import torch
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    from dreambench.dataset.subject import Subject
    from dreambench.method import RunContext

Combine = Literal["tokens", "mean"]
RECORD_FILE = "ip_adapter.json"


@dataclass
class LoadedIPAdapter:
    """A base model with the adapter loaded into its UNet, ready to render on ``device``."""

    pipe: StableDiffusionPipeline
    model: Components
    adapter: dict[str, Any]  # locate_ip_adapter's description
    device: str


def load_ip_adapter_pipeline(config: IPAdapter.Config, device: str) -> LoadedIPAdapter:
    """Load the base model and the adapter of ``config`` onto ``device`` (the run-level load).

    The adapter's files are located (and checked against the base model) first, so a missing or
    mismatched adapter is a one-line BenchError before any weights are read.
    """
    from diffusers.utils import logging as d_logging

    base_folder, base = locate_base_model(config.base_model, config.base_revision, device)
    files = adapter_files(config)
    folder, adapter = locate_ip_adapter(
        config.adapter, config.adapter_revision, files, base_folder, base["key"]
    )
    check_fits(folder, files, base_folder, repr(config.adapter))
    model = load_base_model(config.base_model, config.base_revision, device)
    pipe = model.pipeline()
    verbosity = d_logging.get_verbosity()
    # load_ip_adapter casts the UNet to its own dtype and warns that no module asked to stay fp32.
    d_logging.set_verbosity_error()
    try:
        with quiet_loading():
            pipe.load_ip_adapter(
                str(folder),
                subfolder=files.subfolder,
                weight_name=files.weight_name,
                image_encoder_folder=files.image_encoder_folder,
                local_files_only=True,
            )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"IP-Adapter {config.adapter!r} at {folder} could not be loaded ({first})") from None
    finally:
        d_logging.set_verbosity(verbosity)
    pipe.set_ip_adapter_scale(config.scale)
    pipe.image_encoder.eval()
    pipe.image_encoder.requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    return LoadedIPAdapter(pipe=pipe, model=model, adapter=adapter, device=device)


def adapter_files(config: IPAdapter.Config) -> AdapterFiles:
    return AdapterFiles(config.adapter_subfolder, config.weight_name, config.image_encoder_folder)


def image_prompt_embeds(
    pipe: StableDiffusionPipeline,
    references: list[Image.Image],
    combine: Combine,
    guidance: float,
    device: str,
) -> list[torch.Tensor]:
    """The ``ip_adapter_image_embeds`` argument for the subject's ``references`` (module docstring).

    diffusers' own ``prepare_ip_adapter_image_embeds`` encodes the list (one adapter, n images ->
    shape [1, n, d], with the zero unconditional embeddings stacked in front when classifier-free
    guidance is on: [2, n, d]); ``"mean"`` then averages over the n images ([2, 1, d]).
    """
    import torch

    do_cfg = guidance > 1 and pipe.unet.config.time_cond_proj_dim is None  # the pipeline's own rule
    with torch.no_grad():
        (embeds,) = pipe.prepare_ip_adapter_image_embeds(
            ip_adapter_image=[references],
            ip_adapter_image_embeds=None,
            device=torch.device(device),
            num_images_per_prompt=1,
            do_classifier_free_guidance=do_cfg,
        )
        if combine == "mean":
            embeds = embeds.mean(dim=1, keepdim=True)
    return [embeds]


class IPAdapter:
    """IP-Adapter (h94/IP-Adapter weights through diffusers' ``load_ip_adapter``): zero-shot, no training."""

    name = "ip-adapter"
    kind = "encoder"  # one model for all subjects, conditioned on each subject's images

    @dataclass(frozen=True)
    class Config(ModelSettings):
        """Base model, adapter files, image-prompt scale and how several reference images combine."""

        # Adapter: hub id (pinned revision), a local folder in the h94 layout, or "tiny".
        adapter: str = field(default=IP_ADAPTER_REPO, metadata=non_empty())
        # "" = the pinned IP_ADAPTER_REVISION for h94/IP-Adapter, "main" for other hub ids.
        adapter_revision: str = ""
        # load_ip_adapter(subfolder, weight_name, image_encoder_folder); SD 1.5 by default,
        # ip_adapter_weights.PUBLISHED["sdxl"] for SDXL.
        adapter_subfolder: str = PUBLISHED["sd15"].subfolder
        weight_name: str = field(default=PUBLISHED["sd15"].weight_name, metadata=non_empty())
        image_encoder_folder: str = field(
            default=PUBLISHED["sd15"].image_encoder_folder, metadata=non_empty()
        )
        # set_ip_adapter_scale: 1.0 = image prompt only; lower gives the text prompt more say.
        scale: float = field(default=0.5, metadata=non_negative())
        combine: Combine = "tokens"
        # How many of the subject's images (file-name order) form the image prompt; 0 = all.
        max_references: int = field(default=0, metadata=at_least(0))
        mixed_precision: MixedPrecision = "bf16"

    PRESETS: dict[str, Config] = {
        # The tiny random IP-Adapter on the embedded tiny SD (uncalibrated). First, because it is
        # the one preset that loads anywhere: a method is built from its first preset when no run
        # preset names one (the registry's contract tests), and setup() loads the model.
        "smoke": Config(
            base_model=TINY_TRAINED_ID, adapter=TINY_ADAPTER_ID, render_batch_size=50, mixed_precision="no"
        ),
        # The IP-Adapter README's "Best Practice": "For multimodal prompts ... setting scale=0.5
        # can get good results" (https://github.com/tencent-ailab/IP-Adapter, README.md); DreamBench
        # prompts are multimodal (text + the subject's images).
        "paper": Config(scale=0.5),
        # diffusers' IP-Adapter guide sets `pipeline.set_ip_adapter_scale(0.6)` in its text-to-image
        # example (https://huggingface.co/docs/diffusers/using-diffusers/ip_adapter; its text calls
        # 0.5 "a good balance", the code it runs uses 0.6).
        "diffusers": Config(scale=0.6),
        # SDXL base 1.0 with h94/IP-Adapter's SDXL adapter: sdxl_models/ip-adapter_sdxl.safetensors
        # and its OpenCLIP ViT-bigG/14 encoder in sdxl_models/image_encoder (the h94/IP-Adapter
        # README's SDXL row; diffusers' guide loads it as load_ip_adapter("h94/IP-Adapter",
        # subfolder="sdxl_models", weight_name="ip-adapter_sdxl.bin")). Scale 0.5: the same
        # README "Best Practice" as `paper` (the guide's SDXL example code uses 0.6, as `diffusers`).
        "sdxl": Config(
            base_model=SDXL_REPO,
            adapter_subfolder=PUBLISHED["sdxl"].subfolder,
            weight_name=PUBLISHED["sdxl"].weight_name,
            image_encoder_folder=PUBLISHED["sdxl"].image_encoder_folder,
            scale=0.5,
        ),
    }

    def __init__(self, config: Config) -> None:
        if config.render_precision != "autocast":
            raise BenchError(
                f"ip-adapter: render_precision={config.render_precision!r} is not supported; valid: autocast"
            )
        self.config = config
        self.device = "cpu"
        self.sampler: SamplerSettings | None = None  # the run preset's, handed over by setup()
        self.calibrated = is_calibrated(config.base_model) and config.adapter != TINY_ADAPTER_ID
        # SDXL bases render at their native size (dreambench.method's render_deviation); None otherwise.
        self.render_deviation = sdxl_render_deviation(config.base_model, config.base_revision or None)
        self._loaded: LoadedIPAdapter | None = None

    @property
    def base_model(self) -> str:
        """What the method renders with (dreambench.method): the configured base model."""
        return self.config.base_model

    # -- run level -----------------------------------------------------------------------------

    def setup(self, context: RunContext) -> None:
        """Run level (dreambench.method): the render protocol, then base model + adapter, loaded once."""
        self.sampler = method_sampler(context, self)  # the instance: its deviation depends on the base
        device = resolve_device(context.device)
        if self._loaded is not None and self._loaded.device == device:
            return
        self.teardown()
        self.device = device
        self._loaded = load_ip_adapter_pipeline(self.config, device)

    def teardown(self) -> None:
        if self._loaded is not None:
            self._loaded = None
            free_memory(self.device)

    def check_ready(self) -> None:
        """Fail now, before a run writes anything, if base model or adapter are missing or do not fit."""
        base_folder, base = locate_base_model(self.config.base_model, self.config.base_revision)
        files = adapter_files(self.config)
        folder, _ = locate_ip_adapter(
            self.config.adapter, self.config.adapter_revision, files, base_folder, base["key"]
        )
        check_fits(folder, files, base_folder, repr(self.config.adapter))

    # -- per subject ---------------------------------------------------------------------------

    def consumed_images(self, subject: Subject) -> list[Path]:
        """The image prompt: the subject's images in file-name order, the first ``max_references`` (0: all)."""
        paths = sorted(subject.image_paths, key=lambda p: Path(p).name)
        return paths[: self.config.max_references] if self.config.max_references else paths

    def prepare(self, subject: Subject, workdir: Path) -> None:
        """Nothing to train: records what conditions this subject's images (``ip_adapter.json``)."""
        record = Path(workdir) / RECORD_FILE
        if record.is_file():
            return
        loaded = self._require_loaded()
        used = self.consumed_images(subject)
        by_path = dict(zip(subject.image_paths, subject.image_sha256, strict=True))
        atomic_write_json(
            record,
            {
                "base_model": loaded.model.description,
                "adapter": loaded.adapter,
                "scale": self.config.scale,
                "combine": self.config.combine,
                "references": [Path(p).name for p in used],
                "references_sha256": [by_path[p] for p in used],
            },
        )

    def identifier(self, subject: Subject) -> str:
        return ""  # class-noun prompts: the subject comes from the image prompt

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        from dreambench.dataset.images import load_image

        loaded = self._require_loaded()
        used = self.consumed_images(subject)
        if not used:
            raise BenchError(f"subject {subject.name!r} has no images to condition IP-Adapter on")
        sampler = require_sampler(self.sampler, self.name)
        embeds = image_prompt_embeds(
            loaded.pipe, [load_image(p) for p in used], self.config.combine, sampler.guidance, self.device
        )
        return render(
            loaded.pipe,
            prompts,
            seeds,
            sampler,
            self.device,
            batch_size=self.config.render_batch_size,
            autocast_dtype=autocast_dtype(self.config.mixed_precision, self.device),
            extra_inputs={"ip_adapter_image_embeds": embeds},
        )

    def release(self) -> None:
        pass  # the shared model stays loaded for the next subject; teardown() frees it

    def _require_loaded(self) -> LoadedIPAdapter:
        if self._loaded is None:
            raise BenchError(
                f"method {self.name}: no model loaded; the harness loads it in setup(context), "
                "call setup(RunContext(...)) first when using the method directly"
            )
        return self._loaded

"""The ``dreambooth`` method: full fine-tuning of the UNet with prior preservation (Ruiz et al., 2023).

Per subject, ``prepare`` does, in order:

1. load the base model (reference_impl/base_model.py; "tiny" for the smoke preset),
2. choose the identifier (reference_impl/identifier.py: the paper's rare-token scheme or "sks"),
3. get the class images from the shared class-prior cache, generating only missing ones
   (reference_impl/class_priors.py) and their cached VAE latents,
4. encode the subject's images once (reference_impl/latent_cache.py),
5. train (reference_impl/dreambooth_trainer.py) and save the fine-tuned weights in diffusers'
   layout under ``workdir/weights/`` (loading them: docs/DREAMBOOTH.md),
6. write ``workdir/done.json`` last (identifier, prompts, base-model provenance, loss curve).

``generate`` renders with the fine-tuned model (reference_impl/render.py); ``release`` frees the
models and deletes ``workdir/weights`` unless ``keep_weights``. A later ``prepare`` whose weights
were released trains again (same seed, same result on CPU).

``dreambooth-lora`` (reference_impl/lora.py) and ``textual-inversion``
(reference_impl/textual_inversion.py) subclass ``DreamBooth`` and replace only steps 2-5 and the
reload (``_train_and_save``, ``_load_trained``, ``weights_marker``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dreambench.atomic import atomic_write_json
from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import (
    SD15_REPO,
    Components,
    autocast_dtype,
    free_memory,
    load_base_model,
    load_tokenizer,
    resolve_device,
)
from dreambench.reference_impl.identifier import RARE_SCHEME, choose_identifier
from dreambench.reference_impl.render import SamplerSettings, render
from dreambench.reference_impl.tiny_model import TINY_MODEL_ID, TINY_RESOLUTION

if TYPE_CHECKING:
    from PIL import Image
    from transformers import CLIPTokenizer

    from dreambench.dataset.subject import Subject
    from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainResult

SchedulerName = Literal["ddim", "pndm", "dpm++", "euler", "euler-a", "ddpm"]
MixedPrecision = Literal["no", "fp16", "bf16"]

WEIGHTS_DIR = "weights"
# Approximate size of SD 1.5's fp32 UNet (~860M parameters x 4 bytes), the fallback disk estimate.
_SD15_FP32_UNET_BYTES = 860_000_000 * 4
DONE_FILE = "done.json"


class DreamBooth:
    """DreamBooth (full UNet fine-tuning, prior preservation) on a Stable Diffusion base model."""

    name = "dreambooth"

    @dataclass(frozen=True)
    class Config:
        """DreamBooth hyperparameters. Prompt fields are templates over {identifier} and {class_noun}."""

        # Base model: hub id (pinned revision), a local diffusers folder, or "tiny" (embedded).
        base_model: str = SD15_REPO
        # "" = the pinned SD15_REVISION for SD15_REPO, "main" for other hub ids (recorded as resolved).
        base_revision: str = ""
        # "rare" = the paper's rare-token identifier (Sec. 3.2); any other string is used verbatim.
        identifier: str = "rare"
        # Paper Sec. 3.2/3.3: fine-tune on "a [identifier] [class noun]", prior on "a [class noun]".
        instance_prompt: str = "a {identifier} {class_noun}"
        class_prompt: str = "a {class_noun}"
        prior_preservation: bool = True
        # Paper (implementation details): "~1000 'a [class noun]' samples are generated".
        num_class_images: int = 1000
        # Sampling (class priors and evaluation images): DDIM, 50 steps, CFG 7.5, 512 px (SD v1).
        scheduler: SchedulerName = "ddim"
        sampling_steps: int = 50
        guidance_scale: float = 7.5
        resolution: int = 512
        # Paper (implementation details): ~1000 iterations, lr 5e-6 for Stable Diffusion, lambda = 1.
        train_steps: int = 1000
        learning_rate: float = 5e-6
        prior_loss_weight: float = 1.0
        # diffusers train_dreambooth.py README commands: --train_batch_size=1.
        train_batch_size: int = 1
        # Images per pipeline call; images depend on it bitwise (render.py), keep it fixed per run.
        # 25 divides the harness's 50-image render chunks and the 25 prompts.
        render_batch_size: int = 25
        # The paper fine-tunes the diffusion model; the text encoder stays frozen (diffusers' default).
        train_text_encoder: bool = False
        # Speed switches (not in the paper; identical objective). bf16 autocast on CUDA only.
        mixed_precision: MixedPrecision = "bf16"
        gradient_checkpointing: bool = False
        use_8bit_adam: bool = False
        channels_last: bool = False
        compile: bool = False
        # diffusers train_dreambooth.py default --max_grad_norm=1.0.
        max_grad_norm: float = 1.0

    PRESETS: dict[str, Config] = {
        # DreamBooth paper (Ruiz et al., CVPR 2023) for Stable Diffusion; sampler as render.py documents.
        "paper": Config(),
        # diffusers examples/dreambooth/README.md, "Training with prior-preservation loss":
        # --instance_prompt="a photo of sks dog" --class_prompt="a photo of dog" --resolution=512
        # --train_batch_size=1 --learning_rate=5e-6 --lr_scheduler=constant --lr_warmup_steps=0
        # --num_class_images=200 --max_train_steps=800 --prior_loss_weight=1.0. Class images and
        # inference use the pipeline defaults (model scheduler = PNDM for SD 1.5, 50 steps, CFG 7.5).
        "diffusers": Config(
            identifier="sks",
            instance_prompt="a photo of {identifier} {class_noun}",
            class_prompt="a photo of {class_noun}",
            num_class_images=200,
            scheduler="pndm",
            train_steps=800,
        ),
        # Embedded tiny model on CPU (uncalibrated): sized so that one subject (train + 100 images)
        # takes a few seconds on 2 cores; see docs/DREAMBOOTH.md for measured figures. The higher
        # learning rate lets a randomly initialised model move in few steps.
        "smoke": Config(
            base_model=TINY_MODEL_ID,
            num_class_images=10,
            sampling_steps=8,
            resolution=TINY_RESOLUTION,
            train_steps=40,
            learning_rate=1e-3,
            render_batch_size=50,
            mixed_precision="no",
        ),
    }

    def __init__(
        self, config: Config, device: str = "auto", seed: int = 0, keep_weights: bool = False
    ) -> None:
        validate_common(config, self.name)
        if config.train_steps < 1:
            raise BenchError(f"method {self.name}: train_steps={config.train_steps} must be at least 1")
        if config.learning_rate <= 0:
            raise BenchError(f"method {self.name}: learning_rate={config.learning_rate} must be positive")
        if config.prior_preservation and config.num_class_images < 1:
            raise BenchError(
                f"method {self.name}: num_class_images={config.num_class_images} must be at least 1 with prior_preservation=true"
            )
        self.config = config
        self.device = resolve_device(device)
        self.seed = seed
        self.keep_weights = keep_weights
        # Read by the harness: results on the random-weight tiny model are labelled uncalibrated.
        self.calibrated = config.base_model != TINY_MODEL_ID
        self._tokenizer: CLIPTokenizer | None = None
        self._model: Components | None = None
        self._workdir: Path | None = None

    # -- Method protocol ---------------------------------------------------------------------

    def check_ready(self) -> None:
        """Fail now, before a run writes anything, if the base model cannot be found (one line)."""
        from dreambench.reference_impl.base_model import locate_base_model

        locate_base_model(self.config.base_model, self.config.base_revision)

    def identifier(self, subject: Subject) -> str:
        tokenizer = self._get_tokenizer() if self.config.identifier == RARE_SCHEME else None
        return choose_identifier(self.config.identifier, tokenizer, subject.name)

    def prepare(self, subject: Subject, workdir: Path) -> None:
        workdir = Path(workdir)
        if self._workdir != workdir:
            self._model = None  # a model trained for another subject must not render this one
        self._workdir = workdir
        if is_prepared(workdir, self.weights_marker):
            return
        # 1: base model; 2-5: identifier, data, training, saving (the per-method hook).
        base = load_base_model(self.config.base_model, self.config.base_revision, self.device)
        identifier, data, result = self._train_and_save(base, subject, workdir / WEIGHTS_DIR)
        # 6: the done marker, written last.
        atomic_write_json(
            workdir / DONE_FILE,
            {
                "method": self.name,
                "subject": subject.name,
                "identifier": identifier,
                "instance_prompt": data.instance_prompt,
                "class_prompt": data.class_prompt if data.classes is not None else None,
                "num_class_images": len(data.classes) if data.classes is not None else 0,
                "base_model": base.description,
                "config": dataclasses.asdict(self.config),
                "seed": self.seed,
                "train_seconds": round(result.seconds, 3),
                "losses": [round(x, 6) for x in result.losses],
            },
        )
        self._model = base

    # -- per-method hooks (LoRA and Textual Inversion subclass DreamBooth and replace these) -----

    # The file under ``weights/`` whose presence means the trained weights are still on disk.
    weights_marker = "unet/config.json"

    def _train_and_save(
        self, base: Components, subject: Subject, weights_dir: Path
    ) -> tuple[str, TrainingData, TrainResult]:
        """Steps 2-5 of ``prepare``: identifier, training data, training, weights saved to ``weights_dir``."""
        from dreambench.reference_impl.dreambooth_trainer import save_finetuned, train_dreambooth

        identifier = choose_identifier(self.config.identifier, base.tokenizer, subject.name)
        data = build_training_data(base, subject, identifier, self.config, self.device, self.seed)
        result = train_dreambooth(
            base, data, trainer_settings(self.config), self.device, self.seed, subject_name=subject.name
        )
        save_finetuned(weights_dir, result.unet, result.text_encoder)
        return identifier, data, result

    def _load_trained(self, workdir: Path) -> Components:
        """The model ``generate`` renders with, rebuilt from ``workdir/weights`` (e.g. in a new process)."""
        return load_finetuned(self.config.base_model, self.config.base_revision, workdir, self.device)

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        model = self._get_trained_model()
        return render(
            model.pipeline(),
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
        if self._workdir is not None and not self.keep_weights:
            shutil.rmtree(self._workdir / WEIGHTS_DIR, ignore_errors=True)

    def estimated_disk_bytes(self, subject: Subject, n_images: int) -> int:
        """Bytes ``prepare`` writes for one subject (the fine-tuned weights; read by bench/disk_space.py)."""
        from dreambench.reference_impl.base_model import locate_base_model

        parts = ["unet/diffusion_pytorch_model.safetensors"]
        if self.config.train_text_encoder:
            parts.append("text_encoder/model.safetensors")
        try:
            folder, _ = locate_base_model(self.config.base_model, self.config.base_revision)
        except BenchError:
            return _SD15_FP32_UNET_BYTES  # the load will fail with its own message; assume SD 1.5
        return sum((folder / part).stat().st_size for part in parts if (folder / part).is_file())

    # -- helpers -----------------------------------------------------------------------------

    def _get_tokenizer(self) -> CLIPTokenizer:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.config.base_model, self.config.base_revision)
        return self._tokenizer

    def _get_trained_model(self) -> Components:
        if self._model is not None:
            return self._model
        if self._workdir is None or not is_prepared(self._workdir, self.weights_marker):
            raise BenchError(
                f"method {self.name}: generate() called before prepare() finished for this subject"
            )
        self._model = self._load_trained(self._workdir)
        return self._model


def is_prepared(workdir: Path, weights_marker: str = "unet/config.json") -> bool:
    """Done marker present and the trained weights (``weights/<weights_marker>``) still on disk."""
    return (workdir / DONE_FILE).is_file() and (workdir / WEIGHTS_DIR / weights_marker).is_file()


def validate_common(config: Any, method: str) -> None:
    """Checks shared by every diffusers-based method config (resolution, sampler, batch size)."""
    if config.resolution < 8 or config.resolution % 8 != 0:
        raise BenchError(f"method {method}: resolution={config.resolution} must be a positive multiple of 8")
    if config.sampling_steps < 1:
        raise BenchError(f"method {method}: sampling_steps={config.sampling_steps} must be at least 1")
    if config.render_batch_size < 1:
        raise BenchError(f"method {method}: render_batch_size={config.render_batch_size} must be at least 1")


def sampler_settings(config: Any) -> SamplerSettings:
    """The SamplerSettings of a method config (fields scheduler, sampling_steps, guidance_scale, resolution)."""
    return SamplerSettings(
        scheduler=config.scheduler,
        steps=config.sampling_steps,
        guidance=config.guidance_scale,
        resolution=config.resolution,
    )


def trainer_settings(config: DreamBooth.Config) -> Any:
    from dreambench.reference_impl.dreambooth_trainer import TrainSettings

    return TrainSettings(
        steps=config.train_steps,
        learning_rate=config.learning_rate,
        batch_size=config.train_batch_size,
        prior_loss_weight=config.prior_loss_weight,
        train_text_encoder=config.train_text_encoder,
        mixed_precision=config.mixed_precision,
        gradient_checkpointing=config.gradient_checkpointing,
        use_8bit_adam=config.use_8bit_adam,
        channels_last=config.channels_last,
        compile=config.compile,
        max_grad_norm=config.max_grad_norm,
    )


def build_training_data(
    base: Components, subject: Subject, identifier: str, config: Any, device: str, seed: int
) -> Any:
    """Prompts, instance latents and (with prior preservation) the shared class images' latents.

    ``config`` needs: instance_prompt, class_prompt, prior_preservation, num_class_images,
    resolution, render_batch_size, mixed_precision and the sampler fields. Reused by LoRA.
    """
    from dreambench.dataset.images import load_image
    from dreambench.reference_impl.class_priors import PriorSpec, class_prior_latents, ensure_class_images
    from dreambench.reference_impl.dreambooth_trainer import TrainingData
    from dreambench.reference_impl.latent_cache import encode_images

    instance_prompt = format_prompt(config.instance_prompt, identifier, subject.class_noun)
    instance = encode_images(
        base.vae, [load_image(p) for p in subject.image_paths], config.resolution, device
    )
    if not config.prior_preservation:
        return TrainingData(instance=instance, instance_prompt=instance_prompt)
    class_prompt = format_prompt(config.class_prompt, identifier, subject.class_noun)
    spec = PriorSpec(
        model_key=base.description["key"],
        class_noun=subject.class_noun,
        prompt=class_prompt,
        sampler=sampler_settings(config),
        seed=seed,
    )
    paths = ensure_class_images(
        spec,
        config.num_class_images,
        base.pipeline(),
        device,
        batch_size=config.render_batch_size,
        autocast_dtype=autocast_dtype(config.mixed_precision, device),
    )
    classes = class_prior_latents(spec, paths, base.vae, config.resolution, device)
    return TrainingData(
        instance=instance, instance_prompt=instance_prompt, classes=classes, class_prompt=class_prompt
    )


def format_prompt(template: str, identifier: str, class_noun: str) -> str:
    """``template.format(identifier=..., class_noun=...)`` with double spaces collapsed (empty identifier)."""
    try:
        text = template.format(identifier=identifier, class_noun=class_noun)
    except (KeyError, IndexError):
        raise BenchError(
            f"prompt template {template!r} may only use {{identifier}} and {{class_noun}}"
        ) from None
    return " ".join(text.split())


def load_finetuned(base_model: str, revision: str | None, workdir: Path, device: str) -> Components:
    """The base model with the UNet (and text encoder, if trained) replaced by ``workdir/weights``."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from dreambench.reference_impl.base_model import quiet_loading

    base = load_base_model(base_model, revision, device)
    weights = workdir / WEIGHTS_DIR
    with quiet_loading():
        base.unet = UNet2DConditionModel.from_pretrained(
            weights, subfolder="unet", torch_dtype=torch.float32
        ).to(device)
        if (weights / "text_encoder" / "config.json").is_file():
            base.text_encoder = CLIPTextModel.from_pretrained(
                weights, subfolder="text_encoder", dtype=torch.float32
            ).to(device)
    base.unet.eval()
    base.text_encoder.eval()
    return base


def read_done(workdir: Path) -> dict[str, Any]:
    """The done.json of a prepared workdir (identifier, prompts, provenance, losses)."""
    return json.loads((Path(workdir) / DONE_FILE).read_text())

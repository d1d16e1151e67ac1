"""The ``dreambooth`` method: full fine-tuning of the UNet with prior preservation (Ruiz et al., 2023).

Per subject, ``prepare`` does, in order:

1. load the base model (reference_impl/base_model.py; "tiny" for the smoke preset),
2. choose the identifier (reference_impl/identifier.py: the paper's rare-token scheme or "sks"),
3. get the class images from the shared class-prior cache, generating only missing ones
   (reference_impl/class_priors.py) and their cached VAE latents,
4. encode the subject's images once (reference_impl/latent_cache.py),
5. train (reference_impl/dreambooth_trainer.py) and save the fine-tuned model as a complete
   diffusers pipeline folder ``workdir/weights/`` (reference_impl/pipeline_folder.py; unchanged
   components linked; loading it: docs/DREAMBOOTH.md),
6. write ``workdir/done.json`` last (identifier, prompts, base-model provenance, loss curve).

``generate`` renders with the fine-tuned model (reference_impl/render.py) and the run preset's
sampler (reference_impl/render_protocol.py, handed over by ``setup``); ``release`` frees the
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.atomic import atomic_write_json
from dreambench.errors import BenchError
from dreambench.reference_impl.base_method import DiffusersMethod, ModelSettings, require_sampler
from dreambench.reference_impl.base_model import (
    SD_PIPELINE,
    SDXL_PIPELINE,
    Components,
    autocast_dtype,
    free_memory,
    load_base_model,
    load_tokenizer,
)
from dreambench.reference_impl.checked_settings import at_least, non_empty, positive
from dreambench.reference_impl.dreambooth_trainer import TrainSettings
from dreambench.reference_impl.identifier import RARE_SCHEME, choose_identifier
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.tiny_trained import TINY_TRAINED_ID

if TYPE_CHECKING:
    from PIL import Image
    from transformers import CLIPTokenizer

    from dreambench.dataset.subject import Subject
    from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainResult

WEIGHTS_DIR = "weights"
# Approximate size of SD 1.5's fp32 UNet (~860M parameters x 4 bytes), the fallback disk estimate.
_SD15_FP32_UNET_BYTES = 860_000_000 * 4
DONE_FILE = "done.json"


def format_prompt(template: str, identifier: str, class_noun: str) -> str:
    """``template.format(identifier=..., class_noun=...)`` with double spaces collapsed (empty identifier)."""
    try:
        text = template.format(identifier=identifier, class_noun=class_noun)
    except (KeyError, IndexError, ValueError):
        raise BenchError(
            f"prompt template {template!r} may only use {{identifier}} and {{class_noun}}"
        ) from None
    return " ".join(text.split())


class DreamBooth(DiffusersMethod):
    """DreamBooth (full UNet fine-tuning, prior preservation) on a Stable Diffusion base model."""

    name = "dreambooth"
    kind = "finetune"

    @dataclass(frozen=True)
    class Config(ModelSettings, TrainSettings):
        """DreamBooth hyperparameters: the shared model fields (ModelSettings), the trainer's
        (TrainSettings: paper, implementation details: ~1000 iterations, lr 5e-6 for Stable
        Diffusion; diffusers train_dreambooth.py: batch 1, --max_grad_norm=1.0) and these. Prompt
        fields are templates over {identifier} and {class_noun}. The sampler (evaluation images and
        class priors) is the run preset's render protocol, not a hyperparameter.
        """

        # "rare" = the paper's rare-token identifier (Sec. 3.2); any other string is used verbatim.
        identifier: str = field(default="rare", metadata=non_empty())
        # Paper Sec. 3.2/3.3: fine-tune on "a [identifier] [class noun]", prior on "a [class noun]".
        instance_prompt: str = field(default="a {identifier} {class_noun}", metadata=non_empty())
        class_prompt: str = field(default="a {class_noun}", metadata=non_empty())
        prior_preservation: bool = True
        # Paper (implementation details): "~1000 'a [class noun]' samples are generated".
        num_class_images: int = field(default=1000, metadata=at_least(1))
        # Paper Eq. 2's lambda = 1.
        prior_loss_weight: float = field(default=1.0, metadata=positive())
        # The paper fine-tunes the diffusion model; the text encoder stays frozen (diffusers' default).
        train_text_encoder: bool = False

        def check_combination(self) -> None:
            super().check_combination()
            format_prompt(self.instance_prompt, "sks", "dog")  # a bad template fails now, not mid-run
            format_prompt(self.class_prompt, "sks", "dog")

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
            train_steps=800,
        ),
        # Embedded tiny-trained model on CPU (uncalibrated): sized so that one subject (train + 100
        # images) takes seconds on 2 cores; see docs/DREAMBOOTH.md and docs/PERFORMANCE.md for
        # measured figures. On the tiny UNet a step costs little more at batch 8 than at batch 1
        # (overhead-bound), and batch 8 is what makes DreamBooth beat the base-model floor on the
        # smoke embedders within the budget (batch 1 at 200 steps did not; 600 steps would have
        # cost more than batch 8): tests/test_tiny_trained.py checks it against the floor.
        "smoke": Config(
            base_model=TINY_TRAINED_ID,
            num_class_images=10,
            train_steps=200,
            train_batch_size=8,
            learning_rate=5e-4,
            render_batch_size=50,
            mixed_precision="no",
        ),
    }

    # Loaded on first use: the tokenizer (rare identifiers), the trained model and its workdir.
    _tokenizer: CLIPTokenizer | None = None
    _workdir: Path | None = None
    # What the last prepare did, part by part (dreambench.method ``prepare_work``; bench cost).
    prepare_work: dict[str, dict[str, float]] = {}  # replaced per prepare, never mutated here

    # -- Method protocol ---------------------------------------------------------------------

    # Whether the method trains on an SDXL base (reference_impl/lora.py does; full fine-tuning and
    # Textual Inversion are SD 1.x/2.x only here).
    supports_sdxl = False

    @property
    def identifier_scheme(self) -> str | None:
        """dreambench.method: "rare" when the identifier is drawn from the shipped rare-token list."""
        return RARE_SCHEME if self.config.identifier == RARE_SCHEME else None

    def check_ready(self) -> None:
        """Fail now, before a run writes anything, if the base model cannot be found or is an SDXL
        the method does not support (one line)."""
        from dreambench.reference_impl.base_model import locate_base_model, pipeline_class

        folder, _ = locate_base_model(self.config.base_model, self.config.base_revision)
        self._check_family(pipeline_class(folder, self.config.base_model))

    def _check_family(self, layout: str) -> None:
        from dreambench.reference_impl.base_model import SDXL_PIPELINE

        if layout == SDXL_PIPELINE and not self.supports_sdxl:
            raise BenchError(
                f"method {self.name} does not train SDXL bases (base_model={self.config.base_model!r}); "
                "use dreambooth-lora for SDXL, or a Stable Diffusion 1.x/2.x base"
            )

    def identifier(self, subject: Subject) -> str:
        tokenizer = self._get_tokenizer() if self.config.identifier == RARE_SCHEME else None
        return choose_identifier(self.config.identifier, tokenizer, subject.name)

    def prepare(self, subject: Subject, workdir: Path) -> None:
        workdir = Path(workdir)
        if self._workdir != workdir:
            self._model = None  # a model trained for another subject must not render this one
        self._workdir = workdir
        self.prepare_work = {}
        if is_prepared(workdir, self.weights_marker):
            return
        # 1: base model; 2-5: identifier, data, training, saving (the per-method hook).
        base = load_base_model(self.config.base_model, self.config.base_revision, self.device)
        self._check_family(SDXL_PIPELINE if base.is_sdxl else SD_PIPELINE)
        identifier, data, result = self._train_and_save(base, subject, workdir / WEIGHTS_DIR)
        # The train loop's time includes its set-up and any one-off compilation (reported apart).
        self.prepare_work["train"] = {
            "wall_s": round(result.seconds, 3),
            "steps": len(result.losses),
            "compile_s": round(getattr(result, "compile_seconds", 0.0), 3),
        }
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
                "sampler": require_sampler(self.sampler, self.name).as_dict(),
                "seed": self.seed,
                "train_seconds": round(result.seconds, 3),
                "losses": [round(x, 6) for x in result.losses],
            },
        )
        self._model = base

    # -- per-method hooks (LoRA and Textual Inversion subclass DreamBooth and replace these) -----

    # The file under ``weights/`` whose presence means the trained weights are still on disk
    # (the full pipeline folder: weights saved by older versions, a UNet only, are trained again).
    weights_marker = "model_index.json"

    def _training_data(self, base: Components, subject: Subject) -> tuple[str, TrainingData]:
        """The subject's identifier and its training data (instance latents, class priors)."""
        identifier = choose_identifier(self.config.identifier, base.tokenizer, subject.name)
        data = build_training_data(
            base,
            subject,
            identifier,
            self.config,
            require_sampler(self.sampler, self.name),
            self.device,
            self.seed,
            work=self.prepare_work,
        )
        return identifier, data

    def _train_and_save(
        self, base: Components, subject: Subject, weights_dir: Path
    ) -> tuple[str, TrainingData, TrainResult]:
        """Steps 2-5 of ``prepare``: identifier, training data, training, weights saved to ``weights_dir``."""
        from dreambench.reference_impl.dreambooth_trainer import train_dreambooth
        from dreambench.reference_impl.pipeline_folder import save_pipeline_folder

        identifier, data = self._training_data(base, subject)
        result = train_dreambooth(
            base,
            data,
            self.config,
            self.device,
            self.seed,
            subject_name=subject.name,
            train_text_encoder=self.config.train_text_encoder,
        )
        # A complete pipeline folder (unchanged components linked from the base model's folder):
        # StableDiffusionPipeline.from_pretrained(weights_dir) loads it (docs/DREAMBOOTH.md).
        save_pipeline_folder(weights_dir, base.folder, result.unet, result.text_encoder)
        return identifier, data, result

    def _load_trained(self, workdir: Path) -> Components:
        """The model ``generate`` renders with, rebuilt from ``workdir/weights`` (e.g. in a new process)."""
        return load_finetuned(self.config.base_model, self.config.base_revision, workdir, self.device)

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        return self._render(self._get_trained_model(Path(workdir)), prompts, seeds)

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

    def _get_trained_model(self, workdir: Path) -> Components:
        if self._workdir != workdir:
            self._model = None  # a model trained for another subject must not render this one
            self._workdir = workdir
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


def build_training_data(
    base: Components,
    subject: Subject,
    identifier: str,
    config: DreamBooth.Config,
    sampler: SamplerSettings,
    device: str,
    seed: int,
    work: dict[str, dict[str, float]] | None = None,
) -> Any:
    """Prompts, instance latents and (with prior preservation) the shared class images' latents.

    Training runs at the render protocol's resolution; the class images are sampled with its
    sampler (``sampler``, the run preset's), so a class prior is shared by every method of a
    preset. Reused by LoRA. ``work``, when given, gets ``"class_priors"``: the seconds spent
    getting the class images and how many of them were rendered (not found in the cache).
    """
    import time

    from dreambench.dataset.images import load_image
    from dreambench.reference_impl.class_priors import (
        PriorSpec,
        class_prior_latents,
        ensure_class_images,
        prior_image_paths,
    )
    from dreambench.reference_impl.dreambooth_trainer import TrainingData
    from dreambench.reference_impl.latent_cache import encode_images
    from dreambench.reference_impl.precision_policy import inference_components

    instance_prompt = format_prompt(config.instance_prompt, identifier, subject.class_noun)
    images = [load_image(p) for p in subject.image_paths]
    instance = encode_images(base.vae, images, sampler.resolution, device)
    # Original (height, width) of each image: SDXL's micro-conditioning (reference_impl/sdxl.py).
    sizes = tuple((image.height, image.width) for image in images)
    if not config.prior_preservation:
        return TrainingData(instance=instance, instance_prompt=instance_prompt, instance_sizes=sizes)
    class_prompt = format_prompt(config.class_prompt, identifier, subject.class_noun)
    spec = PriorSpec.create(
        base.description["key"],
        subject.class_noun,
        class_prompt,
        sampler,
        seed,
        device=device,
        batch_size=config.render_batch_size,
        autocast_dtype=autocast_dtype(config.mixed_precision, device),
        weights="bf16" if config.render_precision == "bf16-weights" else "fp32",
    )
    started = time.perf_counter()
    rendered = sum(not p.is_file() for p in prior_image_paths(spec, config.num_class_images))
    prior_model = inference_components(base) if spec.weights == "bf16" and rendered else base
    paths = ensure_class_images(spec, config.num_class_images, prior_model.pipeline(), device)
    if work is not None:
        work["class_priors"] = {"wall_s": round(time.perf_counter() - started, 3), "images": rendered}
    classes = class_prior_latents(spec, paths, base.vae, sampler.resolution, device)
    return TrainingData(
        instance=instance,
        instance_prompt=instance_prompt,
        classes=classes,
        class_prompt=class_prompt,
        prior_loss_weight=config.prior_loss_weight,
        instance_sizes=sizes,
    )


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

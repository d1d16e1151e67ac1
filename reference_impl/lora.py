"""The ``dreambooth-lora`` method: DreamBooth with prior preservation, training only LoRA adapters
on the UNet's attention projections (Hu et al., 2021, applied to DreamBooth as in diffusers'
``examples/dreambooth/train_dreambooth_lora.py``).

Everything but the trainable parameters is DreamBooth's (``DreamBoothLoRA`` subclasses
``DreamBooth``): base model, identifier, class priors, cached latents, the trainer and its loss,
the done marker, rendering. Per subject, ``prepare``:

1. adds a rank-``lora_rank`` LoRA adapter to ``to_q``/``to_k``/``to_v``/``to_out.0`` of every UNet
   attention block (peft ``LoraConfig(r, lora_alpha=r, init_lora_weights="gaussian")``, the script's
   settings: B = 0, so the adapted UNet starts exactly at the base model),
2. trains only the adapter weights through ``train_dreambooth(trainable=...)`` (base weights frozen),
3. saves them in diffusers' LoRA format, ``weights/pytorch_lora_weights.safetensors`` (with the peft
   config as adapter metadata), which stock ``pipe.load_lora_weights(weights_dir)`` loads.

``generate`` renders with the adapter active (unfused).

SDXL: with an SDXL base (``base_model=stabilityai/stable-diffusion-xl-base-1.0``, a local SDXL
folder, or the embedded ``tiny-sdxl``; the ``sdxl`` preset follows diffusers'
examples/dreambooth/README_sdxl.md) the same adapters train through the same trainer, conditioned
as ``train_dreambooth_lora_sdxl.py`` conditions (reference_impl/sdxl.py); the file is saved through
``StableDiffusionXLPipeline.save_lora_weights`` and loads with its stock ``load_lora_weights``. The
method then renders, trains and samples its class priors at SDXL's native resolution, declared as
its ``render_deviation`` (docs/METHODS.md).

FLUX.1: with a FLUX.1 base (``base_model=black-forest-labs/FLUX.1-dev``, a local FLUX folder, or
the embedded ``tiny-flux``; the ``flux`` preset follows diffusers'
examples/dreambooth/README_flux.md) the adapters go on the transformer's attention and
feed-forward projections (``FLUX_LORA_TARGET_MODULES``), training is flow matching
(reference_impl/flow_matching.py) through the same trainer loop, the file is saved through
``FluxPipeline.save_lora_weights`` and loads with its stock ``load_lora_weights``, and the method
renders with the flow-matching Euler sampler at FLUX.1's guidance and native resolution, declared
as its ``render_deviation`` (reference_impl/flux.py, docs/METHODS.md).

Stable Diffusion 3: with an SD3 base (``base_model=stabilityai/stable-diffusion-3-medium-diffusers``,
a local SD3 folder, or the embedded ``tiny-sd3``; the ``sd3`` preset follows diffusers'
examples/dreambooth/README_sd3.md) the adapters go on the transformer's attention projections
(``SD3_LORA_TARGET_MODULES``), training is flow matching with SD3's logit-normal timesteps and
preconditioned outputs (reference_impl/flow_matching.py), the file is saved through
``StableDiffusion3Pipeline.save_lora_weights`` and loads with its stock ``load_lora_weights``, and
the method renders with the flow-matching Euler sampler at SD3's guidance and native resolution,
declared as its ``render_deviation`` (reference_impl/sd3.py, docs/METHODS.md).

LoRA is not part of the DreamBooth paper,
so the ``paper`` preset is the paper's data side (identifier, prompts, class images) trained with
the diffusers LoRA recipe (see ``PRESETS``); like every method it renders with the run preset's
sampler.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.atomic import fsync_directory, remove_entry, temp_name
from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import FLUX_REPO, SD3_REPO, SDXL_REPO, Components, load_base_model
from dreambench.reference_impl.checked_settings import at_least, positive
from dreambench.reference_impl.dreambooth import DreamBooth
from dreambench.reference_impl.flow_matching import WeightingScheme
from dreambench.reference_impl.flux import (
    FLUX_MAX_SEQUENCE_LENGTH,
    FLUX_TRAINING_GUIDANCE,
    flux_render_deviation,
)
from dreambench.reference_impl.sd3 import (
    SD3_LORA_TARGET_MODULES,
    SD3_MAX_SEQUENCE_LENGTH,
    SD3_PRECONDITION_OUTPUTS,
    SD3_WEIGHTING_SCHEME,
    sd3_render_deviation,
)
from dreambench.reference_impl.sdxl import sdxl_render_deviation

if TYPE_CHECKING:
    import torch
    from diffusers import UNet2DConditionModel

    from dreambench.dataset.subject import Subject
    from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainResult
    from dreambench.reference_impl.flow_matching import FlowMatchObjective

LORA_WEIGHTS_FILE = "pytorch_lora_weights.safetensors"
"""diffusers' default LoRA file name (what ``load_lora_weights(folder)`` looks for)."""

# train_dreambooth_lora.py: LoraConfig(target_modules=["to_k", "to_q", "to_v", "to_out.0"]).
LORA_TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")

# train_dreambooth_lora_flux.py's default target_modules (used when --lora_layers is not given) on
# diffusers main: attention of both streams and the double-stream blocks' feed-forward layers.
# (The revision 5700e52 read for flux.py targeted only to_k/to_q/to_v/to_out.0; the current
# script's default is this list, as quoted in dreambench issue 21 and in later revisions of the script.)
FLUX_LORA_TARGET_MODULES = (
    "attn.to_k",
    "attn.to_q",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_k_proj",
    "attn.add_q_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)
TARGETS_OF_FAMILY = {
    "sd": LORA_TARGET_MODULES,
    "sdxl": LORA_TARGET_MODULES,
    "flux": FLUX_LORA_TARGET_MODULES,
    "sd3": SD3_LORA_TARGET_MODULES,
}
# The transformer class (transformer/config.json ``_class_name``) -> its default LoRA targets.
_TARGETS_OF_TRANSFORMER = {
    "FluxTransformer2DModel": FLUX_LORA_TARGET_MODULES,
    "SD3Transformer2DModel": SD3_LORA_TARGET_MODULES,
}

# Trainable parameters of a rank-4 attention LoRA on SD 1.5's UNet (lora_target_layers of a meta
# UNet with SD 1.5's config); the disk estimate's fallback when the base model is not available.
_SD15_RANK4_LORA_PARAMS = 797_184


class DreamBoothLoRA(DreamBooth):
    """DreamBooth (prior preservation) training only rank-``lora_rank`` LoRA adapters on the UNet."""

    name = "dreambooth-lora"
    weights_marker = LORA_WEIGHTS_FILE
    supports_sdxl = True

    @dataclass(frozen=True)
    class Config(DreamBooth.Config):
        """DreamBooth's fields (same meaning) plus the adapter rank.

        train_text_encoder must stay false: only the UNet gets adapters.
        """

        # train_dreambooth_lora.py --rank default; lora_alpha = rank (scale 1), as the script sets it.
        lora_rank: int = field(default=4, metadata=at_least(1))
        # Flow-matching bases (FLUX.1) only; train_dreambooth_lora_flux.py's argparse defaults:
        # --weighting_scheme=none (uniform timesteps, unweighted loss), --guidance_scale=3.5 (the
        # training guidance, used when the transformer has guidance embeddings),
        # --max_sequence_length=512 (T5 tokens).
        weighting_scheme: WeightingScheme = "none"
        training_guidance: float = field(default=FLUX_TRAINING_GUIDANCE, metadata=positive())
        max_sequence_length: int = field(default=FLUX_MAX_SEQUENCE_LENGTH, metadata=at_least(1))
        # SD3 only (train_dreambooth_lora_sd3.py --precondition_outputs): the prediction is
        # preconditioned to an estimate of the clean latents, the target is the clean latents.
        precondition_outputs: bool = False

        def check_combination(self) -> None:
            super().check_combination()
            if self.train_text_encoder:
                raise BenchError(
                    "train_text_encoder=True is out of range for dreambooth-lora (adapters go on the UNet only); "
                    "expected false"
                )

    PRESETS: dict[str, Config] = {
        # diffusers examples/dreambooth/README.md, "Training with Low-Rank Adaptation of Large
        # Language Models (LoRA)": --instance_prompt="a photo of sks dog" --resolution=512
        # --train_batch_size=1 --learning_rate=1e-4 --lr_scheduler=constant --lr_warmup_steps=0
        # --max_train_steps=500 (rank 4, the script's default). That command trains without prior
        # preservation; this method is DreamBooth *with* it, so the prior settings are those of the
        # README's DreamBooth prior-preservation command (the `dreambooth` method's diffusers preset):
        # --class_prompt="a photo of dog" --num_class_images=200 --prior_loss_weight=1.0 — which also
        # lets both methods share one class-prior cache.
        "diffusers": Config(
            **{**asdict(DreamBooth.PRESETS["diffusers"]), "train_steps": 500, "learning_rate": 1e-4}
        ),
        # dreambooth's smoke preset (embedded tiny-trained model on CPU, uncalibrated, 200 steps).
        # LoRA's B starts at zero and rank 4 moves few parameters, so it takes a larger step than
        # full fine-tuning to move the renders towards the subject in the same steps.
        "smoke": Config(**{**asdict(DreamBooth.PRESETS["smoke"]), "learning_rate": 1e-2}),
    }
    # The DreamBooth paper has no LoRA row, but `bench run --preset dreambooth` asks every method
    # for its "paper" preset: the paper's DreamBooth data side (rare-token identifier, "a [V]
    # [class]" prompts, 1000 class images: one class-prior cache and one prompt style with the
    # dreambooth row) trained with the diffusers LoRA recipe (lr 1e-4, 500 steps, rank 4).
    PRESETS["paper"] = Config(
        **{**asdict(DreamBooth.PRESETS["paper"]), "train_steps": 500, "learning_rate": 1e-4}
    )
    # SDXL base 1.0, as diffusers' examples/dreambooth/README_sdxl.md trains it
    # (https://github.com/huggingface/diffusers/blob/main/examples/dreambooth/README_sdxl.md):
    # --pretrained_model_name_or_path=stabilityai/stable-diffusion-xl-base-1.0
    # --instance_prompt="a photo of sks dog" --resolution=1024 --train_batch_size=1
    # --gradient_accumulation_steps=4 --learning_rate=1e-4 --lr_scheduler=constant
    # --lr_warmup_steps=0 --max_train_steps=500 --seed=0, no prior preservation ("without using
    # prior-preservation, we observed decent results", README_sdxl.md "Notes"). Batch 1 x 4
    # accumulated micro-batches = one step over 4 examples: train_batch_size=4 (each loss term is a
    # mean over equal-size micro-batches, so the gradient is the same mean). From
    # train_dreambooth_lora_sdxl.py's argparse defaults: --rank=4 (lora_alpha = rank),
    # --adam_weight_decay=1e-04 (not train_dreambooth.py's 1e-2), betas (0.9, 0.999), eps 1e-8,
    # --max_grad_norm=1.0, and for prior preservation when switched on (prior_preservation=true)
    # --num_class_images=100, --prior_loss_weight=1.0; class prompt in the README's style.
    # Resolution: the model's native 1024 px (render_deviation). mixed_precision: the README's
    # fp16 needs madebyollin/sdxl-vae-fp16-fix (SDXL's VAE overflows in fp16); bf16 autocast keeps
    # fp32's range with the stock VAE (docs/METHODS.md, known deviations).
    PRESETS["sdxl"] = Config(
        base_model=SDXL_REPO,
        identifier="sks",
        instance_prompt="a photo of {identifier} {class_noun}",
        class_prompt="a photo of {class_noun}",
        prior_preservation=False,
        num_class_images=100,
        prior_loss_weight=1.0,
        train_steps=500,
        learning_rate=1e-4,
        train_batch_size=4,
        adam_weight_decay=1e-4,
        lora_rank=4,
        mixed_precision="bf16",
    )

    # FLUX.1-dev, as diffusers' examples/dreambooth/README_flux.md trains it
    # (https://github.com/huggingface/diffusers/blob/main/examples/dreambooth/README_flux.md):
    # --pretrained_model_name_or_path=black-forest-labs/FLUX.1-dev --mixed_precision="bf16"
    # --instance_prompt="a photo of sks dog" --resolution=512 --train_batch_size=1
    # --guidance_scale=1 --gradient_accumulation_steps=4 --optimizer="prodigy" --learning_rate=1.
    # --lr_scheduler="constant" --lr_warmup_steps=0 --max_train_steps=500 --seed="0", no prior
    # preservation. Batch 1 x 4 accumulated = train_batch_size=4 (as for sdxl). From
    # train_dreambooth_lora_flux.py's argparse: --rank=4 (lora_alpha = rank), --adam_weight_decay=1e-04,
    # betas (0.9, 0.999), eps 1e-8, --max_grad_norm=1.0, --weighting_scheme=none,
    # --max_sequence_length=512. Deviations (docs/METHODS.md): AdamW at the script's default
    # --learning_rate=1e-4 instead of Prodigy at 1.0 (prodigyopt is not a dependency), and
    # training at the render resolution (FLUX.1's native 1024 px) instead of the README's 512.
    # The remaining values (identifier, prompts, steps, learning rate, batch, weight decay, rank,
    # bf16) are the ones the sdxl preset already takes from the same scripts' shared defaults.
    PRESETS["flux"] = replace(
        PRESETS["sdxl"],
        base_model=FLUX_REPO,
        weighting_scheme="none",
        training_guidance=1.0,
        max_sequence_length=FLUX_MAX_SEQUENCE_LENGTH,
    )

    # Stable Diffusion 3 medium, as diffusers' examples/dreambooth/README_sd3.md trains it ("LoRA +
    # DreamBooth"; https://github.com/huggingface/diffusers/blob/main/examples/dreambooth/README_sd3.md):
    # --pretrained_model_name_or_path=stabilityai/stable-diffusion-3-medium-diffusers
    # --mixed_precision="fp16" --instance_prompt="a photo of sks dog" --resolution=512
    # --train_batch_size=1 --gradient_accumulation_steps=4 --learning_rate=4e-4
    # --lr_scheduler="constant" --lr_warmup_steps=0 --max_train_steps=500 --seed="0", no prior
    # preservation. Batch 1 x 4 accumulated = train_batch_size=4 (as for sdxl). From
    # train_dreambooth_lora_sd3.py's argparse (huggingface/diffusers@32f85ed): --rank=4 (lora_alpha =
    # rank), --adam_weight_decay=1e-04, betas (0.9, 0.999), eps 1e-8, --max_grad_norm=1.0,
    # --num_class_images=100, --prior_loss_weight=1.0, --weighting_scheme=logit_normal (logit_mean 0,
    # logit_std 1), --precondition_outputs=1, --max_sequence_length=77 (reference_impl/sd3.py).
    # Deviation (docs/METHODS.md): training at the render resolution (SD3's native 1024 px) instead
    # of the README's 512, as for flux.
    PRESETS["sd3"] = replace(
        PRESETS["sdxl"],
        base_model=SD3_REPO,
        learning_rate=4e-4,
        mixed_precision="fp16",
        weighting_scheme=SD3_WEIGHTING_SCHEME,
        precondition_outputs=SD3_PRECONDITION_OUTPUTS,
        max_sequence_length=SD3_MAX_SEQUENCE_LENGTH,
    )

    def _declared_render_deviation(self) -> dict[str, object] | None:
        # On an SDXL, FLUX.1 or SD3 base the method renders at the model's native resolution (and
        # FLUX.1 and SD3 with their flow-matching sampler), not the preset's SD 1.x protocol:
        # declared per instance, since it follows from the configured base model.
        revision = self.config.base_revision or None
        return (
            flux_render_deviation(self.config.base_model, revision)
            or sd3_render_deviation(self.config.base_model, revision)
            or sdxl_render_deviation(self.config.base_model, revision)
        )

    def check_ready(self) -> None:
        """Fail now, before a run writes anything, if the base model cannot be found (one line);
        SD 1.x/2.x, SDXL, FLUX.1 and SD3 layouts are all trained."""
        from dreambench.reference_impl.base_model import locate_base_model, pipeline_class

        folder, _ = locate_base_model(self.config.base_model, self.config.base_revision)
        pipeline_class(folder, self.config.base_model, transformers_ok=True)

    def _train_and_save(
        self, base: Components, subject: Subject, weights_dir: Path
    ) -> tuple[str, TrainingData, TrainResult]:
        from dreambench.reference_impl.dreambooth_trainer import train_dreambooth

        identifier, data = self._training_data(base, subject)
        adapters = add_lora(base.denoiser, self.config.lora_rank, self.seed, TARGETS_OF_FAMILY[base.family])
        result = train_dreambooth(
            base,
            data,
            self.config,
            self.device,
            self.seed,
            subject_name=subject.name,
            trainable=adapters,
            objective=self._objective(base),
        )
        save_lora(weights_dir, base.denoiser, family=base.family)
        return identifier, data, result

    def _objective(self, base: Components) -> Callable[[list[str]], FlowMatchObjective] | None:
        """The flow-matching objective for a FLUX.1 or SD3 base (None: the trainer's noise prediction)."""
        from dreambench.reference_impl.base_model import FLOW_FAMILIES
        from dreambench.reference_impl.flow_matching import FlowMatchObjective, FlowMatchSettings

        if base.family not in FLOW_FAMILIES:
            return None
        settings = FlowMatchSettings(
            weighting_scheme=self.config.weighting_scheme,
            guidance=self.config.training_guidance,
            max_sequence_length=self.config.max_sequence_length,
            precondition_outputs=self.config.precondition_outputs,
        )
        return lambda prompts: FlowMatchObjective(base, prompts, settings, self.device)

    def _load_trained(self, workdir: Path) -> Components:
        from dreambench.reference_impl.base_model import quiet_loading
        from dreambench.reference_impl.dreambooth import WEIGHTS_DIR

        base = load_base_model(self.config.base_model, self.config.base_revision, self.device)
        with quiet_loading():
            # Stock diffusers loading; it injects the adapter into base.unet, which every later
            # base.pipeline() shares.
            base.pipeline().load_lora_weights(workdir / WEIGHTS_DIR, weight_name=LORA_WEIGHTS_FILE)
        return base

    def estimated_disk_bytes(self, subject: Subject, n_images: int) -> int:
        """Bytes of ``pytorch_lora_weights.safetensors``: rank x (in + out) fp32 values per adapted layer.

        Counted on a weightless ("meta") UNet built from the base model's config; SD 1.5's figure
        scaled by the rank if the base model is not available.
        """
        import json

        import torch
        from diffusers import UNet2DConditionModel

        from dreambench.reference_impl.base_model import locate_base_model

        rank = self.config.lora_rank
        try:
            folder, _ = locate_base_model(self.config.base_model, self.config.base_revision)
            transformer = (folder / "transformer" / "config.json").is_file()
            config = json.loads((folder / ("transformer" if transformer else "unet") / "config.json").read_text())
        except (BenchError, OSError):
            return _SD15_RANK4_LORA_PARAMS * rank // 4 * 4
        with torch.device("meta"):
            if transformer:
                import diffusers

                denoiser = getattr(diffusers, config["_class_name"]).from_config(config)
            else:
                denoiser = UNet2DConditionModel.from_config(config)
        targets = _TARGETS_OF_TRANSFORMER[config["_class_name"]] if transformer else LORA_TARGET_MODULES
        layers = [m for _, m in lora_target_layers(denoiser, targets)]
        # Two tensors (A, B) per layer; ~160 bytes of safetensors header per tensor name and shape.
        return sum(4 * rank * (m.in_features + m.out_features) + 2 * 160 for m in layers)


def lora_target_layers(
    unet: UNet2DConditionModel, targets: Sequence[str] = LORA_TARGET_MODULES
) -> list[tuple[str, torch.nn.Linear]]:
    """The denoiser's linear layers that get an adapter: names ending in one of ``targets``
    (peft's suffix matching of ``target_modules``)."""
    import torch

    return [
        (name, module)
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear) and name.endswith(tuple("." + t for t in targets))
    ]


def add_lora(
    unet: UNet2DConditionModel, rank: int, seed: int, targets: Sequence[str] = LORA_TARGET_MODULES
) -> list[torch.nn.Parameter]:
    """Add a trainable rank-``rank`` LoRA adapter (alpha = rank) on ``targets`` of the denoiser
    ``unet`` (a UNet, or FLUX.1's transformer); return its parameters.

    peft's "gaussian" init draws A from the global torch RNG, so it is seeded here (and the caller's
    RNG state restored): the same seed gives the same adapter.
    """
    import torch
    from peft import LoraConfig

    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights="gaussian",
        target_modules=list(targets),
    )
    devices = [unet.device] if unet.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        unet.add_adapter(config)
    params = [p for name, p in unet.named_parameters() if "lora_" in name]
    for param in params:
        param.requires_grad_(True)
    return params


def save_lora(weights_dir: Path, unet: UNet2DConditionModel, family: str = "sd") -> None:
    """Write ``weights_dir/pytorch_lora_weights.safetensors`` in diffusers' format, atomically.

    As train_dreambooth_lora.py: ``convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))``
    through ``StableDiffusionLoraLoaderMixin.save_lora_weights`` (family "sdxl": through
    ``StableDiffusionXLPipeline.save_lora_weights``, as train_dreambooth_lora_sdxl.py), plus the
    peft config as adapter metadata (so rank and alpha load exactly). Keys: ``unet.<module>.lora.{down,up}.weight``.
    FLUX.1 (``family="flux"``): ``FluxPipeline.save_lora_weights(transformer_lora_layers=
    get_peft_model_state_dict(transformer))`` as train_dreambooth_lora_flux.py; keys
    ``transformer.<module>.lora_{A,B}.weight``. SD3 (``family="sd3"``): the same through
    ``StableDiffusion3Pipeline.save_lora_weights``, as train_dreambooth_lora_sd3.py.
    """
    from diffusers import (
        FluxPipeline,
        StableDiffusion3Pipeline,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    metadata = unet.peft_config["default"].to_dict()
    if family in ("flux", "sd3"):
        layers = get_peft_model_state_dict(unet)
        save = functools.partial(
            FluxPipeline.save_lora_weights if family == "flux" else StableDiffusion3Pipeline.save_lora_weights,
            transformer_lora_layers=layers,
            transformer_lora_adapter_metadata=metadata,
        )
    else:
        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
        pipeline = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
        save = functools.partial(
            pipeline.save_lora_weights, unet_lora_layers=layers, unet_lora_adapter_metadata=metadata
        )
    # diffusers writes into a folder; only its one file is kept. The folder has a temp name
    # (bench/atomic.py) so a kill mid-save leaves nothing the subject's sweep does not recognise.
    tmp = weights_dir / temp_name("lora-save")
    tmp.mkdir()
    try:
        save(str(tmp), safe_serialization=True)
        os.replace(tmp / LORA_WEIGHTS_FILE, weights_dir / LORA_WEIGHTS_FILE)
        fsync_directory(weights_dir)
    finally:
        remove_entry(tmp)

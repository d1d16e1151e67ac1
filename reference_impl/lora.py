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

LoRA is not part of the DreamBooth paper,
so the ``paper`` preset is the paper's data side (identifier, prompts, class images) trained with
the diffusers LoRA recipe (see ``PRESETS``); like every method it renders with the run preset's
sampler.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.atomic import fsync_directory, remove_entry, temp_name
from dreambench.errors import BenchError
from dreambench.reference_impl.base_method import require_sampler
from dreambench.reference_impl.base_model import SDXL_REPO, Components, load_base_model
from dreambench.reference_impl.checked_settings import at_least
from dreambench.reference_impl.dreambooth import DreamBooth, build_training_data
from dreambench.reference_impl.identifier import choose_identifier
from dreambench.reference_impl.sdxl import sdxl_render_deviation

if TYPE_CHECKING:
    import torch
    from diffusers import UNet2DConditionModel

    from dreambench.dataset.subject import Subject
    from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainResult

LORA_WEIGHTS_FILE = "pytorch_lora_weights.safetensors"
"""diffusers' default LoRA file name (what ``load_lora_weights(folder)`` looks for)."""

# train_dreambooth_lora.py: LoraConfig(target_modules=["to_k", "to_q", "to_v", "to_out.0"]).
LORA_TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")

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
        # dreambooth's smoke preset (embedded tiny model on CPU, uncalibrated). LoRA's B starts at
        # zero, so the random model needs a larger step than full fine-tuning to move in 40 steps.
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

    def _declared_render_deviation(self) -> dict[str, object] | None:
        # On an SDXL base the method renders at SDXL's native resolution, not the preset's (which
        # is SD 1.x's): declared per instance, since it follows from the configured base model.
        return sdxl_render_deviation(self.config.base_model, self.config.base_revision or None)

    def _train_and_save(
        self, base: Components, subject: Subject, weights_dir: Path
    ) -> tuple[str, TrainingData, TrainResult]:
        from dreambench.reference_impl.dreambooth_trainer import train_dreambooth

        identifier = choose_identifier(self.config.identifier, base.tokenizer, subject.name)
        data = build_training_data(
            base, subject, identifier, self.config, require_sampler(self.sampler, self.name), self.device, self.seed
        )
        adapters = add_lora(base.unet, self.config.lora_rank, self.seed)
        result = train_dreambooth(
            base,
            data,
            self.config,
            self.device,
            self.seed,
            subject_name=subject.name,
            trainable=adapters,
        )
        save_lora(weights_dir, base.unet, sdxl=base.is_sdxl)
        return identifier, data, result

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
            unet_config = json.loads((folder / "unet" / "config.json").read_text())
        except (BenchError, OSError):
            return _SD15_RANK4_LORA_PARAMS * rank // 4 * 4
        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(unet_config)
        layers = [m for _, m in lora_target_layers(unet)]
        # Two tensors (A, B) per layer; ~160 bytes of safetensors header per tensor name and shape.
        return sum(4 * rank * (m.in_features + m.out_features) + 2 * 160 for m in layers)


def lora_target_layers(unet: UNet2DConditionModel) -> list[tuple[str, torch.nn.Linear]]:
    """The UNet's linear layers that get an adapter: names ending in one of ``LORA_TARGET_MODULES``."""
    import torch

    return [
        (name, module)
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear) and name.endswith(tuple("." + t for t in LORA_TARGET_MODULES))
    ]


def add_lora(unet: UNet2DConditionModel, rank: int, seed: int) -> list[torch.nn.Parameter]:
    """Add a trainable rank-``rank`` LoRA adapter (alpha = rank) to ``unet``; return its parameters.

    peft's "gaussian" init draws A from the global torch RNG, so it is seeded here (and the caller's
    RNG state restored): the same seed gives the same adapter.
    """
    import torch
    from peft import LoraConfig

    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights="gaussian",
        target_modules=list(LORA_TARGET_MODULES),
    )
    devices = [unet.device] if unet.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        unet.add_adapter(config)
    params = [p for name, p in unet.named_parameters() if "lora_" in name]
    for param in params:
        param.requires_grad_(True)
    return params


def save_lora(weights_dir: Path, unet: UNet2DConditionModel, sdxl: bool = False) -> None:
    """Write ``weights_dir/pytorch_lora_weights.safetensors`` in diffusers' format, atomically.

    As train_dreambooth_lora.py: ``convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))``
    through ``StableDiffusionLoraLoaderMixin.save_lora_weights`` (``sdxl``: through
    ``StableDiffusionXLPipeline.save_lora_weights``, as train_dreambooth_lora_sdxl.py), plus the
    peft config as adapter metadata (so rank and alpha load exactly). Keys: ``unet.<module>.lora.{down,up}.weight``.
    """
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    metadata = unet.peft_config["default"].to_dict()
    # diffusers writes into a folder; only its one file is kept. The folder has a temp name
    # (bench/atomic.py) so a kill mid-save leaves nothing the subject's sweep does not recognise.
    tmp = weights_dir / temp_name("lora-save")
    tmp.mkdir()
    try:
        (StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline).save_lora_weights(
            str(tmp), unet_lora_layers=layers, unet_lora_adapter_metadata=metadata, safe_serialization=True
        )
        os.replace(tmp / LORA_WEIGHTS_FILE, weights_dir / LORA_WEIGHTS_FILE)
        fsync_directory(weights_dir)
    finally:
        remove_entry(tmp)

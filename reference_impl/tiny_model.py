"""The embedded tiny Stable Diffusion: random weights, real tokenizer, trainable on a laptop CPU.

``ensure_tiny_model(seed)`` builds (once) a seeded random-init ``UNet2DConditionModel``,
``AutoencoderKL`` and ``CLIPTextModel`` plus the *real* CLIP BPE tokenizer (built from the vocabulary
that ships inside open_clip, so identifiers such as "sks" and class nouns tokenize exactly as they do
for Stable Diffusion), and saves them as a standard diffusers folder::

    <cache_root>/models/tiny-sd-seed<seed>/
        model_index.json  unet/  vae/  text_encoder/  tokenizer/  scheduler/

It is then loaded through the same ``from_pretrained`` path as real weights; e.g.
``StableDiffusionPipeline.from_pretrained(folder)`` works. The weights are random, so everything
the tiny model produces is *uncalibrated*: it exercises the whole benchmark loop (train, render,
score, leaderboard) in seconds, it says nothing about image quality.

Sizing (the smoke benchmark trains and renders 30 subjects in minutes on a 2-core CPU): 32 px
images, a 3-level VAE (32 px -> 8x8x4 latents, scale factor 4), a 2-level UNet with 32/64 channels
and one cross-attention level (~1M parameters), a 2-layer text encoder of width 32 over the full
49,408-token CLIP vocabulary. On CPU such a model is bound by per-op overhead, not FLOPs: a training
step (1 instance + 1 class latent) takes ~60 ms and an image (8 DDIM steps with CFG, batches of 50)
~20 ms on 2 cores (docs/DREAMBOOTH.md, tests/benchmarks/test_bench_train.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.atomic import atomic_directory
from dreambench.cache_root import cache_root
from dreambench.metrics.convert import write_clip_tokenizer

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

TINY_MODEL_ID = "tiny"
"""The base-model reference that selects this model (``base_model="tiny"`` in a method's config)."""

TINY_RESOLUTION = 32
"""Native image size of the tiny model, in pixels."""

# Bump when the architecture or the build changes: the folder name carries it, so an old cache is
# never mistaken for the new model.
_BUILD_VERSION = 1

# Stable Diffusion v1.x noise schedule (scheduler/scheduler_config.json of SD 1.5), so the tiny model
# trains and samples on the same schedule as the real one.
SD_SCHEDULER_CONFIG: dict[str, object] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

# CLIP's BPE: 256 byte symbols, the same with "</w>", 48,894 merges, <|startoftext|>, <|endoftext|>
# = 49,408 ids (the count transformers' CLIPTokenizer and Stable Diffusion's text encoder use).
CLIP_VOCAB_SIZE = 49408


def tiny_model_folder(seed: int = 0) -> Path:
    """Where ``ensure_tiny_model(seed)`` keeps its folder (it may not exist yet)."""
    return cache_root() / "models" / f"tiny-sd-v{_BUILD_VERSION}-seed{seed}"


def ensure_tiny_model(seed: int = 0) -> Path:
    """Build the tiny model for ``seed`` unless it already exists; return its diffusers folder.

    The folder is built in a temporary sibling and renamed into place, so a reader (or a second
    process building concurrently) never sees half a model. ``model_index.json`` is the done marker.
    """
    folder = tiny_model_folder(seed)
    if (folder / "model_index.json").is_file():
        return folder
    # replace=False: if another process won the race, its folder is equivalent (same seed, same build).
    with atomic_directory(folder, replace=False) as tmp:
        _build(tmp, seed)
    return folder


def _build(folder: Path, seed: int) -> None:
    import torch
    from transformers import CLIPTokenizer

    write_clip_tokenizer(folder / "tokenizer")  # the real CLIP BPE vocabulary, as SD v1 uses
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    # fork_rng: seed the initialisation without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet, vae, text_encoder = build_tiny_modules(tokenizer)
    provenance = {
        "model": "dreambench tiny Stable Diffusion (random init)",
        "seed": seed,
        "build_version": _BUILD_VERSION,
        "calibrated": False,
    }
    save_tiny_folder(folder, unet, vae, text_encoder, tokenizer, provenance)


def build_tiny_modules(
    tokenizer: CLIPTokenizer, vae_scaling_factor: float = 0.18215
) -> tuple[UNet2DConditionModel, AutoencoderKL, CLIPTextModel]:
    """The tiny model's UNet, VAE and text encoder, freshly initialised from torch's global RNG.

    The architecture of ``tiny`` and of ``tiny-trained`` (reference_impl/tiny_trained.py), which
    loads its trained weights into these modules.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=16,
    )
    vae = AutoencoderKL(
        sample_size=TINY_RESOLUTION,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=16,
        scaling_factor=vae_scaling_factor,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=CLIP_VOCAB_SIZE,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    return unet, vae, text_encoder


def save_tiny_folder(
    folder: Path,
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    provenance: dict[str, object],
) -> None:
    """Write the modules as a Stable Diffusion diffusers folder, plus ``dreambench_tiny.json``."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    scheduler = PNDMScheduler.from_config(SD_SCHEDULER_CONFIG)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    from dreambench.reference_impl.base_model import quiet_loading  # imports this module

    with quiet_loading():  # no progress bars on stderr: a run's errors stay one line
        pipe.save_pretrained(folder, safe_serialization=True)
    # save_pretrained rewrites tokenizer/ in transformers' own format; put the SD-style files back
    # next to it so the folder reads like a real Stable Diffusion checkout.
    write_clip_tokenizer(folder / "tokenizer")  # the real CLIP BPE vocabulary, as SD v1 uses
    (folder / "dreambench_tiny.json").write_text(json.dumps(provenance, indent=2) + "\n")

"""The embedded tiny Stable Diffusion XL: random weights, SDXL's layout, trainable on a laptop CPU.

``ensure_tiny_sdxl(seed)`` builds (once) a seeded random-init SDXL in the layout of
``stabilityai/stable-diffusion-xl-base-1.0`` and saves it as a standard diffusers folder::

    <cache_root>/models/tiny-sdxl-v<build>-seed<seed>/
        model_index.json  unet/  vae/  text_encoder/  text_encoder_2/  tokenizer/  tokenizer_2/  scheduler/

What makes it an SDXL and not a small SD 1.5 (each as in SDXL base 1.0's configs):

* two text encoders: ``CLIPTextModel`` (``text_encoder``) and ``CLIPTextModelWithProjection``
  (``text_encoder_2``), whose penultimate hidden states are concatenated into the UNet's
  cross-attention input (so ``cross_attention_dim`` = width 1 + width 2) and whose projected
  pooled output is the UNet's extra ``text_embeds`` input;
* both tokenizers are the *real* CLIP BPE (reference_impl/tiny_model.py's, built from open_clip's
  vocabulary); ``tokenizer_2`` pads with "!" as SDXL's second tokenizer does;
* the UNet has ``addition_embed_type="text_time"``: it also takes the 6 micro-conditioning numbers
  (original size, crop top-left, target size), each through a sinusoidal embedding of width
  ``addition_time_embed_dim``, concatenated with the pooled text embedding
  (``projection_class_embeddings_input_dim`` = 6 x 8 + 32); linear attention projections;
* a 4-level VAE (scale factor 8, SDXL's), with SDXL's latent scaling factor 0.13025;
* an Euler scheduler on the Stable Diffusion noise schedule (SDXL keeps SD's betas).

It is loaded through the same ``from_pretrained`` path as real weights:
``StableDiffusionXLPipeline.from_pretrained(folder)`` works. Uncalibrated: random weights say
nothing about image quality; the model exists so the SDXL code paths (conditioning, LoRA save and
stock load, rendering) run end to end in the tests in seconds.

Sizing: 64 px images (8x8 latents, the same UNet work as the tiny SD's 32 px at VAE factor 4), a
2-level UNet with 32/64 channels and one cross-attention level, two 2-layer text encoders of
width 32 over the full 49,408-token CLIP vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

from dreambench.atomic import atomic_directory
from dreambench.cache_root import cache_root
from dreambench.metrics.convert import write_clip_tokenizer
from dreambench.reference_impl.tiny_model import CLIP_VOCAB_SIZE, SD_SCHEDULER_CONFIG

TINY_SDXL_ID = "tiny-sdxl"
"""The base-model reference that selects this model (``base_model="tiny-sdxl"``)."""

TINY_SDXL_RESOLUTION = 64
"""Native image size of the tiny SDXL, in pixels (UNet sample_size 8 x VAE factor 8)."""

# Bump when the architecture or the build changes: the folder name carries it.
_BUILD_VERSION = 1

# SDXL base 1.0's scheduler/scheduler_config.json is an EulerDiscreteScheduler on the SD v1 noise
# schedule with "leading" timestep spacing
# (https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/scheduler/scheduler_config.json).
SDXL_SCHEDULER_CONFIG: dict[str, object] = {
    **SD_SCHEDULER_CONFIG,
    "interpolation_type": "linear",
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}

# SDXL base 1.0's vae/config.json scaling_factor (differs from SD 1.5's 0.18215).
SDXL_VAE_SCALING_FACTOR = 0.13025

_TEXT_WIDTH = 32  # each text encoder's hidden size; cross-attention sees 2 x 32
_TIME_EMBED_DIM = 8  # addition_time_embed_dim (SDXL: 256)


def tiny_sdxl_folder(seed: int = 0) -> Path:
    """Where ``ensure_tiny_sdxl(seed)`` keeps its folder (it may not exist yet)."""
    return cache_root() / "models" / f"tiny-sdxl-v{_BUILD_VERSION}-seed{seed}"


def ensure_tiny_sdxl(seed: int = 0) -> Path:
    """Build the tiny SDXL for ``seed`` unless it already exists; return its diffusers folder.

    Built in a temporary sibling and renamed into place (``model_index.json`` is the done marker),
    so a reader or a concurrent builder never sees half a model.
    """
    folder = tiny_sdxl_folder(seed)
    if (folder / "model_index.json").is_file():
        return folder
    with atomic_directory(folder, replace=False) as tmp:
        _build(tmp, seed)
    return folder


def _write_tokenizer_2(dst: Path) -> None:
    """The real CLIP BPE with SDXL tokenizer_2's padding token "!" (id 0) instead of <|endoftext|>."""
    from transformers import CLIPTokenizer

    write_clip_tokenizer(dst)
    CLIPTokenizer.from_pretrained(str(dst), pad_token="!").save_pretrained(str(dst))


def _build(folder: Path, seed: int) -> None:
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    write_clip_tokenizer(folder / "tokenizer")
    _write_tokenizer_2(folder / "tokenizer_2")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    tokenizer_2 = CLIPTokenizer.from_pretrained(folder / "tokenizer_2")

    def text_config(pad_token_id: int) -> CLIPTextConfig:
        return CLIPTextConfig(
            vocab_size=CLIP_VOCAB_SIZE,
            hidden_size=_TEXT_WIDTH,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=_TEXT_WIDTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad_token_id,
        )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=TINY_SDXL_RESOLUTION // 8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=2 * _TEXT_WIDTH,
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=_TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=6 * _TIME_EMBED_DIM + _TEXT_WIDTH,
            norm_num_groups=16,
        )
        vae = AutoencoderKL(
            sample_size=TINY_SDXL_RESOLUTION,
            in_channels=3,
            out_channels=3,
            block_out_channels=(16, 16, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=16,
            scaling_factor=SDXL_VAE_SCALING_FACTOR,
        )
        text_encoder = CLIPTextModel(text_config(tokenizer.pad_token_id))
        text_encoder_2 = CLIPTextModelWithProjection(text_config(tokenizer_2.pad_token_id))
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
        add_watermarker=False,
    )
    from dreambench.reference_impl.base_model import quiet_loading  # imports this module

    with quiet_loading():
        pipe.save_pretrained(folder, safe_serialization=True)
    # save_pretrained rewrites the tokenizer folders in transformers' own format; put the
    # SDXL-style files back so the folder reads like a real SDXL checkout.
    write_clip_tokenizer(folder / "tokenizer")
    _write_tokenizer_2(folder / "tokenizer_2")
    provenance = {
        "model": "dreambench tiny Stable Diffusion XL (random init)",
        "seed": seed,
        "build_version": _BUILD_VERSION,
        "calibrated": False,
    }
    (folder / "dreambench_tiny.json").write_text(json.dumps(provenance, indent=2) + "\n")

"""The embedded tiny Stable Diffusion 3: random weights, SD3 medium's layout, trainable on a laptop CPU.

``ensure_tiny_sd3(seed)`` builds (once) a seeded random-init model in the layout of
``stabilityai/stable-diffusion-3-medium-diffusers`` and saves it as a standard diffusers folder::

    <cache_root>/models/tiny-sd3-v<build>-seed<seed>/
        model_index.json  transformer/  vae/  text_encoder/  text_encoder_2/  text_encoder_3/
        tokenizer/  tokenizer_2/  tokenizer_3/  scheduler/

What makes it an SD3 (each as in SD3 medium's configs):

* an ``SD3Transformer2DModel`` (MMDiT with joint attention over image patches and text tokens,
  learned 2-D position embeddings, timestep + pooled-text conditioning);
* ``text_encoder`` and ``text_encoder_2``: two ``CLIPTextModelWithProjection`` (CLIP L/14 and
  OpenCLIP bigG/14 in SD3): their penultimate hidden states, concatenated and zero-padded to T5's
  width, are the first 77 + 77 context tokens; their projected pooled outputs, concatenated, are
  ``pooled_projections`` (so ``pooled_projection_dim`` = 2 x the projection width). Both
  tokenizers are the *real* CLIP BPE (reference_impl/tiny_model.py's); ``tokenizer_2`` pads with
  "!" as the bigG tokenizer does (reference_impl/tiny_sdxl.py);
* ``text_encoder_3``: a T5 v1.1 encoder whose hidden states follow the CLIP tokens
  (``joint_attention_dim`` = T5's width), with the offline tokenizer of reference_impl/tiny_t5.py;
* an ``AutoencoderKL`` without quant convs, with SD3's latent ``shift_factor`` and ``scaling_factor``;
* SD3 medium's ``FlowMatchEulerDiscreteScheduler`` config (shift 3.0, no dynamic shifting).

Sizes: diffusers' own SD3 LoRA tests (tests/lora/test_lora_layers_sd3.py: ``sample_size`` 32,
``patch_size`` 1, 4 latent channels, 1 layer, 4 heads of 8, ``caption_projection_dim`` 32,
``pooled_projection_dim`` 64, a one-level VAE with 4 channels) with one change: the T5 encoder is
64 wide and ``joint_attention_dim`` 64, so the two 32-wide CLIP streams (64 together) are padded to
T5's width, as SD3 medium pads 768 + 1280 to 4096, instead of cut to it. 32 px images, 32 x 32 = 1024
image tokens. ``StableDiffusion3Pipeline.from_pretrained(folder)`` loads it. Uncalibrated: the
model exists so the SD3 code paths (flow-matching training, LoRA save and stock load, rendering)
run end to end in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from dreambench.atomic import atomic_directory
from dreambench.cache_root import cache_root
from dreambench.metrics.convert import write_clip_tokenizer
from dreambench.reference_impl.tiny_flux import tiny_clip_text_config
from dreambench.reference_impl.tiny_sdxl import _write_tokenizer_2
from dreambench.reference_impl.tiny_t5 import tiny_t5_encoder, write_t5_tokenizer

TINY_SD3_ID = "tiny-sd3"
"""The base-model reference that selects this model (``base_model="tiny-sd3"``)."""

TINY_SD3_RESOLUTION = 32
"""Native image size of the tiny SD3, in pixels (the smoke protocol's; VAE factor 1)."""

_BUILD_VERSION = 1

# stabilityai/stable-diffusion-3-medium-diffusers scheduler/scheduler_config.json.
SD3_SCHEDULER_CONFIG: dict[str, object] = {"num_train_timesteps": 1000, "shift": 3.0}

# stabilityai/stable-diffusion-3-medium-diffusers vae/config.json.
SD3_VAE_SCALING_FACTOR = 1.5305
SD3_VAE_SHIFT_FACTOR = 0.0609

_T5_WIDTH = 64  # = joint_attention_dim; the two CLIP encoders are 32 wide each (pooled: 2 x 32)


def tiny_sd3_folder(seed: int = 0) -> Path:
    """Where ``ensure_tiny_sd3(seed)`` keeps its folder (it may not exist yet)."""
    return cache_root() / "models" / f"tiny-sd3-v{_BUILD_VERSION}-seed{seed}"


def ensure_tiny_sd3(seed: int = 0) -> Path:
    """Build the tiny SD3 for ``seed`` unless it already exists; return its diffusers folder.

    Built in a temporary sibling and renamed into place (``model_index.json`` is the done marker).
    """
    folder = tiny_sd3_folder(seed)
    if (folder / "model_index.json").is_file():
        return folder
    with atomic_directory(folder, replace=False) as tmp:
        _build(tmp, seed)
    return folder


def _build(folder: Path, seed: int) -> None:
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5Tokenizer

    write_clip_tokenizer(folder / "tokenizer")
    _write_tokenizer_2(folder / "tokenizer_2")
    vocab_size = write_t5_tokenizer(folder / "tokenizer_3")
    tokenizer_2 = CLIPTokenizer.from_pretrained(folder / "tokenizer_2")
    clip_config = tiny_clip_text_config(folder / "tokenizer")
    clip_config_2 = tiny_clip_text_config(folder / "tokenizer")
    clip_config_2.pad_token_id = tokenizer_2.pad_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=TINY_SD3_RESOLUTION,
            patch_size=1,
            in_channels=4,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=4,
            caption_projection_dim=32,
            joint_attention_dim=_T5_WIDTH,
            pooled_projection_dim=2 * clip_config.projection_dim,
            out_channels=4,
        )
        vae = AutoencoderKL(
            sample_size=TINY_SD3_RESOLUTION,
            in_channels=3,
            out_channels=3,
            block_out_channels=(4,),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=1,
            scaling_factor=SD3_VAE_SCALING_FACTOR,
            shift_factor=SD3_VAE_SHIFT_FACTOR,
            use_quant_conv=False,
            use_post_quant_conv=False,
        )
        text_encoder = CLIPTextModelWithProjection(clip_config)
        text_encoder_2 = CLIPTextModelWithProjection(clip_config_2)
        text_encoder_3 = tiny_t5_encoder(vocab_size, _T5_WIDTH)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(SD3_SCHEDULER_CONFIG),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=T5Tokenizer.from_pretrained(folder / "tokenizer_3"),
    )
    from dreambench.reference_impl.base_model import quiet_loading  # imports this module

    with quiet_loading():
        pipe.save_pretrained(folder, safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer")
    _write_tokenizer_2(folder / "tokenizer_2")
    provenance = {
        "model": "dreambench tiny Stable Diffusion 3 (random init)",
        "seed": seed,
        "build_version": _BUILD_VERSION,
        "calibrated": False,
    }
    (folder / "dreambench_tiny.json").write_text(json.dumps(provenance, indent=2) + "\n")

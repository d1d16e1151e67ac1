"""The embedded tiny FLUX.1: random weights, FLUX.1-dev's layout, trainable on a laptop CPU.

``ensure_tiny_flux(seed)`` builds (once) a seeded random-init model in the layout of
``black-forest-labs/FLUX.1-dev`` and saves it as a standard diffusers folder::

    <cache_root>/models/tiny-flux-v<build>-seed<seed>/
        model_index.json  transformer/  vae/  text_encoder/  text_encoder_2/  tokenizer/  tokenizer_2/  scheduler/

What makes it a FLUX.1 (each as in FLUX.1-dev's configs):

* a ``FluxTransformer2DModel`` (MMDiT: one double-stream and one single-stream block here) over
  2x2-packed latents, with rotary position ids (``axes_dims_rope`` summing to the head width) and
  guidance embeddings (``guidance_embeds=True``: FLUX.1-dev is guidance-distilled);
* ``text_encoder``: a CLIP text model whose pooled output is the ``pooled_projections`` input,
  with the *real* CLIP BPE tokenizer (reference_impl/tiny_model.py's);
* ``text_encoder_2``: a T5 v1.1 encoder whose hidden states are the ``encoder_hidden_states``,
  with an offline tokenizer padding to 512 tokens (reference_impl/tiny_t5.py);
* an ``AutoencoderKL`` without quant convs, with FLUX.1's latent ``shift_factor`` and
  ``scaling_factor``;
* FLUX.1-dev's ``FlowMatchEulerDiscreteScheduler`` config (shift 3.0, dynamic shifting by the
  image's sequence length).

The transformer's sizes are those of diffusers' own FLUX LoRA tests (patch_size 1,
attention_head_dim 16, 2 heads, joint/pooled dims 32, axes_dims_rope (4, 4, 8)), with 4 latent
channels (16 packed) and a 2-level VAE (factor 2): 32 px images, 8 x 8 = 64 image tokens.
``FluxPipeline.from_pretrained(folder)`` loads it. Uncalibrated: the model exists so the FLUX code
paths (flow-matching training, LoRA save and stock load, rendering) run end to end in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from dreambench.atomic import atomic_directory
from dreambench.cache_root import cache_root
from dreambench.metrics.convert import write_clip_tokenizer
from dreambench.reference_impl.tiny_model import CLIP_VOCAB_SIZE
from dreambench.reference_impl.tiny_t5 import tiny_t5_encoder, write_t5_tokenizer

TINY_FLUX_ID = "tiny-flux"
"""The base-model reference that selects this model (``base_model="tiny-flux"``)."""

TINY_FLUX_RESOLUTION = 32
"""Native image size of the tiny FLUX.1, in pixels (the smoke protocol's)."""

_BUILD_VERSION = 1

# black-forest-labs/FLUX.1-dev scheduler/scheduler_config.json.
FLUX_SCHEDULER_CONFIG: dict[str, object] = {
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
}

# black-forest-labs/FLUX.1-dev vae/config.json.
FLUX_VAE_SCALING_FACTOR = 0.3611
FLUX_VAE_SHIFT_FACTOR = 0.1159

_WIDTH = 32  # CLIP and T5 hidden sizes = pooled_projection_dim = joint_attention_dim


def tiny_flux_folder(seed: int = 0) -> Path:
    """Where ``ensure_tiny_flux(seed)`` keeps its folder (it may not exist yet)."""
    return cache_root() / "models" / f"tiny-flux-v{_BUILD_VERSION}-seed{seed}"


def ensure_tiny_flux(seed: int = 0) -> Path:
    """Build the tiny FLUX.1 for ``seed`` unless it already exists; return its diffusers folder.

    Built in a temporary sibling and renamed into place (``model_index.json`` is the done marker).
    """
    folder = tiny_flux_folder(seed)
    if (folder / "model_index.json").is_file():
        return folder
    with atomic_directory(folder, replace=False) as tmp:
        _build(tmp, seed)
    return folder


def tiny_clip_text_config(tokenizer_dir: Path, with_projection: bool = False) -> object:
    """The tiny CLIP text encoder's config (2 layers, width 32, full CLIP vocabulary)."""
    from transformers import CLIPTextConfig, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=_WIDTH,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=_WIDTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _build(folder: Path, seed: int) -> None:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, CLIPTokenizer, T5Tokenizer

    write_clip_tokenizer(folder / "tokenizer")
    vocab_size = write_t5_tokenizer(folder / "tokenizer_2")
    clip_config = tiny_clip_text_config(folder / "tokenizer")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=16,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=_WIDTH,
            pooled_projection_dim=_WIDTH,
            guidance_embeds=True,
            axes_dims_rope=(4, 4, 8),
        )
        vae = AutoencoderKL(
            sample_size=TINY_FLUX_RESOLUTION,
            in_channels=3,
            out_channels=3,
            block_out_channels=(16, 32),
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=16,
            scaling_factor=FLUX_VAE_SCALING_FACTOR,
            shift_factor=FLUX_VAE_SHIFT_FACTOR,
            use_quant_conv=False,
            use_post_quant_conv=False,
        )
        text_encoder = CLIPTextModel(clip_config)
        text_encoder_2 = tiny_t5_encoder(vocab_size, _WIDTH)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLUX_SCHEDULER_CONFIG),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder_2=text_encoder_2,
        tokenizer_2=T5Tokenizer.from_pretrained(folder / "tokenizer_2"),
        transformer=transformer,
    )
    from dreambench.reference_impl.base_model import quiet_loading  # imports this module

    with quiet_loading():
        pipe.save_pretrained(folder, safe_serialization=True)
    write_clip_tokenizer(folder / "tokenizer")
    provenance = {
        "model": "dreambench tiny FLUX.1 (random init)",
        "seed": seed,
        "build_version": _BUILD_VERSION,
        "calibrated": False,
    }
    (folder / "dreambench_tiny.json").write_text(json.dumps(provenance, indent=2) + "\n")

"""What FLUX.1 needs beyond Stable Diffusion: its text conditioning, its packed latents and its
guidance input, as diffusers' examples/dreambooth/train_dreambooth_lora_flux.py feeds the
transformer (read at huggingface/diffusers@5700e527572620146139a8508711c929ed4d4e92).

* ``encoder_hidden_states``: T5's last hidden states of the prompt padded to
  ``max_sequence_length`` (512) tokens; ``pooled_projections``: CLIP's pooled output (77 tokens);
  ``txt_ids``: zeros [L, 3]. ``encode_prompts`` calls ``FluxPipeline.encode_prompt``, the function
  the script's ``encode_prompt`` mirrors and the one rendering uses.
* latents [B, C, h, w] are packed into 2 x 2 patches, [B, h/2 * w/2, 4C], with positional ids
  ``_prepare_latent_image_ids``; the prediction is unpacked back (``_pack_latents`` /
  ``_unpack_latents``).
* ``timestep`` is the flow-matching time in [0, 1] (the scheduler's timestep / 1000);
  ``guidance`` is the training guidance (``--guidance_scale``, default 3.5), passed only when the
  transformer has guidance embeddings (FLUX.1-dev does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from dreambench.reference_impl.base_model import Components

# train_dreambooth_lora_flux.py --max_sequence_length default (FluxPipeline's too).
FLUX_MAX_SEQUENCE_LENGTH = 512
# train_dreambooth_lora_flux.py --guidance_scale default ("the FLUX.1 dev variant is a guidance distilled model").
FLUX_TRAINING_GUIDANCE = 3.5


def encode_prompts(
    base: Components, prompts: Sequence[str], device: str, max_sequence_length: int = FLUX_MAX_SEQUENCE_LENGTH
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(prompt_embeds [N, L, d_t5], pooled [N, d_clip], text_ids [L, 3])`` of ``prompts`` (no gradients)."""
    import torch

    with torch.no_grad():
        embeds, pooled, text_ids = base.pipeline().encode_prompt(
            list(prompts), prompt_2=None, device=torch.device(device), max_sequence_length=max_sequence_length
        )
    return embeds, pooled, text_ids


def predict(
    transformer: Any,
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
    conditioning: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    rows: torch.Tensor,
    guidance: float,
) -> torch.Tensor:
    """The transformer's velocity prediction for ``noisy`` latents [B, C, h, w] (unpacked, same shape).

    ``conditioning`` is ``encode_prompts``' output; ``rows`` picks each example's prompt row.
    """
    import torch
    from diffusers import FluxPipeline

    embeds, pooled, text_ids = conditioning
    bsz, channels, height, width = noisy.shape
    image_ids = FluxPipeline._prepare_latent_image_ids(bsz, height // 2, width // 2, noisy.device, noisy.dtype)
    packed = FluxPipeline._pack_latents(noisy, bsz, channels, height, width)
    guidance_input = (
        torch.full((bsz,), guidance, device=noisy.device) if transformer.config.guidance_embeds else None
    )
    pred = transformer(
        hidden_states=packed,
        timestep=timesteps / 1000,
        guidance=guidance_input,
        pooled_projections=pooled[rows],
        encoder_hidden_states=embeds[rows],
        txt_ids=text_ids,
        img_ids=image_ids,
        return_dict=False,
    )[0]
    # _unpack_latents takes pixel sizes and the VAE factor; at factor 1 the latent sizes are the pixel sizes.
    return FluxPipeline._unpack_latents(pred, height=height, width=width, vae_scale_factor=1)


# FLUX.1-dev generates at 1024 x 1024: FluxPipeline's default height/width (default_sample_size
# 128 x VAE factor 8). Its validation and README inference use the pipeline defaults: 28 steps,
# guidance 3.5, the checkpoint's FlowMatchEulerDiscreteScheduler.
FLUX_BASE_RESOLUTION = 1024
FLUX_RENDER_STEPS = 28
FLUX_RENDER_GUIDANCE = 3.5


def is_flux(ref: str, revision: str | None = None) -> bool:
    """Whether ``ref`` names a FLUX.1 model: FLUX.1-dev, ``tiny-flux``, or a folder / cached hub
    snapshot whose model_index.json says ``FluxPipeline``. Never downloads or builds a model."""
    import json

    from dreambench.reference_impl.base_model import FLUX_PIPELINE, FLUX_REPO
    from dreambench.reference_impl.sdxl import _local_folder
    from dreambench.reference_impl.tiny_flux import TINY_FLUX_ID

    if ref in (FLUX_REPO, TINY_FLUX_ID):
        return True
    folder = _local_folder(ref, revision)
    if folder is None or not (folder / "model_index.json").is_file():
        return False
    try:
        return json.loads((folder / "model_index.json").read_text()).get("_class_name") == FLUX_PIPELINE
    except (OSError, ValueError):
        return False


def flux_render_deviation(ref: str, revision: str | None = None) -> dict[str, Any] | None:
    """The render deviation of a method rendering with the FLUX.1 ``ref`` (None for other models).

    The run presets' protocols are SD 1.x's (DDIM with CFG 7.5 at 512 px; smoke: 8 steps at 32 px).
    FLUX.1 samples with its flow-matching Euler scheduler and distilled guidance 3.5 at its native
    1024 px, in 28 steps (FluxPipeline's defaults). The embedded ``tiny-flux`` keeps the preset's
    steps and renders at its native 32 px (the smoke protocol's size).
    """
    from dreambench.reference_impl.tiny_flux import TINY_FLUX_ID, TINY_FLUX_RESOLUTION

    if not is_flux(ref, revision):
        return None
    if ref == TINY_FLUX_ID:
        return {
            "reason": f"FLUX.1 (tiny): flow-matching Euler sampler, distilled guidance {FLUX_RENDER_GUIDANCE}, "
            f"native {TINY_FLUX_RESOLUTION} px",
            "scheduler": "flow-euler",
            "guidance": FLUX_RENDER_GUIDANCE,
            "resolution": TINY_FLUX_RESOLUTION,
        }
    return {
        "reason": f"FLUX.1: flow-matching Euler sampler, {FLUX_RENDER_STEPS} steps, distilled guidance "
        f"{FLUX_RENDER_GUIDANCE}, native {FLUX_BASE_RESOLUTION} px (FluxPipeline defaults)",
        "scheduler": "flow-euler",
        "steps": FLUX_RENDER_STEPS,
        "guidance": FLUX_RENDER_GUIDANCE,
        "resolution": FLUX_BASE_RESOLUTION,
    }

"""What Stable Diffusion 3 needs beyond Stable Diffusion: its text conditioning, its transformer
inputs and its render protocol, as diffusers' examples/dreambooth/train_dreambooth_lora_sd3.py
trains it (read at huggingface/diffusers@32f85ed01411209e60520b1723b18e4e832e4ce6) and
examples/dreambooth/README_sd3.md runs it (read at
huggingface/diffusers@02a016943750c477c5635b057abdfcb0f47bbbb7).

* ``encoder_hidden_states``: the penultimate hidden states of both CLIP encoders (77 tokens each),
  concatenated along the features and zero-padded to T5's width, followed along the sequence by
  T5's last hidden states of the prompt padded to ``max_sequence_length`` (77: the script's
  default) tokens; ``pooled_projections``: both CLIP encoders' projected pooled outputs,
  concatenated. ``encode_prompts`` calls ``StableDiffusion3Pipeline.encode_prompt``, which computes
  exactly the script's ``encode_prompt`` and is the one rendering uses.
* latents [B, C, h, w] enter the transformer as they are (it patchifies them itself);
  ``timestep`` is the scheduler's timestep in [0, 1000] (the script passes it unscaled).
* The loss: timesteps from the ``logit_normal`` density, outputs preconditioned
  (``--precondition_outputs=1``: ``pred * (-sigma) + z_t`` against the clean latents ``z_0``),
  weighting ``compute_loss_weighting_for_sd3`` (reference_impl/flow_matching.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from dreambench.reference_impl.base_model import Components

# train_dreambooth_lora_sd3.py --max_sequence_length default ("The default is 77", README_sd3.md).
SD3_MAX_SEQUENCE_LENGTH = 77
# train_dreambooth_lora_sd3.py --weighting_scheme default ("We default to the 'logit_normal'
# weighting scheme for the loss following the SD3 paper", README_sd3.md "Other notes").
SD3_WEIGHTING_SCHEME = "logit_normal"
# train_dreambooth_lora_sd3.py --precondition_outputs default (1).
SD3_PRECONDITION_OUTPUTS = True
# train_dreambooth_lora_sd3.py: LoraConfig(target_modules=["to_k", "to_q", "to_v", "to_out.0"]) on
# the transformer (peft's suffix match: the joint attention's image-stream projections).
SD3_LORA_TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")


def encode_prompts(
    base: Components, prompts: Sequence[str], device: str, max_sequence_length: int = SD3_MAX_SEQUENCE_LENGTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompt_embeds [N, 154 + L, d_t5], pooled [N, 2 d_clip])`` of ``prompts`` (no gradients)."""
    import torch

    with torch.no_grad():
        embeds, _, pooled, _ = base.pipeline().encode_prompt(
            list(prompts),
            prompt_2=None,
            prompt_3=None,
            device=torch.device(device),
            do_classifier_free_guidance=False,
            max_sequence_length=max_sequence_length,
        )
    return embeds, pooled


def predict(
    transformer: Any,
    noisy: torch.Tensor,
    timesteps: torch.Tensor,
    conditioning: tuple[torch.Tensor, torch.Tensor],
    rows: torch.Tensor,
    guidance: float,
) -> torch.Tensor:
    """The transformer's velocity prediction for ``noisy`` latents [B, C, h, w] (same shape).

    ``conditioning`` is ``encode_prompts``' output; ``rows`` picks each example's prompt row;
    ``guidance`` is unused (SD3 has no guidance embedding; it takes the FLUX.1 signature).
    """
    embeds, pooled = conditioning
    return transformer(
        hidden_states=noisy,
        timestep=timesteps,
        encoder_hidden_states=embeds[rows],
        pooled_projections=pooled[rows],
        return_dict=False,
    )[0]


# SD3 medium generates at 1024 x 1024: StableDiffusion3Pipeline's default height/width
# (default_sample_size 128 x VAE factor 8). The script validates, and README_sd3.md's inference
# runs, with the pipeline defaults: 28 steps, classifier-free guidance 7.0, the checkpoint's
# FlowMatchEulerDiscreteScheduler.
SD3_BASE_RESOLUTION = 1024
SD3_RENDER_STEPS = 28
SD3_RENDER_GUIDANCE = 7.0


def is_sd3(ref: str, revision: str | None = None) -> bool:
    """Whether ``ref`` names a Stable Diffusion 3 model: SD3 medium, ``tiny-sd3``, or a folder /
    cached hub snapshot whose model_index.json says ``StableDiffusion3Pipeline``. Never downloads
    or builds a model."""
    import json

    from dreambench.reference_impl.base_model import SD3_PIPELINE, SD3_REPO
    from dreambench.reference_impl.sdxl import _local_folder
    from dreambench.reference_impl.tiny_sd3 import TINY_SD3_ID

    if ref in (SD3_REPO, TINY_SD3_ID):
        return True
    folder = _local_folder(ref, revision)
    if folder is None or not (folder / "model_index.json").is_file():
        return False
    try:
        return json.loads((folder / "model_index.json").read_text()).get("_class_name") == SD3_PIPELINE
    except (OSError, ValueError):
        return False


def sd3_render_deviation(ref: str, revision: str | None = None) -> dict[str, Any] | None:
    """The render deviation of a method rendering with the SD3 ``ref`` (None for other models).

    The run presets' protocols are SD 1.x's (DDIM with CFG 7.5 at 512 px; smoke: 8 steps at 32 px).
    SD3 samples with its flow-matching Euler scheduler at CFG 7.0 at its native 1024 px, in 28
    steps (StableDiffusion3Pipeline's defaults). The embedded ``tiny-sd3`` keeps the preset's steps
    and renders at its native 32 px (the smoke protocol's size).
    """
    from dreambench.reference_impl.tiny_sd3 import TINY_SD3_ID, TINY_SD3_RESOLUTION

    if not is_sd3(ref, revision):
        return None
    if ref == TINY_SD3_ID:
        return {
            "reason": "Stable Diffusion 3 (tiny): flow-matching Euler sampler, "
            f"guidance {SD3_RENDER_GUIDANCE}, native {TINY_SD3_RESOLUTION} px",
            "scheduler": "flow-euler",
            "guidance": SD3_RENDER_GUIDANCE,
            "resolution": TINY_SD3_RESOLUTION,
        }
    return {
        "reason": f"Stable Diffusion 3: flow-matching Euler sampler, {SD3_RENDER_STEPS} steps, guidance "
        f"{SD3_RENDER_GUIDANCE}, native {SD3_BASE_RESOLUTION} px (StableDiffusion3Pipeline defaults)",
        "scheduler": "flow-euler",
        "steps": SD3_RENDER_STEPS,
        "guidance": SD3_RENDER_GUIDANCE,
        "resolution": SD3_BASE_RESOLUTION,
    }

"""What Stable Diffusion XL needs beyond SD 1.x: its text conditioning, its micro-conditioning and
its native resolution.

SDXL's UNet (``addition_embed_type="text_time"``) takes three conditioning inputs where SD 1.x
takes one (Podell et al., 2023, Sec. 2.2; diffusers' ``StableDiffusionXLPipeline.encode_prompt``
and ``_get_add_time_ids``):

* ``encoder_hidden_states``: the *penultimate* hidden states of both text encoders
  (``text_encoder``: CLIP ViT-L, ``text_encoder_2``: OpenCLIP ViT-bigG with projection),
  concatenated along the feature axis;
* ``added_cond_kwargs["text_embeds"]``: the pooled, projected output of ``text_encoder_2``;
* ``added_cond_kwargs["time_ids"]``: six numbers per example, ``original_size (h, w) +
  crop top-left (top, left) + target_size (h, w)``.

``encode_prompts`` and ``micro_conditioning`` compute them exactly as diffusers'
examples/dreambooth/train_dreambooth_lora_sdxl.py does (``encode_prompt``, ``compute_time_ids``
and the dataset's ``original_sizes`` / ``crop_top_lefts``:
https://github.com/huggingface/diffusers/blob/main/examples/dreambooth/train_dreambooth_lora_sdxl.py),
with the script's ``--center_crop`` transform, which is what the latent cache applies
(reference_impl/latent_cache.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import (
    PINNED_REVISIONS,
    SD15_REPO,
    SDXL_PIPELINE,
    SDXL_REPO,
    pipeline_class,
)
from dreambench.reference_impl.random_model import is_random_spec
from dreambench.reference_impl.tiny_model import TINY_MODEL_ID
from dreambench.reference_impl.tiny_sdxl import TINY_SDXL_ID, TINY_SDXL_RESOLUTION

if TYPE_CHECKING:
    import torch

    from dreambench.reference_impl.base_model import Components

# SDXL base 1.0 generates at 1024 x 1024: its unet/config.json sample_size 128 x VAE factor 8, the
# default height/width of StableDiffusionXLPipeline (default_sample_size * vae_scale_factor), and
# the --resolution=1024 of diffusers' examples/dreambooth/README_sdxl.md.
SDXL_BASE_RESOLUTION = 1024

# Native resolutions known without reading the model (the hub model may not be downloaded yet).
_KNOWN_RESOLUTIONS = {SDXL_REPO: SDXL_BASE_RESOLUTION, TINY_SDXL_ID: TINY_SDXL_RESOLUTION}


def encode_prompts(base: Components, prompts: Sequence[str], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompt_embeds [N, 77, d1 + d2], pooled_embeds [N, d_proj])`` of ``prompts`` (no gradients).

    As train_dreambooth_lora_sdxl.py's ``encode_prompt``: each tokenizer pads to its
    ``model_max_length``, each encoder's ``hidden_states[-2]`` (penultimate layer) is kept and the
    two are concatenated; the pooled output is ``text_encoder_2``'s projected ``text_embeds``.
    """
    import torch

    if base.text_encoder_2 is None or base.tokenizer_2 is None:
        raise BenchError("SDXL conditioning needs text_encoder_2 and tokenizer_2; the base model is not an SDXL")
    hidden: list[torch.Tensor] = []
    pooled: torch.Tensor | None = None
    with torch.no_grad():
        for tokenizer, encoder in ((base.tokenizer, base.text_encoder), (base.tokenizer_2, base.text_encoder_2)):
            ids = tokenizer(
                list(prompts),
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(device)
            out = encoder(ids, output_hidden_states=True)
            # "We are only ALWAYS interested in the pooled output of the final text encoder" (the script).
            pooled = out[0]
            hidden.append(out.hidden_states[-2])
    assert pooled is not None
    return torch.cat(hidden, dim=-1), pooled


def center_crop_top_left(height: int, width: int, resolution: int) -> tuple[int, int]:
    """Top-left corner of the center crop after resizing the shorter side of an ``height x width``
    image to ``resolution``: the script's ``--center_crop`` coordinates
    (``y1 = max(0, round((h' - res) / 2))``, same for x), with the resized size computed as
    torchvision's ``Resize(resolution)`` computes it (the longer side truncated to an integer)."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(resolution * long / short)
    new_h, new_w = (new_long, resolution) if width <= height else (resolution, new_long)
    return max(0, int(round((new_h - resolution) / 2.0))), max(0, int(round((new_w - resolution) / 2.0)))


def micro_conditioning(sizes: Sequence[tuple[int, int]], resolution: int) -> torch.Tensor:
    """``time_ids`` [N, 6] (float32) for images of original ``(height, width)`` ``sizes`` trained at
    ``resolution``: ``original_size + crop_top_left + (resolution, resolution)``, the script's
    ``compute_time_ids(original_size, crops_coords_top_left)``."""
    import torch

    rows = [
        [h, w, *center_crop_top_left(h, w, resolution), resolution, resolution] for h, w in sizes
    ]
    return torch.tensor(rows, dtype=torch.float32)


def _local_folder(ref: str, revision: str | None) -> Path | None:
    """The diffusers folder of ``ref`` if it is on disk (a local folder or a cached hub snapshot),
    else None. Never downloads and never builds a model."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                ref, revision=revision or PINNED_REVISIONS.get(ref, "main"), local_files_only=True
            )
        )
    except Exception:  # noqa: BLE001 - not cached (or not a hub id): the loader reports it when it runs
        return None


def native_sdxl_resolution(ref: str, revision: str | None = None) -> int | None:
    """The resolution an SDXL base model ``ref`` generates at (None when ``ref`` is not an SDXL).

    Known models without reading them (SDXL base 1.0: 1024, ``tiny-sdxl``: 64); another folder
    on disk from its configs: UNet ``sample_size`` x the VAE's downsampling factor, which is
    ``StableDiffusionXLPipeline``'s default height and width. A model not on disk yet counts as
    not SDXL here; loading it later reports what is missing.
    """
    if ref in _KNOWN_RESOLUTIONS:
        return _KNOWN_RESOLUTIONS[ref]
    if ref in (TINY_MODEL_ID, SD15_REPO) or is_random_spec(ref):
        return None
    folder = _local_folder(ref, revision)
    if folder is None:
        return None
    try:
        if pipeline_class(folder, ref) != SDXL_PIPELINE:
            return None
        unet: dict[str, Any] = json.loads((folder / "unet" / "config.json").read_text())
        vae: dict[str, Any] = json.loads((folder / "vae" / "config.json").read_text())
    except (BenchError, OSError, ValueError):
        return None
    return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)


def sdxl_render_deviation(ref: str, revision: str | None = None) -> dict[str, Any] | None:
    """The render deviation of a method rendering with the SDXL ``ref`` (None for other models).

    The run presets' render protocols fix 512 px (32 px for smoke), the size SD 1.x generates at;
    SDXL is trained for and generates at its own native size (1024 px for SDXL base 1.0), so a
    method on an SDXL base renders, trains and samples class priors there, declared as a
    deviation (reference_impl/render_protocol.py) and flagged in every table.
    """
    resolution = native_sdxl_resolution(ref, revision)
    if resolution is None:
        return None
    return {
        "reason": f"SDXL base model renders at its native {resolution} px (UNet sample_size x VAE factor)",
        "resolution": resolution,
    }

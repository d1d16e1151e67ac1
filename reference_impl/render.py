"""Rendering: prompts + seeds -> images through a Stable Diffusion pipeline, one image per seed.

Every method (DreamBooth, LoRA, Textual Inversion, the base-model floor) and the class-prior cache
render through ``render``. Its contract:

* One image per ``(prompt, seed)`` pair, in input order.
* Each image's initial latent is drawn from a **fresh CPU** ``torch.Generator().manual_seed(seed)``
  with shape ``(1, C, H/f, W/f)`` (exactly what ``StableDiffusionPipeline(prompt,
  generator=torch.Generator().manual_seed(seed))`` draws for one image), then moved to the device.
  Stochastic samplers (DDPM, Euler ancestral) keep drawing their per-step noise from that same
  per-image generator. So an image depends only on (weights, prompt, seed, sampler settings), not
  on which other images share its batch or in which order they are rendered.
* Batched across prompts internally: every pipeline call holds exactly ``batch_size`` images (the
  last chunk is padded with throw-away copies), because CPU convolution kernels are chosen per
  batch size and would otherwise change the last bits of an image with the size of its batch.
* Deterministic: on CPU, rendering one (prompt, seed) alone or inside a batch gives byte-identical
  PNGs for a fixed ``batch_size`` and thread count (tests/test_render.py). ``batch_size`` is
  therefore part of what an image depends on; keep it fixed within a run. On GPU, images agree to
  within float rounding across batch compositions, not necessarily bitwise.

Defaults (``SamplerSettings()``, the ``dreambooth`` run preset's): DDIM, 50 steps, classifier-free
guidance 7.5, 512 px — the usual Stable Diffusion v1 evaluation setting (DreamBooth paper, Sec. 4,
evaluates SD samples; diffusers' ``StableDiffusionPipeline`` defaults to 50 steps and guidance 7.5).
Which sampler a run renders with is not a method's choice: it is the run preset's render protocol
(reference_impl/render_protocol.py), the same for every method of the preset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError, did_you_mean

if TYPE_CHECKING:
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.schedulers.scheduling_utils import SchedulerMixin
    from PIL import Image

# Sampler name -> diffusers scheduler class. Deterministic samplers first; "ddpm" and "euler-a"
# inject fresh noise at every step (drawn from each image's own generator).
SCHEDULERS: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "ddpm": "DDPMScheduler",
    # Flow-matching models (FLUX.1, SD3): the Euler ODE solver their checkpoints ship.
    "flow-euler": "FlowMatchEulerDiscreteScheduler",
}


@dataclass(frozen=True)
class SamplerSettings:
    """How one image is sampled: the one sampler type of every method, the class-prior cache and
    the run presets' render protocols (reference_impl/render_protocol.py). Part of every cache key
    that holds rendered images.

    scheduler: a key of ``SCHEDULERS``; scheduler_config: ``(key, value)`` overrides applied to the
    base model's scheduler config (noise schedule, ``steps_offset``, ...), empty = the base model's
    own; steps: denoising steps; guidance: classifier-free guidance scale (1.0 or less disables the
    unconditional branch, as in diffusers); resolution: square output size in pixels;
    negative_prompt: the unconditional prompt ("" as in the DreamBooth/diffusers defaults).
    Checked when built: a bad value is a one-line BenchError naming the field and the valid range.
    """

    scheduler: str = "ddim"
    steps: int = 50
    guidance: float = 7.5
    resolution: int = 512
    negative_prompt: str = ""
    scheduler_config: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise did_you_mean(self.scheduler, SCHEDULERS, "sampler")
        if type(self.steps) is not int or self.steps < 1:
            raise BenchError(f"sampler steps={self.steps!r} is not valid; expected an integer >= 1")
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, (int, float)) or not (
            math.isfinite(self.guidance) and self.guidance >= 0
        ):
            raise BenchError(f"sampler guidance={self.guidance!r} is not valid; expected a finite number >= 0")
        if type(self.resolution) is not int or self.resolution < 8 or self.resolution % 8 != 0:
            raise BenchError(
                f"sampler resolution={self.resolution!r} is not valid; expected a positive multiple of 8"
            )
        if not isinstance(self.negative_prompt, str):
            raise BenchError(f"sampler negative_prompt={self.negative_prompt!r} is not valid; expected a string")
        if not all(isinstance(kv, tuple) and len(kv) == 2 and isinstance(kv[0], str) for kv in self.scheduler_config):
            raise BenchError(
                f"sampler scheduler_config={self.scheduler_config!r} is not valid; expected (name, value) pairs"
            )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scheduler_config"] = {k: v for k, v in self.scheduler_config}
        return out


def make_scheduler(
    name: str, base_config: dict[str, Any], overrides: Sequence[tuple[str, Any]] = ()
) -> SchedulerMixin:
    """A fresh scheduler of kind ``name`` on the base model's noise schedule (``base_config``),
    with ``overrides`` (SamplerSettings.scheduler_config) applied on top."""
    import diffusers

    if name not in SCHEDULERS:
        raise did_you_mean(name, SCHEDULERS, "sampler")
    cls = getattr(diffusers, SCHEDULERS[name])
    return cls.from_config({**base_config, **dict(overrides)})


def initial_latents(
    seeds: Sequence[int], shape: tuple[int, int, int]
) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Per-seed initial noise, drawn on CPU from fresh generators: returns (latents [N, *shape], generators).

    The generators are returned already advanced past the latent draw, so stochastic samplers can
    continue each image's own random stream.
    """
    import torch

    generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]
    latents = torch.cat([torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in generators])
    return latents, generators


def render(
    pipe: StableDiffusionPipeline,
    prompts: Sequence[str],
    seeds: Sequence[int],
    sampler: SamplerSettings,
    device: str,
    batch_size: int = 16,
    autocast_dtype: torch.dtype | None = None,
    extra_inputs: Mapping[str, Any] | None = None,
) -> list[Image.Image]:
    """Render one RGB image per ``(prompts[i], seeds[i])`` with ``pipe``; see the module docstring.

    ``pipe`` is any ``StableDiffusionPipeline`` (base weights, fine-tuned UNet, LoRA, added tokens);
    its scheduler is replaced by a fresh ``sampler.scheduler`` (built from its current config).
    A ``FluxPipeline`` works the same way: the per-seed noise [C, h, w] is drawn exactly as
    ``FluxPipeline(generator=[...])`` draws it and then packed into 2 x 2 patches as it packs it;
    ``guidance`` is its distilled guidance input and the negative prompt is not used. ``autocast_dtype`` (CUDA only)
    runs the denoiser in fp16/bf16 autocast. ``extra_inputs`` are further pipeline arguments shared
    by every image (e.g. IP-Adapter's ``ip_adapter_image_embeds``, reference_impl/ip_adapter.py);
    they must not depend on the batch. Raises BenchError on mismatched lengths.
    """
    import contextlib

    import torch

    if len(prompts) != len(seeds):
        raise BenchError(
            f"render: got {len(prompts)} prompts but {len(seeds)} seeds; pass one seed per prompt"
        )
    if batch_size < 1:
        raise BenchError(f"render: batch_size={batch_size} must be at least 1")
    if not prompts:
        return []
    denoiser = pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer
    packed = hasattr(pipe, "_pack_latents")  # FLUX.1: latents enter as 2 x 2 patches
    factor = pipe.vae_scale_factor * (2 if packed else 1)
    if sampler.resolution % factor != 0:
        raise BenchError(
            f"render: resolution {sampler.resolution} must be a multiple of the VAE factor {factor}"
        )
    side = sampler.resolution // pipe.vae_scale_factor
    channels = denoiser.config.in_channels // 4 if packed else denoiser.config.in_channels
    latent_shape = (channels, side, side)
    # Flux has no negative prompt unless true CFG is asked for; every other pipeline gets the protocol's.
    negative = {} if packed else {"negative_prompt": [sampler.negative_prompt] * batch_size}
    pipe.scheduler = make_scheduler(sampler.scheduler, dict(pipe.scheduler.config), sampler.scheduler_config)
    pipe.set_progress_bar_config(disable=True)
    on_cuda = torch.device(device).type == "cuda"
    if on_cuda:
        # Decode latents one image at a time: bounds VAE memory at 512 px and makes the decode
        # independent of the batch on GPU too. (On CPU the fixed batch shape already does that.)
        pipe.vae.enable_slicing()
    use_autocast = autocast_dtype is not None and on_cuda
    images: list[Image.Image] = []
    for start in range(0, len(prompts), batch_size):
        n_real = min(batch_size, len(prompts) - start)
        # Pad every call to exactly `batch_size` images (copies of the chunk's first one, discarded
        # afterwards): CPU conv kernels pick different algorithms for different batch sizes, so only
        # a fixed batch shape makes an image bitwise independent of how many others it was rendered
        # with. Position within the batch does not matter (checked in tests/test_render.py).
        chunk_prompts = list(prompts[start : start + n_real]) + [prompts[start]] * (batch_size - n_real)
        chunk_seeds = list(seeds[start : start + n_real]) + [seeds[start]] * (batch_size - n_real)
        latents, generators = initial_latents(chunk_seeds, latent_shape)
        if packed:
            latents = pipe._pack_latents(latents, batch_size, channels, side, side)
        autocast = torch.autocast("cuda", dtype=autocast_dtype) if use_autocast else contextlib.nullcontext()
        with autocast:
            out = pipe(
                prompt=chunk_prompts,
                **negative,
                height=sampler.resolution,
                width=sampler.resolution,
                num_inference_steps=sampler.steps,
                guidance_scale=sampler.guidance,
                latents=latents.to(device=device, dtype=denoiser.dtype),
                generator=generators,
                output_type="pil",
                **dict(extra_inputs or {}),
            )
        images.extend(image.convert("RGB") for image in out.images[:n_real])
    return images

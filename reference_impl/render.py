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

Defaults (``SamplerSettings()``, the paper preset): DDIM, 50 steps, classifier-free guidance 7.5,
512 px — the usual Stable Diffusion v1 evaluation setting (DreamBooth paper, Sec. 4, evaluates SD
samples; diffusers' ``StableDiffusionPipeline`` defaults to 50 steps and guidance 7.5).
"""

from __future__ import annotations

from collections.abc import Sequence
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
}


@dataclass(frozen=True)
class SamplerSettings:
    """How images are sampled. Part of every cache key that holds rendered images.

    scheduler: a key of ``SCHEDULERS``; steps: denoising steps; guidance: classifier-free guidance
    scale (1.0 disables the unconditional branch); resolution: square output size in pixels;
    negative_prompt: the unconditional prompt ("" as in the DreamBooth/diffusers defaults).
    """

    scheduler: str = "ddim"
    steps: int = 50
    guidance: float = 7.5
    resolution: int = 512
    negative_prompt: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_scheduler(name: str, base_config: dict[str, Any]) -> SchedulerMixin:
    """A fresh scheduler of kind ``name`` on the base model's noise schedule (``base_config``)."""
    import diffusers

    if name not in SCHEDULERS:
        raise did_you_mean(name, SCHEDULERS, "sampler")
    cls = getattr(diffusers, SCHEDULERS[name])
    return cls.from_config(base_config)


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
) -> list[Image.Image]:
    """Render one RGB image per ``(prompts[i], seeds[i])`` with ``pipe``; see the module docstring.

    ``pipe`` is any ``StableDiffusionPipeline`` (base weights, fine-tuned UNet, LoRA, added tokens);
    its scheduler is replaced by a fresh ``sampler.scheduler`` (built from its current config). ``autocast_dtype`` (CUDA only)
    runs the denoiser in fp16/bf16 autocast. Raises BenchError on mismatched lengths.
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
    factor = pipe.vae_scale_factor
    if sampler.resolution % 8 != 0 or sampler.resolution % factor != 0:
        raise BenchError(
            f"render: resolution {sampler.resolution} must be a multiple of 8 and of the VAE factor {factor}"
        )
    latent_shape = (pipe.unet.config.in_channels, sampler.resolution // factor, sampler.resolution // factor)
    pipe.scheduler = make_scheduler(sampler.scheduler, dict(pipe.scheduler.config))
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
        autocast = torch.autocast("cuda", dtype=autocast_dtype) if use_autocast else contextlib.nullcontext()
        with autocast:
            out = pipe(
                prompt=chunk_prompts,
                negative_prompt=[sampler.negative_prompt] * batch_size,
                height=sampler.resolution,
                width=sampler.resolution,
                num_inference_steps=sampler.steps,
                guidance_scale=sampler.guidance,
                latents=latents.to(device=device, dtype=pipe.unet.dtype),
                generator=generators,
                output_type="pil",
            )
        images.extend(image.convert("RGB") for image in out.images[:n_real])
    return images

"""GPU benchmark: diffusers' train_dreambooth.py against the ``dreambooth`` method, row by row.

    python -m dreambench.reference_impl.gpu_benchmark [--size sd15|tiny] [--device cuda|cpu]
        [--repeats N] [--steps N] [--warmup N] [--images N] [--render-steps N] [--render-batch N]
        [--json OUT]

Everything runs in one process on one device, on models with **random weights** (nothing is
downloaded): ``--size sd15`` is Stable Diffusion 1.5's architecture (reference_impl/random_model.py,
built in memory on the device), ``--size tiny`` the embedded tiny model. The work per step and per
image is that of the real model; the images are noise. Figures are timings, nothing else.

Every ratio means one thing. Training rows (one instance + one class image per step, prior
preservation, learning rate 5e-6, the script's Adam and clipping defaults, SD 1.5's schedule):

* ``script`` (a) — diffusers' examples/dreambooth/train_dreambooth.py step as it is with
  ``--mixed_precision=fp16 --with_prior_preservation``: transform both images and tokenize both
  prompts (its dataset and collate_fn, no dataloader workers), VAE-encode and text-encode them
  every step with the VAE and text encoder cast to fp16, UNet forward under fp16 autocast over its
  fp32 weights, GradScaler (what accelerate does for fp16), ``torch.optim.AdamW`` as the script
  builds it (torch's default implementation: multi-tensor ``foreach`` on CUDA), clipping at 1.0,
  ``zero_grad(set_to_none=False)`` and ``loss.item()`` each step. Disk reads are left out (the
  images are in memory), so if anything this row is a little faster than the script.
* ``ours-fp16`` (b) — ``train_dreambooth`` (what the ``dreambooth`` method runs) with the script's
  precision policy: fp16 autocast + GradScaler. Latents and text embeddings computed once, fused
  AdamW. Its ratio to (a) is the gain from caching and fusion alone.
* ``ours`` (c) — ``train_dreambooth`` as shipped (the paper preset): bf16 autocast, no scaler.

Rendering rows (DDIM, ``--render-steps`` steps, guidance 7.5, at the model's resolution; the same
sampler for both so that the ratio measures the implementation, not the sampler):

* ``script`` — stock ``StableDiffusionPipeline.__call__``, one image per call with a device
  generator, fp16 VAE and text encoder, the UNet under ``torch.autocast("cuda")`` (fp16): what the
  script's ``log_validation`` does (it samples with 25 DPM-Solver steps; here both rows use DDIM).
* ``ours`` — what the ``dreambooth`` method does: ``render()`` with ``--render-batch`` images per
  pipeline call (the paper preset's 25), bf16 autocast over fp32 weights.

Each ratio is row (a)'s figure over the row's (speed-up: above 1 means faster than the script).
The paths alternate — train a, b, c, render a, b, then again, ``--repeats`` times — so drift of
the machine (clocks, temperature, other jobs) hits every row alike. Each row reports the median of
its per-repeat medians with their min–max, and its peak memory (the most any repeat reached). Only
the row's own models are on the device while it runs: the other row's VAE and text encoder copies
wait in host memory.

On CPU there is no autocast (fp32 everywhere), so (b) and (c) run the same code; ``--size tiny
--device cpu`` exists to test the script, not to measure it.

Budget: with the defaults an SD 1.5 run on one H100 is estimated at about 4 minutes including
start-up (3 x (3 x 12 training steps + 25 + 25 images at 50 DDIM steps); the script row's
one-image-at-a-time rendering is most of it) — an estimate from the work involved, not yet
measured on a GPU; docs/PERFORMANCE.md holds the measured figures once there are some.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from rich.table import Table

    from dreambench.reference_impl.base_model import Components

LABEL = "random weights: timing only"

SIZES = ("sd15", "tiny")
DEVICES = ("cuda", "cpu")
TRAIN_ROWS = ("script", "ours-fp16", "ours")
RENDER_ROWS = ("script", "ours")
BASELINE = "script"

# Both training paths use the paper's / diffusers README's learning rate and the script's Adam and
# clipping defaults (TrainSettings carries the same defaults for our path).
LEARNING_RATE = 5e-6
INSTANCE_PROMPT = "a photo of sks dog"
CLASS_PROMPT = "a photo of dog"


@dataclass(frozen=True)
class BenchmarkSettings:
    """What one benchmark run measures; every field is recorded in the JSON output.

    repeats: rounds of the alternating schedule; steps: timed training steps per row and repeat
    (after ``warmup`` untimed ones, which absorb the optimizer's state allocation); images: images
    per rendering row and repeat; render_steps: DDIM steps per image; render_batch: images per
    pipeline call of our rendering (the paper preset's ``render_batch_size``; the script renders one
    at a time).
    """

    size: str = "sd15"
    device: str = "cuda"
    repeats: int = 3
    steps: int = 10
    warmup: int = 2
    images: int = 25
    render_steps: int = 50
    render_batch: int = 25
    guidance: float = 7.5
    seed: int = 0
    # "flux" / "sd3": measure DreamBooth-LoRA train steps on that model instead
    # (reference_impl/flow_lora_benchmark.py; ``size`` "tiny" = tiny-flux / tiny-sd3, else full size).
    lora: str = ""

    def validate(self) -> None:
        """Raise BenchError naming the first bad field and its valid values."""
        if self.size not in SIZES:
            raise BenchError(f"--size {self.size!r} is not one of {', '.join(SIZES)}")
        if self.device not in DEVICES:
            raise BenchError(f"--device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.lora not in ("", "flux", "sd3"):
            raise BenchError(f"--lora {self.lora!r} is not one of flux, sd3")
        if self.repeats < 3:
            raise BenchError(
                f"--repeats={self.repeats} must be at least 3 (medians with a min-max need them)"
            )
        for name in ("steps", "warmup", "images", "render_steps", "render_batch"):
            if getattr(self, name) < 1:
                raise BenchError(f"--{name.replace('_', '-')}={getattr(self, name)} must be at least 1")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise BenchError(
                    "--device cuda: torch sees no CUDA device on this machine; use --device cpu --size tiny"
                )


# -- models ------------------------------------------------------------------------------------


def build_sd15_components(device: str, seed: int = 0) -> Components:
    """SD 1.5's UNet, VAE and ViT-L/14 text encoder with seeded random weights, fp32, on ``device``.

    Built in memory (random_model.build_sd15_modules), not through a cached folder: the benchmark
    needs no files. The tokenizer is the real CLIP BPE tokenizer; nothing is downloaded.
    """
    from transformers import CLIPTokenizer

    from dreambench.reference_impl.base_model import Components, quiet_loading
    from dreambench.reference_impl.random_model import (
        SD15_SCHEDULER_CONFIG,
        build_sd15_modules,
        ensure_tokenizer,
    )

    folder = ensure_tokenizer()
    with quiet_loading():
        tokenizer = CLIPTokenizer.from_pretrained(folder)
    unet, vae, text_encoder = build_sd15_modules(device, seed)
    return Components(
        folder=folder,
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler_config=dict(SD15_SCHEDULER_CONFIG),
        description={
            "source": "random-in-memory",
            "id": "random:sd15",
            "revision": "none",
            "path": "",
            "key": f"sd15-random-in-memory-seed{seed}",
            "calibrated": False,
        },
    )


def build_components(size: str, device: str, seed: int) -> tuple[Components, int]:
    """(model components on ``device``, training/rendering resolution in pixels) for ``size``."""
    from dreambench.reference_impl.base_model import load_base_model
    from dreambench.reference_impl.random_model import SD15_RESOLUTION
    from dreambench.reference_impl.tiny_model import TINY_MODEL_ID, TINY_RESOLUTION

    if size == "sd15":
        return build_sd15_components(device, seed), SD15_RESOLUTION
    if size == "tiny":
        return load_base_model(TINY_MODEL_ID, device=device), TINY_RESOLUTION
    raise BenchError(f"--size {size!r} is not one of {', '.join(SIZES)}")


def random_images(n: int, resolution: int, seed: int) -> list[Image.Image]:
    """``n`` seeded RGB noise images of ``resolution`` x ``resolution`` (stand-ins for subject photos)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)) for _ in range(n)
    ]


@dataclass
class Models:
    """The shared fp32 UNet, our fp32 VAE + text encoder, and the script's fp16 copies of them."""

    base: Components
    script_vae: torch.nn.Module
    script_text_encoder: torch.nn.Module
    script_dtype: torch.dtype

    @classmethod
    def make(cls, base: Components, device: str) -> Models:
        import torch

        # The script: "cast all non-trainable weights (vae, non-lora text_encoder) to half-precision".
        dtype = torch.float16 if device == "cuda" else torch.float32
        return cls(
            base=base,
            script_vae=copy.deepcopy(base.vae).to(dtype=dtype),
            script_text_encoder=copy.deepcopy(base.text_encoder).to(dtype=dtype),
            script_dtype=dtype,
        )

    def activate(self, path: str, device: str) -> None:
        """Put ``path``'s VAE and text encoder on ``device`` and the other path's in host memory."""
        ours = (self.base.vae, self.base.text_encoder)
        script = (self.script_vae, self.script_text_encoder)
        active, idle = (script, ours) if path == BASELINE else (ours, script)
        if device != "cpu":
            for module in idle:
                module.to("cpu")
        for module in active:
            module.to(device)


# -- measuring ---------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory of a phase: CUDA allocator peak on ``cuda``, peak resident set size on ``cpu``."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.kind = (
            "device: torch.cuda.max_memory_allocated"
            if device == "cuda"
            else "host: peak resident set size (VmHWM)"
        )

    def reset(self) -> None:
        if self.device == "cuda":
            import torch

            from dreambench.reference_impl.base_model import free_memory

            free_memory(self.device)
            torch.cuda.reset_peak_memory_stats()
        else:
            try:  # Linux >= 4.0: "5" resets VmHWM to the current RSS.
                with open("/proc/self/clear_refs", "w") as handle:
                    handle.write("5")
            except OSError:
                self.kind = "host: peak resident set size of the process so far (ru_maxrss, not resettable)"

    def peak_mib(self) -> float:
        if self.device == "cuda":
            import torch

            return torch.cuda.max_memory_allocated() / 2**20
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_durations_ms(marks: Sequence[float], warmup: int) -> list[float]:
    """Durations of the steps after ``warmup``, in ms, from end-of-step timestamps (one per step)."""
    return [(b - a) * 1000 for a, b in zip(marks[warmup - 1 : -1], marks[warmup:])]


@contextlib.contextmanager
def _quiet_random_outputs() -> Iterator[None]:
    # Random-weight decoders can produce NaN pixels; numpy warns when casting them to uint8.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, message="invalid value encountered")
        yield


def _autocast(device: str, dtype: torch.dtype | None) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    import torch

    if device != "cuda" or dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast("cuda", dtype=dtype)


# -- training rows -----------------------------------------------------------------------------


def _train_script(
    models: Models, images: Sequence[Image.Image], resolution: int, settings: BenchmarkSettings
) -> tuple[list[float], int]:
    """Row (a): train_dreambooth.py's step loop; returns (timestamps after each step, skipped steps)."""
    import torch
    from diffusers import DDPMScheduler

    from dreambench.reference_impl.dreambooth_trainer import TrainSettings, prior_preservation_loss
    from dreambench.reference_impl.latent_cache import preprocess

    device = settings.device
    base = models.base
    vae, text_encoder, unet, tokenizer = (
        models.script_vae,
        models.script_text_encoder,
        base.unet,
        base.tokenizer,
    )
    unet.requires_grad_(True)
    unet.train()
    noise_scheduler = DDPMScheduler.from_config(base.scheduler_config)
    defaults = TrainSettings(learning_rate=LEARNING_RATE)
    # As the script builds it: no foreach/fused argument, so torch picks its default (foreach on CUDA).
    optimizer = torch.optim.AdamW(
        unet.parameters(),
        lr=LEARNING_RATE,
        betas=(defaults.adam_beta1, defaults.adam_beta2),
        weight_decay=defaults.adam_weight_decay,
        eps=defaults.adam_epsilon,
    )
    scaler = torch.amp.GradScaler("cuda") if device == "cuda" else None
    autocast = _autocast(device, torch.float16)
    pair = list(images[:2])
    marks: list[float] = []
    skipped = 0
    for _ in range(settings.warmup + settings.steps):
        # DreamBoothDataset.__getitem__ + collate_fn: transform both images, tokenize both prompts.
        pixels = torch.stack([preprocess(image, resolution) for image in pair])
        pixels = pixels.to(memory_format=torch.contiguous_format).float().to(device)
        input_ids = torch.cat(
            [
                tokenizer(
                    prompt,
                    truncation=True,
                    padding="max_length",
                    max_length=tokenizer.model_max_length,
                    return_tensors="pt",
                ).input_ids
                for prompt in (INSTANCE_PROMPT, CLASS_PROMPT)
            ]
        ).to(device)
        model_input = vae.encode(pixels.to(dtype=models.script_dtype)).latent_dist.sample()
        model_input = model_input * vae.config.scaling_factor
        noise = torch.randn_like(model_input)
        timesteps = torch.randint(
            0, noise_scheduler.config.num_train_timesteps, (model_input.shape[0],), device=device
        ).long()
        noisy = noise_scheduler.add_noise(model_input, noise, timesteps)
        encoder_hidden_states = text_encoder(input_ids, attention_mask=None)[0]
        with autocast():  # accelerate wraps only the prepared model's forward in autocast
            pred = unet(noisy, timesteps, encoder_hidden_states).sample
        loss = prior_preservation_loss(pred, noise, 1, 1.0)
        if scaler is not None:
            scale = scaler.get_scale()
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(unet.parameters(), defaults.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            skipped += int(scaler.get_scale() < scale)  # inf/NaN gradients: step skipped
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), defaults.max_grad_norm)
            optimizer.step()
        optimizer.zero_grad(set_to_none=False)  # the script's default --set_grads_to_none is off
        loss.detach().item()  # the script logs the loss every step
        _sync(device)
        marks.append(time.perf_counter())
    del optimizer
    unet.zero_grad(set_to_none=True)
    unet.requires_grad_(False)
    unet.eval()
    return marks, skipped


def _train_ours(
    models: Models,
    images: Sequence[Image.Image],
    resolution: int,
    settings: BenchmarkSettings,
    mixed_precision: str,
    memory: PeakMemory,
) -> tuple[list[float], float]:
    """Rows (b) and (c): ``train_dreambooth``; returns (timestamps after each step, precompute seconds).

    The latent precompute (once per subject in the method) is timed apart and happens before the
    memory counter is reset.
    """
    from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainSettings, train_dreambooth
    from dreambench.reference_impl.latent_cache import encode_images

    device = settings.device
    base = models.base
    started = time.perf_counter()
    data = TrainingData(
        instance=encode_images(base.vae, images[:1], resolution, device),
        instance_prompt=INSTANCE_PROMPT,
        classes=encode_images(base.vae, images[1:2], resolution, device),
        class_prompt=CLASS_PROMPT,
    )
    _sync(device)
    precompute_s = time.perf_counter() - started
    train_settings = TrainSettings(
        train_steps=settings.warmup + settings.steps,
        learning_rate=LEARNING_RATE,
        mixed_precision=mixed_precision,  # type: ignore[arg-type]  # "no" | "fp16" | "bf16"
    )
    marks: list[float] = []

    def after_step(step: int) -> None:
        _sync(device)
        marks.append(time.perf_counter())

    memory.reset()
    train_dreambooth(base, data, train_settings, device, settings.seed, "benchmark", after_step=after_step)
    return marks, precompute_s


# -- rendering rows ----------------------------------------------------------------------------


def _render_script(models: Models, resolution: int, settings: BenchmarkSettings, n: int, steps: int) -> int:
    """Stock ``StableDiffusionPipeline.__call__``, one image per call, as log_validation does."""
    import torch
    from diffusers import StableDiffusionPipeline

    from dreambench.reference_impl.render import make_scheduler

    device = settings.device
    base = models.base
    pipe = StableDiffusionPipeline(
        vae=models.script_vae,
        text_encoder=models.script_text_encoder,
        tokenizer=base.tokenizer,
        unet=base.unet,
        scheduler=make_scheduler("ddim", base.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    autocast = _autocast(device, torch.float16)  # torch.autocast("cuda"): fp16 by default
    for i in range(n):
        with autocast():
            pipe(
                prompt=f"a photo of sks dog, view {i}",
                height=resolution,
                width=resolution,
                num_inference_steps=steps,
                guidance_scale=settings.guidance,
                generator=generator,
            ).images[0]
    return n


def _render_ours(
    models: Models,
    resolution: int,
    settings: BenchmarkSettings,
    n: int,
    steps: int,
    dtype: torch.dtype | None,
) -> int:
    """What the ``dreambooth`` method's ``generate`` does: ``render`` in batches of ``render_batch``."""
    from dreambench.reference_impl.render import SamplerSettings, render

    sampler = SamplerSettings(
        scheduler="ddim", steps=steps, guidance=settings.guidance, resolution=resolution
    )
    prompts = [f"a photo of sks dog, view {i}" for i in range(n)]
    batch = min(settings.render_batch, n)
    render(models.base.pipeline(), prompts, list(range(n)), sampler, settings.device, batch, dtype)
    return n


# -- the benchmark -----------------------------------------------------------------------------


def _summary(values: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_benchmark(settings: BenchmarkSettings) -> dict[str, Any]:
    """Measure every row on one set of random-weight models; returns the JSON-ready result.

    Result keys: label, size, device, card, versions, settings, memory_kind, attention, schedule
    (the timed phases in the order they ran), train.<row>, render.<row>, wall_seconds. Each row
    holds its figure's median / min / max over repeats, the per-repeat values, its peak memory, a
    description of what it does, and ``speedup_vs_script``.
    """
    import diffusers
    import torch
    import transformers

    settings.validate()
    if settings.lora:
        from dreambench.reference_impl.flow_lora_benchmark import run_flow_lora_benchmark

        return run_flow_lora_benchmark(settings)
    device = settings.device
    started = time.perf_counter()
    on_cuda = device == "cuda"
    base, resolution = build_components(settings.size, device, settings.seed)
    models = Models.make(base, device)
    images = random_images(2, resolution, settings.seed)
    attention = sorted({type(p).__name__ for p in base.unet.attn_processors.values()})
    ours_mixed = "bf16" if on_cuda and torch.cuda.is_bf16_supported() else "fp16" if on_cuda else "no"
    ours_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(ours_mixed)
    memory = PeakMemory(device)

    step_ms: dict[str, list[float]] = {row: [] for row in TRAIN_ROWS}
    all_steps: dict[str, list[list[float]]] = {row: [] for row in TRAIN_ROWS}
    train_peak: dict[str, float] = dict.fromkeys(TRAIN_ROWS, 0.0)
    precompute: list[float] = []
    skipped: list[int] = []
    per_s: dict[str, list[float]] = {row: [] for row in RENDER_ROWS}
    render_peak: dict[str, float] = dict.fromkeys(RENDER_ROWS, 0.0)
    schedule: list[list[Any]] = []

    with _quiet_random_outputs():
        # Render warm-up, one short call per row (kernel selection, lazy initialisation; untimed).
        for row in RENDER_ROWS:
            models.activate(row, device)
            if row == BASELINE:
                _render_script(models, resolution, settings, 1, 2)
            else:
                _render_ours(models, resolution, settings, settings.images, 2, ours_dtype)
        for repeat in range(settings.repeats):
            for row in TRAIN_ROWS:
                models.activate(row, device)
                if row == BASELINE:
                    memory.reset()
                    marks, n_skipped = _train_script(models, images, resolution, settings)
                    skipped.append(n_skipped)
                else:
                    mixed = "fp16" if row == "ours-fp16" and on_cuda else ours_mixed
                    marks, seconds = _train_ours(models, images, resolution, settings, mixed, memory)
                    if row == "ours":
                        precompute.append(seconds)
                train_peak[row] = max(train_peak[row], memory.peak_mib())
                durations = step_durations_ms(marks, settings.warmup)
                all_steps[row].append(durations)
                step_ms[row].append(statistics.median(durations))
                schedule.append(["train", row, repeat])
            for row in RENDER_ROWS:
                models.activate(row, device)
                memory.reset()
                _sync(device)
                t0 = time.perf_counter()
                if row == BASELINE:
                    n = _render_script(models, resolution, settings, settings.images, settings.render_steps)
                else:
                    n = _render_ours(
                        models, resolution, settings, settings.images, settings.render_steps, ours_dtype
                    )
                _sync(device)
                per_s[row].append(n / (time.perf_counter() - t0))
                render_peak[row] = max(render_peak[row], memory.peak_mib())
                schedule.append(["render", row, repeat])

    ours_precision = f"{ours_mixed} autocast, fp32 weights" if ours_mixed != "no" else "fp32"
    descriptions = {
        "script": {
            "precision": "fp16 autocast, fp32 UNet, fp16 VAE + text encoder, GradScaler"
            if on_cuda
            else "fp32",
            "optimizer": "torch.optim.AdamW, script defaults (foreach on CUDA)"
            if on_cuda
            else "torch.optim.AdamW",
            "per_step": "transform + tokenize; VAE encode; text encode; UNet fwd/bwd; clip; step; loss.item()",
        },
        "ours-fp16": {
            "precision": "fp16 autocast, fp32 weights, GradScaler"
            if on_cuda
            else "fp32 (no autocast on CPU)",
            "optimizer": "AdamW(fused=True)" if on_cuda else "AdamW(foreach=True)",
            "per_step": "sample cached latents; precomputed text embeddings; UNet fwd/bwd; clip; step",
        },
        "ours": {
            "precision": ours_precision,
            "optimizer": "AdamW(fused=True)" if on_cuda else "AdamW(foreach=True)",
            "per_step": "sample cached latents; precomputed text embeddings; UNet fwd/bwd; clip; step",
        },
    }
    base_ms = statistics.median(step_ms[BASELINE])
    train = {
        row: {
            "step_ms": _summary(step_ms[row]),
            "step_ms_per_repeat": step_ms[row],
            "step_ms_all": all_steps[row],
            "peak_memory_mib": train_peak[row],
            "speedup_vs_script": base_ms / statistics.median(step_ms[row]),
            **descriptions[row],
        }
        for row in TRAIN_ROWS
    }
    train[BASELINE]["grad_scaler_skipped_steps"] = skipped
    train["ours"]["latent_precompute_s"] = _summary(precompute)
    base_rate = statistics.median(per_s[BASELINE])
    render_info = {
        "script": {
            "call": "StableDiffusionPipeline.__call__, 1 image per call, device generator",
            "batch": 1,
            "precision": "fp16 autocast, fp32 UNet, fp16 VAE + text encoder" if on_cuda else "fp32",
        },
        "ours": {
            "call": f"render(), {min(settings.render_batch, settings.images)} images per call, per-image CPU generators",
            "batch": min(settings.render_batch, settings.images),
            "precision": ours_precision,
        },
    }
    render_rows = {
        row: {
            "images_per_s": _summary(per_s[row]),
            "images_per_s_per_repeat": per_s[row],
            "peak_memory_mib": render_peak[row],
            "speedup_vs_script": statistics.median(per_s[row]) / base_rate,
            **render_info[row],
        }
        for row in RENDER_ROWS
    }
    return {
        "label": LABEL,
        "size": settings.size,
        "device": device,
        "card": torch.cuda.get_device_name() if on_cuda else "cpu",
        "versions": {
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "cuda": torch.version.cuda,
        },
        "settings": dataclasses.asdict(settings)
        | {"resolution": resolution, "train_batch": "1 instance + 1 class image", "sampler": "ddim"},
        "memory_kind": memory.kind,
        "attention": attention,
        "schedule": schedule,
        "train": train,
        "render": render_rows,
        "wall_seconds": time.perf_counter() - started,
    }


def results_table(result: dict[str, Any]) -> Table:
    """One row per benchmark row: median, min–max over repeats, peak memory, speed-up vs the script."""
    from rich.table import Table

    where = "device" if result["device"] == "cuda" else "host"
    if "lora" in result:
        from dreambench.reference_impl.flow_lora_benchmark import flow_lora_table

        return flow_lora_table(result)
    s = result["settings"]
    table = Table(
        title=f"DreamBooth {result['size']} on {result['card']} ({LABEL})",
        caption=(
            f"{s['repeats']} alternating repeats; train: median of {s['steps']} steps per repeat; "
            f"render: {s['images']} images per repeat, {s['render_steps']} DDIM steps, guidance "
            f"{s['guidance']}, {s['resolution']} px; figures: median of the repeats [min–max]"
        ),
    )
    for header in ("row", "precision", "figure", f"peak {where} MiB", "speed-up vs script"):
        table.add_column(header, justify="left" if header in ("row", "precision") else "right")
    labels = {"script": "(a) train_dreambooth.py", "ours-fp16": "(b) ours, fp16 + scaler", "ours": "(c) ours"}
    for row, info in result["train"].items():
        ms = info["step_ms"]
        table.add_row(
            f"train {labels[row]}",
            info["precision"],
            f"{ms['median']:.1f} ms/step [{ms['min']:.1f}–{ms['max']:.1f}]",
            f"{info['peak_memory_mib']:.0f}",
            f"{info['speedup_vs_script']:.2f}",
        )
    render_labels = {"script": "(a) pipeline, 1 per call", "ours": "(c) render()"}
    for row, info in result["render"].items():
        rate = info["images_per_s"]
        table.add_row(
            f"render {render_labels[row]}",
            info["precision"],
            f"{rate['median']:.3f} img/s [{rate['min']:.3f}–{rate['max']:.3f}]",
            f"{info['peak_memory_mib']:.0f}",
            f"{info['speedup_vs_script']:.2f}",
        )
    return table


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchmarkSettings, Path | None]:
    defaults = BenchmarkSettings()
    parser = argparse.ArgumentParser(
        prog="python -m dreambench.reference_impl.gpu_benchmark",
        description=f"DreamBooth train/render speed and memory: diffusers' script vs reference_impl ({LABEL}).",
    )
    parser.add_argument("--size", choices=SIZES, default=defaults.size)
    parser.add_argument("--device", choices=DEVICES, default=defaults.device)
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="alternating rounds (>= 3)")
    parser.add_argument(
        "--steps", type=int, default=defaults.steps, help="timed training steps per row and repeat"
    )
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed training steps first")
    parser.add_argument(
        "--images", type=int, default=defaults.images, help="images per rendering row and repeat"
    )
    parser.add_argument("--render-steps", type=int, default=defaults.render_steps, help="DDIM steps")
    parser.add_argument("--render-batch", type=int, default=defaults.render_batch, help="our images per call")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--lora", choices=("flux", "sd3"), default=None, help="DreamBooth-LoRA train rows on FLUX.1 / SD3 instead"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the full result here")
    args = parser.parse_args(argv)
    settings = BenchmarkSettings(
        size=args.size,
        device=args.device,
        repeats=args.repeats,
        steps=args.steps,
        warmup=args.warmup,
        images=args.images,
        render_steps=args.render_steps,
        render_batch=args.render_batch,
        seed=args.seed,
        lora=args.lora or "",
    )
    return settings, args.json


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, optionally write ``--json``. Returns 0, or 2 on a bad input."""
    from rich.console import Console

    from dreambench.atomic import atomic_write_json

    settings, json_path = parse_args(argv)
    try:
        result = run_benchmark(settings)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Console().print(results_table(result))
    if json_path is not None:
        atomic_write_json(json_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

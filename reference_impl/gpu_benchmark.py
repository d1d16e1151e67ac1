"""GPU benchmark: diffusers' train_dreambooth.py against the ``dreambooth`` method, row by row.

    python -m dreambench.reference_impl.gpu_benchmark [--size sd15|tiny] [--device cuda|cpu]
        [--repeats N] [--steps N] [--warmup N] [--images N] [--render-steps N] [--render-batch N]
        [--drift-steps N] [--compile-backend inductor|aot_eager] [--json OUT]

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
  The eager row: every speed-up row states its numeric drift against it.
* ``bf16-weights`` (d) — (c) with ``precision_policy="bf16-weights"`` (precision_policy.py):
  bf16 working weights, fp32 masters in fused AdamW, no autocast (so no per-pass weight casts),
  the clip folded into the optimizer kernel.
* ``compiled`` (e) — (d) with ``compile=True``: the UNet's forward/backward compiled by inductor
  (its own layouts: no per-convolution NCHW<->NHWC transposes), once per process (step_graph.py);
  the first step's time is reported apart as ``compile_s``.
* ``graphed`` (f) — (e) with ``compile_mode="reduce-overhead"``: CUDA-graph capture of the
  static-shape forward/backward, against the launch-bound idle time (on CPU: as (e)).

Rendering rows (DDIM, ``--render-steps`` steps, guidance 7.5, at the model's resolution; the same
sampler for both so that the ratio measures the implementation, not the sampler):

* ``script`` — stock ``StableDiffusionPipeline.__call__``, one image per call with a device
  generator, fp16 VAE and text encoder, the UNet under ``torch.autocast("cuda")`` (fp16): what the
  script's ``log_validation`` does (it samples with 25 DPM-Solver steps; here both rows use DDIM).
* ``ours`` — what the ``dreambooth`` method does: ``render()`` with ``--render-batch`` images per
  pipeline call (the paper preset's 25), bf16 autocast over fp32 weights. The eager row.
* ``bf16-weights`` — ``render()`` on bf16 copies of the UNet, VAE and text encoder, no autocast
  (inference needs no fp32 master copy); on CUDA it also reports how many images per call the
  card's free memory would hold (``batch_fits_free_memory``).
* ``compiled`` — the same with the UNet compiled at the fixed batch shape, CUDA graphs
  (``reduce-overhead``); its compile (the warm-up call) is reported apart as ``compile_s``.

Numeric drift (after the timed rounds, untimed): from one snapshot of the weights and the same
seeds, each of our training rows runs ``--drift-steps`` steps and each rendering row one call of
``--render-batch`` images; each row states its largest per-step loss difference, the relative L2
distance of its weight update and its largest weight difference (training), and the relative L2
and largest difference of its final latents (rendering), against the eager row and against fp32;
fp32's own drift against the eager row is printed as the yardstick (numeric_drift.py).

Kernel profile (CUDA only, untimed): rows (c)-(f) under torch.profiler for 2 steps after 3
unprofiled ones: CUDA kernels per step (launch count, kernel time) and how many of them are
NCHW<->NHWC layout conversions (``kernel_profile`` in the JSON, in the table's precision cell).

Each ratio is row (a)'s figure over the row's (speed-up: above 1 means faster than the script).
The paths alternate — train a, b, c, render a, b, then again, ``--repeats`` times — so drift of
the machine (clocks, temperature, other jobs) hits every row alike. Each row reports the median of
its per-repeat medians with their min–max, and its peak memory (the most any repeat reached). Only
the row's own models are on the device while it runs: the other row's VAE and text encoder copies
wait in host memory.

On CPU there is no autocast (fp32 everywhere), so (b) and (c) run the same code, while the bf16
rows do run in bf16; ``--size tiny --device cpu --compile-backend aot_eager`` exists to test every
row's code, not to measure it. On a GPU, budget for the compiles (train (e), (f) and render (e)),
which the table reports apart from the per-step figures.

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
    from dreambench.reference_impl.dreambooth_trainer import TrainResult

LABEL = "random weights: timing only"

SIZES = ("sd15", "tiny")
DEVICES = ("cuda", "cpu")
TRAIN_ROWS = ("script", "ours-fp16", "ours", "bf16-weights", "compiled", "graphed")
RENDER_ROWS = ("script", "ours", "bf16-weights", "compiled")
BASELINE = "script"
# The eager row every speed-up row's numeric drift is measured against (and fp32, as a yardstick).
EAGER = "ours"
# TrainSettings of the speed-up rows (reference_impl/precision_policy.py, step_graph.py).
ROW_OPTIONS: dict[str, dict[str, Any]] = {
    "bf16-weights": {"mixed_precision": "bf16", "precision_policy": "bf16-weights"},
    "compiled": {"mixed_precision": "bf16", "precision_policy": "bf16-weights", "compile": True},
    "graphed": {
        "mixed_precision": "bf16",
        "precision_policy": "bf16-weights",
        "compile": True,
        "compile_mode": "reduce-overhead",
    },
}
# Render rows' denoiser compile mode (None: eager); "reduce-overhead" = CUDA graphs on CUDA.
RENDER_COMPILE = {"bf16-weights": None, "compiled": "reduce-overhead"}
COMPILE_BACKENDS = ("inductor", "aot_eager")

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
    # Numeric drift (after the timed rounds): training steps each row runs from the same weights
    # and seeds; its rendering drift uses one call of render_batch images.
    drift_steps: int = 5
    # torch.compile backend of the compiled rows: "inductor" (what runs); "aot_eager" (tests on CPU).
    compile_backend: str = "inductor"

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
        if self.compile_backend not in COMPILE_BACKENDS:
            raise BenchError(
                f"--compile-backend {self.compile_backend!r} is not one of {', '.join(COMPILE_BACKENDS)}"
            )
        for name in ("steps", "warmup", "images", "render_steps", "render_batch", "drift_steps"):
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
    memory: PeakMemory | None,
    options: dict[str, Any] | None = None,
    steps: int | None = None,
    on_step: Callable[[], None] | None = None,
) -> tuple[list[float], float, TrainResult]:
    """Rows (b)-(f): ``train_dreambooth`` with ``mixed_precision`` and the row's other TrainSettings
    ``options``; returns (timestamps after each step, precompute seconds, the TrainResult).

    The latent precompute (once per subject in the method) is timed apart and happens before the
    memory counter is reset. ``steps`` (default warmup + steps) is for the drift runs.
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
    options = {"mixed_precision": mixed_precision, **(options or {})}
    train_settings = TrainSettings(
        train_steps=steps if steps is not None else settings.warmup + settings.steps,
        learning_rate=LEARNING_RATE,
        **options,
    )
    marks: list[float] = []

    def after_step(step: int) -> None:
        _sync(device)
        marks.append(time.perf_counter())
        if on_step is not None:
            on_step()

    if memory is not None:
        memory.reset()
    result = train_dreambooth(
        base, data, train_settings, device, settings.seed, "benchmark", after_step=after_step
    )
    return marks, precompute_s, result


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
    pipe: Any = None,
    extra_inputs: dict[str, Any] | None = None,
) -> int:
    """What the ``dreambooth`` method's ``generate`` does: ``render`` in batches of ``render_batch``
    (with ``pipe``, default the fp32 base pipeline; ``dtype``: autocast)."""
    from dreambench.reference_impl.render import SamplerSettings, render

    sampler = SamplerSettings(
        scheduler="ddim", steps=steps, guidance=settings.guidance, resolution=resolution
    )
    prompts = [f"a photo of sks dog, view {i}" for i in range(n)]
    batch = min(settings.render_batch, settings.images)
    pipe = pipe if pipe is not None else models.base.pipeline()
    render(pipe, prompts, list(range(n)), sampler, settings.device, batch, dtype, extra_inputs)
    return n


def _fast_pipeline(base: Components, compile_mode: str | None) -> Any:
    """The fast inference path: bf16 copies of the UNet, VAE and text encoder (no autocast; no fp32
    master copy needed when nothing trains), the UNet compiled in ``compile_mode`` (None: eager)."""
    from dreambench.reference_impl import step_graph
    from dreambench.reference_impl.precision_policy import inference_copy

    parts = dataclasses.replace(
        base,
        unet=inference_copy(base.unet),
        vae=inference_copy(base.vae),
        text_encoder=inference_copy(base.text_encoder),
    )
    unet = step_graph.compile_denoiser(parts.unet, compile_mode) if compile_mode else parts.unet
    return parts.pipeline(unet=unet)


def _final_latents(render_call: Callable[[dict[str, Any]], Any]) -> torch.Tensor:
    """The latents after the last denoising step of ``render_call(extra_inputs)`` (fp32 copy)."""
    captured: dict[str, torch.Tensor] = {}

    def grab(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        captured["latents"] = tensors["latents"].detach().float().clone()
        return tensors

    render_call({"callback_on_step_end": grab, "callback_on_step_end_tensor_inputs": ["latents"]})
    return captured["latents"]


# -- kernel profile (CUDA) ----------------------------------------------------------------------

PROFILE_ROWS = ("ours", "bf16-weights", "compiled", "graphed")
LAYOUT_KERNELS = ("nchwToNhwc", "nhwcToNchw")


def _kernel_profile(
    models: Models,
    images: Sequence[Image.Image],
    resolution: int,
    settings: BenchmarkSettings,
    ours_mixed: str,
) -> dict[str, Any]:
    """Per train row, under torch.profiler for 2 steps after 3 unprofiled ones: CUDA kernels per
    step, their time per step, and the NCHW<->NHWC layout conversions among them (the H200
    profile's 5,432 kernels and 342 conversions per step for row (c)). A row whose profile fails
    holds its error instead (the timed figures stand either way)."""
    from torch.profiler import ProfilerActivity, profile, schedule

    out: dict[str, Any] = {}
    for row in PROFILE_ROWS:
        try:
            with profile(
                activities=[ProfilerActivity.CUDA], schedule=schedule(wait=3, warmup=0, active=2, repeat=1)
            ) as prof:
                _train_ours(
                    models, images, resolution, settings, ours_mixed, None, ROW_OPTIONS.get(row), 5, prof.step
                )
            kernels, layout, device_us = 0, 0, 0.0
            for event in prof.events():
                if str(getattr(event, "device_type", "")).endswith("CUDA"):
                    kernels += 1
                    device_us += getattr(event, "device_time", 0.0) or 0.0
                    layout += any(name in event.name for name in LAYOUT_KERNELS)
            out[row] = {
                "kernels_per_step": kernels / 2,
                "layout_conversions_per_step": layout / 2,
                "kernel_ms_per_step": device_us / 2000,
            }
        except Exception as exc:  # noqa: BLE001 - a profile is extra information, never the result
            out[row] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return out


# -- numeric drift -----------------------------------------------------------------------------


def _drift(
    models: Models,
    images: Sequence[Image.Image],
    resolution: int,
    settings: BenchmarkSettings,
    ours_mixed: str,
    ours_dtype: torch.dtype | None,
) -> dict[str, dict[str, Any]]:
    """Each of our rows against the eager row (c), from the same weights and seeds, untimed.

    train: ``drift_steps`` steps per row from one snapshot of the UNet; per row the largest
    per-step loss difference, the largest weight difference and the update's relative L2 distance
    (numeric_drift.weight_drift), against (c) and against fp32. render: one call of
    ``render_batch`` images; the final latents' largest difference and relative L2 against (c)'s
    and fp32's. An "fp32" entry holds fp32's own drift against (c). The UNet ends as it started.
    """
    import torch

    from dreambench.reference_impl.numeric_drift import series_drift, snapshot, tensor_drift, weight_drift

    device = settings.device
    unet = models.base.unet
    models.activate(EAGER, device)
    init = snapshot(unet)

    def restore() -> None:
        with torch.no_grad():
            for name, p in unet.named_parameters():
                p.copy_(init[name])

    def train(mixed: str, options: dict[str, Any] | None) -> tuple[list[float], dict[str, torch.Tensor]]:
        restore()
        _, _, result = _train_ours(
            models, images, resolution, settings, mixed, None, options, settings.drift_steps
        )
        return result.losses, snapshot(unet)

    def train_figures(
        run: tuple[list[float], dict[str, torch.Tensor]], ref: tuple[list[float], dict[str, torch.Tensor]]
    ) -> dict[str, Any]:
        weights = weight_drift(run[1], ref[1], init)
        return {
            "loss_max_abs": series_drift(run[0], ref[0]),
            "weights_max_abs": weights["max_abs"],
            "update_rel_l2": weights["update_rel_l2"],
        }

    fp32 = train("no", None)
    eager = train(ours_mixed, None)
    train_drift: dict[str, Any] = {"fp32": train_figures(fp32, eager)}
    for row in TRAIN_ROWS:
        if row == BASELINE:
            continue
        run = (
            eager
            if row == EAGER
            else train(
                "fp16" if row == "ours-fp16" and device == "cuda" else ours_mixed, ROW_OPTIONS.get(row)
            )
        )
        train_drift[row] = {
            "vs_eager": train_figures(run, eager),
            "vs_fp32": train_figures(run, fp32),
            "steps": settings.drift_steps,
        }
        del run
    restore()

    n = min(settings.render_batch, settings.images)

    def latents(dtype: torch.dtype | None, pipe: Any = None) -> torch.Tensor:
        return _final_latents(
            lambda extra: _render_ours(
                models, resolution, settings, n, settings.render_steps, dtype, pipe, extra
            )
        )

    fp32_latents = latents(None)
    eager_latents = latents(ours_dtype)
    render_drift: dict[str, Any] = {"fp32": tensor_drift(fp32_latents, eager_latents)}
    for row in RENDER_ROWS:
        if row == BASELINE:
            continue
        out = (
            eager_latents if row == EAGER else latents(None, _fast_pipeline(models.base, RENDER_COMPILE[row]))
        )
        render_drift[row] = {
            "vs_eager": tensor_drift(out, eager_latents),
            "vs_fp32": tensor_drift(out, fp32_latents),
            "images": n,
        }
    return {"train": train_drift, "render": render_drift}


def _batch_for_free_memory(peak_mib: float, settings: BenchmarkSettings) -> int:
    """Images per render call that the card's free memory holds, from a row's peak at its batch.

    Called right after the row's call, its weights still loaded: per image = (peak - allocated
    now) / batch, taken as linear in the batch; the memory for them is what the driver reports
    free plus what torch's allocator holds unused, 10% of it kept spare.
    """
    import torch

    free, _ = torch.cuda.mem_get_info()
    allocated = torch.cuda.memory_allocated()
    budget = free + torch.cuda.memory_reserved() - allocated
    per_image = max((peak_mib * 2**20 - allocated) / min(settings.render_batch, settings.images), 1.0)
    return max(1, int(0.9 * budget / per_image))


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
    # Seconds of the first (compiling) step / render call of the compiled rows, reported apart.
    train_compile_s: dict[str, float] = {}
    render_compile_s: dict[str, float] = {}
    fits_batch: list[int] = []

    from dreambench.reference_impl import step_graph

    backend_before = step_graph.BACKEND
    step_graph.BACKEND = settings.compile_backend
    try:
        with _quiet_random_outputs():
            # Render warm-up, one short call per row (kernel selection, lazy initialisation, the
            # compiled row's compile; untimed, the compile reported apart).
            for row in RENDER_ROWS:
                models.activate(row, device)
                _sync(device)
                t0 = time.perf_counter()
                if row == BASELINE:
                    _render_script(models, resolution, settings, 1, 2)
                elif row == EAGER:
                    _render_ours(models, resolution, settings, 1, 2, ours_dtype)
                else:
                    pipe = _fast_pipeline(base, RENDER_COMPILE[row])
                    _render_ours(models, resolution, settings, 1, 2, None, pipe)
                    del pipe
                _sync(device)
                if RENDER_COMPILE.get(row):
                    render_compile_s[row] = time.perf_counter() - t0
            for repeat in range(settings.repeats):
                for row in TRAIN_ROWS:
                    models.activate(row, device)
                    if row == BASELINE:
                        memory.reset()
                        marks, n_skipped = _train_script(models, images, resolution, settings)
                        skipped.append(n_skipped)
                    else:
                        mixed = "fp16" if row == "ours-fp16" and on_cuda else ours_mixed
                        options = ROW_OPTIONS.get(row)
                        marks, seconds, trained = _train_ours(
                            models, images, resolution, settings, mixed, memory, options
                        )
                        if row == EAGER:
                            precompute.append(seconds)
                        if trained.compile_seconds > 0:
                            train_compile_s[row] = trained.compile_seconds
                    train_peak[row] = max(train_peak[row], memory.peak_mib())
                    durations = step_durations_ms(marks, settings.warmup)
                    all_steps[row].append(durations)
                    step_ms[row].append(statistics.median(durations))
                    schedule.append(["train", row, repeat])
                for row in RENDER_ROWS:
                    models.activate(row, device)
                    pipe = None
                    if row not in (BASELINE, EAGER):
                        # A fresh bf16 copy (what a method would make after training); one untimed
                        # call at the batch shape re-records the compiled row's CUDA graphs.
                        pipe = _fast_pipeline(base, RENDER_COMPILE[row])
                        _render_ours(models, resolution, settings, 1, 1, None, pipe)
                    memory.reset()
                    _sync(device)
                    t0 = time.perf_counter()
                    if row == BASELINE:
                        n = _render_script(
                            models, resolution, settings, settings.images, settings.render_steps
                        )
                    else:
                        dtype = ours_dtype if row == EAGER else None
                        n = _render_ours(
                            models, resolution, settings, settings.images, settings.render_steps, dtype, pipe
                        )
                    _sync(device)
                    per_s[row].append(n / (time.perf_counter() - t0))
                    render_peak[row] = max(render_peak[row], memory.peak_mib())
                    if row == "bf16-weights" and on_cuda:
                        fits_batch.append(_batch_for_free_memory(render_peak[row], settings))
                    del pipe
                    schedule.append(["render", row, repeat])
            # CUDA only: kernel counts per step (on CPU there are no CUDA kernels to count).
            profiles = _kernel_profile(models, images, resolution, settings, ours_mixed) if on_cuda else {}
            drift = _drift(models, images, resolution, settings, ours_mixed, ours_dtype)
    finally:
        step_graph.BACKEND = backend_before

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
        "bf16-weights": {
            "precision": "bf16 working weights, fp32 masters in the optimizer, no autocast",
            "optimizer": "AdamW(fused=True) on the fp32 masters, clip folded into its grad_scale",
            "per_step": "as (c), then bf16 grads -> fp32 masters; norm; fused step; masters -> bf16 weights",
        },
        "compiled": {
            "precision": "as (d); torch.compile (inductor) kernels and layouts",
            "optimizer": "as (d)",
            "per_step": "as (d), the UNet forward/backward compiled once per process (mode default)",
        },
        "graphed": {
            "precision": "as (e)",
            "optimizer": "as (d)",
            "per_step": "as (e) with CUDA-graph capture of forward/backward (mode reduce-overhead)"
            if on_cuda
            else "as (e) (no CUDA graphs on CPU: torch compiles it as mode default)",
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
            **({"options": ROW_OPTIONS[row]} if row in ROW_OPTIONS else {}),
            **({"compile_s": train_compile_s[row]} if row in train_compile_s else {}),
            **({"drift": drift["train"][row]} if row in drift["train"] else {}),
            **({"kernel_profile": profiles[row]} if row in profiles else {}),
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
        "bf16-weights": {
            "call": "render() as (c) on bf16 copies of UNet, VAE and text encoder",
            "batch": min(settings.render_batch, settings.images),
            "precision": "bf16 weights, no autocast",
            # Images per call that the card's free memory holds at this row's per-image peak.
            **({"batch_fits_free_memory": min(fits_batch)} if fits_batch else {}),
        },
        "compiled": {
            "call": "as (d), the UNet compiled once per process, CUDA graphs (mode reduce-overhead)"
            if on_cuda
            else "as (d), the UNet compiled (no CUDA graphs on CPU)",
            "batch": min(settings.render_batch, settings.images),
            "precision": "bf16 weights, no autocast; inductor kernels",
        },
    }
    render_rows = {
        row: {
            "images_per_s": _summary(per_s[row]),
            "images_per_s_per_repeat": per_s[row],
            "peak_memory_mib": render_peak[row],
            "speedup_vs_script": statistics.median(per_s[row]) / base_rate,
            **render_info[row],
            **({"compile_s": render_compile_s[row]} if row in render_compile_s else {}),
            **({"drift": drift["render"][row]} if row in drift["render"] else {}),
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
        # The yardstick: fp32 (no autocast) against the eager row, same weights and seeds.
        "drift_fp32": {"train": drift["train"]["fp32"], "render": drift["render"]["fp32"]},
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
            + (
                f"; drift vs (c): same weights and seeds, {s['drift_steps']} train steps (largest loss "
                "difference, weight update's relative L2, largest weight difference) / one render call "
                "(final latents' relative L2, largest difference)"
                if "drift_steps" in s
                else ""
            )
        ),
    )
    for header in ("row", "precision", "figure", f"peak {where} MiB", "speed-up vs script", "drift vs (c)"):
        table.add_column(
            header, justify="left" if header in ("row", "precision", "drift vs (c)") else "right"
        )
    labels = {
        "script": "(a) train_dreambooth.py",
        "ours-fp16": "(b) ours, fp16 + scaler",
        "ours": "(c) ours",
        "bf16-weights": "(d) bf16 weights + fp32 masters",
        "compiled": "(e) (d) + torch.compile",
        "graphed": "(f) (e) + CUDA graphs",
    }
    for row, info in result["train"].items():
        ms = info["step_ms"]
        compiled = f" (compile {info['compile_s']:.1f} s, once)" if "compile_s" in info else ""
        kernels = info.get("kernel_profile", {})
        profiled = (
            f"; {kernels['kernels_per_step']:.0f} kernels/step, "
            f"{kernels['layout_conversions_per_step']:.0f} NCHW↔NHWC"
            if "kernels_per_step" in kernels
            else ""
        )
        table.add_row(
            f"train {labels.get(row, row)}{compiled}",
            info["precision"] + profiled,
            f"{ms['median']:.1f} ms/step [{ms['min']:.1f}–{ms['max']:.1f}]",
            f"{info['peak_memory_mib']:.0f}",
            f"{info['speedup_vs_script']:.2f}",
            _train_drift_cell(info.get("drift")),
        )
    render_labels = {
        "script": "(a) pipeline, 1 per call",
        "ours": "(c) render()",
        "bf16-weights": "(d) render(), bf16 weights",
        "compiled": "(e) (d) + compile, CUDA graphs",
    }
    for row, info in result["render"].items():
        rate = info["images_per_s"]
        compiled = f" (compile {info['compile_s']:.1f} s, once)" if "compile_s" in info else ""
        fits = f"; {info['batch_fits_free_memory']} per call fit" if "batch_fits_free_memory" in info else ""
        table.add_row(
            f"render {render_labels.get(row, row)}{compiled}",
            info["precision"] + fits,
            f"{rate['median']:.3f} img/s [{rate['min']:.3f}–{rate['max']:.3f}]",
            f"{info['peak_memory_mib']:.0f}",
            f"{info['speedup_vs_script']:.2f}",
            _render_drift_cell(info.get("drift")),
        )
    if "drift_fp32" in result:
        fp32 = result["drift_fp32"]
        table.add_row(
            "fp32 (yardstick)",
            "no autocast, fp32 weights",
            "",
            "",
            "",
            f"{_train_drift_cell({'vs_eager': fp32['train']})}; {_render_drift_cell({'vs_eager': fp32['render']})}",
        )
    return table


def _figure(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _train_drift_cell(drift: dict[str, Any] | None) -> str:
    """Loss and weight drift against the eager row (c): 'loss ±…, Δw …% (max …)'."""
    if drift is None:
        return "—"
    d = drift["vs_eager"]
    return (
        f"loss ±{_figure(d['loss_max_abs'], '.1e')}, update {_figure(d['update_rel_l2'], '.1%')} "
        f"(max {_figure(d['weights_max_abs'], '.1e')})"
    )


def _render_drift_cell(drift: dict[str, Any] | None) -> str:
    """Final latents' drift against the eager row (c): 'latents …% (max …)'."""
    if drift is None:
        return "—"
    d = drift["vs_eager"]
    return f"latents {_figure(d['rel_l2'], '.1%')} (max {_figure(d['max_abs'], '.1e')})"


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
        "--drift-steps", type=int, default=defaults.drift_steps, help="training steps of each row's drift run"
    )
    parser.add_argument(
        "--compile-backend",
        choices=COMPILE_BACKENDS,
        default=defaults.compile_backend,
        help="torch.compile backend of the compiled rows (aot_eager: quick CPU checks)",
    )
    parser.add_argument(
        "--lora",
        choices=("flux", "sd3"),
        default=None,
        help="DreamBooth-LoRA train rows on FLUX.1 / SD3 instead",
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
        drift_steps=args.drift_steps,
        compile_backend=args.compile_backend,
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

"""GPU benchmark: reference_impl's DreamBooth path against diffusers' train_dreambooth.py, side by side.

    python -m dreambench.reference_impl.gpu_benchmark [--size sd15|tiny] [--device cuda|cpu] [--steps N]
        [--warmup N] [--images N] [--render-steps N] [--render-batch N] [--channels-last] [--json OUT]

Everything runs in one process on one device, on models with **random weights** (nothing is
downloaded): ``--size sd15`` builds Stable Diffusion 1.5's architecture from its configs (below),
``--size tiny`` the embedded tiny model (reference_impl/tiny_model.py). Random weights make the
figures *timing only*: the work per step and per image is that of the real model, the images are
noise.

Two paths, each measured for training and for rendering:

* **optimized** = what the ``dreambooth`` method does (reference_impl/dreambooth.py): VAE posteriors
  computed once (reference_impl/latent_cache.py), text embeddings computed once, bf16 autocast on
  CUDA (fp16 with a GradScaler where the card has no bf16), fused AdamW on CUDA (multi-tensor on
  CPU), optional channels_last. It *is* ``train_dreambooth`` (timed through its ``after_step``
  hook), and rendering is ``render`` with ``--render-batch`` images per pipeline call.
* **baseline** = what diffusers' examples/dreambooth/train_dreambooth.py does per step with
  ``--mixed_precision=fp16 --with_prior_preservation`` and otherwise default flags: transform both
  images and tokenize both prompts (its ``DreamBoothDataset``/``collate_fn``, dataloader workers 0),
  VAE-encode them (VAE and text encoder cast to fp16), text-encode both prompts, UNet forward in fp16
  autocast over fp32 weights, GradScaler (what accelerate does for fp16), ``torch.optim.AdamW`` as the
  script builds it (no ``foreach``/``fused`` argument, i.e. torch's default implementation), clipping
  at 1.0, ``zero_grad(set_to_none=False)`` and ``loss.item()`` each step. Rendering is one image per
  pipeline call under fp16 autocast, as the script's ``log_validation`` does. Disk reads are left out
  (the images are in memory at the training resolution), which makes the baseline a little faster
  than the script, never slower.

Both paths use the same attention implementation (diffusers' default processor, SDPA on torch 2),
the same schedule (SD 1.5's), one instance + one class image per step at the model's resolution, the
same learning rate, and DDIM with ``--render-steps`` steps at guidance 7.5 for rendering.

Figures (``run_benchmark`` returns them as a dict, ``--json`` writes it):

* train step time: median over ``--steps`` steps after ``--warmup`` steps, each step ending with
  ``torch.cuda.synchronize()`` (so queued GPU work is counted in its own step);
* peak memory of each phase: on CUDA ``torch.cuda.max_memory_allocated`` (reset before each phase;
  resident weights count); on CPU the process's peak resident set size (VmHWM, reset through
  ``/proc/self/clear_refs`` before each phase), labelled host memory;
* rendering throughput in images/s over ``--images`` images, after one short warm-up call;
* ratio = baseline / optimized for every figure (> 1 for times and memory, < 1 for images/s, means
  the optimized path is better).

Budget: with the defaults (``--steps 20 --warmup 3 --images 16 --render-steps 50``) an SD 1.5-size
run on one H100 is expected to take about 2-3 minutes including start-up, well inside an 8-minute
budget (an estimate from the work involved; see docs/PERFORMANCE.md for measured figures).
"""

from __future__ import annotations

import argparse
import contextlib
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

# The exact configs of stable-diffusion-v1-5/stable-diffusion-v1-5 at the pinned revision
# (dreambench.reference_impl.base_model.SD15_REVISION): unet/config.json, vae/config.json and
# text_encoder/config.json (the text config of openai/clip-vit-large-patch14, ViT-L/14), keys that
# equal the library defaults left out. The scheduler is tiny_model.SD_SCHEDULER_CONFIG, which is
# SD 1.5's scheduler/scheduler_config.json; model_index.json pairs these with a CLIPTokenizer.
SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "center_input_sample": False,
}
SD15_VAE_CONFIG: dict[str, Any] = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "scaling_factor": 0.18215,
}
SD15_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
SD15_RESOLUTION = 512

# Both paths train with the paper's / diffusers README's learning rate and the script's Adam and
# clipping defaults (TrainSettings carries the same defaults for the optimized path).
LEARNING_RATE = 5e-6
INSTANCE_PROMPT = "a photo of sks dog"
CLASS_PROMPT = "a photo of dog"


@dataclass(frozen=True)
class BenchmarkSettings:
    """What one benchmark run measures; every field is recorded in the JSON output.

    steps: timed training steps per path (after ``warmup`` untimed ones); images: rendered images
    per path; render_steps: DDIM steps per image; render_batch: images per pipeline call for the
    optimized path (the baseline renders one at a time); channels_last: the trainer's option.
    """

    size: str = "sd15"
    device: str = "cuda"
    steps: int = 20
    warmup: int = 3
    images: int = 16
    render_steps: int = 50
    render_batch: int = 8
    guidance: float = 7.5
    channels_last: bool = False
    seed: int = 0

    def validate(self) -> None:
        """Raise BenchError naming the first bad field and its valid values."""
        if self.size not in SIZES:
            raise BenchError(f"--size {self.size!r} is not one of {', '.join(SIZES)}")
        if self.device not in DEVICES:
            raise BenchError(f"--device {self.device!r} is not one of {', '.join(DEVICES)}")
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

    The tokenizer is the real CLIP BPE tokenizer of the embedded tiny model's folder; nothing is
    downloaded. The modules are created directly on ``device`` (initialising ~1.1B parameters on a
    CPU first would take longer than the benchmark itself on a GPU machine).
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from dreambench.reference_impl.base_model import Components, load_tokenizer
    from dreambench.reference_impl.tiny_model import SD_SCHEDULER_CONFIG, TINY_MODEL_ID, ensure_tiny_model

    tokenizer = load_tokenizer(TINY_MODEL_ID)
    torch.manual_seed(seed)  # the benchmark owns its process: no need to preserve the RNG state
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET_CONFIG)
        vae = AutoencoderKL(**SD15_VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT_CONFIG))
    for module in (unet, vae, text_encoder):  # created on `device` in fp32 (torch's default dtype)
        module.eval()
        module.requires_grad_(False)
    return Components(
        folder=ensure_tiny_model(seed=0),
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler_config=dict(SD_SCHEDULER_CONFIG),
        description={
            "source": "random-init",
            "id": "sd15-architecture",
            "revision": "none",
            "path": "",
            "key": f"sd15-random-seed{seed}",
            "calibrated": False,
        },
    )


def build_components(size: str, device: str, seed: int) -> tuple[Components, int]:
    """(model components on ``device``, training/rendering resolution in pixels) for ``size``."""
    from dreambench.reference_impl.base_model import load_base_model
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


def _median_ms(marks: Sequence[float], warmup: int) -> tuple[float, list[float]]:
    """Step durations from end-of-step timestamps: (median of the steps after ``warmup``, all of them) in ms."""
    durations = [(b - a) * 1000 for a, b in zip(marks[warmup - 1 : -1], marks[warmup:])]
    return statistics.median(durations), durations


@contextlib.contextmanager
def _quiet_random_outputs() -> Iterator[None]:
    # Random-weight decoders can produce NaN pixels; numpy warns when casting them to uint8.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, message="invalid value encountered")
        yield


# -- the two paths -----------------------------------------------------------------------------


def _optimized_training(
    base: Components, images: Sequence[Image.Image], resolution: int, settings: BenchmarkSettings
) -> dict[str, Any]:
    """The ``dreambooth`` method's training: cached latents, precomputed text, ``train_dreambooth``."""
    import torch

    from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainSettings, train_dreambooth
    from dreambench.reference_impl.latent_cache import encode_images

    device = settings.device
    mixed = "no"
    if device == "cuda":
        mixed = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
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
        steps=settings.warmup + settings.steps,
        learning_rate=LEARNING_RATE,
        mixed_precision=mixed,
        channels_last=settings.channels_last,
    )
    marks: list[float] = []

    def after_step(step: int) -> None:
        _sync(device)
        marks.append(time.perf_counter())

    memory = PeakMemory(device)
    memory.reset()
    train_dreambooth(base, data, train_settings, device, settings.seed, "benchmark", after_step=after_step)
    median_ms, all_ms = _median_ms(marks, settings.warmup)
    optimizer = "AdamW(fused=True)" if device == "cuda" else "AdamW(foreach=True)"
    return {
        "train_step_ms": median_ms,
        "train_step_ms_all": all_ms,
        "train_peak_memory_mib": memory.peak_mib(),
        "latent_precompute_s": precompute_s,
        "train_precision": f"{mixed} autocast, fp32 weights" if mixed != "no" else "fp32",
        "grad_scaler": mixed == "fp16",
        "optimizer": optimizer,
        "channels_last": settings.channels_last,
        "per_step": "sample cached latents; precomputed text embeddings; UNet fwd/bwd; clip; step",
    }


def _baseline_training(
    base: Components, images: Sequence[Image.Image], resolution: int, settings: BenchmarkSettings
) -> dict[str, Any]:
    """diffusers' train_dreambooth.py's step loop (fp16 mixed precision, prior preservation)."""
    import torch
    from diffusers import DDPMScheduler

    from dreambench.reference_impl.dreambooth_trainer import TrainSettings, prior_preservation_loss
    from dreambench.reference_impl.latent_cache import preprocess

    device = settings.device
    on_cuda = device == "cuda"
    # The script: "cast all non-trainable weights (vae, non-lora text_encoder) to half-precision".
    weight_dtype = torch.float16 if on_cuda else torch.float32
    vae, text_encoder, unet, tokenizer = base.vae, base.text_encoder, base.unet, base.tokenizer
    if weight_dtype != torch.float32:
        vae.to(dtype=weight_dtype)
        text_encoder.to(dtype=weight_dtype)
    unet.requires_grad_(True)
    unet.train()
    noise_scheduler = DDPMScheduler.from_config(base.scheduler_config)
    defaults = TrainSettings(steps=1, learning_rate=LEARNING_RATE)
    memory = PeakMemory(device)
    memory.reset()
    optimizer = torch.optim.AdamW(
        unet.parameters(),
        lr=LEARNING_RATE,
        betas=(defaults.adam_beta1, defaults.adam_beta2),
        weight_decay=defaults.adam_weight_decay,
        eps=defaults.adam_epsilon,
    )
    scaler = torch.amp.GradScaler("cuda") if on_cuda else None
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = (
        (lambda: torch.autocast("cuda", dtype=torch.float16)) if on_cuda else contextlib.nullcontext
    )
    torch.manual_seed(settings.seed)
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
        # The step itself.
        model_input = vae.encode(pixels.to(dtype=weight_dtype)).latent_dist.sample()
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
    median_ms, all_ms = _median_ms(marks, settings.warmup)
    peak = memory.peak_mib()
    impl = "fused" if optimizer.defaults.get("fused") else "default (foreach on CUDA)"
    del optimizer
    unet.zero_grad(set_to_none=True)
    unet.requires_grad_(False)
    unet.eval()
    return {
        "train_step_ms": median_ms,
        "train_step_ms_all": all_ms,
        "train_peak_memory_mib": peak,
        "train_precision": "fp16 autocast, fp32 UNet, fp16 VAE + text encoder" if on_cuda else "fp32",
        "grad_scaler": on_cuda,
        "grad_scaler_skipped_steps": skipped,
        "optimizer": f"torch.optim.AdamW, script defaults ({impl if on_cuda else 'single-tensor on CPU'})",
        "channels_last": False,
        "per_step": "transform + tokenize; VAE encode; text encode; UNet fwd/bwd; clip; step; loss.item()",
    }


def _rendering(
    base: Components,
    resolution: int,
    settings: BenchmarkSettings,
    batch_size: int,
    dtype: torch.dtype | None,
) -> dict[str, Any]:
    """Images/s and peak memory of ``render`` with ``batch_size`` images per pipeline call."""
    from dreambench.reference_impl.render import SamplerSettings, render

    device = settings.device
    sampler = SamplerSettings(
        scheduler="ddim", steps=settings.render_steps, guidance=settings.guidance, resolution=resolution
    )
    pipe = base.pipeline()
    prompts = [f"a photo of sks dog, view {i}" for i in range(settings.images)]
    seeds = list(range(settings.images))
    with _quiet_random_outputs():
        # Warm-up: same batch shape, two denoising steps (kernel selection, lazy initialisation).
        render(
            pipe,
            prompts[:batch_size],
            seeds[:batch_size],
            dataclasses.replace(sampler, steps=2),
            device,
            batch_size=batch_size,
            autocast_dtype=dtype,
        )
        memory = PeakMemory(device)
        memory.reset()
        _sync(device)
        started = time.perf_counter()
        images = render(pipe, prompts, seeds, sampler, device, batch_size=batch_size, autocast_dtype=dtype)
        _sync(device)
        seconds = time.perf_counter() - started
    return {
        "render_images_per_s": len(images) / seconds,
        "render_seconds": seconds,
        "render_peak_memory_mib": memory.peak_mib(),
        "render_batch": batch_size,
        "render_precision": f"{str(dtype).removeprefix('torch.')} autocast" if dtype is not None else "fp32",
    }


# -- the benchmark -----------------------------------------------------------------------------

FIGURES = ("train_step_ms", "train_peak_memory_mib", "render_images_per_s", "render_peak_memory_mib")


def run_benchmark(settings: BenchmarkSettings) -> dict[str, Any]:
    """Measure both paths on one set of random-weight models; returns the JSON-ready result.

    Order: build models -> optimized training -> optimized rendering (fp32 weights, as the
    ``dreambooth`` method renders) -> cast VAE and text encoder down -> baseline training ->
    baseline rendering. Result keys: label, size, device, card, versions, settings, memory_kind,
    attention, paths.{optimized,baseline}.<figure>, ratio.<figure> (baseline / optimized).
    """
    import diffusers
    import torch
    import transformers

    settings.validate()
    device = settings.device
    started = time.perf_counter()
    base, resolution = build_components(settings.size, device, settings.seed)
    images = random_images(2, resolution, settings.seed)
    attention = sorted({type(p).__name__ for p in base.unet.attn_processors.values()})
    on_cuda = device == "cuda"
    optimized_dtype = None
    if on_cuda:
        optimized_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    render_batch = min(settings.render_batch, settings.images)

    optimized = _optimized_training(base, images, resolution, settings)
    optimized |= _rendering(base, resolution, settings, render_batch, optimized_dtype)
    baseline = _baseline_training(base, images, resolution, settings)
    baseline |= _rendering(base, resolution, settings, 1, torch.float16 if on_cuda else None)

    ratio = {name: (baseline[name] / optimized[name] if optimized[name] else None) for name in FIGURES}
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
        "memory_kind": PeakMemory(device).kind,
        "attention": attention,
        "paths": {"optimized": optimized, "baseline": baseline},
        "ratio": ratio,
        "wall_seconds": time.perf_counter() - started,
    }


def results_table(result: dict[str, Any]) -> Table:
    """The side-by-side table: one row per figure, columns optimized | baseline | baseline/optimized."""
    from rich.table import Table

    memory_where = "device" if result["device"] == "cuda" else "host"
    steps = result["settings"]["steps"]
    rows = (
        ("train_step_ms", f"train step, median of {steps} (ms)", "{:.1f}"),
        ("train_peak_memory_mib", f"train peak memory, {memory_where} (MiB)", "{:.0f}"),
        ("render_images_per_s", "render (images/s)", "{:.3f}"),
        ("render_peak_memory_mib", f"render peak memory, {memory_where} (MiB)", "{:.0f}"),
    )
    paths = result["paths"]
    table = Table(
        title=f"DreamBooth {result['size']} on {result['card']} ({LABEL})",
        caption=(
            f"render batch: optimized {paths['optimized']['render_batch']}, baseline 1; "
            f"{result['settings']['render_steps']} DDIM steps, guidance {result['settings']['guidance']}, "
            f"{result['settings']['resolution']} px"
        ),
    )
    for header in ("figure", "optimized", "baseline", "baseline / optimized"):
        table.add_column(header, justify="left" if header == "figure" else "right")
    for key, name, fmt in rows:
        ratio = result["ratio"][key]
        table.add_row(
            name,
            fmt.format(paths["optimized"][key]),
            fmt.format(paths["baseline"][key]),
            f"{ratio:.2f}" if ratio is not None else "-",
        )
    table.add_row(
        "precision (train)", paths["optimized"]["train_precision"], paths["baseline"]["train_precision"], ""
    )
    return table


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchmarkSettings, Path | None]:
    defaults = BenchmarkSettings()
    parser = argparse.ArgumentParser(
        prog="python -m dreambench.reference_impl.gpu_benchmark",
        description=f"DreamBooth train/render speed and memory: reference_impl vs diffusers' script ({LABEL}).",
    )
    parser.add_argument("--size", choices=SIZES, default=defaults.size)
    parser.add_argument("--device", choices=DEVICES, default=defaults.device)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="timed training steps per path")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed training steps first")
    parser.add_argument("--images", type=int, default=defaults.images, help="rendered images per path")
    parser.add_argument("--render-steps", type=int, default=defaults.render_steps, help="DDIM steps")
    parser.add_argument("--render-batch", type=int, default=defaults.render_batch, help="optimized path only")
    parser.add_argument("--channels-last", action="store_true", help="the trainer's channels_last option")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", type=Path, default=None, help="write the full result here")
    args = parser.parse_args(argv)
    settings = BenchmarkSettings(
        size=args.size,
        device=args.device,
        steps=args.steps,
        warmup=args.warmup,
        images=args.images,
        render_steps=args.render_steps,
        render_batch=args.render_batch,
        channels_last=args.channels_last,
        seed=args.seed,
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

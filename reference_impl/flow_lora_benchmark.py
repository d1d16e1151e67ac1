"""GPU benchmark rows for DreamBooth-LoRA on FLUX.1 and SD3: the diffusers script's train step
against the ``dreambooth-lora`` method's (``python -m dreambench.reference_impl.gpu_benchmark
--lora flux|sd3``; reference_impl/gpu_benchmark.py registers them).

Models have **random weights** (nothing is downloaded): the default size is the full FLUX.1-dev /
SD3 medium architecture built in memory on the device (reference_impl/random_model.py
``build_flux_modules`` / ``build_sd3_modules``); ``--size tiny`` is the embedded ``tiny-flux`` /
``tiny-sd3``. Figures are timings and memory, nothing else. Both rows train the same rank-4 LoRA
(the family's targets, reference_impl/lora.py) on one instance image per step at the README's
512 px (the tiny models' native 32 px), no prior preservation (README_flux.md / README_sd3.md), the
flow-matching objective of reference_impl/flow_matching.py (FLUX: uniform timesteps, guidance 1
as README_flux.md passes it; SD3: logit-normal timesteps, preconditioned outputs), text
embeddings computed once for both (the scripts do the same without custom prompts or text-encoder
training; the T5 encoder then leaves the device):

* ``script`` (a) — the step of train_dreambooth_lora_flux.py / train_dreambooth_lora_sd3.py as it
  is with the README's ``--mixed_precision`` (FLUX: bf16; SD3: fp16): the frozen transformer cast
  to that dtype, the LoRA weights fp32 under fp16 (``cast_training_params``) and in the frozen
  dtype under bf16, the image transformed and VAE-encoded (fp32 VAE) every step, the forward under
  autocast (GradScaler for fp16), ``torch.optim.AdamW`` as the scripts build it (torch's default
  implementation), clipping at 1.0, ``zero_grad()`` and ``loss.item()`` each step.
* ``ours`` (b) — ``train_dreambooth`` as the method runs it: fp32 weights under the preset's
  autocast (flux: bf16; sd3: fp16 with a GradScaler), cached latents, fused AdamW.

The rows alternate ``--repeats`` times; each reports the median of its per-repeat median step
times with their min-max, and its peak memory (allocator peak on CUDA, including the resident
frozen model; the other row's transformer waits in host memory). On CPU there is no autocast.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from dreambench.reference_impl.base_model import Components
    from dreambench.reference_impl.gpu_benchmark import BenchmarkSettings, PeakMemory

FAMILIES = ("flux", "sd3")
FLOW_ROWS = ("script", "ours")
INSTANCE_PROMPT = "a photo of sks dog"
# The README examples: resolution, learning rate, --mixed_precision (README_flux.md, README_sd3.md).
README_RESOLUTION = 512
LEARNING_RATE = {"flux": 1e-4, "sd3": 4e-4}
SCRIPT_PRECISION = {"flux": "bf16", "sd3": "fp16"}


def _full_size(family: str, device: str, seed: int) -> Components:
    """FLUX.1-dev or SD3 medium with seeded random weights, in memory on ``device``."""
    from transformers import CLIPTokenizer, T5Tokenizer

    from dreambench.cache_root import cache_root
    from dreambench.reference_impl.base_model import Components, quiet_loading
    from dreambench.reference_impl.random_model import build_flux_modules, build_sd3_modules, ensure_tokenizer
    from dreambench.reference_impl.tiny_flux import FLUX_SCHEDULER_CONFIG
    from dreambench.reference_impl.tiny_sd3 import SD3_SCHEDULER_CONFIG
    from dreambench.reference_impl.tiny_sdxl import _write_tokenizer_2
    from dreambench.reference_impl.tiny_t5 import write_t5_tokenizer

    folder = cache_root() / "models" / "flow-benchmark-tokenizers"
    write_t5_tokenizer(folder / "t5")
    _write_tokenizer_2(folder / "clip-bang")
    with quiet_loading():
        clip, t5 = (
            CLIPTokenizer.from_pretrained(ensure_tokenizer()),
            T5Tokenizer.from_pretrained(folder / "t5"),
        )
        clip_bang = CLIPTokenizer.from_pretrained(folder / "clip-bang")
    modules = (build_flux_modules if family == "flux" else build_sd3_modules)(device, seed)
    description = {"source": "random-in-memory", "id": f"random:{family}", "calibrated": False}
    if family == "flux":
        return Components(
            folder=folder, unet=None, vae=modules["vae"], text_encoder=modules["text_encoder"], tokenizer=clip,
            scheduler_config=dict(FLUX_SCHEDULER_CONFIG), description=description,
            text_encoder_2=modules["text_encoder_2"], tokenizer_2=t5, family="flux",
            transformer=modules["transformer"],
        )  # fmt: skip
    return Components(
        folder=folder, unet=None, vae=modules["vae"], text_encoder=modules["text_encoder"], tokenizer=clip,
        scheduler_config=dict(SD3_SCHEDULER_CONFIG), description=description,
        text_encoder_2=modules["text_encoder_2"], tokenizer_2=clip_bang, family="sd3",
        transformer=modules["transformer"], text_encoder_3=modules["text_encoder_3"], tokenizer_3=t5,
    )  # fmt: skip


def build_flow_components(family: str, size: str, device: str, seed: int) -> tuple[Components, int]:
    """(components on ``device``, training resolution) for ``family`` at ``size`` ("tiny" or full)."""
    from dreambench.reference_impl.base_model import load_base_model
    from dreambench.reference_impl.tiny_flux import TINY_FLUX_ID, TINY_FLUX_RESOLUTION
    from dreambench.reference_impl.tiny_sd3 import TINY_SD3_ID, TINY_SD3_RESOLUTION

    if family not in FAMILIES:
        raise BenchError(f"--lora {family!r} is not one of {', '.join(FAMILIES)}")
    if size == "tiny":
        ref, resolution = (
            (TINY_FLUX_ID, TINY_FLUX_RESOLUTION) if family == "flux" else (TINY_SD3_ID, TINY_SD3_RESOLUTION)
        )
        return load_base_model(ref, device=device), resolution
    return _full_size(family, device, seed), README_RESOLUTION


def _objective(base: Components, family: str, device: str) -> Any:
    from dreambench.reference_impl.flow_matching import FlowMatchObjective, FlowMatchSettings
    from dreambench.reference_impl.sd3 import SD3_MAX_SEQUENCE_LENGTH, SD3_WEIGHTING_SCHEME

    if family == "flux":
        settings = FlowMatchSettings(weighting_scheme="none", guidance=1.0, max_sequence_length=512)
    else:
        settings = FlowMatchSettings(
            weighting_scheme=SD3_WEIGHTING_SCHEME,
            precondition_outputs=True,
            max_sequence_length=SD3_MAX_SEQUENCE_LENGTH,
        )
    return FlowMatchObjective(base, [INSTANCE_PROMPT], settings, device)


def _script_steps(
    transformer: torch.nn.Module,
    base: Components,
    objective: Any,
    image: Image.Image,
    resolution: int,
    family: str,
    settings: BenchmarkSettings,
) -> list[float]:
    """Row (a): the script's step loop on its own copy of the transformer; end-of-step timestamps."""
    import torch

    from dreambench.reference_impl.gpu_benchmark import _autocast, _sync
    from dreambench.reference_impl.latent_cache import preprocess

    device = settings.device
    dtype = (
        {"bf16": torch.bfloat16, "fp16": torch.float16}[SCRIPT_PRECISION[family]]
        if device == "cuda"
        else None
    )
    params = [p for name, p in transformer.named_parameters() if "lora_" in name]
    optimizer = torch.optim.AdamW(
        params, lr=LEARNING_RATE[family], betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8
    )
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    autocast = _autocast(device, dtype)
    rows = torch.zeros(1, dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    vae = base.vae
    marks: list[float] = []
    transformer.train()
    for _ in range(settings.warmup + settings.steps):
        pixels = preprocess(image, resolution)[None].to(device)
        latents = vae.encode(pixels).latent_dist.sample()
        latents = (latents - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor
        latents = latents.to(dtype or torch.float32)
        with autocast():
            pred, target = objective(transformer, latents, rows, generator)
        loss = torch.nn.functional.mse_loss(pred.float(), target.float())
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        optimizer.zero_grad()
        loss.detach().item()
        _sync(device)
        marks.append(time.perf_counter())
    transformer.eval()
    return marks


def _our_steps(base: Components, objective: Any, image: Image.Image, resolution: int, family: str,
               settings: BenchmarkSettings, memory: PeakMemory) -> list[float]:  # fmt: skip
    """Row (b): ``train_dreambooth`` with the flow objective, as the method runs it; end-of-step
    timestamps."""
    from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainSettings, train_dreambooth
    from dreambench.reference_impl.gpu_benchmark import _sync
    from dreambench.reference_impl.latent_cache import encode_images

    device = settings.device
    data = TrainingData(
        instance=encode_images(base.vae, [image], resolution, device), instance_prompt=INSTANCE_PROMPT
    )
    train = TrainSettings(
        train_steps=settings.warmup + settings.steps,
        learning_rate=LEARNING_RATE[family],
        adam_weight_decay=1e-4,
        mixed_precision=("bf16" if family == "flux" else "fp16") if device == "cuda" else "no",
    )
    marks: list[float] = []

    def after_step(step: int) -> None:
        _sync(device)
        marks.append(time.perf_counter())

    params = [p for name, p in base.transformer.named_parameters() if "lora_" in name]
    for param in params:  # train_dreambooth leaves the model frozen after each run
        param.requires_grad_(True)
    memory.reset()
    train_dreambooth(
        base, data, train, device, settings.seed, "benchmark",
        trainable=params, after_step=after_step, objective=lambda prompts: objective,
    )  # fmt: skip
    return marks


def run_flow_lora_benchmark(settings: BenchmarkSettings) -> dict[str, Any]:
    """Measure the two LoRA train rows of ``settings.lora`` ("flux" or "sd3"); JSON-ready result.

    Keys: label, lora, size, device, resolution, memory_kind, train.<row> (step_ms median/min/max,
    per-repeat values, peak_memory_mib, precision, speedup_vs_script), wall_seconds.
    """
    import torch

    from dreambench.reference_impl.gpu_benchmark import LABEL, PeakMemory, random_images, step_durations_ms
    from dreambench.reference_impl.lora import TARGETS_OF_FAMILY, add_lora

    family, device = settings.lora, settings.device
    started = time.perf_counter()
    base, resolution = build_flow_components(family, settings.size, device, settings.seed)
    objective = _objective(base, family, device)
    # The conditioning is computed; the text encoders other than CLIP L/14 leave the device.
    for module in (base.text_encoder_2, base.text_encoder_3):
        if module is not None:
            module.to("cpu")
    script_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[SCRIPT_PRECISION[family]]
    script = copy.deepcopy(base.transformer)
    if device == "cuda":
        script.to(dtype=script_dtype)
    targets = TARGETS_OF_FAMILY[family]
    add_lora(script, 4, settings.seed, targets)
    if device == "cuda" and script_dtype == torch.float16:
        from diffusers.training_utils import cast_training_params

        cast_training_params(script, dtype=torch.float32)
    add_lora(base.transformer, 4, settings.seed, targets)
    image = random_images(1, resolution, settings.seed)[0]
    memory = PeakMemory(device)
    step_ms: dict[str, list[float]] = {row: [] for row in FLOW_ROWS}
    peak: dict[str, float] = dict.fromkeys(FLOW_ROWS, 0.0)
    for _ in range(settings.repeats):
        for row in FLOW_ROWS:
            active, idle = (script, base.transformer) if row == "script" else (base.transformer, script)
            if device != "cpu":
                idle.to("cpu")
            active.to(device)
            if row == "script":
                memory.reset()
                marks = _script_steps(script, base, objective, image, resolution, family, settings)
            else:
                marks = _our_steps(base, objective, image, resolution, family, settings, memory)
            peak[row] = max(peak[row], memory.peak_mib())
            step_ms[row].append(statistics.median(step_durations_ms(marks, settings.warmup)))
    on_cuda = device == "cuda"
    precision = {
        "script": f"{SCRIPT_PRECISION[family]} frozen weights, autocast" if on_cuda else "fp32",
        "ours": f"{'bf16' if family == 'flux' else 'fp16'} autocast, fp32 weights" if on_cuda else "fp32",
    }
    base_ms = statistics.median(step_ms["script"])
    return {
        "label": LABEL,
        "lora": family,
        "size": "tiny" if settings.size == "tiny" else "full",
        "device": device,
        "card": torch.cuda.get_device_name() if on_cuda else "cpu",
        "resolution": resolution,
        "memory_kind": memory.kind,
        "train": {
            row: {
                "step_ms": {"median": statistics.median(v), "min": min(v), "max": max(v)},
                "step_ms_per_repeat": v,
                "peak_memory_mib": peak[row],
                "precision": precision[row],
                "speedup_vs_script": base_ms / statistics.median(v),
            }
            for row, v in step_ms.items()
        },
        "wall_seconds": time.perf_counter() - started,
    }


def flow_lora_table(result: dict[str, Any]) -> Any:
    """One row per train row: median step time [min-max], precision, peak memory, speed-up vs the script."""
    from rich.table import Table

    where = "device" if result["device"] == "cuda" else "host"
    table = Table(
        title=f"DreamBooth-LoRA {result['lora']} ({result['size']}) on {result['card']} ({result['label']})",
        caption=f"{result['resolution']} px, batch 1; figures: median of the repeats [min–max]",
    )
    for header in ("row", "precision", "figure", f"peak {where} MiB", "speed-up vs script"):
        table.add_column(header, justify="left" if header in ("row", "precision") else "right")
    labels = {"script": f"(a) train_dreambooth_lora_{result['lora']}.py", "ours": "(b) ours"}
    for row, info in result["train"].items():
        ms = info["step_ms"]
        table.add_row(
            f"train {labels[row]}",
            info["precision"],
            f"{ms['median']:.1f} ms/step [{ms['min']:.1f}–{ms['max']:.1f}]",
            f"{info['peak_memory_mib']:.0f}",
            f"{info['speedup_vs_script']:.2f}",
        )
    return table

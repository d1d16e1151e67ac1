"""The DreamBooth trainer: fine-tune the UNet (optionally the text encoder) on a subject's images
with the class-specific prior-preservation loss (Ruiz et al., CVPR 2023, Sec. 3.3, Eq. 2):

    loss = E || eps_hat(z_t, t, c_instance) - eps ||^2 + lambda * E || eps_hat(z'_t, t', c_class) - eps' ||^2

where z are VAE latents of the subject's images, z' latents of the base model's own samples of the
class prompt ("a dog"), and c the text embeddings of "a [V] dog" and "a dog". ``train_dreambooth``
follows diffusers' examples/dreambooth/train_dreambooth.py step by step (same optimizer, clipping,
noise schedule, loss) and differs only where it is faster for the same result:

* VAE posteriors are computed once (reference_impl/latent_cache.py) instead of a VAE forward per
  step; latents are still *sampled* from them at each step, as the script does.
* Text embeddings are computed once when the text encoder is frozen (the script's
  ``--pre_compute_text_embeddings``).
* SDXL bases (``Components.is_sdxl``) are conditioned as diffusers'
  ``train_dreambooth_lora_sdxl.py`` conditions them (reference_impl/sdxl.py): both text encoders'
  penultimate hidden states, ``text_encoder_2``'s pooled embedding and the micro-conditioning
  ``time_ids`` (original size, crop top-left, target size) of each instance image, precomputed
  once; a class (prior) row gets the time ids of the instance example it is paired with, as the
  script's ``collate_fn`` does. The text encoders stay frozen on SDXL.
* FLUX.1 and SD3 bases train the flow-matching objective of ``train_dreambooth_lora_flux.py`` /
  ``train_dreambooth_lora_sd3.py`` instead of the noise-prediction one: the caller passes
  ``objective`` (reference_impl/flow_matching.py),
  which draws the noise and the timestep and returns prediction and target; the loop, the
  optimizer, clipping and the prior-preservation loss are the same.
* On CUDA: bf16/fp16 autocast (fp32 master weights, as the script requires; fp16 with a
  GradScaler), fused AdamW,
  SDPA attention (diffusers' default processor), optional 8-bit Adam (bitsandbytes), gradient
  checkpointing, channels_last and torch.compile (compiled once per process, optionally with
  CUDA-graph capture: reference_impl/step_graph.py).
* ``precision_policy="bf16-weights"`` (reference_impl/precision_policy.py): bf16 working weights
  with fp32 master weights in a fused AdamW, no autocast, clipping folded into the optimizer
  kernel; an option of the run's identity, off by default.

It is used by the ``dreambooth`` method and meant for reuse: ``trainable`` lets a caller train other
parameters (LoRA adapters, new token embeddings) through the same loop, ``after_step`` lets it
post-process them (e.g. restore the embeddings of old tokens).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dreambench.atomic import atomic_directory
from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import autocast_dtype
from dreambench.reference_impl.checked_settings import (
    CheckedSettings,
    at_least,
    non_negative,
    positive,
    positive_or_inf,
    unit_interval,
)
from dreambench.reference_impl.precision_policy import PrecisionPolicy
from dreambench.reference_impl.step_graph import CompileMode

if TYPE_CHECKING:
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from dreambench.reference_impl.base_model import Components
    from dreambench.reference_impl.flow_matching import FlowMatchObjective
    from dreambench.reference_impl.latent_cache import LatentDist


MixedPrecision = Literal["no", "fp16", "bf16"]

# Divergence rule (besides a NaN/inf loss): once 2 * DIVERGENCE_WINDOW steps are done, the mean loss
# of the last DIVERGENCE_WINDOW steps above DIVERGENCE_FACTOR times the mean of the first
# DIVERGENCE_WINDOW. A healthy run's loss falls or stays level; the per-step loss varies with the
# random timestep (roughly 0.01-1 for SD), so 10-step means and a 10x margin keep noise from firing it.
DIVERGENCE_WINDOW = 10
DIVERGENCE_FACTOR = 10.0


class TrainingDiverged(BenchError):
    """The training loss became NaN or infinite, or rose far above its start (``loss_diverged``)."""


@dataclass(frozen=True)
class TrainSettings(CheckedSettings):
    """The trainer's hyperparameters: the one trainer settings type. The Config of dreambooth,
    dreambooth-lora and textual-inversion *is* a TrainSettings (it inherits these fields, with its
    own defaults and their sources), so the trainer takes a method's config as it is.

    train_batch_size: instance images per step (with prior preservation the step also holds as many
    class images, so the UNet sees 2 * train_batch_size latents, as in diffusers' collate_fn).
    max_grad_norm: gradient-norm clip (inf: no clipping). The Adam/clipping defaults are
    train_dreambooth.py's argparse defaults. Every field is checked for type and range when built
    (reference_impl/checked_settings.py).
    """

    train_steps: int = field(default=1000, metadata=at_least(1))
    learning_rate: float = field(default=5e-6, metadata=positive())
    train_batch_size: int = field(default=1, metadata=at_least(1))
    max_grad_norm: float = field(default=1.0, metadata=positive_or_inf())
    # Speed switches (not in the paper; identical objective). bf16 autocast on CUDA only.
    mixed_precision: MixedPrecision = "bf16"
    gradient_checkpointing: bool = False
    use_8bit_adam: bool = False
    channels_last: bool = False
    compile: bool = False
    # torch.compile mode of the step's denoiser (reference_impl/step_graph.py); "reduce-overhead"
    # adds CUDA-graph capture on CUDA. Used only with compile=true.
    compile_mode: CompileMode = "default"
    # Where the weights live during the step (reference_impl/precision_policy.py): "autocast" (fp32
    # weights under mixed_precision autocast) or "bf16-weights" (bf16 working weights, fp32 masters
    # in the optimizer; needs mixed_precision=bf16, full fine-tuning of an SD 1.x/2.x UNet).
    precision_policy: PrecisionPolicy = "autocast"
    adam_beta1: float = field(default=0.9, metadata=unit_interval())
    adam_beta2: float = field(default=0.999, metadata=unit_interval())
    adam_weight_decay: float = field(default=1e-2, metadata=non_negative())
    adam_epsilon: float = field(default=1e-8, metadata=positive())


def loss_diverged(losses: Sequence[float]) -> bool:
    """The divergence rule (see DIVERGENCE_WINDOW): last-window mean > factor x first-window mean."""
    k = DIVERGENCE_WINDOW
    if len(losses) < 2 * k:
        return False
    first = sum(losses[:k]) / k
    last = sum(losses[-k:]) / k
    return last > DIVERGENCE_FACTOR * first


@dataclass
class TrainingData:
    """What one training run sees: latent posteriors and the two prompts.

    ``classes`` is None without prior preservation; ``prior_loss_weight`` is the paper's lambda
    for them. ``instance_prompts``, if given, replaces the single ``instance_prompt``: each
    instance example then gets one of them, drawn uniformly at random per step (Textual
    Inversion's prompt templates).
    """

    instance: LatentDist
    instance_prompt: str
    classes: LatentDist | None = None
    class_prompt: str = ""
    instance_prompts: tuple[str, ...] = ()
    prior_loss_weight: float = 1.0
    # (height, width) of each instance image as read from disk, before resizing: SDXL's
    # micro-conditioning ("original_size"); unused for SD 1.x/2.x.
    instance_sizes: tuple[tuple[int, int], ...] = ()


@dataclass
class TrainResult:
    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel | None
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    # compile=true: seconds of the first step when it compiled the step's graph in this process
    # (0.0 when an earlier run in the process had compiled it already; reference_impl/step_graph.py).
    compile_seconds: float = 0.0


def prior_preservation_loss(
    pred: torch.Tensor, target: torch.Tensor, n_instance: int, prior_weight: float
) -> torch.Tensor:
    """DreamBooth's loss on a batch whose first ``n_instance`` rows are instance examples and the
    rest class (prior) examples:

        MSE(pred[:n], target[:n]) + prior_weight * MSE(pred[n:], target[n:])

    each MSE a mean over its own elements, computed in fp32 (diffusers' train_dreambooth.py). With
    no prior rows it is the plain instance MSE.
    """
    import torch.nn.functional as F

    pred, target = pred.float(), target.float()
    instance = F.mse_loss(pred[:n_instance], target[:n_instance], reduction="mean")
    if n_instance >= pred.shape[0]:
        return instance
    prior = F.mse_loss(pred[n_instance:], target[n_instance:], reduction="mean")
    return instance + prior_weight * prior


def _index_stream(n_items: int, generator: torch.Generator) -> Callable[[int], list[int]]:
    """Like a shuffling DataLoader over range(n_items): successive reshuffled epochs, ``take(k)`` at a time."""
    import torch

    pending: list[int] = []

    def take(k: int) -> list[int]:
        while len(pending) < k:
            pending.extend(torch.randperm(n_items, generator=generator).tolist())
        out = pending[:k]
        del pending[:k]
        return out

    return take


def _make_optimizer(
    params: list[torch.nn.Parameter], settings: TrainSettings, device: str, fused: bool = False
) -> torch.optim.Optimizer:
    """AdamW over ``params``; ``fused`` forces the fused kernel on any device (bf16-weights policy)."""
    import torch

    kwargs = {
        "lr": settings.learning_rate,
        "betas": (settings.adam_beta1, settings.adam_beta2),
        "weight_decay": settings.adam_weight_decay,
        "eps": settings.adam_epsilon,
    }
    if settings.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise BenchError(
                "use_8bit_adam=true needs bitsandbytes (pip install bitsandbytes) and a CUDA GPU"
            ) from None
        return bnb.optim.AdamW8bit(params, **kwargs)
    # Fused AdamW: one kernel for all parameters on CUDA; on CPU the multi-tensor (foreach) path is
    # the fastest available.
    if fused or torch.device(device).type == "cuda":
        return torch.optim.AdamW(params, fused=True, **kwargs)
    return torch.optim.AdamW(params, foreach=True, **kwargs)


def _check_bf16_weights(
    settings: TrainSettings,
    base: Components,
    trainable: Sequence[torch.nn.Parameter] | None,
    objective: Callable[[list[str]], FlowMatchObjective] | None,
) -> None:
    """Raise BenchError unless precision_policy=bf16-weights applies to this run."""
    if settings.mixed_precision != "bf16":
        raise BenchError(
            f"precision_policy=bf16-weights needs mixed_precision=bf16 (got {settings.mixed_precision!r}); "
            "or use precision_policy=autocast"
        )
    if settings.use_8bit_adam:
        raise BenchError("precision_policy=bf16-weights keeps fp32 masters in AdamW; expected use_8bit_adam=false")
    if trainable is not None or objective is not None or base.is_sdxl:
        raise BenchError(
            "precision_policy=bf16-weights covers full fine-tuning of an SD 1.x/2.x UNet (dreambooth); "
            "expected precision_policy=autocast here"
        )


def train_dreambooth(
    base: Components,
    data: TrainingData,
    settings: TrainSettings,
    device: str,
    seed: int,
    subject_name: str,
    trainable: Sequence[torch.nn.Parameter] | None = None,
    after_step: Callable[[int], None] | None = None,
    train_text_encoder: bool = False,
    objective: Callable[[list[str]], FlowMatchObjective] | None = None,
) -> TrainResult:
    """Fine-tune ``base.unet`` (and ``base.text_encoder`` if ``train_text_encoder``) in place.

    ``base`` must already be on ``device``. ``seed`` fixes the data order, the timesteps and the noise.
    ``trainable`` (default: the UNet's parameters, plus the text encoder's when trained) is what
    the optimizer updates; with ``train_text_encoder`` the text encoder also runs with gradients
    every step (Textual Inversion trains its embedding row that way). ``after_step(step)`` runs
    after each optimizer step. ``objective`` (flow-matching bases): called with the prompt rows,
    it returns the ``FlowMatchObjective`` that computes each step's prediction and target.
    Raises ``TrainingDiverged`` (naming ``subject_name`` and the step) if the loss is not finite or rises far above its start (``loss_diverged``).
    """
    import torch
    from diffusers import DDPMScheduler

    from dreambench.reference_impl import step_graph
    from dreambench.reference_impl.precision_policy import MasterWeights, check_policy

    started = time.perf_counter()
    unet, text_encoder = base.denoiser, base.text_encoder
    amp_dtype = autocast_dtype(settings.mixed_precision, device)

    # 1. Noise schedule of the base model, as a DDPM training scheduler (what the script loads).
    #    Flow-matching bases bring their own (``objective``).
    if objective is None:
        noise_scheduler = DDPMScheduler.from_config(base.scheduler_config)
        prediction_type = noise_scheduler.config.prediction_type
        if prediction_type not in ("epsilon", "v_prediction"):
            raise BenchError(
                f"base model prediction_type {prediction_type!r} is not supported; valid: epsilon, v_prediction"
            )

    # 2. What trains. The VAE never does; the text encoder only if asked.
    base.vae.requires_grad_(False)
    train_text = train_text_encoder
    if trainable is None:
        unet.requires_grad_(True)
        text_encoder.requires_grad_(train_text)
        params = list(unet.parameters()) + (list(text_encoder.parameters()) if train_text else [])
    else:
        params = list(trainable)
    unet.train()
    text_encoder.train(train_text)

    # 3. Memory/speed options (each optional, all standard diffusers/torch switches).
    if settings.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if train_text:
            text_encoder.gradient_checkpointing_enable()
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    if settings.channels_last:
        unet.to(memory_format=torch.channels_last)
    # Precision policy (reference_impl/precision_policy.py): bf16 working weights with fp32 masters
    # in the optimizer, no autocast; or fp32 weights under autocast.
    check_policy(settings.precision_policy)
    master = None
    if settings.precision_policy == "bf16-weights":
        _check_bf16_weights(settings, base, trainable, objective)
        master = MasterWeights(params)
        amp_dtype = None
    work_dtype = master.dtype if master is not None else None
    # Compiled once per process (reference_impl/step_graph.py), after the weights have their dtype.
    unet_forward = step_graph.compile_denoiser(unet, settings.compile_mode) if settings.compile else unet
    graph_steps = settings.compile and settings.compile_mode == "reduce-overhead" and torch.device(device).type == "cuda"

    # 4. Text conditioning: token ids once; embeddings once too when the text encoder is frozen.
    #    Rows: the instance prompt(s), then the class prompt.
    instance_prompts = list(data.instance_prompts) or [data.instance_prompt]
    n_prompts = len(instance_prompts)
    prompts = instance_prompts + ([data.class_prompt] if data.classes is not None else [])
    frozen_embeddings = None
    # SDXL only: pooled text embeddings (rows as above) and per-instance-image time ids.
    pooled_embeddings = time_ids = None
    flow = None
    if objective is not None:
        if train_text:
            raise BenchError("training the text encoders of a flow-matching base is not supported; expected them frozen")
        flow = objective(prompts)
    elif base.is_sdxl:
        from dreambench.reference_impl.sdxl import encode_prompts, micro_conditioning

        if train_text:
            raise BenchError("training the text encoders of an SDXL base is not supported; expected them frozen")
        if len(data.instance_sizes) != len(data.instance):
            raise BenchError(
                f"SDXL training needs the original size of each of the {len(data.instance)} instance images; "
                f"got {len(data.instance_sizes)}"
            )
        frozen_embeddings, pooled_embeddings = encode_prompts(base, prompts, device)
        factor = 2 ** (len(base.vae.config.block_out_channels) - 1)
        time_ids = micro_conditioning(data.instance_sizes, data.instance.mean.shape[-1] * factor).to(device)
    else:
        ids = base.tokenizer(
            prompts,
            padding="max_length",
            max_length=base.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(device)
        if not train_text:
            with torch.no_grad():
                frozen_embeddings = text_encoder(ids)[0]

    # 5. Latent posteriors (cached by the caller) and the data order.
    instance = data.instance.to(device)
    classes = data.classes.to(device) if data.classes is not None else None
    cpu_gen = torch.Generator().manual_seed(seed)
    dev_gen = torch.Generator(device=device).manual_seed(seed)
    n_items = max(len(instance), len(classes) if classes is not None else 0)
    take = _index_stream(n_items, cpu_gen)
    bsz = settings.train_batch_size

    # 6. Optimizer: AdamW with the script's defaults, constant learning rate, no warm-up. fp16
    #    autocast needs loss scaling (accelerate does the same for the script); bf16 does not.
    optimizer = _make_optimizer(
        master.masters if master is not None else params, settings, device, fused=master is not None
    )
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    losses: list[float] = []
    compile_seconds = 0.0
    signature, compiling = "", False
    if settings.compile:
        rows_per_step = bsz * (2 if classes is not None else 1)
        signature = step_graph.step_signature(
            unet, [(rows_per_step, *instance.mean.shape[1:])], settings.compile_mode, step_graph.BACKEND
        )
        compiling = not step_graph.LEDGER.is_compiled(signature)
    autocast = (
        (lambda: torch.autocast(device_type="cuda", dtype=amp_dtype))
        if amp_dtype is not None
        else contextlib.nullcontext
    )
    try:
        for step in range(1, settings.train_steps + 1):
            step_started = time.perf_counter()
            if graph_steps:
                torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs are done with
            # 7. A batch: bsz instance latents (+ bsz class latents), sampled from their posteriors.
            items = torch.tensor(take(bsz))
            latents = instance.sample(items % len(instance), dev_gen)
            if classes is not None:
                latents = torch.cat([latents, classes.sample(items % len(classes), dev_gen)])
            latents = latents.to(memory_format=memory_format)

            # 8-9. Conditioning rows for this batch: instance prompt rows, then class prompt rows. (A
            #    single instance prompt draws nothing, so the random streams stay those of plain
            #    DreamBooth; cpu_gen and dev_gen are separate streams, so drawing the rows first
            #    changes no number.)
            picks = torch.randint(n_prompts, (bsz,), generator=cpu_gen).tolist() if n_prompts > 1 else [0] * bsz
            rows = torch.tensor(picks + ([n_prompts] * bsz if classes is not None else []), device=device)
            if flow is not None:
                # Flow matching (FLUX.1, SD3): noise, timestep, interpolation and velocity prediction.
                with autocast():
                    pred, target = flow(unet_forward, latents, rows, dev_gen)
            else:
                # 8. Forward diffusion at a random timestep per example.
                noise = torch.randn(latents.shape, generator=dev_gen, device=latents.device, dtype=latents.dtype)
                timesteps = torch.randint(
                    0,
                    noise_scheduler.config.num_train_timesteps,
                    (latents.shape[0],),
                    generator=dev_gen,
                    device=latents.device,
                )
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                if prediction_type == "epsilon":
                    target = noise
                else:
                    target = noise_scheduler.get_velocity(latents, noise, timesteps)

                if work_dtype is not None:
                    noisy = noisy.to(work_dtype)
                with autocast():
                    embeddings = (
                        frozen_embeddings[rows] if frozen_embeddings is not None else text_encoder(ids[rows])[0]
                    )
                    if work_dtype is not None:
                        embeddings = embeddings.to(work_dtype)
                    if pooled_embeddings is None:
                        pred = unet_forward(noisy, timesteps, embeddings).sample
                    else:
                        # Each row's time ids: its instance image's; a class row shares its pair's (collate_fn).
                        pairs = (items % len(instance)).to(device)
                        added = {
                            "text_embeds": pooled_embeddings[rows],
                            "time_ids": time_ids[torch.cat([pairs, pairs]) if classes is not None else pairs],
                        }
                        pred = unet_forward(noisy, timesteps, embeddings, added_cond_kwargs=added).sample

            # 10. Loss = instance MSE + lambda * prior MSE; stop at once if it is not finite.
            loss = prior_preservation_loss(pred, target, bsz, data.prior_loss_weight)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"DreamBooth training of subject {subject_name!r} diverged at step {step}/{settings.train_steps} "
                    f"(loss={value}); lower learning_rate (now {settings.learning_rate:g}) or use mixed_precision=bf16/no"
                )
            losses.append(value)
            if loss_diverged(losses):
                k = DIVERGENCE_WINDOW
                raise TrainingDiverged(
                    f"DreamBooth training of subject {subject_name!r} diverged at step {step}/{settings.train_steps}: "
                    f"mean loss of the last {k} steps {sum(losses[-k:]) / k:.4g} > {DIVERGENCE_FACTOR:g}x "
                    f"that of the first {k} ({sum(losses[:k]) / k:.4g}); lower learning_rate (now {settings.learning_rate:g})"
                )

            # 11. Backward, clip, step.
            if master is not None:
                # bf16 gradients -> fp32 master gradients; clip folded into fused AdamW; masters -> bf16.
                loss.backward()
                master.grads_to_masters()
                master.clip_and_step(optimizer, settings.max_grad_norm)
                master.masters_to_working()
            elif scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
            if master is None:
                optimizer.zero_grad(set_to_none=True)  # (master gradients are overwritten each step)
            if settings.compile and step == 1 and compiling:
                if torch.device(device).type == "cuda":
                    torch.cuda.synchronize()
                compile_seconds = time.perf_counter() - step_started
                step_graph.LEDGER.record(signature, compile_seconds)
            if after_step is not None:
                after_step(step)
    except BaseException:
        if master is not None:
            master.release()  # whatever stopped the run, the caller's model is fp32 again
        raise

    # 12. Back to inference mode; the optimizer state is dropped with this frame. bf16-weights:
    #     the fp32 masters become the weights (the result in full precision).
    if master is not None:
        master.release()
    unet.eval()
    text_encoder.eval()
    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    if settings.gradient_checkpointing:
        unet.disable_gradient_checkpointing()
        if train_text:
            text_encoder.gradient_checkpointing_disable()
    if settings.channels_last:
        unet.to(memory_format=torch.contiguous_format)
    return TrainResult(
        unet=unet,
        text_encoder=text_encoder if train_text else None,
        losses=losses,
        seconds=time.perf_counter() - started,
        compile_seconds=compile_seconds,
    )


def save_finetuned(
    weights_dir: Path, unet: UNet2DConditionModel, text_encoder: CLIPTextModel | None = None
) -> None:
    """Write the fine-tuned weights in the layout stock diffusers loads, atomically:

        weights_dir/unet/{config.json, diffusion_pytorch_model.safetensors}
        weights_dir/text_encoder/{config.json, model.safetensors}   (only if trained)

    ``UNet2DConditionModel.from_pretrained(weights_dir, subfolder="unet")`` loads it (docs/DREAMBOOTH.md).
    """
    # A kill mid-save leaves a recognisably named temp folder that the subject's sweep removes.
    with atomic_directory(Path(weights_dir)) as tmp:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        if text_encoder is not None:
            text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)

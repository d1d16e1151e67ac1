"""The rectified-flow (flow-matching) training objective of FLUX.1 and Stable Diffusion 3, as diffusers'
examples/dreambooth/train_dreambooth_lora_flux.py computes it (read at
huggingface/diffusers@5700e527572620146139a8508711c929ed4d4e92) and train_dreambooth_lora_sd3.py
(read at huggingface/diffusers@32f85ed01411209e60520b1723b18e4e832e4ce6):

    u ~ density(weighting_scheme)            (compute_density_for_timestep_sampling)
    t = scheduler.timesteps[int(u * 1000)],  sigma = the scheduler's sigma at t
    z_t = (1 - sigma) * z_0 + sigma * noise
    loss = || v_hat(z_t, t, c) - (noise - z_0) ||^2

``z_0`` are the VAE latents ``(x - shift_factor) * scaling_factor`` (reference_impl/latent_cache.py);
the scheduler is the base model's ``FlowMatchEulerDiscreteScheduler`` as configured (FLUX.1-dev
uses dynamic shifting, so its training sigmas are the unshifted t / 1000; SD3 medium's are
shifted by 3.0). The model-specific parts (text conditioning, transformer call) are
reference_impl/flux.py's or reference_impl/sd3.py's ``encode_prompts`` / ``predict``.

SD3's script adds two steps (``FlowMatchSettings``):

* ``precondition_outputs`` (SD3's default; EDM-style): the prediction becomes
  ``v_hat * (-sigma) + z_t`` (an estimate of z_0) and the target ``z_0``;
* the loss weighting ``w = compute_loss_weighting_for_sd3(scheme, sigma)``, with the loss
  ``mean(w * (pred - target)^2)``: 1 for "none", "logit_normal" (SD3's default) and "mode", so the
  loss is the trainer's plain MSE with prior preservation (reference_impl/dreambooth_trainer.py
  ``prior_preservation_loss``); for "sigma_sqrt" and "cosmap" both prediction and target are
  multiplied by sqrt(w), which gives that same weighted loss through the same MSE.

The random draws (noise, u) come from the trainer's seeded generator, not the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

    from dreambench.reference_impl.base_model import Components

# The scripts' --weighting_scheme choices (diffusers.training_utils.compute_density_for_timestep_sampling
# and compute_loss_weighting_for_sd3): "logit_normal" and "mode" shape the timestep density;
# "sigma_sqrt" and "cosmap" draw timesteps uniformly and weight the loss; "none" does neither.
WeightingScheme = Literal["none", "logit_normal", "mode", "sigma_sqrt", "cosmap"]
# The schemes whose loss weighting is not 1.
_WEIGHTED_SCHEMES = ("sigma_sqrt", "cosmap")


@dataclass(frozen=True)
class FlowMatchSettings:
    """The flow-matching knobs of the scripts: timestep density and loss weighting, (FLUX) training
    guidance, T5 length, (SD3) output preconditioning."""

    weighting_scheme: WeightingScheme = "none"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    guidance: float = 3.5
    max_sequence_length: int = 512
    precondition_outputs: bool = False


class FlowMatchObjective:
    """Prediction and target of one flow-matching step for the trainer (``train_dreambooth(objective=...)``).

    Built once per training run: it encodes the prompt rows (frozen text encoders) and holds the
    base model's flow-matching scheduler.
    """

    def __init__(self, base: Components, prompts: Sequence[str], settings: FlowMatchSettings, device: str) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        from dreambench.reference_impl import flux, sd3

        model = sd3 if base.family == "sd3" else flux
        self.settings = settings
        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config)
        self.conditioning = model.encode_prompts(base, prompts, device, settings.max_sequence_length)
        self._predict = model.predict

    def __call__(
        self, forward: Callable[..., Any], latents: torch.Tensor, rows: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prediction, target)`` for ``latents`` [B, C, h, w] with prompt rows ``rows``."""
        from diffusers.training_utils import (
            compute_density_for_timestep_sampling,
            compute_loss_weighting_for_sd3,
        )

        s = self.settings
        noise = torch_randn_like(latents, generator)
        u = compute_density_for_timestep_sampling(
            s.weighting_scheme,
            latents.shape[0],
            logit_mean=s.logit_mean,
            logit_std=s.logit_std,
            mode_scale=s.mode_scale,
            device=latents.device,
            generator=generator,
        )
        indices = (u * self.scheduler.config.num_train_timesteps).long().cpu()
        timesteps = self.scheduler.timesteps[indices].to(latents.device)
        sigmas = self.scheduler.sigmas[indices].to(device=latents.device, dtype=latents.dtype).view(-1, 1, 1, 1)
        noisy = (1.0 - sigmas) * latents + sigmas * noise
        pred = self._predict(forward, noisy, timesteps, self.conditioning, rows, s.guidance)
        target = noise - latents
        if s.precondition_outputs:
            pred, target = pred * (-sigmas) + noisy, latents
        if s.weighting_scheme in _WEIGHTED_SCHEMES:
            root = compute_loss_weighting_for_sd3(s.weighting_scheme, sigmas).float().sqrt()
            pred, target = pred.float() * root, target.float() * root
        return pred, target


def torch_randn_like(latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like ``latents``, from ``generator`` (on its device)."""
    import torch

    return torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)

"""Precision policies of the train step, and bf16 inference copies for rendering.

A train step's precision policy says in which dtype the weights live while the step runs and in
which the optimizer keeps them. It moves numbers, so it is a ``TrainSettings`` field
(``precision_policy``) and part of a run's identity:

* ``"autocast"`` (default, what the ``dreambooth`` method always did): fp32 weights, the forward
  pass under ``mixed_precision`` autocast (bf16/fp16 on CUDA), which re-casts every fp32 weight
  to the autocast dtype on every pass (the 1,607 ``copy_`` kernels per step of the H200 profile),
  fp32 gradients, AdamW on the fp32 weights.
* ``"bf16-weights"``: the trained module's working weights are bf16 (the forward and backward run
  in bf16 with no autocast and no per-pass casts); an fp32 master copy of every trained weight
  lives in the optimizer (``MasterWeights``): after backward the bf16 gradients are copied into
  fp32 master gradients, AdamW (fused) steps the fp32 masters, and the masters are copied back
  into the bf16 working weights. The run's result is the fp32 masters: at the end the module is
  fp32 again, holding them. Clipping at ``max_grad_norm``: one multi-tensor norm pass over the
  fp32 master gradients, and the scaling folded into the fused AdamW kernel (its ``grad_scale``
  input divides each gradient as it reads it) instead of a separate multiply pass; with
  ``max_grad_norm=inf`` there is no clipping pass at all. Used for full fine-tuning of SD 1.x /
  2.x UNets (and their text encoder when trained); the loss is computed in fp32 as under autocast.

It differs from ``"autocast"`` in where rounding happens (bf16 weights instead of bf16 casts of
fp32 weights at each op autocast lists; normalisation layers also run in bf16), so its numbers
drift from the autocast path's by about bf16 precision: gpu_benchmark prints that drift, and
tests/test_precision_policy.py bounds it on the tiny model.

``inference_copy`` is the inference side: a bf16 copy of a frozen module (no master copy is needed
when nothing trains), which renders without autocast. A diffusers method's ``render_precision``
(base_method.ModelSettings) picks it for its images and its class priors: ``"autocast"`` (default:
fp32 weights under ``mixed_precision`` autocast on CUDA) or ``"bf16-weights"`` (``inference_components``:
every network of the model as a bf16 copy, on any device). It moves pixels, so it is part of the
run's identity and of the class-prior cache key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

from dreambench.errors import BenchError

if TYPE_CHECKING:
    import torch

    from dreambench.reference_impl.base_model import Components

PrecisionPolicy = Literal["autocast", "bf16-weights"]
PRECISION_POLICIES: tuple[str, ...] = ("autocast", "bf16-weights")
RenderPrecision = Literal["autocast", "bf16-weights"]
# The networks of a Components that render (base_model.Components fields).
_NETWORKS = ("unet", "transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3")

M = TypeVar("M", bound="torch.nn.Module")


def check_policy(policy: str) -> None:
    """Raise BenchError unless ``policy`` is one of PRECISION_POLICIES."""
    if policy not in PRECISION_POLICIES:
        raise BenchError(f"precision_policy={policy!r} is not one of {', '.join(PRECISION_POLICIES)}")


class MasterWeights:
    """bf16 working weights with fp32 master copies stepped by the optimizer.

    Built from the trained parameters (fp32): keeps an fp32 copy of each as the optimizer's
    parameter (``masters``) and turns the parameters themselves into bf16 in place (same Parameter
    objects, so modules and hooks keep pointing at them). Per step: ``backward`` on the bf16 graph,
    then ``grads_to_masters``, ``clip_and_step``, ``masters_to_working``. ``release`` puts the fp32
    masters back into the parameters (the trained result, full precision).
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], dtype: torch.dtype | None = None) -> None:
        import torch

        self.dtype = dtype if dtype is not None else torch.bfloat16
        self.working = list(params)
        if any(p.dtype != torch.float32 for p in self.working):
            raise BenchError(
                "precision_policy=bf16-weights needs fp32 parameters to start from; got another dtype"
            )
        self.masters = [torch.nn.Parameter(p.detach().clone(), requires_grad=True) for p in self.working]
        for p in self.working:
            p.data = p.data.to(self.dtype)

    def grads_to_masters(self) -> None:
        """Copy the working (bf16) gradients into fp32 master gradients; drop the working ones."""
        import torch

        pairs = [(m, p.grad) for m, p in zip(self.masters, self.working) if p.grad is not None]
        for m, p in zip(self.masters, self.working):
            if p.grad is None:
                m.grad = None
            elif m.grad is None:
                m.grad = torch.empty_like(m)
        if pairs:
            torch._foreach_copy_([m.grad for m, _ in pairs], [g for _, g in pairs])
        for p in self.working:
            p.grad = None

    def clip_and_step(self, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
        """Clip the master gradients to ``max_norm`` (total L2 norm, as ``clip_grad_norm_``) and step.

        With a fused optimizer the clip is its ``grad_scale`` input (gradients divided by
        ``max(1, (norm + 1e-6) / max_norm)`` inside the kernel, which is ``clip_grad_norm_``'s
        multiplication by ``min(1, max_norm / (norm + 1e-6))`` up to rounding); otherwise the
        gradients are scaled in place first. ``max_norm=inf`` skips the norm.
        """
        import torch

        grads = [m.grad for m in self.masters if m.grad is not None]
        fused = bool(optimizer.defaults.get("fused"))
        if math.isfinite(max_norm) and grads:
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            divisor = torch.clamp((total + 1e-6) / max_norm, min=1.0)
            if fused:
                optimizer.grad_scale = divisor  # type: ignore[attr-defined]
            else:
                torch._foreach_div_(grads, divisor)
        optimizer.step()
        if fused:
            optimizer.grad_scale = None  # type: ignore[attr-defined]

    def masters_to_working(self) -> None:
        """Copy the stepped fp32 masters into the bf16 working weights (one multi-tensor cast-copy)."""
        import torch

        with torch.no_grad():
            torch._foreach_copy_([p.data for p in self.working], [m.data for m in self.masters])

    def zero_grad(self) -> None:
        for m in self.masters:
            m.grad = None

    def release(self) -> None:
        """Put the fp32 masters into the parameters (the module is fp32 again) and drop the copies."""
        for p, m in zip(self.working, self.masters):
            p.data = m.data
            p.grad = None
        self.masters = []


def inference_copy(module: M, dtype: torch.dtype | None = None) -> M:
    """A frozen copy of ``module`` in ``dtype`` (default bf16) for rendering without autocast.

    The copy is made from the fp32 weights, once; the original stays fp32 (casting it in place and
    back would round its weights).
    """
    import copy

    import torch
    from diffusers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # diffusers warns on every .to(dtype) of a model with no fp32-kept modules
    try:
        out = copy.deepcopy(module).to(dtype=dtype if dtype is not None else torch.bfloat16)
    finally:
        logging.set_verbosity(verbosity)
    out.requires_grad_(False)
    out.eval()
    return out


def inference_components(model: Components) -> Components:
    """``model`` with a bf16 ``inference_copy`` of each of its networks (the original stays fp32)."""
    import dataclasses

    return dataclasses.replace(
        model,
        **{
            name: inference_copy(getattr(model, name))
            for name in _NETWORKS
            if getattr(model, name) is not None
        },
    )

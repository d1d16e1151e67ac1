"""Numeric drift of a fast path against a reference path: how far its numbers move, in three figures.

A speed-up that changes where rounding happens (bf16 working weights, compiled kernels, bf16
inference weights) is stated with its drift from the eager path it replaces, measured on the same
inputs, seeds and starting weights:

* ``series_drift``: the largest absolute difference between two sequences (per-step losses);
* ``tensor_drift``: the largest absolute difference and the relative L2 distance
  ``||x - ref|| / ||ref||`` of two tensors (rendered latents);
* ``weight_drift``: after training from the same ``init`` weights, the largest absolute weight
  difference and the relative L2 distance of the *updates*, ``||w - w_ref|| / ||w_ref - init||``
  (the share of the reference's weight change that the path got differently).

A figure is None where either side holds a non-finite number (random-weight models can overflow).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def series_drift(values: Sequence[float], reference: Sequence[float]) -> float | None:
    """max |values[i] - reference[i]| over the common length (None if empty or not finite)."""
    diffs = [abs(a - b) for a, b in zip(values, reference)]
    return _finite(max(diffs)) if diffs else None


def tensor_drift(x: torch.Tensor, reference: torch.Tensor) -> dict[str, float | None]:
    """{"max_abs": max |x - ref|, "rel_l2": ||x - ref|| / ||ref||} in fp32."""
    import torch

    a, b = x.detach().float(), reference.detach().float().to(x.device)
    diff = a - b
    norm = float(torch.linalg.vector_norm(b))
    return {
        "max_abs": _finite(float(diff.abs().max())),
        "rel_l2": _finite(float(torch.linalg.vector_norm(diff)) / norm) if norm > 0 else None,
    }


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """fp32 copies of ``module``'s parameters, on its device."""
    return {name: p.detach().float().clone() for name, p in module.named_parameters()}


def weight_drift(
    weights: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    init: Mapping[str, torch.Tensor],
) -> dict[str, float | None]:
    """{"max_abs": max |w - w_ref|, "update_rel_l2": ||w - w_ref|| / ||w_ref - init||} over all weights."""
    import torch

    max_abs, diff_sq, update_sq = 0.0, 0.0, 0.0
    for name, ref in reference.items():
        diff = weights[name].float() - ref
        max_abs = max(max_abs, float(diff.abs().max()))
        diff_sq += float(torch.sum(diff * diff))
        update = ref - init[name]
        update_sq += float(torch.sum(update * update))
    return {
        "max_abs": _finite(max_abs),
        "update_rel_l2": _finite(math.sqrt(diff_sq / update_sq)) if update_sq > 0 else None,
    }

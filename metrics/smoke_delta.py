"""The trained smoke delta: a small trained change on top of the seeded random init of a network.

The smoke embedders keep the real architectures (DINO ViT-S/16, CLIP ViT-B/32) and their seeded
random init (metrics/smoke_weights.py); a delta, trained offline by
`python -m dreambench.metrics.train_smoke_embedders`, makes them rank images. Shipping whole trained
weights would take ~400 MB; the delta is a few MB of package data (metrics/data/smoke_delta/).

Which tensors a delta changes, and how (`delta_plan`):
  - a large tensor (>= LOW_RANK_MIN elements, 2-D or more: qkv / attention / MLP / patch-embedding /
    projection weights): a rank-`rank` product, W' = W + B @ A (W seen as (shape[0], -1));
  - every other trained tensor (LayerNorms, biases, class token, position embedding): W' = W + D.
The factors are stored in fp16 (keys "lora_a.<name>", "lora_b.<name>", "add.<name>"). The merge is
exact and the same on every machine: each element is computed in float64 as W + sum_k B[:, k] A[k, :]
(fp16 products are exact in float64; the sum runs in a fixed order, element-wise, no BLAS) and
rounded once to float32.

`SMOKE_DELTAS` names the shipped files with their sha256 (checked before a merge) and the version
that the weights' folder names carry, so a changed delta never meets weights merged from an old one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.errors import BenchError

if TYPE_CHECKING:
    import torch

# Importing this module is cheap (no torch): the metric presets read SMOKE_DELTAS.
LOW_RANK_MIN = 100_000
DELTA_DTYPE = "float16"


@dataclass(frozen=True)
class SmokeDelta:
    """One shipped delta: the network it applies to, its version (in the merged weights' folder names
    and tag), its file under metrics/data/smoke_delta/ and that file's sha256, the prefix of the
    state-dict keys it trains (the CLIP text tower is left at its random init), the rank of its
    low-rank factors and the seed of the random init it was trained on."""

    kind: str
    version: str
    file: str
    sha256: str
    prefix: str = ""
    rank: int = 8
    base_seed: int = 0


# The shipped deltas: the training run's output (metrics/data/smoke_delta/training.json records its
# settings, losses and wall time; docs/PERFORMANCE.md the ranking they give).
SMOKE_DELTAS: dict[str, SmokeDelta] = {
    "dino": SmokeDelta(
        kind="dino",
        version="v1",
        file="dino-vit_s16-v1.safetensors",
        sha256="6ca506b23a9667616203be7c147cf8ebc4722e79c3e0d41918ed5a487f8f97b9",
    ),
    "clip": SmokeDelta(
        kind="clip",
        version="v1",
        file="clip-vit_b32-v1.safetensors",
        sha256="13308f2e3297d387dec95384a80e283a9af8df94cf40295718f485788f5419dc",
        prefix="visual.",
    ),
}


def delta_plan(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Iterator[tuple[str, str]]:
    """(key, "low-rank" | "add") for every floating tensor under `prefix` that a delta trains."""
    for key, value in state_dict.items():
        if not key.startswith(prefix) or not value.is_floating_point() or key.endswith("attn_mask"):
            continue
        low_rank = value.ndim >= 2 and value.numel() >= LOW_RANK_MIN
        yield key, "low-rank" if low_rank else "add"


def merge_delta(
    state_dict: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The base `state_dict` with `delta` applied (see the module docstring); refuses stray keys."""
    import torch

    merged = dict(state_dict)
    used: set[str] = set()
    for key, base in state_dict.items():
        wide = base.detach().to(torch.float64)
        if f"add.{key}" in delta:
            used.add(f"add.{key}")
            wide = wide + delta[f"add.{key}"].to(torch.float64).reshape(base.shape)
        if f"lora_a.{key}" in delta:
            used |= {f"lora_a.{key}", f"lora_b.{key}"}
            a = delta[f"lora_a.{key}"].to(torch.float64)
            b = delta[f"lora_b.{key}"].to(torch.float64)
            flat = wide.reshape(base.shape[0], -1)
            for k in range(a.shape[0]):
                flat = flat + b[:, k : k + 1] * a[k : k + 1, :]
            wide = flat.reshape(base.shape)
        if f"add.{key}" in delta or f"lora_a.{key}" in delta:
            merged[key] = wide.to(torch.float32).contiguous()
    stray = sorted(set(delta) - used)
    if stray:
        raise BenchError(f"smoke delta keys match no weight of the network: {stray[:3]}")
    return merged


def delta_path(spec: SmokeDelta) -> Path:
    """Where the shipped delta file of `spec` lies (package data)."""
    return Path(str(resources.files("dreambench.metrics") / "data" / "smoke_delta" / spec.file))


def load_delta(spec: SmokeDelta) -> dict[str, torch.Tensor]:
    """Read a shipped delta after checking its sha256 against `spec` (a changed file is refused)."""
    from safetensors.torch import load_file

    path = delta_path(spec)
    if not path.is_file():
        raise BenchError(f"smoke delta {spec.file} is missing from the package (expected at {path})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise BenchError(
            f"smoke delta {spec.file} has sha256 {digest}, expected {spec.sha256}: reinstall dreambench"
        )
    return load_file(str(path))

"""Seeded random weights for the REAL DINO / CLIP architectures, for offline tests and `--preset smoke`.

The smoke weights are saved once, in each backend's native on-disk format, under
`cache_root()/weights/smoke/`, and are then loaded BY PATH through exactly the same loading code as
real weights. The transformers-format smoke weights are converted from the timm / open_clip ones
(metrics/convert.py), so both backends of a metric hold the same numbers. Every figure computed
from smoke weights is uncalibrated: it says nothing about image similarity.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dreambench.cache_root import cache_root
from dreambench.errors import BenchError

TIMM_DINO_ARCH = "vit_small_patch16_224.dino"


def smoke_weights_root() -> Path:
    return cache_root() / "weights" / "smoke"


def _seeded(seed: int, build: Callable[[], object]) -> object:
    """Build a model under `torch.manual_seed(seed)` without disturbing the caller's RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _timm_dino(seed: int) -> Path:
    import timm

    from dreambench.metrics.convert import save_state_dict_file, write_folder_atomically

    def fill(tmp: Path) -> None:
        model = _seeded(seed, lambda: timm.create_model(TIMM_DINO_ARCH, pretrained=False))
        save_state_dict_file(model.state_dict(), tmp / "model.safetensors")

    folder = write_folder_atomically(smoke_weights_root() / f"dino-timm-seed{seed}", fill)
    return folder / "model.safetensors"


def _open_clip(seed: int) -> Path:
    from dreambench.metrics.clip import build_open_clip_model
    from dreambench.metrics.convert import save_state_dict_file, write_folder_atomically

    def fill(tmp: Path) -> None:
        model = _seeded(seed, build_open_clip_model)
        save_state_dict_file(model.state_dict(), tmp / "open_clip_model.safetensors")

    folder = write_folder_atomically(smoke_weights_root() / f"clip-open_clip-seed{seed}", fill)
    return folder / "open_clip_model.safetensors"


def _transformers_dino(seed: int) -> Path:
    from dreambench.metrics.convert import write_hf_dino_folder

    return write_hf_dino_folder(_timm_dino(seed), smoke_weights_root() / f"dino-transformers-seed{seed}")


def _transformers_clip(seed: int) -> Path:
    from dreambench.metrics.convert import write_hf_clip_folder

    return write_hf_clip_folder(_open_clip(seed), smoke_weights_root() / f"clip-transformers-seed{seed}")


_BUILDERS: dict[tuple[str, str], Callable[[int], Path]] = {
    ("dino", "timm"): _timm_dino,
    ("dino", "transformers"): _transformers_dino,
    ("clip", "open_clip"): _open_clip,
    ("clip", "transformers"): _transformers_clip,
}


def ensure_smoke_weights(kind: str, backend: str, seed: int = 0) -> Path:
    """Path of the seeded smoke weights for (kind, backend), building them on first use.

    kind: "dino" | "clip"; backend: "timm" | "transformers" for dino, "open_clip" | "transformers"
    for clip. Returns a weights file for timm / open_clip and a save_pretrained folder for
    transformers (the form each backend loads real weights from).
    """
    builder = _BUILDERS.get((kind, backend))
    if builder is None:
        valid = ", ".join(f"{k}/{b}" for k, b in _BUILDERS)
        raise BenchError(f"no smoke weights for {kind}/{backend}; valid: {valid}")
    return builder(seed)

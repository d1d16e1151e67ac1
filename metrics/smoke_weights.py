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
# timm model names of the other DINO-type networks (their real architectures, native resolution).
TIMM_MODELS: dict[str, str] = {
    "dino": TIMM_DINO_ARCH,
    "dino-s8": "vit_small_patch8_224.dino",
    "dinov2-s14": "vit_small_patch14_dinov2.lvd142m",
    "dinov2-b14": "vit_base_patch14_dinov2.lvd142m",
}


def smoke_weights_root() -> Path:
    return cache_root() / "weights" / "smoke"


def _seeded(seed: int, build: Callable[[], object]) -> object:
    """Build a model under `torch.manual_seed(seed)` without disturbing the caller's RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _timm_dino(seed: int, kind: str = "dino") -> Path:
    import timm

    from dreambench.metrics.convert import save_state_dict_file, write_folder_atomically

    def fill(tmp: Path) -> None:
        model = _seeded(seed, lambda: timm.create_model(TIMM_MODELS[kind], pretrained=False))
        save_state_dict_file(model.state_dict(), tmp / "model.safetensors")

    folder = write_folder_atomically(smoke_weights_root() / f"{kind}-timm-seed{seed}", fill)
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


def _transformers_dino_s8(seed: int) -> Path:
    from dreambench.metrics.convert import write_hf_dino_folder

    root = smoke_weights_root() / f"dino-s8-transformers-seed{seed}"
    return write_hf_dino_folder(_timm_dino(seed, "dino-s8"), root, patch_size=8)


def _transformers_dinov2(kind: str, arch: str) -> Callable[[int], Path]:
    def build(seed: int) -> Path:
        from dreambench.metrics.convert import write_hf_dinov2_folder

        root = smoke_weights_root() / f"{kind}-transformers-seed{seed}"
        return write_hf_dinov2_folder(_timm_dino(seed, kind), root, arch)

    return build


_BUILDERS: dict[tuple[str, str], Callable[[int], Path]] = {
    ("dino", "timm"): _timm_dino,
    ("dino", "transformers"): _transformers_dino,
    ("dino-s8", "timm"): lambda seed: _timm_dino(seed, "dino-s8"),
    ("dino-s8", "transformers"): _transformers_dino_s8,
    ("dinov2-s14", "timm"): lambda seed: _timm_dino(seed, "dinov2-s14"),
    ("dinov2-s14", "transformers"): _transformers_dinov2("dinov2-s14", "DINOv2 ViT-S/14"),
    ("dinov2-b14", "timm"): lambda seed: _timm_dino(seed, "dinov2-b14"),
    ("dinov2-b14", "transformers"): _transformers_dinov2("dinov2-b14", "DINOv2 ViT-B/14"),
    ("clip", "open_clip"): _open_clip,
    ("clip", "transformers"): _transformers_clip,
}


def ensure_smoke_weights(kind: str, backend: str, seed: int = 0) -> Path:
    """Path of the seeded smoke weights for (kind, backend), building them on first use.

    kind: "dino" | "dino-s8" | "dinov2-s14" | "dinov2-b14" | "clip"; backend: "timm" | "transformers"
    for the DINO-type networks, "open_clip" | "transformers" for clip. Returns a weights file for timm / open_clip and a save_pretrained folder for
    transformers (the form each backend loads real weights from).
    """
    builder = _BUILDERS.get((kind, backend))
    if builder is None:
        valid = ", ".join(f"{k}/{b}" for k, b in _BUILDERS)
        raise BenchError(f"no smoke weights for {kind}/{backend}; valid: {valid}")
    return builder(seed)

"""Smoke weights for the REAL DINO / CLIP architectures, for offline tests and `--preset smoke`.

Two kinds, both built offline:
  - seeded random init (`trained=False`, tag "smoke:seed<n>"): every network; its features measure
    global colour statistics, not a subject;
  - trained (`trained=True`, tag "smoke-trained:<version>"): the seed-0 init of DINO ViT-S/16 and CLIP
    ViT-B/32 with the shipped delta merged in (metrics/smoke_delta.py, trained on generated scenes by
    metrics/train_smoke_embedders.py), so that they rank images: a subject's photos closer to each
    other than to other subjects', noise and flat images below both. The CLIP text tower is not
    trained.

The smoke weights are saved once per cache, in each backend's native on-disk format, under
`cache_root()/weights/smoke/` (trained ones in folders named with the delta's version), and are then
loaded BY PATH through exactly the same loading code as real weights. The transformers-format smoke
weights are converted from the timm / open_clip ones (metrics/convert.py), so both backends of a
metric hold the same numbers. Every figure computed from smoke weights is uncalibrated: random or
self-trained on generated images, they are not the protocol's networks.
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


def random_init(kind: str, seed: int) -> dict:
    """The seeded random init of network `kind` ("clip" or a key of TIMM_MODELS) as a state dict."""
    if kind == "clip":
        from dreambench.metrics.clip import build_open_clip_model

        return _seeded(seed, build_open_clip_model).state_dict()
    import timm

    return _seeded(seed, lambda: timm.create_model(TIMM_MODELS[kind], pretrained=False)).state_dict()


def _timm_dino(seed: int, kind: str = "dino") -> Path:
    from dreambench.metrics.convert import save_state_dict_file, write_folder_atomically

    def fill(tmp: Path) -> None:
        save_state_dict_file(random_init(kind, seed), tmp / "model.safetensors")

    folder = write_folder_atomically(smoke_weights_root() / f"{kind}-timm-seed{seed}", fill)
    return folder / "model.safetensors"


def _open_clip(seed: int) -> Path:
    from dreambench.metrics.convert import save_state_dict_file, write_folder_atomically

    def fill(tmp: Path) -> None:
        save_state_dict_file(random_init("clip", seed), tmp / "open_clip_model.safetensors")

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


def _trained_native(kind: str) -> Path:
    """The seed-0 init of `kind` with its shipped delta merged in, in the timm / open_clip format."""
    from dreambench.metrics.convert import save_state_dict_file, write_folder_atomically
    from dreambench.metrics.smoke_delta import SMOKE_DELTAS, load_delta, merge_delta

    spec = SMOKE_DELTAS[kind]
    delta = load_delta(spec)  # the sha256 of the shipped file is checked on every use
    backend, name = (
        ("open_clip", "open_clip_model.safetensors") if kind == "clip" else ("timm", "model.safetensors")
    )

    def fill(tmp: Path) -> None:
        save_state_dict_file(merge_delta(random_init(kind, spec.base_seed), delta), tmp / name)

    folder = write_folder_atomically(smoke_weights_root() / f"{kind}-{backend}-trained-{spec.version}", fill)
    return folder / name


def _trained_transformers(kind: str) -> Path:
    from dreambench.metrics.convert import write_hf_clip_folder, write_hf_dino_folder
    from dreambench.metrics.smoke_delta import SMOKE_DELTAS

    write = write_hf_clip_folder if kind == "clip" else write_hf_dino_folder
    version = SMOKE_DELTAS[kind].version
    return write(_trained_native(kind), smoke_weights_root() / f"{kind}-transformers-trained-{version}")


_TRAINED_BUILDERS: dict[tuple[str, str], Callable[[], Path]] = {
    ("dino", "timm"): lambda: _trained_native("dino"),
    ("dino", "transformers"): lambda: _trained_transformers("dino"),
    ("clip", "open_clip"): lambda: _trained_native("clip"),
    ("clip", "transformers"): lambda: _trained_transformers("clip"),
}


def smoke_tag(kind: str, seed: int, trained: bool) -> str:
    """The provenance tag of smoke weights: "smoke:seed<n>" or "smoke-trained:<delta version>"."""
    if not trained:
        return f"smoke:seed{seed}"
    from dreambench.metrics.smoke_delta import SMOKE_DELTAS

    return f"smoke-trained:{SMOKE_DELTAS[kind].version}"


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


def ensure_smoke_weights(kind: str, backend: str, seed: int = 0, *, trained: bool = False) -> Path:
    """Path of the smoke weights for (kind, backend), building them on first use.

    kind: "dino" | "dino-s8" | "dinov2-s14" | "dinov2-b14" | "clip"; backend: "timm" | "transformers"
    for the DINO-type networks, "open_clip" | "transformers" for clip. Returns a weights file for
    timm / open_clip and a save_pretrained folder for transformers (the form each backend loads real
    weights from). `trained`: the trained smoke weights (dino and clip only; `seed` must be the
    delta's base seed, 0) instead of the seeded random init.
    """
    if trained:
        from dreambench.metrics.smoke_delta import SMOKE_DELTAS

        trained_builder = _TRAINED_BUILDERS.get((kind, backend))
        if trained_builder is None:
            valid = ", ".join(f"{k}/{b}" for k, b in _TRAINED_BUILDERS)
            raise BenchError(f"no trained smoke weights for {kind}/{backend}; valid: {valid}")
        if seed != SMOKE_DELTAS[kind].base_seed:
            raise BenchError(
                f"trained smoke weights start from seed {SMOKE_DELTAS[kind].base_seed}, not {seed}"
            )
        return trained_builder()
    builder = _BUILDERS.get((kind, backend))
    if builder is None:
        valid = ", ".join(f"{k}/{b}" for k, b in _BUILDERS)
        raise BenchError(f"no smoke weights for {kind}/{backend}; valid: {valid}")
    return builder(seed)

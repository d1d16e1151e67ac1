"""Weights resolution: turn a `WeightsSource` into a local path, a provenance tag and a sha256.

A source is one of
  - pinned: the protocol's real weights for the backend, a hub repo at a pinned revision
    (`PINNED_HUB`), fetched by dreambench.hub_fetch: the offline Hugging Face cache first; then,
    unless HF_HUB_OFFLINE=1, a download of the first weights file the repo has. $DREAMBENCH_DINO_WEIGHTS / $DREAMBENCH_CLIP_WEIGHTS (and ENV_VARS for the
    other networks; a local file or folder) replace the hub for that network.
  - smoke: seeded random init of the real architecture (metrics/smoke_weights.py), uncalibrated.
  - smoke-trained: that init (seed 0) with a shipped delta trained on generated scenes merged in
    (metrics/smoke_delta.py; DINO ViT-S/16 and CLIP ViT-B/32 only), uncalibrated.
  - path: a local file or folder.

Whatever the source, the backend then loads a plain local path: timm and open_clip a weights file,
transformers a save_pretrained folder. The tag says where the weights came from
("hub:<repo>@<commit>", "smoke:seed<n>", "smoke-trained:<version>", "file:<abs path>",
"dir:<abs path>") and the sha256 is
that of the weights file loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dreambench.atomic import atomic_write_json
from dreambench.cache_root import cache_root
from dreambench.errors import BenchError
from dreambench.hub_fetch import HubFiles, fetch

SOURCE_KINDS = ("pinned", "smoke", "smoke-trained", "path")
# Backends that load a save_pretrained folder; every other backend loads a single weights file.
FOLDER_BACKENDS = frozenset({"transformers"})
ENV_VARS = {
    "dino": "DREAMBENCH_DINO_WEIGHTS",
    "dino-s8": "DREAMBENCH_DINO_S8_WEIGHTS",
    "dinov2-s14": "DREAMBENCH_DINOV2_S14_WEIGHTS",
    "dinov2-b14": "DREAMBENCH_DINOV2_B14_WEIGHTS",
    "clip": "DREAMBENCH_CLIP_WEIGHTS",
}


@dataclass(frozen=True)
class WeightsSource:
    """Where an embedder's weights come from: kind "pinned", "smoke" (with seed), "smoke-trained" or
    "path" (with path)."""

    kind: str
    seed: int = 0
    path: str = ""

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise BenchError(f"unknown weights source kind {self.kind!r}; valid: {', '.join(SOURCE_KINDS)}")
        if self.kind == "path" and not self.path:
            raise BenchError("weights source kind 'path' needs a path")

    @classmethod
    def pinned(cls) -> WeightsSource:
        return cls("pinned")

    @classmethod
    def smoke(cls, seed: int = 0) -> WeightsSource:
        return cls("smoke", seed=seed)

    @classmethod
    def smoke_trained(cls) -> WeightsSource:
        return cls("smoke-trained")

    @classmethod
    def local(cls, path: str | Path) -> WeightsSource:
        return cls("path", path=str(Path(path).expanduser().resolve()))

    def describe(self) -> str:
        return {
            "pinned": "pinned",
            "smoke": f"smoke:seed{self.seed}",
            "smoke-trained": "smoke-trained",
            "path": f"path:{self.path}",
        }[self.kind]


@dataclass(frozen=True)
class HubWeights:
    """A hub repo at a pinned revision: the first of `weight_files` found is loaded (a download fetches
    the first the repo has); `required_files` must exist too; `optional_files` (tokenizer files) are
    downloaded along when the repo has them."""

    repo_id: str
    revision: str
    weight_files: tuple[str, ...]
    required_files: tuple[str, ...] = ()
    optional_files: tuple[str, ...] = ()


# Revisions: real commit hashes where one could be confirmed from several independent public
# sources; "main" otherwise, in which case the tag records the commit the cache resolved to.
PINNED_HUB: dict[tuple[str, str], HubWeights] = {
    ("dino", "timm"): HubWeights(
        "timm/vit_small_patch16_224.dino", "main", ("model.safetensors", "pytorch_model.bin")
    ),
    ("dino", "transformers"): HubWeights(
        "facebook/dino-vits16",
        "abe3b354cb6a9b6f146096b14a4a9d7eecbcb4bd",
        ("model.safetensors", "pytorch_model.bin"),
        required_files=("config.json",),
    ),
    # DINO v1 ViT-S/8 (DreamBench++'s "DINOv1": torch.hub facebookresearch/dino dino_vits8; timm's
    # and transformers' checkpoints hold the same weights).
    ("dino-s8", "timm"): HubWeights(
        "timm/vit_small_patch8_224.dino", "main", ("model.safetensors", "pytorch_model.bin")
    ),
    ("dino-s8", "transformers"): HubWeights(
        "facebook/dino-vits8", "main", ("model.safetensors", "pytorch_model.bin"), required_files=("config.json",)
    ),
    # DINOv2 (facebookresearch/dinov2 LVD-142M weights), timm's and transformers' checkpoints.
    ("dinov2-s14", "timm"): HubWeights(
        "timm/vit_small_patch14_dinov2.lvd142m", "main", ("model.safetensors", "pytorch_model.bin")
    ),
    ("dinov2-s14", "transformers"): HubWeights(
        "facebook/dinov2-small", "main", ("model.safetensors", "pytorch_model.bin"), required_files=("config.json",)
    ),
    ("dinov2-b14", "timm"): HubWeights(
        "timm/vit_base_patch14_dinov2.lvd142m", "main", ("model.safetensors", "pytorch_model.bin")
    ),
    ("dinov2-b14", "transformers"): HubWeights(
        "facebook/dinov2-base", "main", ("model.safetensors", "pytorch_model.bin"), required_files=("config.json",)
    ),
    ("clip", "open_clip"): HubWeights(
        "timm/vit_base_patch32_clip_224.openai",
        "a6f597a30f7b82c51704746581f9a4e41421e878",
        ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
    ),
    ("clip", "transformers"): HubWeights(
        "openai/clip-vit-base-patch32",
        "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268",
        ("model.safetensors", "pytorch_model.bin"),
        required_files=("config.json",),
        optional_files=(
            "vocab.json",
            "merges.txt",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ),
    ),
}

# Weight file names looked for inside a local folder handed to a single-file backend.
_FILE_CANDIDATES = (
    "model.safetensors",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
    "pytorch_model.bin",
)


@dataclass(frozen=True)
class ResolvedWeights:
    """Local weights ready to load. `path`: what the backend loads (file, or folder for transformers);
    `file`: the weights file inside it (hashed); `tag`: provenance; `sha256`: of `file`."""

    path: Path
    file: Path
    tag: str
    sha256: str


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (real path, size, mtime) so big weights are hashed once.

    The memo lives in cache_root()/weights/sha256/ (not beside the file: hub caches and shared
    weight folders may be read-only).
    """
    real = Path(path).resolve()
    stat = real.stat()
    memo = (
        cache_root() / "weights" / "sha256" / (hashlib.sha256(str(real).encode()).hexdigest()[:32] + ".json")
    )
    stamp = {"path": str(real), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if {k: saved.get(k) for k in stamp} == stamp and len(saved.get("sha256", "")) == 64:
            return str(saved["sha256"])
    except (OSError, ValueError):
        pass
    digest = hashlib.sha256()
    with open(real, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    atomic_write_json(memo, {**stamp, "sha256": digest.hexdigest()})
    return digest.hexdigest()


def _check_pair(kind: str, backend: str) -> None:
    if (kind, backend) not in PINNED_HUB:
        valid = ", ".join(f"{k}/{b}" for k, b in PINNED_HUB)
        raise BenchError(f"unknown embedder {kind}/{backend}; valid: {valid}")


# The function that turns a timm / open_clip file of each network into a transformers folder.
_HF_CONVERTERS = {
    "dino": "write_hf_dino_folder",
    "dino-s8": "write_hf_dino_folder(file, dst, patch_size=8)",
    "dinov2-s14": "write_hf_dinov2_folder(file, dst, 'DINOv2 ViT-S/14')",
    "dinov2-b14": "write_hf_dinov2_folder(file, dst, 'DINOv2 ViT-B/14')",
    "clip": "write_hf_clip_folder",
}


def _weights_in_folder(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise BenchError(f"no weights file in {folder}; expected one of: {', '.join(names)}")


def _local(kind: str, backend: str, path: Path, origin: str) -> ResolvedWeights:
    """Resolve a local file or folder for `backend`; `origin` names where the path came from."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise BenchError(f"{origin}: {path} does not exist; give a weights file or folder")
    if backend in FOLDER_BACKENDS:
        folder = path if path.is_dir() else path.parent
        if not (folder / "config.json").is_file():
            raise BenchError(
                f"{origin}: backend {backend!r} needs a save_pretrained folder with config.json, got {path}; "
                f"convert a timm/open_clip file with dreambench.metrics.convert.{_HF_CONVERTERS[kind]}"
            )
        file = (
            path if path.is_file() else _weights_in_folder(folder, ("model.safetensors", "pytorch_model.bin"))
        )
        return ResolvedWeights(folder, file, f"dir:{folder}", file_sha256(file))
    file = path if path.is_file() else _weights_in_folder(path, _FILE_CANDIDATES)
    return ResolvedWeights(file, file, f"file:{file}", file_sha256(file))


def _hub_request(kind: str, backend: str, hub: HubWeights) -> HubFiles:
    return HubFiles(
        what=f"{kind.upper()} checkpoint ({backend})",
        repo_id=hub.repo_id,
        revision=hub.revision,
        files=hub.optional_files,
        required=hub.required_files,
        one_of=hub.weight_files,
        instead=(
            f"set {ENV_VARS[kind]} to a local weights file or folder",
            "use --preset smoke (seeded random weights, uncalibrated)",
        ),
    )


def _from_hub(kind: str, backend: str, hub: HubWeights) -> ResolvedWeights:
    # The snapshot folder's name is the commit the pinned revision resolved to.
    snapshot = fetch(_hub_request(kind, backend, hub))
    file = _weights_in_folder(snapshot, hub.weight_files)
    path = snapshot if backend in FOLDER_BACKENDS else file
    return ResolvedWeights(path, file, f"hub:{hub.repo_id}@{snapshot.name}", file_sha256(file))


def resolve_weights(kind: str, backend: str, source: WeightsSource) -> ResolvedWeights:
    """Resolve `source` for network `kind` (a key of ENV_VARS: "dino", "dinov2-s14", "clip", ...)
    run by `backend` to local weights."""
    _check_pair(kind, backend)
    if source.kind in ("smoke", "smoke-trained"):
        from dreambench.metrics.smoke_weights import ensure_smoke_weights, smoke_tag

        trained = source.kind == "smoke-trained"
        path = ensure_smoke_weights(kind, backend, source.seed, trained=trained)
        file = _weights_in_folder(path, ("model.safetensors",)) if path.is_dir() else path
        return ResolvedWeights(path, file, smoke_tag(kind, source.seed, trained), file_sha256(file))
    if source.kind == "path":
        return _local(kind, backend, Path(source.path), "weights path")
    override = os.environ.get(ENV_VARS[kind])
    if override:
        return _local(kind, backend, Path(override), ENV_VARS[kind])
    return _from_hub(kind, backend, PINNED_HUB[(kind, backend)])


def require_complete_load(loading_info: dict, tag: str) -> None:
    """transformers' from_pretrained random-initialises weights missing from the checkpoint: refuse that.

    `loading_info` is the dict returned with `output_loading_info=True`. Unexpected keys (e.g. a
    pooler we do not use) are fine; missing or shape-mismatched ones are not.
    """
    missing = [k for k in loading_info.get("missing_keys", []) if not str(k).endswith("position_ids")]
    mismatched = [
        str(m[0]) if isinstance(m, tuple) else str(m) for m in loading_info.get("mismatched_keys", [])
    ]
    if missing or mismatched:
        raise BenchError(
            f"weights {tag} do not fit the architecture: missing/mismatched {(missing + mismatched)[:3]}"
        )

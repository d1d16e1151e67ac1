"""IP-Adapter weights: find them (pinned hub revision, offline Hugging Face cache, local folder, or
the tiny random adapter) and check that they fit the base model, before anything is loaded.

An adapter reference is one of:

* ``"tiny"``: seeded random weights matched to the base model (reference_impl/tiny_ip_adapter.py),
  built on first use under the dreambench cache. Uncalibrated.
* a local folder in the h94/IP-Adapter layout (``<subfolder>/<weight_name>`` and the image
  encoder folder, e.g. ``models/ip-adapter_sd15.safetensors`` + ``models/image_encoder/``).
* a Hugging Face hub id, default ``IP_ADAPTER_REPO`` at ``IP_ADAPTER_REVISION``. Only the three
  files the adapter needs are fetched (the adapter weights, the encoder's config.json and its
  model.safetensors), never the whole repository (about 30 GB of variants), by
  ``dreambench.hub_fetch``: the local cache first; a download only when ``HF_HUB_OFFLINE`` is unset.

Which files: ``AdapterFiles(subfolder, weight_name, image_encoder_folder)``, the three arguments
of diffusers' ``IPAdapterMixin.load_ip_adapter`` (diffusers/loaders/ip_adapter.py); an encoder
folder without "/" lives inside ``subfolder``, as diffusers resolves it. ``PUBLISHED`` names the
published SD 1.5 and SDXL adapters (https://huggingface.co/h94/IP-Adapter, README and file tree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreambench.dataset.images import file_sha256
from dreambench.errors import BenchError
from dreambench.hub_fetch import HubFiles, fetch, is_hub_id
from dreambench.reference_impl.tiny_ip_adapter import (
    BUILD_RECORD,
    IMAGE_ENCODER_FOLDER,
    SD15_SUBFOLDER,
    SD15_WEIGHT_NAME,
    TINY_ADAPTER_ID,
    ensure_tiny_ip_adapter,
)

IP_ADAPTER_REPO = "h94/IP-Adapter"
# The repository commit that public code loading h94/IP-Adapter from a Hugging Face cache resolves
# to (snapshot folders models--h94--IP-Adapter/snapshots/018e4027...; e.g. pinned download URLs
# .../h94/IP-Adapter/resolve/018e402774aeeddd60609b4ecdb7e298259dc729/models/image_encoder/...).
# Not checked against the hub from here: confirm with `hf download` before a published run.
IP_ADAPTER_REVISION = "018e402774aeeddd60609b4ecdb7e298259dc729"

_ENCODER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class AdapterFiles:
    """Where in an adapter repository/folder the weights and the image encoder are."""

    subfolder: str = SD15_SUBFOLDER
    weight_name: str = SD15_WEIGHT_NAME
    image_encoder_folder: str = IMAGE_ENCODER_FOLDER

    @property
    def weight_path(self) -> str:
        return f"{self.subfolder}/{self.weight_name}" if self.subfolder else self.weight_name

    @property
    def encoder_path(self) -> str:
        # diffusers' rule (load_ip_adapter): a bare folder name is inside `subfolder`, a path is
        # taken from the repository root (e.g. "models/image_encoder" for ip-adapter_sdxl_vit-h).
        if "/" in self.image_encoder_folder or not self.subfolder:
            return self.image_encoder_folder
        return f"{self.subfolder}/{self.image_encoder_folder}"

    def hub_files(self) -> tuple[str, ...]:
        """What a hub download fetches: adapter weights, encoder config and safetensors weights."""
        return (
            self.weight_path,
            f"{self.encoder_path}/config.json",
            f"{self.encoder_path}/model.safetensors",
        )


PUBLISHED: dict[str, AdapterFiles] = {
    # IP-Adapter for SD 1.5 with the OpenCLIP ViT-H/14 image encoder (models/image_encoder).
    "sd15": AdapterFiles("models", "ip-adapter_sd15.safetensors", "image_encoder"),
    # IP-Adapter for SDXL 1.0 with the OpenCLIP ViT-bigG/14 image encoder (sdxl_models/image_encoder).
    "sdxl": AdapterFiles("sdxl_models", "ip-adapter_sdxl.safetensors", "image_encoder"),
}


def _check_layout(folder: Path, files: AdapterFiles, shown_as: str) -> None:
    """One line naming the first file of the layout that ``folder`` lacks."""
    if not (folder / files.weight_path).is_file():
        raise BenchError(
            f"IP-Adapter {shown_as} has no {files.weight_path}; expected the h94/IP-Adapter layout "
            f"(<subfolder>/<weight_name>: adapter_subfolder={files.subfolder!r}, weight_name={files.weight_name!r})"
        )
    encoder = folder / files.encoder_path
    if not (encoder / "config.json").is_file() or not any((encoder / w).is_file() for w in _ENCODER_WEIGHTS):
        raise BenchError(
            f"IP-Adapter {shown_as} has no image encoder at {files.encoder_path}/ (config.json + "
            f"{' or '.join(_ENCODER_WEIGHTS)}); set image_encoder_folder to where it is"
        )


def locate_ip_adapter(
    ref: str, revision: str, files: AdapterFiles, base_folder: Path, base_key: str
) -> tuple[Path, dict[str, Any]]:
    """Resolve an adapter reference (module docstring) to a local folder in the published layout,
    and its description for provenance (source, id, revision, path, adapter file sha256,
    calibrated). ``base_folder`` / ``base_key`` (the base model's folder and cache key) are what
    the tiny adapter is matched to; other references ignore them. ``revision`` "" means
    ``IP_ADAPTER_REVISION`` for ``IP_ADAPTER_REPO`` and "main" for other hub ids."""
    if ref == TINY_ADAPTER_ID:
        folder = ensure_tiny_ip_adapter(
            base_folder, base_key, weight_path=files.weight_path, encoder_path=files.encoder_path
        )
        record = json.loads((folder / BUILD_RECORD).read_text())
        source, revision, calibrated = "tiny", f"build-{record['build_version']}-seed{record['seed']}", False
    elif Path(ref).expanduser().is_dir():
        folder = Path(ref).expanduser().resolve()
        source, revision, calibrated = "local", "local", True
    elif is_hub_id(ref):
        revision = revision or (IP_ADAPTER_REVISION if ref == IP_ADAPTER_REPO else "main")
        folder = fetch(
            HubFiles(
                what="IP-Adapter",
                repo_id=ref,
                revision=revision,
                required=files.hub_files(),
                instead=("use --preset smoke (the tiny IP-Adapter)",),
            )
        )
        source, calibrated = "hub", True
    else:
        raise BenchError(
            f"IP-Adapter {ref!r} is neither 'tiny', an existing folder, nor a hub id like {IP_ADAPTER_REPO!r}"
        )
    _check_layout(folder, files, repr(ref) if source != "tiny" else "'tiny'")
    return folder, {
        "source": source,
        "id": ref if source != "local" else str(folder),
        "revision": revision,
        "path": str(folder),
        "weight_file": files.weight_path,
        "weight_sha256": file_sha256(folder / files.weight_path),
        "image_encoder": files.encoder_path,
        "calibrated": calibrated,
    }


def _tensor_shapes(weight_file: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header (nothing else is read)."""
    with open(weight_file, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def check_fits(adapter_folder: Path, files: AdapterFiles, base_folder: Path, shown_as: str) -> None:
    """Refuse (one line) an adapter whose shapes do not fit the base model or its own image encoder.

    Read from the files' headers and configs only: the adapter's context width (``to_k_ip`` input)
    must be the UNet's ``cross_attention_dim`` (768 for SD 1.5, 2048 for SDXL) and its projection's
    input the encoder's ``projection_dim`` (1024 for ViT-H/14, 1280 for ViT-bigG/14). Files in the
    legacy ``.bin`` format are checked by diffusers when they load.
    """
    weight_file = adapter_folder / files.weight_path
    if weight_file.suffix != ".safetensors":
        return
    shapes = _tensor_shapes(weight_file)
    to_k = sorted(k for k in shapes if k.startswith("ip_adapter.") and k.endswith(".to_k_ip.weight"))
    if "image_proj.proj.weight" not in shapes or not to_k:
        raise BenchError(
            f"IP-Adapter {shown_as}: {files.weight_path} has no image_proj.proj.weight / ip_adapter.*.to_k_ip.weight; "
            "only the base IP-Adapter (not Plus / FaceID) is supported"
        )
    unet_config = json.loads((Path(base_folder) / "unet" / "config.json").read_text())
    context = shapes[to_k[0]][1]
    if context != unet_config.get("cross_attention_dim"):
        sdxl = PUBLISHED["sdxl"]
        raise BenchError(
            f"IP-Adapter {shown_as} ({files.weight_path}) is for a UNet with cross-attention dim {context}, "
            f"the base model's is {unet_config.get('cross_attention_dim')}; for SDXL bases use "
            f"--method-preset sdxl, or adapter_subfolder={sdxl.subfolder} weight_name={sdxl.weight_name}"
        )
    encoder_config = json.loads((adapter_folder / files.encoder_path / "config.json").read_text())
    projection = encoder_config.get("projection_dim")
    if shapes["image_proj.proj.weight"][1] != projection:
        raise BenchError(
            f"IP-Adapter {shown_as} ({files.weight_path}) takes image embeddings of width "
            f"{shapes['image_proj.proj.weight'][1]} but the encoder at {files.encoder_path}/ gives {projection}; "
            "set image_encoder_folder to the encoder it was trained with"
        )

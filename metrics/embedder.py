"""The embedder contract: a batch of images (and, for CLIP, texts) -> L2-normalised float32 vectors.

An embedder owns its preprocessing (one torchvision transform, shared by every backend of the same
network, so the backends see identical pixels) and carries a stable `EmbedderId`: (backend,
architecture, weights tag, sha256 of the weights file actually loaded). The id keys the embedding
cache and is recorded in results.json next to every figure computed from the embeddings.

torch is imported inside functions only, so importing this module (e.g. for `EmbedderId`) is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from dreambench.errors import BenchError

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_BATCH_SIZE = 32
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class EmbedderId:
    """Identity of an embedder: which code (backend, arch) ran which weights (tag, sha256).

    `weights` is a tag such as "hub:timm/vit_small_patch16_224.dino@<commit>", "smoke:seed0",
    "file:/abs/path/model.safetensors" or "dir:/abs/path/folder". `sha256` is the hash of the weights
    file that was loaded, so two ids with the same tag but different bytes never collide.
    """

    backend: str
    arch: str
    weights: str
    sha256: str

    @property
    def key(self) -> str:
        """Short, filesystem-safe string, unique per id (it names the embedding-cache folder)."""
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode("utf-8")).hexdigest()
        readable = re.sub(r"[^A-Za-z0-9]+", "_", f"{self.backend}_{self.arch}").strip("_")
        return f"{readable[:40]}-{digest[:16]}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@runtime_checkable
class ImageEmbedder(Protocol):
    """Images -> (N, D) float32 array, each row L2-normalised (unit length)."""

    id: EmbedderId

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@runtime_checkable
class TextEmbedder(ImageEmbedder, Protocol):
    """An image embedder with a text tower in the same space (CLIP): texts -> (N, D) unit rows."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu. Anything else must be a valid torch device string."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise BenchError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:<index>") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return resolved


@contextlib.contextmanager
def inference_context(device: torch.device) -> Iterator[None]:
    """No autograd; fp32 on CPU (exact, reproducible), fp16 autocast on CUDA (speed, ~1e-3 cosine noise)."""
    import torch

    with torch.inference_mode():
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                yield
        else:
            yield


def embed_in_batches(
    items: Sequence[object],
    batch_size: int,
    device: torch.device,
    encode: Callable[[list[object]], torch.Tensor],
) -> np.ndarray:
    """Run `encode` over `items` in batches and return unit-length float32 rows, shape (N, D).

    Normalisation happens in fp32 after the forward pass so fp16 autocast never affects the norm.
    """
    import torch

    if batch_size < 1:
        raise BenchError(f"batch_size must be >= 1, got {batch_size}")
    chunks: list[np.ndarray] = []
    with inference_context(device):
        for start in range(0, len(items), batch_size):
            features = encode(list(items[start : start + batch_size])).float()
            features = torch.nn.functional.normalize(features, dim=-1)
            chunks.append(features.cpu().numpy().astype(np.float32, copy=False))
    if not chunks:
        raise BenchError("nothing to embed: got an empty list")
    return np.concatenate(chunks, axis=0)


def pixels(images: Sequence[Image.Image], transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """Stack `transform(image)` for each image (converted to RGB first) into one (N, 3, H, W) batch."""
    import torch

    return torch.stack([transform(im if im.mode == "RGB" else im.convert("RGB")) for im in images])

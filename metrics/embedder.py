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

    from dreambench.metrics.weights import ResolvedWeights

DEFAULT_BATCH_SIZE = 32
DEVICES = ("auto", "cpu", "cuda")
# Scoring arithmetic. fp32 is the protocol and the default everywhere; bf16 is an explicit fast mode
# whose figures are marked in every table and never compared with fp32 ones (docs/PERFORMANCE.md).
SCORING_PRECISIONS = ("fp32", "bf16")
DEFAULT_PRECISION = "fp32"
# What a user may ask for: a precision, or "auto" (bf16 where this machine runs bf16 natively, else
# fp32; metrics/precision.py). Only the resolved precision reaches an embedder or a result's identity.
AUTO_PRECISION = "auto"
PRECISION_CHOICES = (*SCORING_PRECISIONS, AUTO_PRECISION)


@dataclass(frozen=True)
class EmbedderId:
    """Identity of an embedder: which code (backend, arch) ran which weights (tag, sha256) at which
    arithmetic (precision).

    `weights` is a tag such as "hub:timm/vit_small_patch16_224.dino@<commit>", "smoke:seed0",
    "file:/abs/path/model.safetensors" or "dir:/abs/path/folder". `sha256` is the hash of the weights
    file that was loaded, so two ids with the same tag but different bytes never collide.
    `precision` is one of SCORING_PRECISIONS: a bf16 embedding is another measurement than an fp32 one.
    `recipe` names how a backend departs from plain autocast at that precision (open_clip at bf16:
    "attention-fp32", see `OpenClipEmbedder`); "" (the usual case) is left out of the id's dict and
    hash, so ids without one keep their keys.
    """

    backend: str
    arch: str
    weights: str
    sha256: str
    precision: str = DEFAULT_PRECISION
    recipe: str = ""

    @property
    def key(self) -> str:
        """Short, filesystem-safe string, unique per id (it names the embedding-cache folder)."""
        fields = self.as_dict()
        if self.precision == DEFAULT_PRECISION:
            # fp32 ids hash as they did before precision was part of the id: fp32 caches written
            # then (by the same fp32 arithmetic on the CPU) stay valid; other precisions get their own.
            del fields["precision"]
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()
        readable = re.sub(r"[^A-Za-z0-9]+", "_", f"{self.backend}_{self.arch}").strip("_")
        suffix = "" if self.precision == DEFAULT_PRECISION else f"-{self.precision}"
        return f"{readable[:40]}-{digest[:16]}{suffix}"

    def as_dict(self) -> dict[str, str]:
        fields = asdict(self)
        if not self.recipe:
            del fields["recipe"]
        return fields


@runtime_checkable
class ImageEmbedder(Protocol):
    """Images -> (N, D) float32 array, each row L2-normalised (unit length).

    `preprocess` (CPU only, thread-safe) and `embed_pixels` split `embed_images` in two so the Scorer
    can prepare the next batch while the network runs this one; the same batch gives the same bits
    either way.
    """

    id: EmbedderId
    batch_size: int

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor: ...

    def embed_pixels(self, batch: torch.Tensor) -> np.ndarray: ...


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
def inference_context(device: torch.device, precision: str = "fp32") -> Iterator[None]:
    """No autograd, and the arithmetic `precision` names (see SCORING_PRECISIONS).

    fp32 is exact fp32 on every device: no autocast, and on CUDA TF32 is switched off for the
    duration (TF32 matmuls round to a 10-bit mantissa and would make GPU and CPU figures disagree).
    bf16 runs the network under bfloat16 autocast; the final normalisation stays fp32.
    """
    import torch

    check_precision(precision)
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            if precision == "bf16":
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    yield
            else:
                yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        torch.backends.cudnn.allow_tf32 = cudnn_tf32


def check_precision(precision: str) -> str:
    """`precision` if it is one of SCORING_PRECISIONS, else a one-line BenchError listing them."""
    if precision not in SCORING_PRECISIONS:
        raise BenchError(
            f"unknown scoring precision {precision!r}; valid: {', '.join(SCORING_PRECISIONS)}"
        )
    return precision


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass: 32 on the CPU (larger batches gain nothing there); on CUDA sized
    for the card, since a GPU is only fed by large batches (ViT-B/32 at fp32 needs ~5 MB of
    activations per image, so even 256 fits an 8 GB card beside the weights)."""
    import torch

    if device.type != "cuda":
        return DEFAULT_BATCH_SIZE
    total = torch.cuda.get_device_properties(device).total_memory
    return 256 if total >= 16 * 2**30 else 128 if total >= 8 * 2**30 else 64


def normalized_rows(features: torch.Tensor) -> np.ndarray:
    """(N, D) network output -> unit-length float32 rows, normalised in fp32 whatever the precision."""
    import torch

    features = torch.nn.functional.normalize(features.float(), dim=-1)
    return features.cpu().numpy().astype(np.float32, copy=False)


def embed_in_batches(
    items: Sequence[object],
    batch_size: int,
    device: torch.device,
    encode: Callable[[list[object]], torch.Tensor],
    precision: str = DEFAULT_PRECISION,
) -> np.ndarray:
    """Run `encode` over `items` in batches and return unit-length float32 rows, shape (N, D)."""
    if batch_size < 1:
        raise BenchError(f"batch_size must be >= 1, got {batch_size}")
    chunks: list[np.ndarray] = []
    with inference_context(device, precision):
        for start in range(0, len(items), batch_size):
            chunks.append(normalized_rows(encode(list(items[start : start + batch_size]))))
    if not chunks:
        raise BenchError("nothing to embed: got an empty list")
    return np.concatenate(chunks, axis=0)


def pixels(images: Sequence[Image.Image], transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """Stack `transform(image)` for each image (converted to RGB first) into one (N, 3, H, W) batch."""
    import torch

    return torch.stack([transform(im if im.mode == "RGB" else im.convert("RGB")) for im in images])


def center_crop_transform(
    resize: int, mean: tuple[float, float, float], std: tuple[float, float, float], crop: int = 224
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> (3, crop, crop) float tensor: shorter side to ``resize`` (bicubic), centre
    crop, to [0, 1], normalise. The DINO and CLIP preprocessings differ only in these numbers."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(resize, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


class TorchImageEmbedder:
    """What the DINO and CLIP embedders share: a torch model in eval mode on the device, the
    preprocessing they own, batching and precision. Subclasses implement ``_image_features``
    (a preprocessed batch on the device -> (N, D) features, not yet normalised)."""

    backend: str

    def __init__(
        self,
        model: torch.nn.Module,
        weights: ResolvedWeights,
        device: str,
        batch_size: int,
        precision: str,
        arch: str,
        transform: Callable[[Image.Image], torch.Tensor],
    ) -> None:
        self.arch = arch
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.precision = check_precision(precision)
        self.model = model.eval().to(self.device)
        self.transform = transform
        recipe = type(self).precision_recipe(self.precision)
        self.id = EmbedderId(self.backend, arch, weights.tag, weights.sha256, self.precision, recipe)

    @classmethod
    def precision_recipe(cls, precision: str) -> str:
        """How this backend departs from plain autocast at ``precision`` ("" = it does not); part of
        the embedder id, known before the model is loaded (``Scorer.embedder_id``)."""
        return ""

    @classmethod
    def import_backend(cls) -> None:
        """Import what ``load`` and the preprocessing import, in the calling thread.

        The Scorer calls it for every network before loading them side by side in threads: two
        threads importing torchvision / timm / open_clip / transformers at once can stop with
        Python's ``_DeadlockError`` on their module locks (seen with timm and open_clip, whose
        imports both reach torchvision). Subclasses extend it with their library.
        """
        import torch  # noqa: F401
        from torchvision import transforms  # noqa: F401

    def _image_features(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N,) images -> (N, 3, H, W) float32 pixels on the CPU (safe to run in another thread)."""
        return pixels(images, self.transform)

    def embed_pixels(self, batch: torch.Tensor) -> np.ndarray:
        """One preprocessed batch -> (N, D) float32 unit rows, at the embedder's precision."""
        with inference_context(self.device, self.precision):
            return normalized_rows(self._image_features(batch.to(self.device)))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N,) images -> (N, D) float32 unit rows."""
        return embed_in_batches(
            images,
            self.batch_size,
            self.device,
            lambda chunk: self._image_features(pixels(chunk, self.transform).to(self.device)),
            self.precision,
        )

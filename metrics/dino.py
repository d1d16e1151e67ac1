"""DINO ViT-S/16 image embedder (the DINO metric): the CLS token after the final layer norm.

Preprocessing (DreamBench protocol): Resize(256, bicubic) -> CenterCrop(224) -> ToTensor ->
Normalize(ImageNet mean/std). One transform, shared by both backends, so they see identical pixels.

Backends (`DINO_BACKENDS`):
  - "timm":         timm `vit_small_patch16_224.dino`, `forward_features(x)[:, 0]`
  - "transformers": `ViTModel(add_pooling_layer=False)` (facebook/dino-vits16), `last_hidden_state[:, 0]`
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from dreambench.metrics.embedder import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PRECISION,
    EmbedderId,
    check_precision,
    embed_in_batches,
    inference_context,
    normalized_rows,
    pixels,
    resolve_device,
)
from dreambench.metrics.presets import DINO_ARCH
from dreambench.metrics.weights import ResolvedWeights, require_complete_load

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def dino_transform() -> transforms.Compose:
    """PIL RGB image -> (3, 224, 224) float tensor, the DreamBench DINO preprocessing."""
    return transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class _DinoEmbedder:
    """Shared batching for both backends; subclasses load the network and pick the CLS token."""

    backend: str
    arch = DINO_ARCH

    def __init__(
        self,
        model: torch.nn.Module,
        weights: ResolvedWeights,
        device: str,
        batch_size: int,
        precision: str = DEFAULT_PRECISION,
    ) -> None:
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.precision = check_precision(precision)
        self.model = model.eval().to(self.device)
        self.transform = dino_transform()
        self.id = EmbedderId(self.backend, DINO_ARCH, weights.tag, weights.sha256, self.precision)

    def _cls(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N,) images -> (N, 3, 224, 224) float32 pixels on the CPU (safe to run in another thread)."""
        return pixels(images, self.transform)

    def embed_pixels(self, batch: torch.Tensor) -> np.ndarray:
        """One preprocessed batch -> (N, 384) float32 unit rows, at the embedder's precision."""
        with inference_context(self.device, self.precision):
            return normalized_rows(self._cls(batch.to(self.device)))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N,) images -> (N, 384) float32, unit rows (CLS token, L2-normalised)."""
        return embed_in_batches(
            images,
            self.batch_size,
            self.device,
            lambda chunk: self._cls(pixels(chunk, self.transform).to(self.device)),
            self.precision,
        )


class TimmDinoEmbedder(_DinoEmbedder):
    backend = "timm"

    @classmethod
    def load(
        cls,
        weights: ResolvedWeights,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
    ) -> TimmDinoEmbedder:
        import timm
        from timm.models import load_checkpoint

        model = timm.create_model("vit_small_patch16_224.dino", pretrained=False)
        load_checkpoint(model, str(Path(weights.path)), strict=True)
        return cls(model, weights, device, batch_size, precision)

    def _cls(self, batch: torch.Tensor) -> torch.Tensor:
        # forward_features ends with the final norm; token 0 is CLS (DINO's image descriptor).
        return self.model.forward_features(batch)[:, 0]


class TransformersDinoEmbedder(_DinoEmbedder):
    backend = "transformers"

    @classmethod
    def load(
        cls,
        weights: ResolvedWeights,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
    ) -> TransformersDinoEmbedder:
        from transformers import ViTModel

        model, info = ViTModel.from_pretrained(
            str(weights.path), add_pooling_layer=False, output_loading_info=True
        )
        require_complete_load(info, weights.tag)
        return cls(model, weights, device, batch_size, precision)

    def _cls(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=batch).last_hidden_state[:, 0]


DINO_BACKENDS: dict[str, type[_DinoEmbedder]] = {
    "timm": TimmDinoEmbedder,
    "transformers": TransformersDinoEmbedder,
}

"""OpenAI CLIP ViT-B/32 image + text embedder (the CLIP-I and CLIP-T metrics).

Preprocessing (CLIP's standard preprocess): Resize(224, bicubic, shortest side) -> CenterCrop(224)
-> ToTensor -> Normalize(CLIP mean/std). One transform, shared by both backends.

Backends (`CLIP_BACKENDS`):
  - "open_clip":    open_clip `ViT-B-32-quickgelu`, `encode_image` / `encode_text`, open_clip's tokenizer
  - "transformers": `CLIPModel.get_image_features` / `get_text_features`, `CLIPTokenizer`
Both project into the same 512-d joint space; rows are L2-normalised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from dreambench.errors import BenchError
from dreambench.metrics.embedder import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PRECISION,
    TorchImageEmbedder,
    center_crop_transform,
    embed_in_batches,
)
from dreambench.metrics.presets import CLIP_ARCH
from dreambench.metrics.weights import ResolvedWeights, require_complete_load

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT_LENGTH = 77
OPEN_CLIP_ARCH = "ViT-B-32-quickgelu"  # OpenAI CLIP ViT-B/32 was trained with QuickGELU


def clip_transform() -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> (3, 224, 224) float tensor, CLIP's standard preprocessing: Resize 224
    (bicubic), CenterCrop 224, CLIP mean/std."""
    return center_crop_transform(224, CLIP_MEAN, CLIP_STD)


class _ClipEmbedder(TorchImageEmbedder):
    """Both backends: the shared image path (TorchImageEmbedder) plus the text tower; subclasses
    implement the two towers. Rows are the projected embeddings (512-d for ViT-B/32)."""

    arch = CLIP_ARCH
    tokenizer: object

    def __init__(
        self,
        model: torch.nn.Module,
        weights: ResolvedWeights,
        device: str,
        batch_size: int,
        precision: str = DEFAULT_PRECISION,
    ) -> None:
        super().__init__(model, weights, device, batch_size, precision, CLIP_ARCH, clip_transform())

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) strings -> (N, 512) float32 unit rows (projected text embeddings, 77-token context)."""
        return embed_in_batches(
            list(texts), self.batch_size, self.device, self._text_features, self.precision
        )


def build_open_clip_model() -> torch.nn.Module:
    """An open_clip ViT-B/32 (QuickGELU, as OpenAI trained it) with fresh random weights."""
    import open_clip

    # open_clip warns (root logger) that no pretrained weights were loaded: callers load or save them next.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return open_clip.create_model(OPEN_CLIP_ARCH, pretrained=None)
    finally:
        root.setLevel(level)


class OpenClipEmbedder(_ClipEmbedder):
    backend = "open_clip"

    @classmethod
    def load(
        cls,
        weights: ResolvedWeights,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
    ) -> OpenClipEmbedder:
        import open_clip
        from open_clip.factory import load_checkpoint

        model = build_open_clip_model()
        load_checkpoint(model, str(weights.path), strict=True)
        embedder = cls(model, weights, device, batch_size, precision)
        embedder.tokenizer = open_clip.get_tokenizer(OPEN_CLIP_ARCH)
        return embedder

    def _image_features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(batch)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))


def _pooled(output: object) -> torch.Tensor:
    """transformers < 5 returns the projected features as a tensor; v5 returns a model output whose
    `pooler_output` holds them."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class TransformersClipEmbedder(_ClipEmbedder):
    backend = "transformers"

    @classmethod
    def load(
        cls,
        weights: ResolvedWeights,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
    ) -> TransformersClipEmbedder:
        from transformers import CLIPModel, CLIPTokenizer

        model, info = CLIPModel.from_pretrained(str(weights.path), output_loading_info=True)
        require_complete_load(info, weights.tag)
        try:
            tokenizer = CLIPTokenizer.from_pretrained(str(weights.path))
        except (OSError, ValueError, TypeError) as err:
            raise BenchError(
                f"no CLIP tokenizer files (vocab.json + merges.txt or tokenizer.json) in {weights.path}: {err}"
            ) from None
        embedder = cls(model, weights, device, batch_size, precision)
        embedder.tokenizer = tokenizer
        return embedder

    def _image_features(self, batch: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=batch))

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=CONTEXT_LENGTH, return_tensors="pt"
        ).to(self.device)
        return _pooled(
            self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
        )


CLIP_BACKENDS: dict[str, type[_ClipEmbedder]] = {
    "open_clip": OpenClipEmbedder,
    "transformers": TransformersClipEmbedder,
}

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
from typing import Any

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


def attention_in_fp32(model: torch.nn.Module) -> int:
    """Run every ``nn.MultiheadAttention`` of ``model`` with autocast off and fp32 inputs, its output
    cast back to the dtype of the query it got (OpenClipEmbedder's bf16 recipe). Returns how many."""
    wrapped = 0
    for module in model.modules():
        if isinstance(module, torch.nn.MultiheadAttention):
            module.forward = _fp32_forward(module.forward)
            wrapped += 1
    return wrapped


def _fp32_forward(forward: Callable[..., tuple[torch.Tensor, Any]]) -> Callable[..., tuple[torch.Tensor, Any]]:
    def run(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        dtype = query.dtype
        with torch.autocast(query.device.type, enabled=False):
            if key is query and value is query:  # self-attention: one tensor, for the fused path
                q = query.float()
                out, weights = forward(q, q, q, **kwargs)
            else:
                out, weights = forward(query.float(), key.float(), value.float(), **kwargs)
        return out.to(dtype), weights

    return run


class OpenClipEmbedder(_ClipEmbedder):
    """open_clip's CLIP. At bf16 its attention layers run in fp32 (``precision_recipe``
    "attention-fp32"): under autocast torch sends ``nn.MultiheadAttention`` down its unfused path,
    whose bf16 input projection on the CPU is a batched matmul over a copied weight, 5x slower than
    fp32 for 5 images and slower than fp32 even for 32. With autocast off inside the attention
    (inputs cast to fp32, output cast back to the stream's dtype) it takes the fused fp32 path, and
    bf16 scoring runs ViT-B/32 1.4-1.7x faster than fp32 instead of 0.2-0.8x
    (tests/benchmarks/test_bench_embedders.py). The MLPs, projections and patch embedding stay bf16.
    """

    backend = "open_clip"

    @classmethod
    def precision_recipe(cls, precision: str) -> str:
        return "attention-fp32" if precision == "bf16" else ""

    @classmethod
    def import_backend(cls) -> None:
        super().import_backend()
        import open_clip  # noqa: F401
        from open_clip.factory import load_checkpoint  # noqa: F401

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
        if cls.precision_recipe(precision) == "attention-fp32":
            attention_in_fp32(model)
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
    def import_backend(cls) -> None:
        super().import_backend()
        from transformers import CLIPModel, CLIPTokenizer  # noqa: F401

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

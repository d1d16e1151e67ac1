"""DINO-type image embedders (the DINO metric): the CLS token after the final layer norm.

Networks (`DINO_VARIANTS`, by the arch recorded in the embedder id):
  - "ViT-S/16"         DINO v1 (the DreamBooth paper): timm `vit_small_patch16_224.dino` / facebook/dino-vits16
  - "ViT-S/8"          DINO v1 (DreamBench++'s "DINOv1"): timm `vit_small_patch8_224.dino` / facebook/dino-vits8
  - "DINOv2 ViT-S/14"  timm `vit_small_patch14_dinov2.lvd142m` / transformers facebook/dinov2-small
  - "DINOv2 ViT-B/14"  timm `vit_base_patch14_dinov2.lvd142m` / transformers facebook/dinov2-base

Preprocessing, every network: Resize(256, bicubic, shorter side) -> CenterCrop(224) -> ToTensor ->
Normalize(ImageNet mean/std). For DINO v1 that is the DreamBench protocol; for DINOv2 it is the
transformers checkpoints' own preprocessing (facebook/dinov2-small preprocessor_config.json:
BitImageProcessor, shortest edge 256, bicubic, crop 224, ImageNet mean/std), which DreamBench++
and most papers use (timm's card lists 518 px, crop_pct 1.0: not what the papers ran). One
transform, shared by both backends, so they see identical pixels.

DINOv2 was trained at 518 px (a 37x37 grid of 14 px patches); at 224 px (16x16) its position
embeddings must be resampled. How differs by implementation (transformers: bicubic to the new size,
no antialiasing; timm's dynamic size: antialiased; facebookresearch/dinov2 and older transformers:
a scale factor with a +0.1 offset), and so do the numbers. This module owns the rule: both backends
resample once, at load, with `resample_position_embeddings` (bicubic, align_corners=False, no
antialiasing: transformers' current Dinov2 rule, the code DreamBench++ runs).

Backends (`DINO_BACKENDS`):
  - "timm":         timm `create_model(...)`, `forward_features(x)[:, 0]`
  - "transformers": `ViTModel(add_pooling_layer=False)` (DINO v1) or `Dinov2Model` (DINOv2),
                    `last_hidden_state[:, 0]`
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from dreambench.errors import BenchError
from dreambench.metrics.embedder import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PRECISION,
    TorchImageEmbedder,
    center_crop_transform,
)
from dreambench.metrics.presets import DINO_ARCH, DINO_S8_ARCH, DINOV2_B14_ARCH, DINOV2_S14_ARCH
from dreambench.metrics.weights import ResolvedWeights, require_complete_load

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP = 224


@dataclass(frozen=True)
class DinoVariant:
    """One DINO-type network: its timm model name, family ("dino" v1 | "dinov2"), width and patch size."""

    arch: str
    timm_model: str
    family: str
    width: int
    patch: int


DINO_VARIANTS: dict[str, DinoVariant] = {
    v.arch: v
    for v in (
        DinoVariant(DINO_ARCH, "vit_small_patch16_224.dino", "dino", 384, 16),
        DinoVariant(DINO_S8_ARCH, "vit_small_patch8_224.dino", "dino", 384, 8),
        DinoVariant(DINOV2_S14_ARCH, "vit_small_patch14_dinov2.lvd142m", "dinov2", 384, 14),
        DinoVariant(DINOV2_B14_ARCH, "vit_base_patch14_dinov2.lvd142m", "dinov2", 768, 14),
    )
}


def dino_variant(arch: str) -> DinoVariant:
    """The variant of `arch`; an unknown arch is a one-line BenchError listing the valid ones."""
    if arch not in DINO_VARIANTS:
        raise BenchError(f"unknown DINO arch {arch!r}; valid: {', '.join(DINO_VARIANTS)}")
    return DINO_VARIANTS[arch]


def resample_position_embeddings(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + g*g, D) position embeddings (CLS first) -> (1, 1 + grid*grid, D).

    Bicubic, align_corners=False, no antialiasing, computed in fp32: transformers' Dinov2
    `interpolate_pos_encoding` (the rule DreamBench++ runs), applied once at load instead of per batch.
    """
    cls_pos, patches = pos[:, :1], pos[:, 1:]
    old = round(patches.shape[1] ** 0.5)
    if old * old != patches.shape[1]:
        raise ValueError(f"position embeddings of {patches.shape[1]} patches are not a square grid")
    if old == grid:
        return pos
    dim = patches.shape[-1]
    patches = patches.reshape(1, old, old, dim).permute(0, 3, 1, 2)
    patches = torch.nn.functional.interpolate(
        patches.to(torch.float32), size=(grid, grid), mode="bicubic", align_corners=False
    ).to(pos.dtype)
    return torch.cat((cls_pos, patches.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)), dim=1)


def dino_transform() -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> (3, 224, 224) float tensor, the DreamBench DINO preprocessing: Resize 256
    (bicubic), CenterCrop 224, ImageNet mean/std."""
    return center_crop_transform(256, IMAGENET_MEAN, IMAGENET_STD, crop=CROP)


class _DinoEmbedder(TorchImageEmbedder):
    """Both backends: the shared image path (TorchImageEmbedder); subclasses load the network and
    pick the CLS token. Rows are CLS embeddings, L2-normalised (384-d for ViT-S)."""

    # Every arch this class can load (a key of DINO_VARIANTS); `arch` is the one loaded.
    archs: tuple[str, ...] = tuple(DINO_VARIANTS)

    def __init__(
        self,
        model: torch.nn.Module,
        weights: ResolvedWeights,
        device: str,
        batch_size: int,
        precision: str = DEFAULT_PRECISION,
        arch: str = DINO_ARCH,
    ) -> None:
        super().__init__(model, weights, device, batch_size, precision, dino_variant(arch).arch, dino_transform())


class TimmDinoEmbedder(_DinoEmbedder):
    backend = "timm"

    @classmethod
    def import_backend(cls) -> None:
        super().import_backend()
        import timm  # noqa: F401
        from timm.models import load_checkpoint  # noqa: F401

        from dreambench.metrics.convert import load_state_dict_file  # noqa: F401

    @classmethod
    def load(
        cls,
        weights: ResolvedWeights,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
        arch: str = DINO_ARCH,
    ) -> TimmDinoEmbedder:
        import timm
        from timm.models import load_checkpoint

        variant = dino_variant(arch)
        if variant.family == "dinov2":
            from dreambench.metrics.convert import load_state_dict_file

            # Built for 224 px; the 518 px checkpoint's position grid resampled by our rule (module doc).
            model = timm.create_model(variant.timm_model, pretrained=False, img_size=CROP)
            state = load_state_dict_file(Path(weights.path))
            grid = model.patch_embed.grid_size[0]
            state["pos_embed"] = resample_position_embeddings(state["pos_embed"], grid)
            model.load_state_dict(state, strict=True)
        else:
            model = timm.create_model(variant.timm_model, pretrained=False)
            load_checkpoint(model, str(Path(weights.path)), strict=True)
        return cls(model, weights, device, batch_size, precision, arch)

    def _image_features(self, batch: torch.Tensor) -> torch.Tensor:
        # forward_features ends with the final norm; token 0 is CLS (DINO's image descriptor).
        return self.model.forward_features(batch)[:, 0]


class TransformersDinoEmbedder(_DinoEmbedder):
    backend = "transformers"

    @classmethod
    def import_backend(cls) -> None:
        super().import_backend()
        from transformers import Dinov2Model, ViTModel  # noqa: F401

    @classmethod
    def load(
        cls,
        weights: ResolvedWeights,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
        arch: str = DINO_ARCH,
    ) -> TransformersDinoEmbedder:
        variant = dino_variant(arch)
        if variant.family == "dinov2":
            from transformers import Dinov2Model

            model, info = Dinov2Model.from_pretrained(str(weights.path), output_loading_info=True)
            require_complete_load(info, weights.tag)
            # Resample the position grid once for 224 px (module doc); with a matching grid the
            # model's own per-batch interpolation is skipped.
            embeddings = model.embeddings
            grid = CROP // model.config.patch_size
            resampled = resample_position_embeddings(embeddings.position_embeddings.data, grid)
            embeddings.position_embeddings = torch.nn.Parameter(resampled, requires_grad=False)
            model.config.image_size = CROP
        else:
            from transformers import ViTModel

            model, info = ViTModel.from_pretrained(
                str(weights.path), add_pooling_layer=False, output_loading_info=True
            )
            require_complete_load(info, weights.tag)
        shape = (model.config.hidden_size, model.config.patch_size)
        if shape != (variant.width, variant.patch):
            raise BenchError(
                f"weights {weights.tag} are width {shape[0]}, patch {shape[1]}; {arch} is width "
                f"{variant.width}, patch {variant.patch}"
            )
        return cls(model, weights, device, batch_size, precision, arch)

    def _image_features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=batch).last_hidden_state[:, 0]


DINO_BACKENDS: dict[str, type[_DinoEmbedder]] = {
    "timm": TimmDinoEmbedder,
    "transformers": TransformersDinoEmbedder,
}

"""VAE latents of training images, computed once and reused at every step (and across subjects).

diffusers' train_dreambooth.py re-encodes every image through the VAE at every step
(``vae.encode(pixels).latent_dist.sample()``). The VAE is frozen, so the *distribution* it returns
for an image never changes; only the sample does. We therefore encode each image once, keep the
diagonal Gaussian's mean and std, and draw ``mean + std * eps`` at each step: the same training
signal, without a VAE forward per step. Class-prior latents are also cached on disk next to the
class images (``LatentDist.save`` / ``load``) so every subject of a class reuses them.

Preprocessing is diffusers' DreamBooth transform with ``--center_crop``: resize the shorter side to
``resolution`` (bilinear, antialiased), center-crop ``resolution`` x ``resolution``, scale to
[-1, 1]. (The script's default random crop would differ per step; with cached latents the crop is
fixed, so we use its documented center-crop option.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.atomic import atomic_write_bytes, sweep_temp_entries

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL
    from PIL import Image


def preprocess(image: Image.Image, resolution: int) -> torch.Tensor:
    """RGB image -> float tensor [3, resolution, resolution] in [-1, 1] (resize shorter side, center crop)."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    tensor = TF.pil_to_tensor(image.convert("RGB"))
    tensor = TF.resize(tensor, resolution, interpolation=InterpolationMode.BILINEAR, antialias=True)
    tensor = TF.center_crop(tensor, [resolution, resolution])
    return tensor.to(torch.float32) / 127.5 - 1.0


@dataclass
class LatentDist:
    """Per-image VAE posteriors: ``mean`` and ``std`` [N, C, h, w] (unscaled), plus the VAE's scaling.

    ``sample`` returns latents ready for the UNet: ``(mean + std * eps - shift) * scaling``, exactly
    what diffusers' training scripts compute from ``vae.encode(...).latent_dist.sample()``.
    """

    mean: torch.Tensor
    std: torch.Tensor
    scaling_factor: float
    shift_factor: float = 0.0

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def to(self, device: str | torch.device) -> LatentDist:
        return LatentDist(self.mean.to(device), self.std.to(device), self.scaling_factor, self.shift_factor)

    def sample(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        import torch

        mean, std = self.mean[indices], self.std[indices]
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean + std * eps - self.shift_factor) * self.scaling_factor

    def save(self, path: Path) -> None:
        """Write to a safetensors file atomically."""
        from safetensors.torch import save

        meta = {"scaling_factor": repr(self.scaling_factor), "shift_factor": repr(self.shift_factor)}
        tensors = {"mean": self.mean.detach().cpu().contiguous(), "std": self.std.detach().cpu().contiguous()}
        atomic_write_bytes(path, save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: Path) -> LatentDist:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            mean, std = f.get_tensor("mean"), f.get_tensor("std")
        return cls(
            mean, std, float(meta.get("scaling_factor", "1.0")), float(meta.get("shift_factor", "0.0"))
        )


def encode_images(
    vae: AutoencoderKL, images: Sequence[Image.Image], resolution: int, device: str, batch_size: int = 8
) -> LatentDist:
    """Encode ``images`` once with the (frozen) VAE; result on ``device`` in fp32."""
    import torch

    means, stds = [], []
    vae_dtype = next(vae.parameters()).dtype
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([preprocess(im, resolution) for im in images[start : start + batch_size]])
            posterior = vae.encode(pixels.to(device=device, dtype=vae_dtype)).latent_dist
            means.append(posterior.mean.float())
            stds.append(posterior.std.float())
    return LatentDist(
        mean=torch.cat(means),
        std=torch.cat(stds),
        scaling_factor=float(vae.config.scaling_factor),
        shift_factor=float(getattr(vae.config, "shift_factor", None) or 0.0),
    )


def cached_encode(
    path: Path, vae: AutoencoderKL, image_paths: Sequence[Path], resolution: int, device: str
) -> LatentDist:
    """``encode_images`` of the files ``image_paths`` with a disk cache at ``path``.

    The caller puts everything the latents depend on (VAE identity, resolution, image set) into
    ``path``; a cached file that does not hold exactly ``len(image_paths)`` latents of the expected
    size is recomputed. Images are decoded only on a cache miss.
    """
    from dreambench.dataset.images import load_image

    # Temp files of a killed save beside the cache file (only those whose writer is gone).
    sweep_temp_entries(path.parent, recursive=False)
    if path.is_file():
        cached = LatentDist.load(path)
        if len(cached) == len(image_paths) and cached.mean.shape[-1] * _vae_factor(vae) == resolution:
            return cached.to(device)
    dist = encode_images(vae, [load_image(p) for p in image_paths], resolution, device)
    dist.save(path)
    return dist


def _vae_factor(vae: AutoencoderKL) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)

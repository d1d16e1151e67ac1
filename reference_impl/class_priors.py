"""The class-prior cache: the base model's own samples of "a {class}" for prior preservation.

DreamBooth's prior-preservation loss (paper Sec. 3.3) trains on the subject's images *and* on
images the frozen base model generated from the class prompt ("a dog"). Those class images do not
depend on the subject, so they are generated once and shared by every subject of the class (9 dogs
and cats, 21 object classes). The key holds every input that changes a pixel: the base model, the class prompt, the sampler
settings, the seed, the images per pipeline call (render.py: CPU kernels depend on the batch
shape), the device type and the autocast dtype the denoiser ran in (CUDA only; "no" elsewhere).

    <cache_root>/priors/<class-slug>-<key hash>/
        spec.json            what the images are (PriorSpec.as_dict)
        00000.png ...        image i, rendered with seed prior_image_seed(seed, i)
        latents-r<res>-n<N>.safetensors   their VAE posteriors (latent_cache), for training

Resumable image by image: each image has its own seed and is written atomically, so a killed run
keeps what it finished and asking for more images later only renders the missing ones (the first
N images of a larger set are the same N images).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.atomic import atomic_write_bytes, atomic_write_json, sweep_temp_entries
from dreambench.cache_root import cache_root
from dreambench.errors import BenchError
from dreambench.reference_impl.latent_cache import LatentDist, cached_encode
from dreambench.reference_impl.render import SamplerSettings, render

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline

# Bump when the meaning of a cached prior image changes (rendering code, seed derivation).
# 2: the key holds the batch size, device type and autocast dtype.
_PRIOR_VERSION = 2
AUTOCAST_NONE = "no"


@dataclass(frozen=True)
class PriorSpec:
    """What a set of class images is: every input that changes their pixels.

    model_key: base model key (id@revision or a local folder's content key); class_noun; prompt:
    the formatted class prompt; sampler: sampler settings; seed: every image's seed derives from it;
    batch_size: images per pipeline call; device_type: "cpu", "cuda", "mps"; autocast: the dtype
    name the denoiser ran in under CUDA autocast ("float16", "bfloat16") or "no". Build it with
    ``PriorSpec.create``, which normalises the last three from what ``render`` will actually do.
    """

    model_key: str
    class_noun: str
    prompt: str
    sampler: SamplerSettings
    seed: int = 0
    batch_size: int = 1
    device_type: str = "cpu"
    autocast: str = AUTOCAST_NONE
    # "fp32" or "bf16": the dtype of the weights that rendered (render_precision="bf16-weights":
    # bf16 copies, no autocast; reference_impl/precision_policy.py). In the key only when not fp32,
    # so the keys of existing fp32 caches stay what they were.
    weights: str = "fp32"

    @classmethod
    def create(
        cls,
        model_key: str,
        class_noun: str,
        prompt: str,
        sampler: SamplerSettings,
        seed: int,
        *,
        device: str,
        batch_size: int,
        autocast_dtype: torch.dtype | None,
        weights: str = "fp32",
    ) -> PriorSpec:
        """The spec of images rendered on ``device`` in calls of ``batch_size`` with ``autocast_dtype``
        (ignored off CUDA, as ``render`` ignores it there), by ``weights`` "fp32" or "bf16" weights
        (bf16: no autocast)."""
        if weights not in ("fp32", "bf16"):
            raise BenchError(f"class priors: weights={weights!r} is not one of fp32, bf16")
        if weights == "bf16":
            autocast_dtype = None
        device_type = device.split(":", 1)[0]
        autocast = (
            str(autocast_dtype).removeprefix("torch.")
            if autocast_dtype is not None and device_type == "cuda"
            else AUTOCAST_NONE
        )
        return cls(model_key, class_noun, prompt, sampler, seed, batch_size, device_type, autocast, weights)

    def as_dict(self) -> dict[str, Any]:
        """Everything the key is computed from (also written to the folder's spec.json)."""
        return {
            "version": _PRIOR_VERSION,
            "model": self.model_key,
            "class_noun": self.class_noun,
            "prompt": self.prompt,
            "sampler": self.sampler.as_dict(),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "device_type": self.device_type,
            "autocast": self.autocast,
        } | ({"weights": self.weights} if self.weights != "fp32" else {})

    def key(self) -> str:
        # The class noun names the folder; the images depend on it only through the prompt.
        payload = {k: v for k, v in self.as_dict().items() if k != "class_noun"}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
        slug = re.sub(r"[^a-z0-9]+", "-", self.class_noun.lower()).strip("-") or "class"
        return f"{slug}-{digest}"

    def folder(self) -> Path:
        return cache_root() / "priors" / self.key()


def prior_image_seed(seed: int, index: int) -> int:
    """Seed of class image ``index``: a hash of (seed, index), so images are independent of each other."""
    digest = hashlib.sha256(f"dreambench-prior:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


def prior_image_paths(spec: PriorSpec, n: int) -> list[Path]:
    folder = spec.folder()
    return [folder / f"{i:05d}.png" for i in range(n)]


def ensure_class_images(spec: PriorSpec, n: int, pipe: StableDiffusionPipeline, device: str) -> list[Path]:
    """The first ``n`` class images of ``spec``, rendering (with the *base* ``pipe`` on ``device``,
    in calls of ``spec.batch_size`` under ``spec.autocast``) only missing ones. For
    ``spec.weights == "bf16"`` the pipeline's networks must be bf16 (precision_policy.inference_components)."""
    import torch

    if device.split(":", 1)[0] != spec.device_type:
        raise BenchError(
            f"class priors: spec for device type {spec.device_type!r} cannot render on {device!r}; "
            "build it with PriorSpec.create(..., device=...)"
        )
    autocast_dtype = None if spec.autocast == AUTOCAST_NONE else getattr(torch, spec.autocast)
    batch_size = spec.batch_size
    paths = prior_image_paths(spec, n)
    # Temp files of a killed render (shared cache: only those whose writer is gone).
    sweep_temp_entries(spec.folder(), recursive=False)
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if not missing:
        return paths
    denoiser = pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer
    if (denoiser.dtype == torch.bfloat16) != (spec.weights == "bf16"):
        raise BenchError(
            f"class priors: spec for {spec.weights} weights got a pipeline in {denoiser.dtype}; "
            "use precision_policy.inference_components for bf16"
        )
    folder = spec.folder()
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "spec.json").is_file():
        atomic_write_json(folder / "spec.json", spec.as_dict())
    # Render in chunks of the batch size and write each image as soon as its chunk is done.
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        images = render(
            pipe,
            [spec.prompt] * len(chunk),
            [prior_image_seed(spec.seed, i) for i in chunk],
            spec.sampler,
            device,
            batch_size=batch_size,
            autocast_dtype=autocast_dtype,
        )
        for i, image in zip(chunk, images):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            atomic_write_bytes(paths[i], buffer.getvalue())
    return paths


def class_prior_latents(
    spec: PriorSpec, paths: list[Path], vae: AutoencoderKL, resolution: int, device: str
) -> LatentDist:
    """VAE posteriors of the class images ``paths``, cached next to them (shared across subjects)."""
    cache = spec.folder() / f"latents-r{resolution}-n{len(paths)}.safetensors"
    return cached_encode(cache, vae, paths, resolution, device)

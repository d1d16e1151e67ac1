"""The class-prior cache: the base model's own samples of "a {class}" for prior preservation.

DreamBooth's prior-preservation loss (paper Sec. 3.3) trains on the subject's images *and* on
images the frozen base model generated from the class prompt ("a dog"). Those class images depend
only on (base model, class prompt, sampler settings, seed) — not on the subject — so they are
generated once and shared by every subject of the class (9 dogs and cats, 21 object classes):

    <cache_root>/priors/<class-slug>-<key hash>/
        spec.json            what the images are (model key, prompt, sampler, seed)
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
from typing import TYPE_CHECKING

from dreambench.atomic import atomic_write_bytes, atomic_write_json
from dreambench.cache_root import cache_root
from dreambench.reference_impl.latent_cache import LatentDist, cached_encode
from dreambench.reference_impl.render import SamplerSettings, render

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline

# Bump when the meaning of a cached prior image changes (rendering code, seed derivation).
_PRIOR_VERSION = 1


@dataclass(frozen=True)
class PriorSpec:
    """What a set of class images is: base model key (id@revision), class noun, the formatted class
    prompt, sampler settings and the seed from which every image's seed is derived."""

    model_key: str
    class_noun: str
    prompt: str
    sampler: SamplerSettings
    seed: int = 0

    def key(self) -> str:
        payload = json.dumps(
            {
                "version": _PRIOR_VERSION,
                "model": self.model_key,
                "prompt": self.prompt,
                "sampler": self.sampler.as_dict(),
                "seed": self.seed,
            },
            sort_keys=True,
        )
        slug = re.sub(r"[^a-z0-9]+", "-", self.class_noun.lower()).strip("-") or "class"
        return f"{slug}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"

    def folder(self) -> Path:
        return cache_root() / "priors" / self.key()


def prior_image_seed(seed: int, index: int) -> int:
    """Seed of class image ``index``: a hash of (seed, index), so images are independent of each other."""
    digest = hashlib.sha256(f"dreambench-prior:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


def prior_image_paths(spec: PriorSpec, n: int) -> list[Path]:
    folder = spec.folder()
    return [folder / f"{i:05d}.png" for i in range(n)]


def ensure_class_images(
    spec: PriorSpec,
    n: int,
    pipe: StableDiffusionPipeline,
    device: str,
    batch_size: int,
    autocast_dtype: torch.dtype | None = None,
) -> list[Path]:
    """The first ``n`` class images of ``spec``, rendering (with the *base* ``pipe``) only missing ones."""
    paths = prior_image_paths(spec, n)
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if not missing:
        return paths
    folder = spec.folder()
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "spec.json").is_file():
        atomic_write_json(
            folder / "spec.json",
            {
                "version": _PRIOR_VERSION,
                "model": spec.model_key,
                "class_noun": spec.class_noun,
                "prompt": spec.prompt,
                "sampler": spec.sampler.as_dict(),
                "seed": spec.seed,
            },
        )
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

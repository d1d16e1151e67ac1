"""The embedded ``tiny-trained`` Stable Diffusion: the tiny architecture with shipped, pretrained weights.

The smoke presets' base model. Same modules as ``tiny`` (reference_impl/tiny_model.py: 32 px, 8x8x4
latents, ~1M-parameter UNet, 2-layer text encoder over the real CLIP tokenizer), so a training step
or a rendered image costs the same; but its VAE reconstructs images and its UNet has a generic
prior, both learnt from procedurally generated captioned scenes (reference_impl/procedural_scenes.py,
"a photo of a red ball on the beach"), never from a photograph, so its renders are a floor that has
not seen any benchmark subject. reference_impl/train_tiny_base.py produces the weights (seeded, one
CPU thread; the run time is recorded in the manifest and docs/DREAMBOOTH.md).

The weights ship inside the package (``data/tiny_trained/*.safetensors``, fp16, ~6 MB) with their
sha256 in ``data/tiny_trained/tiny_trained.json``. ``ensure_tiny_trained()`` checks the digests,
loads the tensors into the tiny modules (fp32) and writes a standard diffusers folder once::

    <cache_root>/models/tiny-trained-v<build>-<sha256 prefix>/

which is then loaded through the same ``from_pretrained`` path as real weights. Nothing is
downloaded. The model is still *uncalibrated*: a 32-px toy, its figures say whether a method learns,
not how well it would do on Stable Diffusion.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dreambench.atomic import atomic_directory
from dreambench.cache_root import cache_root
from dreambench.errors import BenchError
from dreambench.metrics.convert import write_clip_tokenizer
from dreambench.reference_impl.tiny_model import build_tiny_modules, save_tiny_folder

TINY_TRAINED_ID = "tiny-trained"
"""The base-model reference that selects this model (``base_model="tiny-trained"``)."""

WEIGHTS_DIR = Path(__file__).parent / "data" / "tiny_trained"
"""The shipped weights and their manifest (package data)."""

_MANIFEST = "tiny_trained.json"

# Bump when the way the folder is assembled changes; new weights change the digest in the name anyway.
_BUILD_VERSION = 1


def _manifest() -> dict:
    path = WEIGHTS_DIR / _MANIFEST
    if not path.is_file():
        raise BenchError(f"base model {TINY_TRAINED_ID!r}: {path} is missing; reinstall dreambench")
    return json.loads(path.read_text())


def weights_digest() -> str:
    """One sha256 over the shipped weight digests: the identity of the weights."""
    digests = _manifest()["sha256"]
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def tiny_trained_folder() -> Path:
    """Where ``ensure_tiny_trained()`` keeps its folder (it may not exist yet)."""
    return cache_root() / "models" / f"{TINY_TRAINED_ID}-v{_BUILD_VERSION}-{weights_digest()[:12]}"


def ensure_tiny_trained(seed: int = 0) -> Path:
    """Assemble the diffusers folder from the shipped weights unless it exists; return it.

    ``seed`` is accepted for the builders' common signature and must be 0: the weights are fixed.
    A shipped file whose sha256 differs from the manifest is refused before anything is written.
    """
    if seed != 0:
        raise BenchError(f"base model {TINY_TRAINED_ID!r} has fixed weights; seed must be 0, got {seed}")
    folder = tiny_trained_folder()
    if (folder / "model_index.json").is_file():
        return folder
    tensors = _verified_tensors()
    with atomic_directory(folder, replace=False) as tmp:
        _build(tmp, tensors)
    return folder


def _verified_tensors() -> dict[str, dict]:
    from safetensors.torch import load

    manifest = _manifest()
    tensors = {}
    for name, expected in manifest["sha256"].items():
        data = (WEIGHTS_DIR / name).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise BenchError(
                f"base model {TINY_TRAINED_ID!r}: {WEIGHTS_DIR / name} has sha256 {actual[:16]}..., "
                f"the manifest says {expected[:16]}...; reinstall dreambench"
            )
        tensors[name.removesuffix(".safetensors")] = load(data)
    return tensors


def _build(folder: Path, tensors: dict[str, dict]) -> None:
    import torch
    from transformers import CLIPTokenizer

    manifest = _manifest()
    write_clip_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    with torch.random.fork_rng(devices=[]):  # the init is overwritten; keep the caller's RNG intact
        torch.manual_seed(0)
        unet, vae, text_encoder = build_tiny_modules(tokenizer, float(manifest["vae_scaling_factor"]))
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        state = {k: v.float() for k, v in tensors[name].items()}
        module.load_state_dict(state, strict=True)
    provenance = {
        "model": manifest["model"],
        "build_version": _BUILD_VERSION,
        "weights_sha256": manifest["sha256"],
        "script": manifest["script"],
        "seed": manifest["seed"],
        "calibrated": False,
    }
    save_tiny_folder(folder, unet, vae, text_encoder, tokenizer, provenance)

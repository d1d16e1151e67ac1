"""Train the weights of the ``tiny-trained`` base model (reference_impl/tiny_trained.py), seeded.

    OMP_NUM_THREADS=1 python -m dreambench.reference_impl.train_tiny_base --out reference_impl/data/tiny_trained

The architecture is the embedded ``tiny`` model's (reference_impl/tiny_model.py: 32 px, 8x8x4
latents). Two phases, on procedurally generated data only (reference_impl/procedural_scenes.py; no
photograph, so the model has never seen a DreamBooth subject):

1. the VAE learns to reconstruct generated scenes and 1/f colour textures (MSE + a KL weight of
   1e-6, as Stable Diffusion's autoencoder); its ``scaling_factor`` is then set to 1 / the standard
   deviation of its latents over fresh scenes, as Stable Diffusion's 0.18215 was chosen;
2. the UNet learns the epsilon-prediction denoising objective on the SD v1 noise schedule over the
   latents of a pool of captioned scenes; 10% of captions are dropped to "" so classifier-free
   guidance has an unconditional branch.

The text encoder keeps ``tiny``'s seeded initialisation and stays frozen: a frozen random encoder
already maps different prompts to different conditioning, which the UNet learns to read; the
smoke DreamBooth presets do not train it either, and Textual Inversion optimises an input embedding
of a frozen encoder, as with Stable Diffusion. It ships with the weights all the same, so the model
does not depend on torch's initialisation staying the same across versions.

Weights are stored as fp16 safetensors (the model *is* the fp16 values: each phase trains against
the fp16-rounded weights of the previous one) and ``tiny_trained.json`` records their sha256, the
seed, the step counts and the wall time. Everything is seeded and runs on one CPU thread, so a
rerun on the same platform reproduces the files bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dreambench.reference_impl.procedural_scenes import scene, texture
from dreambench.reference_impl.tiny_model import SD_SCHEDULER_CONFIG, TINY_RESOLUTION, build_tiny_modules

if TYPE_CHECKING:
    import torch

WEIGHT_FILES = ("unet", "vae", "text_encoder")
"""One ``<name>.safetensors`` per module in the output folder."""


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous() * 2 - 1


def _round_fp16(module: torch.nn.Module) -> None:
    import torch

    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


def _train_vae(vae: torch.nn.Module, rng: np.random.Generator, steps: int, batch: int, log: bool) -> None:
    import torch

    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    vae.train()
    for step in range(steps):
        images = [
            texture(rng, TINY_RESOLUTION) if rng.uniform() < 0.3 else scene(rng, TINY_RESOLUTION)[0]
            for _ in range(batch)
        ]
        x = _to_tensor(images)
        posterior = vae.encode(x).latent_dist
        rec = vae.decode(posterior.sample()).sample
        loss = torch.nn.functional.mse_loss(rec, x) + 1e-6 * posterior.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and step % 100 == 0:
            print(f"vae step {step} loss {loss.item():.5f}", flush=True)
    vae.eval()


def _encode_pool(
    vae: torch.nn.Module, rng: np.random.Generator, count: int
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import torch

    means, stds, captions = [], [], []
    with torch.no_grad():
        for start in range(0, count, 256):
            drawn = [scene(rng, TINY_RESOLUTION) for _ in range(min(256, count - start))]
            dist = vae.encode(_to_tensor([d[0] for d in drawn])).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
            captions += [d[1] for d in drawn]
    return torch.cat(means), torch.cat(stds), captions


def _train_unet(
    unet: torch.nn.Module,
    text_encoder: torch.nn.Module,
    tokenizer: object,
    pool: tuple[torch.Tensor, torch.Tensor, list[str]],
    scaling_factor: float,
    steps: int,
    batch: int,
    log: bool,
) -> None:
    import torch
    from diffusers import DDPMScheduler

    means, stds, captions = pool
    noise_scheduler = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    unet.train()
    for step in range(steps):
        idx = torch.randint(0, len(captions), (batch,))
        latents = (means[idx] + stds[idx] * torch.randn_like(means[idx])) * scaling_factor
        texts = [captions[i] if torch.rand(()) >= 0.1 else "" for i in idx.tolist()]
        ids = tokenizer(
            texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        ).input_ids
        with torch.no_grad():
            cond = text_encoder(ids)[0]
        noise = torch.randn_like(latents)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch,))
        noisy = noise_scheduler.add_noise(latents, noise, t)
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and step % 100 == 0:
            print(f"unet step {step} loss {loss.item():.5f}", flush=True)
    unet.eval()


def train(
    out: Path, seed: int, vae_steps: int, unet_steps: int, batch: int, pool_size: int, log: bool = True
) -> dict:
    """Train and write the weights and ``tiny_trained.json`` into ``out``; return the manifest."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTokenizer

    from dreambench.metrics.convert import write_clip_tokenizer

    started = time.perf_counter()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    torch.manual_seed(seed)
    # Same construction as `tiny` with the same seed: the frozen text encoder is tiny's.
    unet, vae, text_encoder = build_tiny_modules(tokenizer)
    text_encoder.requires_grad_(False).eval()
    _round_fp16(text_encoder)
    rng = np.random.default_rng(seed)
    _train_vae(vae, rng, vae_steps, batch, log)
    _round_fp16(vae)
    vae.requires_grad_(False)
    pool = _encode_pool(vae, rng, pool_size)
    sample = pool[0] + pool[1] * torch.randn_like(pool[0])
    scaling_factor = float(f"{1.0 / sample.std().item():.5g}")
    _train_unet(unet, text_encoder, tokenizer, pool, scaling_factor, unet_steps, batch, log)
    _round_fp16(unet)
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, module in zip(WEIGHT_FILES, (unet, vae, text_encoder)):
        path = out / f"{name}.safetensors"
        save_file({k: v.detach().half().contiguous() for k, v in module.state_dict().items()}, str(path))
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = {
        "model": "dreambench tiny-trained Stable Diffusion (tiny architecture, pretrained on procedural scenes)",
        "script": "reference_impl/train_tiny_base.py",
        "seed": seed,
        "vae_steps": vae_steps,
        "unet_steps": unet_steps,
        "batch_size": batch,
        "pool_size": pool_size,
        "vae_scaling_factor": scaling_factor,
        "torch": torch.__version__,
        "train_seconds_one_thread": round(time.perf_counter() - started),
        "sha256": digests,
    }
    (out / "tiny_trained.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=500)
    parser.add_argument("--unet-steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--pool", type=int, default=8192)
    args = parser.parse_args(argv)
    manifest = train(args.out, args.seed, args.vae_steps, args.unet_steps, args.batch, args.pool)
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()

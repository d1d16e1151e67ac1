"""Train the smoke embedders' deltas (metrics/smoke_delta.py) on generated scenes; seeded, CPU.

    OMP_NUM_THREADS=1 python -m dreambench.metrics.train_smoke_embedders --out metrics/data/smoke_delta

Self-supervised, SimCLR-style: two augmented views (random resized crop, flip, mild brightness / contrast /
saturation jitter that keeps hue, blur) of each procedurally generated scene (metrics/procedural_scenes.py; never the benchmark's
photos) are pulled together and pushed away from every other image of the batch (NT-Xent on the very
embedding the metric scores: DINO's CLS token, CLIP's projected image embedding). Only the delta is
trained, on top of the seeded random init the smoke weights start from: low-rank factors for the
large matrices, additive changes for LayerNorms, biases, class token and position embedding. The
CLIP text tower is not trained (CLIP-T stays uncalibrated).

Training runs at a lower resolution than scoring (DINO 96 px, CLIP 128 px) with the position
embedding interpolated from the 224 px grid it is stored at; the shipped weights are used at 224 px.
The run's settings, losses and wall time go to `<out>/training.json`; the printed sha256 of each delta
file is what SMOKE_DELTAS records. Run time on one core: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from dreambench.metrics.procedural_scenes import scene
from dreambench.metrics.smoke_delta import DELTA_DTYPE, SMOKE_DELTAS, delta_plan
from dreambench.metrics.smoke_weights import TIMM_MODELS, random_init

MEANS = {"dino": (0.485, 0.456, 0.406), "clip": (0.48145466, 0.4578275, 0.40821073)}
STDS = {"dino": (0.229, 0.224, 0.225), "clip": (0.26862954, 0.26130258, 0.27577711)}


class LowRank(torch.nn.Module):
    """W -> W + B @ A (W seen as (shape[0], -1)); B starts at zero, so training starts at the init."""

    def __init__(self, shape: torch.Size, rank: int) -> None:
        super().__init__()
        fan_in = math.prod(shape[1:])
        self.a = torch.nn.Parameter(torch.randn(rank, fan_in) / math.sqrt(fan_in))
        self.b = torch.nn.Parameter(torch.zeros(shape[0], rank))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.b @ self.a).reshape(weight.shape)


class Additive(torch.nn.Module):
    """W -> W + D."""

    def __init__(self, shape: torch.Size) -> None:
        super().__init__()
        self.d = torch.nn.Parameter(torch.zeros(shape))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.d


def _owner(model: torch.nn.Module, key: str) -> tuple[torch.nn.Module, str]:
    path, _, name = key.rpartition(".")
    return (model.get_submodule(path) if path else model), name


def attach_delta(model: torch.nn.Module, prefix: str, rank: int) -> dict[str, torch.nn.Module]:
    """Freeze `model` and parametrize every tensor of delta_plan with a trainable LowRank / Additive."""
    for p in model.parameters():
        p.requires_grad_(False)
    attached: dict[str, torch.nn.Module] = {}
    for key, how in list(delta_plan(model.state_dict(), prefix)):
        module, name = _owner(model, key)
        shape = getattr(module, name).shape
        change = LowRank(shape, rank) if how == "low-rank" else Additive(shape)
        parametrize.register_parametrization(module, name, change)
        attached[key] = change
    return attached


def delta_state(attached: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """The trained delta in the shipped format (fp16 factors / additions)."""
    out: dict[str, torch.Tensor] = {}
    for key, change in attached.items():
        if isinstance(change, LowRank):
            out[f"lora_a.{key}"] = change.a.detach().to(getattr(torch, DELTA_DTYPE)).contiguous()
            out[f"lora_b.{key}"] = change.b.detach().to(getattr(torch, DELTA_DTYPE)).contiguous()
        else:
            out[f"add.{key}"] = change.d.detach().to(getattr(torch, DELTA_DTYPE)).contiguous()
    return out


def _clip_image_forward(visual: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """open_clip's ViT image forward with the position embedding interpolated to the input's grid."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = visual.conv1(x)
        grid = x.shape[-1]
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        pos = visual.positional_embedding
        side = int(math.isqrt(pos.shape[0] - 1))
        if grid != side:
            patches = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
            pos = torch.cat([pos[:1], patches.permute(0, 2, 3, 1).reshape(grid * grid, -1)])
        x = visual.ln_pre(x + pos)
        x = visual.ln_post(visual.transformer(x))
        return x[:, 0] @ visual.proj

    return forward


def build(kind: str, seed: int) -> tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """The network at its seeded random init, and the forward that returns the scored embedding."""
    base = random_init(kind, seed)
    if kind == "clip":
        from dreambench.metrics.clip import build_open_clip_model

        model = build_open_clip_model()
        model.load_state_dict(base)
        forward = _clip_image_forward(model.visual)
        with torch.no_grad():  # the interpolating forward is open_clip's own at the stored grid
            probe = torch.randn(2, 3, 224, 224)
            torch.testing.assert_close(forward(probe), model.encode_image(probe), rtol=1e-4, atol=1e-5)
        return model, forward
    import timm

    model = timm.create_model(TIMM_MODELS[kind], pretrained=False, dynamic_img_size=True)
    model.load_state_dict(base)
    return model, lambda x: model.forward_features(x)[:, 0]


def _views(kind: str, res: int) -> Callable[[torch.Tensor], torch.Tensor]:
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomResizedCrop(res, scale=(0.3, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.2, 0.2, 0.1, 0.0)], p=0.5),
            v2.RandomApply([v2.GaussianBlur(5, (0.1, 1.5))], p=0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEANS[kind], STDS[kind]),
        ]
    )


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view's positive is the other view of its image, every other view a negative."""
    z = F.normalize(torch.cat([a, b]), dim=-1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    n = a.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, target)


def train(
    kind: str, steps: int, batch: int, res: int, lr: float, seed: int, log: Callable[[str], None]
) -> dict:
    spec = SMOKE_DELTAS[kind]
    torch.manual_seed(seed + 1)
    model, forward = build(kind, seed)
    attached = attach_delta(model, spec.prefix, spec.rank)
    params = [p for change in attached.values() for p in change.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / warmup
            if s < warmup
            else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
        ),
    )
    rng = np.random.default_rng(seed)
    views = _views(kind, res)
    model.train()
    losses: list[float] = []
    start = time.time()
    for step in range(steps):
        images = [torch.from_numpy(scene(rng, 160)).permute(2, 0, 1) for _ in range(batch)]
        a = torch.stack([views(im) for im in images])
        b = torch.stack([views(im) for im in images])
        loss = nt_xent(forward(a), forward(b), temperature=0.2)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step % 10 == 0 or step == steps - 1:
            log(f"{kind} step {step + 1}/{steps} loss {np.mean(losses[-10:]):.4f} {time.time() - start:.0f}s")
    return {
        "delta": delta_state(attached),
        "record": {
            "steps": steps,
            "batch": batch,
            "resolution": res,
            "lr": lr,
            "seconds": round(time.time() - start, 1),
            "loss_first10": round(float(np.mean(losses[:10])), 4),
            "loss_last10": round(float(np.mean(losses[-10:])), 4),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kinds", default="dino,clip")
    parser.add_argument(
        "--seed", type=int, default=0, help="the smoke init's seed (the delta is trained on it)"
    )
    parser.add_argument("--dino-steps", type=int, default=120)
    parser.add_argument("--clip-steps", type=int, default=90)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args(argv)
    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    record: dict = {"seed": args.seed, "torch_threads": torch.get_num_threads(), "runs": {}}
    for kind in args.kinds.split(","):
        steps, res = (args.dino_steps, 96) if kind == "dino" else (args.clip_steps, 128)
        done = train(kind, steps, args.batch, res, args.lr, args.seed, lambda m: print(m, flush=True))
        path = args.out / SMOKE_DELTAS[kind].file
        save_file(done["delta"], str(path))
        import hashlib

        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        record["runs"][kind] = {**done["record"], "file": path.name, "sha256": digest}
        print(f"{path}: sha256 {digest}", flush=True)
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

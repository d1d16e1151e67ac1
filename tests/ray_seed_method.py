"""Test-only code for tests/test_ray_gpus.py that Ray worker processes must import (the test puts
tests/ on PYTHONPATH before Ray starts): a method whose images follow their seeds alone, and a
probe that reports which GPU a task was given."""

from __future__ import annotations

import os
import time
from pathlib import Path

from PIL import Image

from dreambench.dataset.subject import Subject

PID_FILE = "pid.txt"


class SeededNoise:
    """Each image is noise drawn from a fresh CPU ``torch.Generator`` seeded with the image's seed
    (as ``render`` draws its initial latents); ``prepare`` records the process that ran the subject."""

    name = "ray-seeded-noise"

    def __init__(self, device: str = "cpu", seed: int = 0) -> None:
        self.device = device

    def prepare(self, subject: Subject, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / PID_FILE).write_text(f"{os.getpid()}\n")

    def identifier(self, subject: Subject) -> str:
        return "sks"

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        import torch

        images = []
        for seed in seeds:
            generator = torch.Generator().manual_seed(seed)
            pixels = torch.randint(0, 256, (24, 24, 3), generator=generator, dtype=torch.uint8)
            images.append(Image.fromarray(pixels.numpy()))
        return images

    def release(self) -> None:
        pass


def gpu_probe(rendezvous: str, expected: int) -> tuple[list[str], str, int]:
    """Body of a GPU task: (Ray's GPU ids for it, its CUDA_VISIBLE_DEVICES, its pid).

    Waits until ``expected`` probes have checked in under ``rendezvous`` (at most a minute), so the
    probes hold their GPUs at the same time and Ray must give each a different one.
    """
    import ray

    folder = Path(rendezvous)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    ids = [str(i) for i in ray.get_gpu_ids()]
    return ids, os.environ.get("CUDA_VISIBLE_DEVICES", ""), os.getpid()

"""Test-only methods for tests/test_ray_executor.py, loaded as ``--method ray_kill_method:<Class>``.

They must be importable by Ray worker processes, so they live in a module of their own (the test
puts tests/ on PYTHONPATH before Ray starts) and import nothing heavy.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from PIL import Image

from dreambench.dataset.subject import Subject

KILL_MARKER = "killed.pid"
ATTEMPTS_FILE = "attempts.txt"


def _solid_images(seeds: list[int]) -> list[Image.Image]:
    """Tiny solid images whose colour follows the seed, so the run's figures are deterministic."""
    return [Image.new("RGB", (32, 32), (s % 251, (s // 251) % 241, (s // 60491) % 239)) for s in seeds]


class KillOnce:
    """``prepare`` SIGKILLs its own worker process the first time it sees a subject (a marker in the
    subject's prepare folder, which is on the shared run directory, tells the retry apart)."""

    name = "ray-kill-once"

    def __init__(self, device: str = "cpu", seed: int = 0) -> None:
        self.device = device

    def prepare(self, subject: Subject, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        marker = workdir / KILL_MARKER
        if not marker.exists():
            marker.write_text(f"{os.getpid()}\n")
            os.kill(os.getpid(), signal.SIGKILL)

    def identifier(self, subject: Subject) -> str:
        return "sks"

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        return _solid_images(seeds)

    def release(self) -> None:
        pass


class NanLoss:
    """``prepare`` raises for ``fail_subject`` (like a training loss that went NaN) and records each
    attempt in the subject's prepare folder; the other subjects render solid images."""

    name = "ray-nan-loss"

    def __init__(self, fail_subject: str = "cat", device: str = "cpu", seed: int = 0) -> None:
        self.fail_subject = fail_subject

    def prepare(self, subject: Subject, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        with (workdir / ATTEMPTS_FILE).open("a") as f:
            f.write(f"{os.getpid()}\n")
        if subject.name == self.fail_subject:
            raise FloatingPointError(f"loss is NaN at step 3 for subject {subject.name!r}")

    def identifier(self, subject: Subject) -> str:
        return "sks"

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        return _solid_images(seeds)

    def release(self) -> None:
        pass

"""Test-only methods for the Method-contract tests (importable as `contract_methods:<Class>` with
tests/ on the path). Each records its calls in a class-level log so the tests can see what the
harness called, in which order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dreambench.dataset.subject import Subject
from dreambench.method import RunContext

CALLS: list[str] = []


class Recording:
    """Seeded noise images; logs setup/prepare/generate/release/teardown; ``fail_generate`` makes
    generate raise for that subject."""

    name = "recording"
    kind = "finetune"

    @dataclass(frozen=True)
    class Config:
        fail_generate: str = ""
        size: int = 16
        rate: float = 0.5
        layers: tuple[int, ...] = (1, 2)
        out: Path | None = None
        flag: bool = False

    PRESETS = {"default": Config()}

    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self, context: RunContext) -> None:
        CALLS.append(f"setup:{context.device}")

    def teardown(self) -> None:
        CALLS.append("teardown")

    def prepare(self, subject: Subject, workdir: Path) -> None:
        CALLS.append(f"prepare:{subject.name}")

    def identifier(self, subject: Subject) -> str:
        return "sks"

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        CALLS.append(f"generate:{subject.name}")
        if subject.name == self.config.fail_generate:
            raise RuntimeError(f"generation failed for {subject.name}")
        size = self.config.size
        return [
            Image.fromarray(np.random.default_rng(s).integers(0, 256, (size, size, 3), dtype=np.uint8))
            for s in seeds
        ]

    def release(self) -> None:
        CALLS.append("release")


class NoGenerate:
    """Misses a required member: refused when loaded."""

    name = "no-generate"

    def prepare(self, subject: Subject, workdir: Path) -> None: ...

    def identifier(self, subject: Subject) -> str:
        return ""

    def release(self) -> None: ...

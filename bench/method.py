"""The Method contract every personalization method implements.

A method is constructed with its own hyperparameters as explicit typed keyword arguments
(unknown keys are an error listing the valid ones), then for each subject:

1. ``prepare(subject, workdir)`` trains or encodes. Idempotent: if its outputs already exist in
   ``workdir`` it returns at once. Zero-shot methods make it cheap.
2. ``identifier(subject)`` gives the token string that stands for the subject in prompts
   ("sks", a rare token, or "" for methods that prompt with the class noun only). The harness
   formats each prompt template with it: ``template.format(identifier, class_noun)``.
3. ``generate(prompts, seeds)`` returns one RGB image per (prompt, seed). Randomness comes only
   from ``seed``: each image's noise is drawn from a fresh CPU ``torch.Generator`` seeded with it,
   so an image does not depend on batch composition or run order.

Optional: ``check_ready()`` raises a one-line BenchError when the method cannot run at all (e.g.
its base model is not downloaded); the harness calls it before writing anything.
``estimated_disk_bytes(subject, n_images)`` feeds the disk-space check (bench/disk_space.py).

``release()`` frees device memory and deletes large per-subject artefacts that are not needed any
more (e.g. fine-tuned weights unless the user asked to keep them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL import Image

    from dreambench.dataset.subject import Subject


@runtime_checkable
class Method(Protocol):
    name: str

    def prepare(self, subject: Subject, workdir: Path) -> None: ...

    def identifier(self, subject: Subject) -> str: ...

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]: ...

    def release(self) -> None: ...

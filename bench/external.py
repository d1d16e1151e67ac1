"""Scoring images made elsewhere: import a folder laid out as the run directory's images.

Layout of IMAGES_DIR (documented in the README)::

    IMAGES_DIR/<subject>/<prompt_idx>-<sample_idx>.png     (also .jpg/.jpeg/.webp)

prompt_idx indexes the subject's prompt list (live or object) of the prompt set, 0-based;
sample_idx runs from 0 to images-per-prompt - 1. Every expected file must be present and decode
(all are checked before anything is copied into the run directory); files that do not fit the
layout are listed and ignored.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.atomic import temp_name
from dreambench.errors import BenchError

if TYPE_CHECKING:
    from PIL import Image

    from dreambench.dataset.prompts import PromptSet
    from dreambench.dataset.subject import Subject
    from dreambench.store import RunDir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_NAME = re.compile(r"^(\d+)-(\d+)$")


@dataclass(frozen=True)
class ExternalLayout:
    """What was found in IMAGES_DIR for the selected subjects."""

    files: dict[tuple[str, int, int], Path]
    unexpected: list[Path]


def scan_external(
    images_dir: Path, subjects: list[Subject], prompt_set: PromptSet, images_per_prompt: int
) -> ExternalLayout:
    """Map every expected (subject, prompt_idx, sample_idx) to its file; error if any is missing."""
    files: dict[tuple[str, int, int], Path] = {}
    unexpected: list[Path] = []
    missing: list[str] = []
    for subject in subjects:
        folder = images_dir / subject.name
        n_prompts = len(prompt_set.templates(subject.kind, subject.name))
        found: dict[tuple[int, int], Path] = {}
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = _NAME.match(path.stem)
            if not (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and match):
                unexpected.append(path)
                continue
            key = (int(match[1]), int(match[2]))
            if key[0] >= n_prompts or key[1] >= images_per_prompt or key in found:
                unexpected.append(path)
                continue
            found[key] = path
        for p in range(n_prompts):
            for s in range(images_per_prompt):
                if (p, s) in found:
                    files[(subject.name, p, s)] = found[(p, s)]
                else:
                    missing.append(f"{subject.name}/{p}-{s}.png")
    if missing:
        raise BenchError(
            f"{images_dir}: {len(missing)} expected image(s) missing: {_shown(missing)} "
            f"(layout: <subject>/<prompt_idx>-<sample_idx>.png, {images_per_prompt} samples per prompt)"
        )
    _check_decodable(images_dir, list(files.values()))
    return ExternalLayout(files=files, unexpected=unexpected)


def _shown(items: list[str]) -> str:
    return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def _check_decodable(images_dir: Path, paths: list[Path]) -> None:
    """Decode every input before anything is copied: a damaged file is named by the user's path,
    and a bad folder leaves no half-imported run directory behind."""
    from dreambench.dataset.images import MIN_SIDE, load_image

    damaged: list[str] = []
    first_reason = ""
    for path in paths:
        try:
            load_image(path)
        except BenchError as exc:
            damaged.append(str(path))
            first_reason = first_reason or str(exc)
    if damaged:
        raise BenchError(
            f"{images_dir}: {len(damaged)} image(s) refused: {_shown(damaged)} (first: {first_reason}); "
            f"replace them with readable PNG/JPEG/WebP files of at least {MIN_SIDE}x{MIN_SIDE} pixels"
        )


def import_external(
    layout: ExternalLayout,
    rd: RunDir,
    subject: Subject,
    prompt_set: PromptSet,
    identifier: str,
    images_per_prompt: int,
) -> None:
    """Link (or copy) one subject's images into the run directory and write its images.jsonl.

    Images are decoded-and-re-encoded only when they are not PNG, so that the run directory
    always holds `<p>-<s>.png`; PNGs are hard-linked where possible.
    """
    from dreambench.dataset.images import load_image

    prompts = prompt_set.render(subject.kind, identifier, subject.class_noun, subject.name)
    rows = []
    for p in range(len(prompts)):
        for s in range(images_per_prompt):
            source = layout.files[(subject.name, p, s)]
            target = rd.image_path(subject.name, p, s)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(temp_name(target.name))  # recognised and swept after a kill
            if source.suffix.lower() == ".png":
                try:
                    os.link(source, tmp)
                except OSError:
                    shutil.copyfile(source, tmp)
            else:
                image: Image.Image = load_image(source)
                image.save(tmp, format="PNG")
            os.replace(tmp, target)
            sha = hashlib.sha256(target.read_bytes()).hexdigest()
            rows.append(
                {
                    "file": target.name,
                    "prompt_idx": p,
                    "sample_idx": s,
                    "prompt": prompts[p],
                    "identifier": identifier,
                    "seed": None,
                    "sha256": sha,
                    "source": str(source),
                }
            )
    rd.write_images_index(subject.name, rows)


class ExternalImages:
    """The "method" of an eval run: its images already exist, so it is never asked to make any."""

    name = "external"  # each eval run names its own: "external:<folder or --name>"
    kind = "external"
    calibrated = True
    # The images were rendered elsewhere: the preset's protocol is recorded, flagged as not followed.
    render_deviation = {"reason": "images made outside dreambench: how they were rendered is not known"}
    # Outside images of a pair dataset (e.g. a multi-subject method's own outputs) are scored per pair.
    subject_groups = True

    def __init__(self, name: str = "external", identifier: str = "") -> None:
        self.name = name
        self._identifier = identifier

    def consumed_images(self, subject: Subject) -> None:
        return None  # made elsewhere: which real images the outside method saw is not known

    def prepare(self, subject: Subject, workdir: Path) -> None:
        raise BenchError(
            f"external images of {subject.name!r} are incomplete; rerun `bench eval` on the full folder"
        )

    def identifier(self, subject: Subject) -> str:
        return self._identifier

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        raise BenchError("external images cannot be generated")

    def release(self) -> None:
        pass

"""A fine-tuned model saved as a complete diffusers pipeline folder that stock diffusers loads.

``save_pipeline_folder`` writes, atomically (``atomic_directory``)::

    weights/model_index.json        the base model's, without safety checker / feature extractor
    weights/unet/                   the fine-tuned UNet (config.json + safetensors)
    weights/text_encoder/           the fine-tuned text encoder, or the base model's (linked)
    weights/vae/ tokenizer/ scheduler/   the base model's files, linked, never copied

so ``StableDiffusionPipeline.from_pretrained(weights)`` loads it as diffusers' own
``train_dreambooth.py`` output loads. Unchanged components cost no disk: each file is a hard link
to the base model's file where the file system allows one (it survives a later clean of the
Hugging Face cache), else an absolute symbolic link to it.

The safety checker and feature extractor are left out (``null`` in model_index.json): dreambench
renders raw samples, and the base model's download holds neither. The scheduler is the base
model's; dreambench renders with the run's render protocol sampler, which the loading snippets in
docs/DREAMBOOTH.md set explicitly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.atomic import atomic_directory
from dreambench.errors import BenchError

if TYPE_CHECKING:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

MODEL_INDEX = "model_index.json"
# Components dreambench never renders with: dropped from the saved model_index.json.
_DROPPED = ("safety_checker", "feature_extractor", "image_encoder")
# Components taken unchanged from the base model (text_encoder only when it was not trained).
_LINKED = ("vae", "tokenizer", "scheduler", "text_encoder")


def save_pipeline_folder(
    weights_dir: Path,
    base_folder: Path,
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel | None = None,
) -> None:
    """Save ``unet`` (and ``text_encoder``, if trained) as a full pipeline over ``base_folder``.

    ``base_folder`` is the base model's diffusers folder (``Components.folder``). An existing
    ``weights_dir`` is replaced whole; a kill mid-save leaves a temp folder the subject's sweep removes.
    """
    base_folder = Path(base_folder)
    index_path = base_folder / MODEL_INDEX
    if not index_path.is_file():
        raise BenchError(f"base model folder {base_folder} has no {MODEL_INDEX}; it is not a diffusers pipeline")
    index = json.loads(index_path.read_text())
    for name in _DROPPED:
        if name in index:
            index[name] = [None, None]
    index["requires_safety_checker"] = False
    with atomic_directory(Path(weights_dir)) as tmp:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        if text_encoder is not None:
            text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
        for name in _LINKED:
            if not (tmp / name).exists() and (base_folder / name).is_dir():
                link_tree(base_folder / name, tmp / name)
        (tmp / MODEL_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def link_tree(src: Path, dst: Path) -> None:
    """Recreate folder ``src`` at ``dst`` with every file linked: hard link, else absolute symlink.

    Links point at the resolved file (a Hugging Face snapshot's files are themselves symlinks into
    its blob store), so they stay valid wherever ``dst`` is moved.
    """
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        real = path.resolve()
        try:
            os.link(real, target)
        except OSError:
            # Another file system, or one without hard links: link by path instead.
            os.symlink(real, target)

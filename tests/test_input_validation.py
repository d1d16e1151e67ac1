"""Inputs checked before any work: every hyperparameter's type and range when the method's config
is built, every custom subject's images (decodable, at least two), and a training loss that rises
far above its start reported as divergence, like NaN."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from dreambench.dataset.custom import custom_subject
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError
from dreambench.hyperparams import parse_method_args, resolve_config
from dreambench.reference_impl.base_method import BaseModel
from dreambench.reference_impl.base_model import load_base_model
from dreambench.reference_impl.dreambooth import DreamBooth, build_training_data
from dreambench.reference_impl.dreambooth_trainer import (
    DIVERGENCE_FACTOR,
    DIVERGENCE_WINDOW,
    TrainingDiverged,
    TrainSettings,
    loss_diverged,
    train_dreambooth,
)
from dreambench.reference_impl.lora import DreamBoothLoRA
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.textual_inversion import TextualInversion
from dreambench.reference_impl.tiny_model import TINY_RESOLUTION

BAD_VALUES: list[tuple[type, str, Any, str]] = [
    (DreamBooth, "learning_rate", math.nan, "a finite number > 0"),
    (DreamBooth, "learning_rate", math.inf, "a finite number > 0"),
    (DreamBooth, "learning_rate", 0.0, "a finite number > 0"),
    (DreamBooth, "learning_rate", -1e-5, "a finite number > 0"),
    (DreamBooth, "train_batch_size", 0, "an integer >= 1"),
    (DreamBooth, "train_steps", 2.5, "an integer"),
    (DreamBooth, "train_steps", 0, "an integer >= 1"),
    (DreamBooth, "train_steps", True, "an integer"),
    (DreamBooth, "max_grad_norm", -1.0, r"a number > 0 \(inf: no clipping\)"),
    (DreamBooth, "max_grad_norm", math.nan, r"a number > 0"),
    (DreamBooth, "prior_loss_weight", -1.0, "a finite number > 0"),
    (DreamBooth, "num_class_images", 0, "an integer >= 1"),
    (DreamBooth, "adam_beta1", 1.0, r"a number in \[0, 1\)"),
    (DreamBooth, "adam_epsilon", 0.0, "a finite number > 0"),
    (DreamBooth, "adam_weight_decay", -0.1, "a finite number >= 0"),
    (DreamBooth, "mixed_precision", "fp8", "one of no, fp16, bf16"),
    (DreamBooth, "prior_preservation", "yes", "true or false"),
    (DreamBooth, "instance_prompt", "a {V} {class_noun}", "may only use"),
    (DreamBooth, "identifier", " ", "a non-empty string"),
    (DreamBooth, "render_batch_size", 0, "an integer >= 1"),
    (DreamBoothLoRA, "lora_rank", 0, "an integer >= 1"),
    (DreamBoothLoRA, "train_text_encoder", True, "adapters go on the UNet only"),
    (TextualInversion, "learning_rate", -1.0, "a finite number > 0"),
    (TextualInversion, "train_batch_size", 0, "an integer >= 1"),
    (TextualInversion, "placeholder_token", "<{name}>", "may only use {subject}"),
    (BaseModel, "render_batch_size", 0, "an integer >= 1"),
    (BaseModel, "base_model", "", "a non-empty string"),
]


@pytest.mark.parametrize(("cls", "field", "value", "expected"), BAD_VALUES)
def test_a_bad_hyperparameter_is_one_line_naming_field_and_range(
    cls: type, field: str, value: Any, expected: str
) -> None:
    with pytest.raises(BenchError, match=expected) as info:
        dataclasses.replace(cls.PRESETS["smoke"], **{field: value})
    message = str(info.value)
    assert "\n" not in message and (field in message or "template" in message or "placeholder" in message)


def test_good_edge_values_are_accepted() -> None:
    config = dataclasses.replace(DreamBooth.PRESETS["smoke"], max_grad_norm=math.inf, adam_beta1=0.0, train_steps=1)
    assert config.max_grad_norm == math.inf
    assert dataclasses.replace(DreamBooth.PRESETS["smoke"], learning_rate=1).learning_rate == 1
    assert TextualInversion.PRESETS["paper"].max_grad_norm == math.inf  # no clipping, as TI's authors


def test_a_float_step_count_from_a_json_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"train_steps": 2.5}))
    with pytest.raises(BenchError, match=r"train_steps=2\.5 is not valid"):
        resolve_config(DreamBooth.Config, DreamBooth.PRESETS, "smoke", parse_method_args(f"@{path}"), "dreambooth")


def test_bad_method_args_fail_before_the_run_directory_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture, dreambench_data: Path
) -> None:
    """The subjects resolve first (from DREAMBENCH_DATA, as a user's `bench run` without --data
    finds them), then the bad value is refused before anything is written."""
    from dreambench.cli import main

    out = tmp_path / "runs"
    code = main([
        "run", "--method", "dreambooth", "--preset", "smoke", "--subjects", "dog", "--out", str(out),
        "--method-args", "max_grad_norm=-1", "--quiet",
    ])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "max_grad_norm=-1" in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


# -- custom subjects --------------------------------------------------------------------------


def _photos(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / f"{i}.png")
    return folder


def test_a_custom_subject_with_a_non_image_jpg_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = _photos(tmp_path / "mug", 3)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(BenchError, match="broken.jpg"):
        custom_subject(folder, "mug")


def test_a_one_image_custom_subject_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"has 1 image\(s\); a subject needs at least 2"):
        custom_subject(_photos(tmp_path / "mug", 1), "mug")
    assert len(custom_subject(_photos(tmp_path / "cup", 2), "cup").image_paths) == 2


# -- divergence -------------------------------------------------------------------------------


def test_divergence_rule() -> None:
    k = DIVERGENCE_WINDOW
    level = [1.0] * (2 * k)
    assert not loss_diverged(level) and not loss_diverged([1.0] * k + [50.0] * (k - 1))  # too few steps
    assert not loss_diverged([1.0] * k + [DIVERGENCE_FACTOR] * k)  # exactly 10x is not above it
    assert loss_diverged([1.0] * k + [DIVERGENCE_FACTOR * 1.01] * k)
    assert not loss_diverged([1.0] * k + [0.01] * k)  # falling is healthy


def test_a_loss_that_rises_far_above_its_start_raises_training_diverged(
    dreambench_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dreambench.reference_impl.dreambooth_trainer as trainer

    # The rule's window shrunk to 3 steps so the test trains 6 steps instead of 20 (same code path).
    monkeypatch.setattr(trainer, "DIVERGENCE_WINDOW", 3)
    folder = dreambench_data / "dataset" if (dreambench_data / "dataset").is_dir() else dreambench_data
    paths = tuple(sorted((folder / "dog").glob("*.jpg")))[:2]
    dog = Subject("dog", "dog", "live", paths, tuple(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths))
    base = load_base_model("tiny", device="cpu")
    config = dataclasses.replace(DreamBooth.PRESETS["smoke"], prior_preservation=False)
    data = build_training_data(base, dog, "sks", config, SamplerSettings(steps=2, resolution=TINY_RESOLUTION), "cpu", 0)
    out = base.unet.conv_out

    def blow_up(step: int) -> None:
        # The prediction's scale grows every step: the loss rises, finite, as with a flipped clip.
        with torch.no_grad():
            out.weight.mul_(2.0)
            out.bias.add_(0.5)

    settings = TrainSettings(train_steps=12, learning_rate=1e-8, mixed_precision="no")
    with pytest.raises(TrainingDiverged, match=r"diverged at step 6/12: mean loss of the last 3 steps .* > 10x"):
        train_dreambooth(base, data, settings, "cpu", 0, subject_name="dog", after_step=blow_up)

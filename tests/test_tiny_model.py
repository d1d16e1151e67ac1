"""The embedded tiny model and base-model loading: layout, stock-diffusers loading, real tokenizer, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import SD15_REPO, SD15_REVISION, load_base_model, locate_base_model
from dreambench.reference_impl.tiny_model import CLIP_VOCAB_SIZE, TINY_RESOLUTION, ensure_tiny_model


@pytest.fixture(scope="module")
def tiny_folder() -> Path:
    return ensure_tiny_model(seed=0)


def test_tiny_model_is_a_standard_diffusers_folder(tiny_folder: Path) -> None:
    for rel in (
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
    ):
        assert (tiny_folder / rel).is_file(), rel
    index = json.loads((tiny_folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert json.loads((tiny_folder / "dreambench_tiny.json").read_text())["calibrated"] is False


def test_ensure_tiny_model_is_built_once(tiny_folder: Path) -> None:
    marker = tiny_folder / "model_index.json"
    before = marker.stat().st_mtime_ns
    assert ensure_tiny_model(seed=0) == tiny_folder
    assert marker.stat().st_mtime_ns == before


def test_stock_stable_diffusion_pipeline_loads_and_samples(tiny_folder: Path) -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a photo of sks dog",
        num_inference_steps=2,
        height=TINY_RESOLUTION,
        width=TINY_RESOLUTION,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.images[0].size == (TINY_RESOLUTION, TINY_RESOLUTION)


def test_tokenizer_is_the_real_clip_bpe(tiny_folder: Path) -> None:
    """Same ids as OpenAI CLIP's tokenizer (open_clip's reference implementation) on benchmark-like prompts."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    ours = CLIPTokenizer.from_pretrained(tiny_folder, subfolder="tokenizer")
    reference = SimpleTokenizer()
    assert len(ours) == CLIP_VOCAB_SIZE
    for text in (
        "a sks dog in the jungle",
        "a photo of a red backpack on top of a purple rug in a forest",
        "a cube shaped teapot",
        "a dog wearing a Santa hat",
    ):
        assert ours(text, add_special_tokens=False).input_ids == reference.encode(text), text
    assert ours("sks", add_special_tokens=False).input_ids == [48136]


def test_tiny_base_model_description_is_uncalibrated() -> None:
    base = load_base_model("tiny", device="cpu")
    assert base.description["source"] == "tiny"
    assert base.description["calibrated"] is False
    assert base.unet.dtype == torch.float32
    assert not any(p.requires_grad for p in base.unet.parameters())
    assert base.pipeline().vae_scale_factor * base.unet.config.sample_size == TINY_RESOLUTION


def test_local_folder_is_loaded_and_keyed_by_content(tiny_folder: Path) -> None:
    folder, description = locate_base_model(str(tiny_folder))
    assert folder == tiny_folder.resolve()
    assert description["source"] == "local"
    assert description["key"].startswith("local-")
    assert locate_base_model(str(tiny_folder))[1]["key"] == description["key"]


def test_missing_hub_model_offline_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError, match="--preset smoke") as info:
        locate_base_model(SD15_REPO, None)
    message = str(info.value)
    assert "\n" not in message
    assert SD15_REVISION in message  # the default revision is the pinned one


@pytest.mark.parametrize("ref", ["no/such/thing", "not a model"])
def test_unknown_reference_is_rejected(ref: str) -> None:
    with pytest.raises(BenchError, match="tiny"):
        locate_base_model(ref)


def test_folder_without_diffusers_layout_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="model_index.json"):
        locate_base_model(str(tmp_path))

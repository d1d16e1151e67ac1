"""DreamBooth-LoRA on SDXL (reference_impl/tiny_sdxl.py, sdxl.py, lora.py): the tiny SDXL loads
through stock diffusers and the project's loader (also from an offline Hugging Face cache under
SDXL base 1.0's pinned revision); the trainer conditions on both text encoders, the pooled
embedding and the time ids; the saved LoRA file loads with stock
``StableDiffusionXLPipeline.load_lora_weights`` and renders the same bytes as the method; the
``sdxl`` preset follows its sources; ``bench run`` works end to end with ``base_model=tiny-sdxl``
and records SDXL's native resolution as the method's render deviation."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from test_dreambooth import make_subject, png_sha

import dreambench.reference_impl.class_priors as class_priors
from dreambench.cli import main
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError
from dreambench.method import MethodHandle, RunContext
from dreambench.reference_impl.base_model import (
    SDXL_REPO,
    SDXL_REVISION,
    is_calibrated,
    load_base_model,
)
from dreambench.reference_impl.dreambooth import WEIGHTS_DIR, DreamBooth, build_training_data, read_done
from dreambench.reference_impl.dreambooth_trainer import train_dreambooth
from dreambench.reference_impl.lora import LORA_WEIGHTS_FILE, DreamBoothLoRA, add_lora
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.sdxl import center_crop_top_left, encode_prompts, micro_conditioning
from dreambench.reference_impl.tiny_model import ensure_tiny_model
from dreambench.reference_impl.tiny_sdxl import TINY_SDXL_ID, TINY_SDXL_RESOLUTION, ensure_tiny_sdxl

# The smoke preset on the tiny SDXL, cut down: 2 steps, 1 class image, one image per pipeline call.
FAST = dataclasses.replace(
    DreamBoothLoRA.PRESETS["smoke"], base_model=TINY_SDXL_ID, train_steps=2, num_class_images=1, render_batch_size=1
)
# What setup() hands the method under the smoke preset (its deviation applied), with 2 steps.
FAST_SAMPLER = SamplerSettings(steps=2, resolution=TINY_SDXL_RESOLUTION)
ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}


@pytest.fixture(scope="module")
def dog(dreambench_data: Path) -> Subject:
    return make_subject(dreambench_data, "dog", "dog", ["00.jpg", "01.jpg"])


@pytest.fixture(scope="module", autouse=True)
def module_priors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("sdxl-priors")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(class_priors, "cache_root", lambda: root)
        yield root


@pytest.fixture(scope="module")
def prepared(dog: Subject, tmp_path_factory: pytest.TempPathFactory) -> tuple[DreamBoothLoRA, Path]:
    """One subject trained on the tiny SDXL with prior preservation, weights kept; read-only."""
    workdir = tmp_path_factory.mktemp("lora-sdxl") / "dog"
    method = DreamBoothLoRA(FAST, device="cpu", sampler=FAST_SAMPLER, seed=3, keep_weights=True)
    method.prepare(dog, workdir)
    return method, workdir


def test_tiny_sdxl_is_an_sdxl_folder_loaded_by_stock_diffusers_and_the_loader() -> None:
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    folder = ensure_tiny_sdxl()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    stock = StableDiffusionXLPipeline.from_pretrained(folder)
    assert stock.unet.config.addition_embed_type == "text_time"
    assert stock.vae_scale_factor * stock.unet.config.sample_size == TINY_SDXL_RESOLUTION

    base = load_base_model(TINY_SDXL_ID, device="cpu")
    assert base.is_sdxl and isinstance(base.text_encoder_2, CLIPTextModelWithProjection)
    assert type(base.pipeline()).__name__ == "StableDiffusionXLPipeline"
    assert base.description["source"] == "tiny" and base.description["calibrated"] is False
    assert not is_calibrated(TINY_SDXL_ID) and is_calibrated(SDXL_REPO)
    # Both tokenizers are the real CLIP BPE (the tiny SD's), the second padding with "!" as SDXL's.
    sd_tokenizer = CLIPTokenizer.from_pretrained(ensure_tiny_model(), subfolder="tokenizer")
    text = "a photo of sks dog"
    assert base.tokenizer(text).input_ids == base.tokenizer_2(text).input_ids == sd_tokenizer(text).input_ids
    assert base.tokenizer_2.pad_token == "!" and base.tokenizer.pad_token == "<|endoftext|>"


def test_conditioning_equals_the_stock_pipeline_and_the_scripts_time_ids() -> None:
    base = load_base_model(TINY_SDXL_ID, device="cpu")
    prompts = ["a photo of sks dog", "a photo of dog"]
    embeds, pooled = encode_prompts(base, prompts, "cpu")
    stock_embeds, _, stock_pooled, _ = base.pipeline().encode_prompt(
        prompts, device="cpu", do_classifier_free_guidance=False
    )
    assert embeds.shape == (2, 77, 64) and pooled.shape == (2, 32)
    assert torch.equal(embeds, stock_embeds) and torch.equal(pooled, stock_pooled)
    # A 300x200 (h x w) image at 64 px: resized to 96x64, center crop from row 16 (the script's y1).
    assert center_crop_top_left(300, 200, 64) == (16, 0)
    assert center_crop_top_left(200, 301, 64) == (0, 16)  # 64 x int(96.32) = 64x96: round(16.0)
    assert micro_conditioning([(300, 200), (64, 64)], 64).tolist() == [
        [300, 200, 16, 0, 64, 64],
        [64, 64, 0, 0, 64, 64],
    ]


def test_training_feeds_the_unet_sdxl_conditioning(dog: Subject) -> None:
    from dreambench.dataset.images import load_image

    base = load_base_model(TINY_SDXL_ID, device="cpu")
    data = build_training_data(base, dog, "sks", FAST, FAST_SAMPLER, "cpu", seed=0)
    sizes = [(load_image(p).height, load_image(p).width) for p in dog.image_paths]
    assert list(data.instance_sizes) == sizes and data.classes is not None
    seen: list[dict] = []

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append({k: v.detach().clone() for k, v in kwargs["added_cond_kwargs"].items()})

    handle = base.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        result = train_dreambooth(base, data, FAST, "cpu", 0, "dog", trainable=add_lora(base.unet, 4, 0))
    finally:
        handle.remove()
    assert len(result.losses) == 2 and len(seen) == 2
    expected = micro_conditioning(sizes, TINY_SDXL_RESOLUTION)
    _, pooled = encode_prompts(base, [data.instance_prompt, data.class_prompt], "cpu")
    bsz = FAST.train_batch_size
    for added in seen:
        # Rows 0..bsz-1: instance images; row bsz+i: instance row i's paired class image, with the
        # same time ids (collate_fn).
        time_ids = added["time_ids"]
        assert time_ids.shape == (2 * bsz, 6) and torch.equal(time_ids[:bsz], time_ids[bsz:])
        assert all(any(torch.equal(t, row) for row in expected) for t in time_ids[:bsz])
        assert torch.equal(added["text_embeds"], pooled[[0] * bsz + [1] * bsz])


@pytest.mark.slow
def test_saved_lora_loads_in_stock_sdxl_and_renders_the_same_bytes(
    prepared: tuple[DreamBoothLoRA, Path], dog: Subject
) -> None:
    from diffusers import DDIMScheduler, StableDiffusionXLPipeline
    from safetensors.torch import load_file

    method, workdir = prepared
    weights = workdir / WEIGHTS_DIR
    saved = load_file(weights / LORA_WEIGHTS_FILE)
    assert saved and all(k.startswith("unet.") and ".lora." in k for k in saved)
    done = read_done(workdir)
    assert done["class_prompt"] == "a dog" and done["base_model"]["id"] == TINY_SDXL_ID
    assert done["sampler"]["resolution"] == TINY_SDXL_RESOLUTION

    prompt, seed = f"a {method.identifier(dog)} dog", 11
    ours = method.generate(dog, workdir, [prompt], [seed])[0]
    assert ours.size == (TINY_SDXL_RESOLUTION, TINY_SDXL_RESOLUTION)

    pipe = StableDiffusionXLPipeline.from_pretrained(ensure_tiny_sdxl(), add_watermarker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)  # the protocol's sampler
    pipe.set_progress_bar_config(disable=True)

    def stock() -> object:
        return pipe(
            prompt,
            negative_prompt="",
            height=TINY_SDXL_RESOLUTION,
            width=TINY_SDXL_RESOLUTION,
            num_inference_steps=FAST_SAMPLER.steps,
            guidance_scale=FAST_SAMPLER.guidance,
            generator=torch.Generator().manual_seed(seed),
        ).images[0]

    plain = stock()
    pipe.load_lora_weights(weights)
    adapted = stock()
    assert png_sha(adapted) == png_sha(ours)  # stock diffusers + the file = the project's render
    assert png_sha(plain) != png_sha(adapted)  # the adapter is active
    trained = {n: p for n, p in method._model.unet.named_parameters() if "lora_" in n}
    loaded = {n.replace("default_0", "default"): p for n, p in pipe.unet.named_parameters() if "lora_" in n}
    assert loaded.keys() == trained.keys() and all(torch.equal(loaded[n], trained[n]) for n in trained)


def test_sdxl_preset_follows_readme_sdxl_and_declares_the_native_resolution() -> None:
    sdxl = DreamBoothLoRA.PRESETS["sdxl"]
    assert (sdxl.base_model, sdxl.base_revision) == (SDXL_REPO, "")
    assert (sdxl.learning_rate, sdxl.train_steps, sdxl.train_batch_size, sdxl.lora_rank) == (1e-4, 500, 4, 4)
    assert (sdxl.identifier, sdxl.instance_prompt) == ("sks", "a photo of {identifier} {class_noun}")
    assert not sdxl.prior_preservation and sdxl.num_class_images == 100 and sdxl.adam_weight_decay == 1e-4
    method = DreamBoothLoRA(sdxl, device="cpu")  # no download, no model needed to build it
    assert method.calibrated and method.render_deviation == {
        "reason": "SDXL base model renders at its native 1024 px (UNet sample_size x VAE factor)",
        "resolution": 1024,
    }
    method.setup(RunContext("cpu", run_preset="dreambooth"))
    assert method.sampler.resolution == 1024 and method.sampler.steps == 50
    # The SD 1.5 rows declare nothing: their sampler is the preset's.
    sd = DreamBoothLoRA(DreamBoothLoRA.PRESETS["paper"], device="cpu")
    assert sd.render_deviation is None and MethodHandle(sd).render_deviation is None
    assert MethodHandle(method).render_deviation["resolution"] == 1024


def test_sdxl_base_from_an_offline_hub_cache_at_the_pinned_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(BenchError, match=f"{SDXL_REPO}@{SDXL_REVISION} is not in the local Hugging Face cache") as err:
        load_base_model(SDXL_REPO, device="cpu")
    assert "\n" not in str(err.value)

    cache = tmp_path / "hf"
    snapshot = cache / f"models--{SDXL_REPO.replace('/', '--')}" / "snapshots" / SDXL_REVISION
    shutil.copytree(ensure_tiny_sdxl(), snapshot)  # the tiny SDXL standing in for the real weights
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    base = load_base_model(SDXL_REPO, device="cpu")
    assert base.is_sdxl and base.folder == snapshot
    assert base.description["key"] == f"{SDXL_REPO}@{SDXL_REVISION}" and base.description["calibrated"] is True


def test_full_finetuning_refuses_an_sdxl_base_before_anything_is_written() -> None:
    method = DreamBooth(dataclasses.replace(DreamBooth.PRESETS["smoke"], base_model=TINY_SDXL_ID), device="cpu")
    with pytest.raises(BenchError, match="dreambooth does not train SDXL bases"):
        method.check_ready()
    DreamBoothLoRA(FAST, device="cpu").check_ready()  # the LoRA method does


@pytest.mark.slow
def test_bench_run_on_the_tiny_sdxl_end_to_end(dreambench_data: Path, tmp_path: Path) -> None:
    from PIL import Image

    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    out = tmp_path / "runs"
    args = [
        "run", "--method", "dreambooth-lora", "--subjects", "dog", "--preset", "smoke",
        "--method-args", "base_model=tiny-sdxl,train_steps=2,num_class_images=1,render_batch_size=1",
        "--prompts", str(prompts), "--images-per-prompt", "1", "--data", str(dreambench_data),
        "--out", str(out), "--device", "cpu", "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["run"]["method"] == "dreambooth-lora"
    assert results["run"]["method_config"]["base_model"] == TINY_SDXL_ID
    assert results["calibrated"] is False
    deviation = results["render_protocol"]["deviation"]
    assert deviation["fields"] == {"resolution": TINY_SDXL_RESOLUTION} and "SDXL" in deviation["reason"]
    assert results["render_protocol"]["protocol"]["sampler"]["resolution"] == 32  # the preset's, unchanged
    (image,) = (run_dir / "subjects" / "dog" / "images").glob("*.png")
    assert Image.open(image).size == (TINY_SDXL_RESOLUTION, TINY_SDXL_RESOLUTION)
    assert "dog" in results["subjects"]

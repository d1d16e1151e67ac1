"""DreamBooth-LoRA on the tiny model: only adapter weights train, the saved file loads in stock
diffusers, prepare is idempotent, generate is deterministic, presets follow their sources."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_dreambooth import make_subject, png_sha

import dreambench.reference_impl.class_priors as class_priors
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError
from dreambench.hyperparams import resolve_config
from dreambench.method import RunContext
from dreambench.reference_impl.base_model import load_base_model
from dreambench.reference_impl.dreambooth import (
    DONE_FILE,
    WEIGHTS_DIR,
    build_training_data,
    read_done,
)
from dreambench.reference_impl.dreambooth_trainer import train_dreambooth
from dreambench.reference_impl.lora import LORA_WEIGHTS_FILE, DreamBoothLoRA, add_lora, lora_target_layers
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.tiny_model import TINY_RESOLUTION, ensure_tiny_model
from dreambench.registry import create_method

# The smoke preset cut down so that each test trains and renders in well under a second.
FAST = dataclasses.replace(DreamBoothLoRA.PRESETS["smoke"], train_steps=2, num_class_images=2, render_batch_size=2)
# The smoke render protocol's sampler with 2 steps (the harness hands a method its preset's in setup).
FAST_SAMPLER = SamplerSettings(steps=2, resolution=TINY_RESOLUTION)
PROMPTS = ["a {} dog", "a {} dog on the beach"]


@pytest.fixture(scope="module")
def dog(dreambench_data: Path) -> Subject:
    return make_subject(dreambench_data, "dog", "dog", ["00.jpg", "01.jpg", "02.jpg"])


@pytest.fixture(scope="module", autouse=True)
def module_priors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("lora-priors")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(class_priors, "cache_root", lambda: root)
        yield root


@pytest.fixture(scope="module")
def prepared(dog: Subject, tmp_path_factory: pytest.TempPathFactory) -> tuple[DreamBoothLoRA, Path, list]:
    """One trained subject (weights kept) and the images its in-memory model rendered; read-only."""
    workdir = tmp_path_factory.mktemp("lora") / "dog"
    method = DreamBoothLoRA(FAST, device="cpu", sampler=FAST_SAMPLER, seed=3, keep_weights=True)
    method.prepare(dog, workdir)
    ident = method.identifier(dog)
    images = method.generate(dog, workdir, [p.format(ident) for p in PROMPTS], [11, 12])
    return method, workdir, images


def test_two_steps_train_only_the_adapters(dog: Subject) -> None:
    base = load_base_model("tiny", device="cpu")
    data = build_training_data(base, dog, "sks", FAST, FAST_SAMPLER, "cpu", seed=0)
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    text_before = {k: v.clone() for k, v in base.text_encoder.state_dict().items()}
    targets = lora_target_layers(base.unet)
    adapters = add_lora(base.unet, rank=4, seed=0)
    # Adapters on exactly the attention projections, B initialised to zero (the model is unchanged).
    names = [n for n, _ in base.unet.named_parameters() if "lora_" in n]
    assert len(adapters) == len(names) == 2 * len(targets) > 0
    assert {n.split(".lora_")[0] for n in names} == {n for n, _ in targets}
    assert all(torch.count_nonzero(p) == 0 for n, p in base.unet.named_parameters() if "lora_B" in n)
    lora_init = {n: p.detach().clone() for n, p in base.unet.named_parameters() if "lora_" in n}

    result = train_dreambooth(base, data, FAST, "cpu", 0, "dog", trainable=adapters)
    assert len(result.losses) == 2
    after = base.unet.state_dict()
    # peft renames a wrapped layer's weight to <layer>.base_layer.weight; map back to compare.
    base_weights = {k.replace(".base_layer", ""): v for k, v in after.items() if "lora_" not in k}
    assert base_weights.keys() == before.keys()
    assert all(torch.equal(v, before[k]) for k, v in base_weights.items())
    assert all(torch.equal(v, text_before[k]) for k, v in base.text_encoder.state_dict().items())
    changed = [
        n for n, p in base.unet.named_parameters() if "lora_" in n and not torch.equal(p, lora_init[n])
    ]
    assert any("lora_B" in n for n in changed) and any("lora_A" in n for n in changed)


def test_adapter_init_is_seeded(dog: Subject) -> None:
    def lora_a(seed: int) -> torch.Tensor:
        unet = load_base_model("tiny", device="cpu").unet
        add_lora(unet, rank=2, seed=seed)
        return next(p for n, p in unet.named_parameters() if "lora_A" in n).detach().clone()

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = lora_a(7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    assert torch.equal(first, lora_a(7)) and not torch.equal(first, lora_a(8))


def test_saved_lora_loads_in_stock_diffusers(prepared: tuple[DreamBoothLoRA, Path, list]) -> None:
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    method, workdir, _ = prepared
    weights = workdir / WEIGHTS_DIR
    saved = load_file(weights / LORA_WEIGHTS_FILE)
    assert saved and all(k.startswith("unet.") and ".lora." in k for k in saved)

    pipe = StableDiffusionPipeline.from_pretrained(ensure_tiny_model())
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=2, height=TINY_RESOLUTION, width=TINY_RESOLUTION, output_type="np")
    plain = pipe("a dog", generator=torch.Generator().manual_seed(0), **kwargs).images[0]
    pipe.load_lora_weights(weights)
    adapted = pipe("a dog", generator=torch.Generator().manual_seed(0), **kwargs).images[0]
    assert adapted.shape == (TINY_RESOLUTION, TINY_RESOLUTION, 3)
    assert not (adapted == plain).all()  # the adapter is active
    # The stock loader holds exactly the trained adapter weights (rank and alpha from the metadata).
    trained = {n: p for n, p in method._model.unet.named_parameters() if "lora_" in n}
    loaded = {n.replace("default_0", "default"): p for n, p in pipe.unet.named_parameters() if "lora_" in n}
    assert loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[n], trained[n]) for n in trained)
    layer = next(m for n, m in pipe.unet.named_modules() if n.endswith(".to_q"))
    assert layer.scaling["default_0"] == 1.0 and layer.r["default_0"] == FAST.lora_rank


def test_prepare_is_idempotent_and_reloaded_weights_render_identically(
    prepared: tuple[DreamBoothLoRA, Path, list], dog: Subject, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dreambench.reference_impl.dreambooth_trainer as trainer

    method, workdir, images = prepared
    done = read_done(workdir)
    assert done["method"] == "dreambooth-lora" and done["config"]["lora_rank"] == FAST.lora_rank
    assert done["class_prompt"] == "a dog" and len(done["losses"]) == 2
    monkeypatch.setattr(trainer, "train_dreambooth", lambda *a, **k: pytest.fail("trained twice"))
    method.prepare(dog, workdir)
    fresh = DreamBoothLoRA(FAST, device="cpu", sampler=FAST_SAMPLER, seed=3, keep_weights=True)
    fresh.prepare(dog, workdir)  # done marker + weights on disk: no training
    ident = fresh.identifier(dog)
    again = fresh.generate(dog, workdir, [p.format(ident) for p in PROMPTS], [11, 12])
    assert [png_sha(im) for im in again] == [png_sha(im) for im in images]
    # Deterministic: the same (prompt, seed) alone gives the same image as inside the batch.
    alone = fresh.generate(dog, workdir, [PROMPTS[1].format(ident)], [12])
    assert png_sha(alone[0]) == png_sha(images[1])
    fresh.release()
    assert (workdir / WEIGHTS_DIR / LORA_WEIGHTS_FILE).is_file()  # keep_weights


def assert_release_then_retrain(method: DreamBoothLoRA, subject: Subject, workdir: Path) -> None:
    """release() deletes weights/ but keeps done.json; generate then refuses; prepare retrains identically.

    Shared by every DreamBooth-family method built on DreamBooth's hooks (LoRA, Textual Inversion).
    """
    method.prepare(subject, workdir)
    losses = read_done(workdir)["losses"]
    method.release()
    assert not (workdir / WEIGHTS_DIR).exists() and (workdir / DONE_FILE).is_file()
    with pytest.raises(BenchError, match="before prepare"):
        method.generate(subject, workdir, ["a dog"], [0])
    method.prepare(subject, workdir)
    assert read_done(workdir)["losses"] == losses
    assert len(method.generate(subject, workdir, ["a dog"], [0])) == 1


def test_release_deletes_the_adapter_and_prepare_retrains_the_same(tmp_path: Path, dog: Subject) -> None:
    assert_release_then_retrain(DreamBoothLoRA(FAST, device="cpu", sampler=FAST_SAMPLER), dog, tmp_path / "dog")


def test_disk_estimate_is_the_adapter_file_size(
    prepared: tuple[DreamBoothLoRA, Path, list], dog: Subject
) -> None:
    method, workdir, _ = prepared
    written = (workdir / WEIGHTS_DIR / LORA_WEIGHTS_FILE).stat().st_size
    assert method.estimated_disk_bytes(dog, 100) == pytest.approx(written, rel=0.05)
    # SD 1.5 is not available offline: the fallback is the known rank-4 size, scaled by rank.
    paper = DreamBoothLoRA(dataclasses.replace(DreamBoothLoRA.PRESETS["paper"], lora_rank=8), device="cpu")
    assert paper.estimated_disk_bytes(dog, 100) == 2 * 797_184 * 4


def test_presets_and_registry() -> None:
    # "sdxl" (SDXL base 1.0, README_sdxl.md) is checked in tests/test_lora_sdxl.py.
    assert set(DreamBoothLoRA.PRESETS) == {"paper", "diffusers", "smoke", "sdxl", "flux", "sd3"}
    diffusers, paper = DreamBoothLoRA.PRESETS["diffusers"], DreamBoothLoRA.PRESETS["paper"]
    for config in (diffusers, paper):
        assert (config.learning_rate, config.train_steps, config.lora_rank) == (1e-4, 500, 4)
    assert diffusers.prior_preservation and diffusers.identifier == "sks"
    # The paper preset prompts like the dreambooth row of the same run preset (rare token, "a [V] dog").
    assert paper.prior_preservation and paper.identifier == "rare" and paper.instance_prompt == "a {identifier} {class_noun}"
    for preset in ("paper", "smoke"):
        method = create_method("dreambooth-lora", preset, {}, RunContext("cpu")).method
        assert isinstance(method, DreamBoothLoRA) and method.calibrated is (preset != "smoke")
    config = resolve_config(DreamBoothLoRA.Config, DreamBoothLoRA.PRESETS, "smoke", {"lora_rank": "8"}, "x")
    assert config.lora_rank == 8


def test_invalid_settings_are_one_line_errors() -> None:
    with pytest.raises(BenchError, match="lora_rank=0"):
        DreamBoothLoRA(dataclasses.replace(FAST, lora_rank=0), device="cpu")
    with pytest.raises(BenchError, match="train_text_encoder"):
        DreamBoothLoRA(dataclasses.replace(FAST, train_text_encoder=True), device="cpu")

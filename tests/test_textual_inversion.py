"""Textual Inversion on the tiny model: only the placeholder's embedding row trains, the saved
embedding loads in stock diffusers, prepare is idempotent, generate is deterministic, presets
follow their sources."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from test_dreambooth import make_subject, png_sha
from test_lora import assert_release_then_retrain

from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError
from dreambench.method import RunContext
from dreambench.reference_impl.base_model import load_base_model, locate_base_model
from dreambench.reference_impl.dreambooth import WEIGHTS_DIR, read_done
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.textual_inversion import (
    LEARNED_EMBEDS_FILE,
    OBJECT_TEMPLATES,
    TextualInversion,
    add_placeholder_token,
)
from dreambench.reference_impl.tiny_model import TINY_RESOLUTION
from dreambench.registry import create_method

FAST = dataclasses.replace(
    TextualInversion.PRESETS["smoke"], train_steps=2, render_batch_size=2
)
# The smoke render protocol's sampler with 2 steps (the harness hands a method its preset's in setup).
FAST_SAMPLER = SamplerSettings(steps=2, resolution=TINY_RESOLUTION)
PROMPTS = ["a {} dog", "a {} dog on the beach"]


@pytest.fixture(scope="module")
def dog(dreambench_data: Path) -> Subject:
    return make_subject(dreambench_data, "dog", "dog", ["00.jpg", "01.jpg", "02.jpg"])


@pytest.fixture(scope="module")
def prepared(dog: Subject, tmp_path_factory: pytest.TempPathFactory) -> tuple[TextualInversion, Path, list]:
    """One trained subject (weights kept) and the images its in-memory model rendered; read-only."""
    workdir = tmp_path_factory.mktemp("ti") / "dog"
    method = TextualInversion(FAST, device="cpu", sampler=FAST_SAMPLER, seed=3, keep_weights=True)
    method.prepare(dog, workdir)
    images = method.generate(dog, workdir, [p.format("<sks-dog>") for p in PROMPTS], [11, 12])
    return method, workdir, images


def test_two_steps_change_only_the_placeholder_row(prepared: tuple[TextualInversion, Path, list]) -> None:
    method, workdir, _ = prepared
    trained = method._model
    base = load_base_model(FAST.base_model, device="cpu")
    token_id = trained.tokenizer.convert_tokens_to_ids("<sks-dog>")
    assert token_id == len(base.tokenizer) == len(trained.tokenizer) - 1
    # One new token, read as a single id inside a prompt next to the class noun.
    ids = trained.tokenizer("a <sks-dog> dog", add_special_tokens=False).input_ids
    assert ids == [320, token_id, 1929]

    old = base.text_encoder.get_input_embeddings().weight
    new = trained.text_encoder.get_input_embeddings().weight
    assert new.shape[0] == old.shape[0] + 1
    assert torch.equal(new[:token_id], old)  # every other token restored after each step
    assert not torch.equal(new[token_id], old[1929])  # moved away from its initialiser ("dog")
    for name, value in trained.text_encoder.state_dict().items():
        if "token_embedding" not in name:
            assert torch.equal(value, base.text_encoder.state_dict()[name]), name
    assert all(torch.equal(v, base.unet.state_dict()[k]) for k, v in trained.unet.state_dict().items())
    assert all(torch.equal(v, base.vae.state_dict()[k]) for k, v in trained.vae.state_dict().items())
    assert len(read_done(workdir)["losses"]) == 2


def test_placeholder_starts_at_the_class_noun_embedding() -> None:
    base = load_base_model(FAST.base_model, device="cpu")
    weight = base.text_encoder.get_input_embeddings().weight
    dog_row = weight[1929].clone()
    two = base.tokenizer("stuffed animal", add_special_tokens=False).input_ids
    mean = weight[two].mean(dim=0).clone()
    first = add_placeholder_token(base, "<sks-dog>", "dog")
    second = add_placeholder_token(base, "<sks-toy>", "stuffed animal")  # two tokens: their mean
    weight = base.text_encoder.get_input_embeddings().weight
    assert len(two) == 2 and (first, second) == (len(base.tokenizer) - 2, len(base.tokenizer) - 1)
    assert torch.equal(weight[first], dog_row) and torch.allclose(weight[second], mean)
    with pytest.raises(BenchError, match="already a token"):
        add_placeholder_token(base, "<sks-dog>", "dog")


def test_training_captions_are_the_ti_templates(
    dog: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dreambench.reference_impl.base_model as base_model

    seen: list[tuple[int, ...]] = []
    real_load = base_model.load_base_model
    bases = []

    def recording_load(*args, **kwargs):
        base = real_load(*args, **kwargs)
        bases.append(base)
        base.text_encoder.register_forward_hook(
            lambda module, inputs, output: seen.extend(tuple(row.tolist()) for row in inputs[0])
        )
        return base

    monkeypatch.setattr("dreambench.reference_impl.dreambooth.load_base_model", recording_load)
    TextualInversion(dataclasses.replace(FAST, train_steps=6), device="cpu", sampler=FAST_SAMPLER).prepare(dog, tmp_path / "dog")
    tokenizer = bases[0].tokenizer
    captions = [t.format("<sks-dog>") for t in OBJECT_TEMPLATES]
    padded = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length).input_ids
    # One caption per example (train_batch_size per step), each one of TI's templates, not always
    # the same one.
    assert len(seen) == 6 * FAST.train_batch_size
    assert set(seen) <= {tuple(ids) for ids in padded} and len(set(seen)) > 1


def test_saved_embedding_loads_in_stock_diffusers(prepared: tuple[TextualInversion, Path, list]) -> None:
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    method, workdir, _ = prepared
    path = workdir / WEIGHTS_DIR / LEARNED_EMBEDS_FILE
    saved = load_file(path)
    assert list(saved) == ["<sks-dog>"] and saved["<sks-dog>"].shape == (1, 32)

    pipe = StableDiffusionPipeline.from_pretrained(locate_base_model(FAST.base_model)[0])
    pipe.set_progress_bar_config(disable=True)
    pipe.load_textual_inversion(str(path), token="<sks-dog>")
    token_id = pipe.tokenizer.convert_tokens_to_ids("<sks-dog>")
    trained = method._model.text_encoder.get_input_embeddings().weight
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[token_id], trained[token_id])
    size = dict(height=TINY_RESOLUTION, width=TINY_RESOLUTION)
    image = pipe("a <sks-dog> dog in the jungle", num_inference_steps=2, **size).images[0]
    assert image.size == (TINY_RESOLUTION, TINY_RESOLUTION)


def test_prepare_is_idempotent_and_reloaded_embedding_renders_identically(
    prepared: tuple[TextualInversion, Path, list], dog: Subject, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dreambench.reference_impl.dreambooth_trainer as trainer

    method, workdir, images = prepared
    done = read_done(workdir)
    assert done["method"] == "textual-inversion" and done["identifier"] == "<sks-dog>"
    assert done["class_prompt"] is None and done["num_class_images"] == 0
    monkeypatch.setattr(trainer, "train_dreambooth", lambda *a, **k: pytest.fail("trained twice"))
    method.prepare(dog, workdir)
    fresh = TextualInversion(FAST, device="cpu", sampler=FAST_SAMPLER, seed=3, keep_weights=True)
    fresh.prepare(dog, workdir)
    prompts = [p.format(fresh.identifier(dog)) for p in PROMPTS]
    assert [png_sha(im) for im in fresh.generate(dog, workdir, prompts, [11, 12])] == [png_sha(im) for im in images]
    assert png_sha(fresh.generate(dog, workdir, prompts[1:], [12])[0]) == png_sha(images[1])
    fresh.release()
    assert (workdir / WEIGHTS_DIR / LEARNED_EMBEDS_FILE).is_file()  # keep_weights


def test_release_deletes_the_embedding_and_prepare_retrains_the_same(tmp_path: Path, dog: Subject) -> None:
    assert_release_then_retrain(TextualInversion(FAST, device="cpu", sampler=FAST_SAMPLER), dog, tmp_path / "dog")


def test_disk_estimate_is_the_embedding_file_size(
    prepared: tuple[TextualInversion, Path, list], dog: Subject
) -> None:
    method, workdir, _ = prepared
    written = (workdir / WEIGHTS_DIR / LEARNED_EMBEDS_FILE).stat().st_size
    assert method.estimated_disk_bytes(dog, 100) == pytest.approx(written, rel=0.1)


def test_identifier_is_a_per_subject_placeholder(dog: Subject) -> None:
    method = TextualInversion(TextualInversion.PRESETS["paper"], device="cpu")
    assert method.identifier(dog) == "<sks-dog>"  # no model needed
    custom = TextualInversion(dataclasses.replace(FAST, placeholder_token="<{subject}-v>"), device="cpu")
    assert custom.identifier(dog) == "<dog-v>"
    for bad in ("<{name}>", "<sks {subject}>", "<SKS-{subject}>", ""):
        with pytest.raises(BenchError, match="placeholder_token"):
            TextualInversion(dataclasses.replace(FAST, placeholder_token=bad), device="cpu")


def test_presets_and_registry() -> None:
    presets = TextualInversion.PRESETS
    assert set(presets) == {"paper", "diffusers", "smoke"}
    paper, diffusers = presets["paper"], presets["diffusers"]
    assert (paper.train_steps, paper.learning_rate, paper.train_batch_size) == (6100, 1e-2, 2)
    assert (diffusers.train_steps, diffusers.learning_rate, diffusers.train_batch_size) == (3000, 2e-3, 4)
    assert paper.max_grad_norm == diffusers.max_grad_norm == float("inf")  # neither source clips
    for preset in ("paper", "smoke"):
        method = create_method("textual-inversion", preset, {}, RunContext("cpu")).method
        assert isinstance(method, TextualInversion) and method.calibrated is (preset != "smoke")
    with pytest.raises(BenchError, match="valid:"):
        create_method("textual-inversion", "smoke", {"prior_preservation": "true"}, RunContext("cpu"))

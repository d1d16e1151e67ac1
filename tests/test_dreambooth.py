"""DreamBooth on the tiny model: loss identity, training, divergence, saved weights, class priors,
identifiers, idempotent prepare, release, and the base-model floor."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import dreambench.reference_impl.class_priors as class_priors
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError
from dreambench.hyperparams import resolve_config
from dreambench.reference_impl.base_method import BaseModel
from dreambench.reference_impl.base_model import load_base_model
from dreambench.reference_impl.dreambooth import (
    DONE_FILE,
    WEIGHTS_DIR,
    DreamBooth,
    build_training_data,
    read_done,
)
from dreambench.reference_impl.dreambooth_trainer import (
    TrainingData,
    TrainingDiverged,
    TrainSettings,
    prior_preservation_loss,
    save_finetuned,
    train_dreambooth,
)
from dreambench.reference_impl.identifier import choose_identifier, rare_token_candidates
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.tiny_model import TINY_RESOLUTION, ensure_tiny_model

# The smoke preset, cut down further so each test trains and renders in well under a second.
FAST = dataclasses.replace(DreamBooth.PRESETS["smoke"], train_steps=2, num_class_images=2, render_batch_size=2)
# The smoke render protocol's sampler with 2 steps (the harness hands a method its preset's in setup).
FAST_SAMPLER = SamplerSettings(steps=2, resolution=TINY_RESOLUTION)


def make_subject(data: Path, name: str, class_noun: str, files: list[str]) -> Subject:
    folder = data / "dataset" if (data / "dataset").is_dir() else data  # clone root or its dataset/
    paths = tuple(folder / name / f for f in files)
    return Subject(
        name=name,
        class_noun=class_noun,
        kind="live",
        image_paths=paths,
        image_sha256=tuple(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths),
    )


@pytest.fixture(scope="module")
def dog(dreambench_data: Path) -> Subject:
    return make_subject(dreambench_data, "dog", "dog", ["00.jpg", "01.jpg", "02.jpg"])


@pytest.fixture(scope="module")
def dog2(dreambench_data: Path) -> Subject:
    return make_subject(dreambench_data, "dog2", "dog", ["00.jpg", "01.jpg"])


@pytest.fixture(scope="module", autouse=True)
def module_priors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Class priors of this module live in a folder of its own (the session cache may be reused)."""
    root = tmp_path_factory.mktemp("priors-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(class_priors, "cache_root", lambda: root)
        yield root


@pytest.fixture
def private_priors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A class-prior cache of this test's own, so counts do not depend on other tests."""
    root = tmp_path / "cache"
    monkeypatch.setattr(class_priors, "cache_root", lambda: root)
    return root


@pytest.fixture(scope="module")
def dog_data(dog: Subject) -> TrainingData:
    """Training data (latents, prompts, 2 class images) for the dog, built once; read-only in tests."""
    return build_training_data(load_base_model("tiny", device="cpu"), dog, "sks", FAST, FAST_SAMPLER, "cpu", seed=0)


def png_sha(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return hashlib.sha256(buffer.getvalue()).hexdigest()


# -- the loss ---------------------------------------------------------------------------------


def test_prior_preservation_loss_is_instance_mse_plus_weighted_prior_mse() -> None:
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(5, 4, 8, 8, generator=gen)
    target = torch.randn(5, 4, 8, 8, generator=gen)
    n, lam = 2, 0.7
    # Independent reference: explicit sums of squares over each part.
    instance = ((pred[:n] - target[:n]) ** 2).sum() / pred[:n].numel()
    prior = ((pred[n:] - target[n:]) ** 2).sum() / pred[n:].numel()
    got = prior_preservation_loss(pred, target, n, lam)
    torch.testing.assert_close(got, instance + lam * prior)
    # Without prior rows it is the plain MSE; the weight changes only the prior term.
    torch.testing.assert_close(prior_preservation_loss(pred[:n], target[:n], n, lam), instance)
    torch.testing.assert_close(prior_preservation_loss(pred, target, n, 0.0), instance)


def test_prior_preservation_loss_computes_in_fp32() -> None:
    pred = torch.full((2, 1, 2, 2), 300.0, dtype=torch.float16)
    target = torch.zeros_like(pred)
    # 300^2 = 90000 overflows fp16 (max 65504); the loss must not.
    assert prior_preservation_loss(pred, target, 1, 1.0).item() == pytest.approx(180000.0)


# -- the trainer ------------------------------------------------------------------------------


def test_two_training_steps_update_the_unet_only(dog_data: TrainingData) -> None:
    base = load_base_model("tiny", device="cpu")
    data = dog_data
    assert data.instance_prompt == "a sks dog" and data.class_prompt == "a dog"
    assert len(data.instance) == 3 and data.classes is not None and len(data.classes) == 2
    unet_before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    vae_before = {k: v.clone() for k, v in base.vae.state_dict().items()}
    text_before = {k: v.clone() for k, v in base.text_encoder.state_dict().items()}
    result = train_dreambooth(
        base, data, TrainSettings(train_steps=2, learning_rate=1e-3), "cpu", seed=0, subject_name="dog"
    )
    assert len(result.losses) == 2 and all(loss > 0 for loss in result.losses)
    assert result.text_encoder is None
    changed = [k for k, v in result.unet.state_dict().items() if not torch.equal(v, unet_before[k])]
    assert len(changed) > len(unet_before) // 2
    assert all(torch.equal(v, vae_before[k]) for k, v in base.vae.state_dict().items())
    assert all(torch.equal(v, text_before[k]) for k, v in base.text_encoder.state_dict().items())
    assert not result.unet.training


def test_training_is_deterministic_for_a_seed(dog_data: TrainingData) -> None:
    runs = []
    for _ in range(2):
        base = load_base_model("tiny", device="cpu")
        runs.append(
            train_dreambooth(
                base, dog_data, TrainSettings(train_steps=2, learning_rate=1e-3), "cpu", 5, "dog"
            ).losses
        )
    assert runs[0] == runs[1]


def test_text_encoder_is_trained_when_asked(dog: Subject) -> None:
    base = load_base_model("tiny", device="cpu")
    data = build_training_data(
        base, dog, "sks", dataclasses.replace(FAST, prior_preservation=False), FAST_SAMPLER, "cpu", 0
    )
    assert data.classes is None
    before = base.text_encoder.get_input_embeddings().weight.clone()
    settings = TrainSettings(train_steps=1, learning_rate=1e-2)
    result = train_dreambooth(base, data, settings, "cpu", seed=0, subject_name="dog", train_text_encoder=True)
    assert result.text_encoder is not None
    assert not torch.equal(result.text_encoder.get_input_embeddings().weight, before)


def test_nan_loss_raises_training_diverged_naming_subject_and_step(dog_data: TrainingData) -> None:
    base = load_base_model("tiny", device="cpu")
    data = dog_data
    with torch.no_grad():
        base.unet.conv_out.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"subject 'dog' diverged at step 1/") as info:
        train_dreambooth(base, data, TrainSettings(train_steps=3, learning_rate=1e-3), "cpu", 0, subject_name="dog")
    assert isinstance(info.value, BenchError)


def test_saved_weights_load_into_a_stock_pipeline(tmp_path: Path, dog_data: TrainingData) -> None:
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    base = load_base_model("tiny", device="cpu")
    data = dog_data
    result = train_dreambooth(base, data, TrainSettings(train_steps=2, learning_rate=1e-3), "cpu", 0, "dog")
    save_finetuned(tmp_path / "weights", result.unet)
    assert (tmp_path / "weights" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not (tmp_path / "weights" / "text_encoder").exists()

    unet = UNet2DConditionModel.from_pretrained(tmp_path / "weights", subfolder="unet")
    for key, value in unet.state_dict().items():
        assert torch.equal(value, result.unet.state_dict()[key]), key
    pipe = StableDiffusionPipeline.from_pretrained(ensure_tiny_model(), unet=unet)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        "a sks dog",
        num_inference_steps=2,
        height=TINY_RESOLUTION,
        width=TINY_RESOLUTION,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (TINY_RESOLUTION, TINY_RESOLUTION)


# -- class priors -----------------------------------------------------------------------------


def test_two_subjects_of_one_class_generate_class_images_once(
    tmp_path: Path, dog: Subject, dog2: Subject, private_priors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[int] = []
    real_render = class_priors.render

    def counting_render(pipe, prompts, seeds, *args, **kwargs):
        rendered.extend(seeds)
        return real_render(pipe, prompts, seeds, *args, **kwargs)

    monkeypatch.setattr(class_priors, "render", counting_render)
    method = DreamBooth(FAST, device="cpu", sampler=FAST_SAMPLER)
    method.prepare(dog, tmp_path / "dog")
    method.release()
    method.prepare(dog2, tmp_path / "dog2")
    method.release()
    assert len(rendered) == FAST.num_class_images == len(set(rendered))
    folders = list((private_priors / "priors").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("dog-")
    assert (
        read_done(tmp_path / "dog")["class_prompt"] == read_done(tmp_path / "dog2")["class_prompt"] == "a dog"
    )


def test_class_images_resume_image_by_image(private_priors: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dreambench.reference_impl.render import SamplerSettings

    base = load_base_model("tiny", device="cpu")
    spec = class_priors.PriorSpec(
        base.description["key"], "dog", "a dog", SamplerSettings(steps=2, resolution=TINY_RESOLUTION), batch_size=4
    )
    paths = class_priors.ensure_class_images(spec, 3, base.pipeline(), "cpu")
    original = paths[1].read_bytes()
    paths[1].unlink()
    rendered: list[int] = []
    real_render = class_priors.render
    monkeypatch.setattr(
        class_priors,
        "render",
        lambda pipe, prompts, seeds, *a, **k: (
            rendered.extend(seeds) or real_render(pipe, prompts, seeds, *a, **k)
        ),
    )
    # Asking for more renders only the missing image and the new one; the rebuilt file is identical.
    paths = class_priors.ensure_class_images(spec, 4, base.pipeline(), "cpu")
    assert rendered == [class_priors.prior_image_seed(0, 1), class_priors.prior_image_seed(0, 3)]
    assert paths[1].read_bytes() == original


def test_prior_key_changes_with_what_the_images_depend_on() -> None:
    from dreambench.reference_impl.render import SamplerSettings

    spec = class_priors.PriorSpec("tiny-sd", "dog", "a dog", SamplerSettings())
    assert spec.key().startswith("dog-")
    # Every field that changes a pixel, each changed alone (a field added later must join the key).
    other_values = {
        "model_key": "other",
        "prompt": "a photo of dog",
        "seed": 1,
        "batch_size": 4,
        "device_type": "cuda",
        "autocast": "bfloat16",
        "weights": "bf16",
    }
    pixel_fields = {f.name for f in dataclasses.fields(spec)} - {"class_noun", "sampler"}
    assert pixel_fields == set(other_values)
    keys = {spec.key()}
    for name, value in other_values.items():
        keys.add(dataclasses.replace(spec, **{name: value}).key())
    sampler_changes = {
        "scheduler": "pndm",
        "steps": 49,
        "guidance": 5.0,
        "resolution": 256,
        "negative_prompt": "blurry",
        "scheduler_config": (("timestep_spacing", "trailing"),),
    }
    assert {f.name for f in dataclasses.fields(SamplerSettings)} == set(sampler_changes)
    for name, value in sampler_changes.items():
        keys.add(dataclasses.replace(spec, sampler=dataclasses.replace(spec.sampler, **{name: value})).key())
    assert len(keys) == 1 + len(other_values) + len(sampler_changes)
    # create() keys what render will do: the autocast dtype matters on CUDA only, and which one.
    make = lambda device, dtype: class_priors.PriorSpec.create(  # noqa: E731
        "tiny-sd", "dog", "a dog", SamplerSettings(), 0, device=device, batch_size=1, autocast_dtype=dtype
    )
    assert make("cpu", torch.bfloat16).key() == make("cpu", None).key() == spec.key()
    cuda_keys = {make("cuda", None).key(), make("cuda:1", torch.bfloat16).key(), make("cuda", torch.float16).key()}
    assert len(cuda_keys) == 3 and spec.key() not in cuda_keys
    assert make("cuda:1", torch.bfloat16).key() == make("cuda", torch.bfloat16).key()


# -- identifiers ------------------------------------------------------------------------------


def test_rare_identifier_is_one_rare_short_token(dog: Subject) -> None:
    base = load_base_model("tiny", device="cpu")
    tokenizer = base.tokenizer
    ident = choose_identifier("rare", tokenizer, "dog")
    assert ident == choose_identifier("rare", tokenizer, "dog")  # deterministic
    assert 1 <= len(ident) <= 3 and ident.isascii() and ident.isalpha() and ident.islower()
    ids = tokenizer(ident, add_special_tokens=False).input_ids
    assert len(ids) == 1 and ident in rare_token_candidates()
    assert tokenizer.decode(ids) == ident
    # Inside a prompt it stays a single token next to the class noun.
    assert tokenizer(f"a {ident} dog", add_special_tokens=False).input_ids == [320, ids[0], 1929]
    assert len(rare_token_candidates()) > 30  # more candidates than DreamBench has subjects
    names = ["dog", "dog2", "cat", "backpack", "clock", "teapot", "vase", "can"]
    assert len({choose_identifier("rare", tokenizer, n) for n in names}) > 1


def test_fixed_identifier_is_used_verbatim(dog: Subject) -> None:
    assert choose_identifier("sks", None, "dog") == "sks"
    with pytest.raises(BenchError, match="rare"):
        choose_identifier(" ", None, "dog")
    # A fixed identifier needs no model at all: not even the (offline, absent) SD 1.5 tokenizer.
    method = DreamBooth(DreamBooth.PRESETS["diffusers"], device="cpu")
    assert method.identifier(dog) == "sks"


# -- the method -------------------------------------------------------------------------------


def test_prepare_is_idempotent_and_generate_survives_a_new_process(
    tmp_path: Path, dog: Subject, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dreambench.reference_impl.dreambooth_trainer as trainer

    workdir = tmp_path / "dog"
    method = DreamBooth(FAST, device="cpu", sampler=FAST_SAMPLER, keep_weights=True)
    method.prepare(dog, workdir)
    done = read_done(workdir)
    assert done["identifier"] == method.identifier(dog)
    assert done["base_model"]["calibrated"] is False and method.calibrated is False
    first = method.generate(dog, workdir, ["a x dog", "a x dog on the beach"], [1, 2])
    assert len(first) == 2

    # A second prepare (same or fresh instance) must not train again.
    monkeypatch.setattr(trainer, "train_dreambooth", lambda *a, **k: pytest.fail("trained twice"))
    method.prepare(dog, workdir)
    fresh = DreamBooth(FAST, device="cpu", sampler=FAST_SAMPLER, keep_weights=True)
    fresh.prepare(dog, workdir)
    # ...and renders the same images from the saved weights as the in-memory model did.
    again = fresh.generate(dog, workdir, ["a x dog on the beach"], [2])
    assert png_sha(again[0]) == png_sha(first[1])
    fresh.release()
    assert (workdir / WEIGHTS_DIR / "unet").is_dir()  # keep_weights


def test_release_deletes_weights_and_prepare_then_retrains(tmp_path: Path, dog: Subject) -> None:
    workdir = tmp_path / "dog"
    method = DreamBooth(FAST, device="cpu", sampler=FAST_SAMPLER)
    method.prepare(dog, workdir)
    losses = read_done(workdir)["losses"]
    method.release()
    assert not (workdir / WEIGHTS_DIR).exists() and (workdir / DONE_FILE).is_file()
    with pytest.raises(BenchError, match="before prepare"):
        method.generate(dog, workdir, ["a dog"], [0])
    method.prepare(dog, workdir)
    assert read_done(workdir)["losses"] == losses  # same seed, same training on CPU
    assert len(method.generate(dog, workdir, ["a dog"], [0])) == 1


@pytest.mark.parametrize("preset", sorted(DreamBooth.PRESETS))
def test_presets_resolve_and_document_the_base_model(preset: str) -> None:
    config = resolve_config(DreamBooth.Config, DreamBooth.PRESETS, preset, {}, "dreambooth")
    assert config.train_steps >= 1 and config.learning_rate > 0
    method = DreamBooth(config, device="cpu")
    assert method.calibrated is (config.base_model != "tiny-trained")


def test_paper_and_diffusers_presets_follow_their_sources() -> None:
    paper, diffusers = DreamBooth.PRESETS["paper"], DreamBooth.PRESETS["diffusers"]
    assert (paper.train_steps, paper.learning_rate, paper.prior_loss_weight) == (1000, 5e-6, 1.0)
    assert (diffusers.train_steps, diffusers.num_class_images, diffusers.learning_rate) == (800, 200, 5e-6)
    assert diffusers.identifier == "sks" and diffusers.prior_preservation


def test_disk_estimate_is_the_size_of_the_weights_prepare_writes(tmp_path: Path, dog: Subject) -> None:
    method = DreamBooth(FAST, device="cpu", sampler=FAST_SAMPLER, keep_weights=True)
    method.prepare(dog, tmp_path / "dog")
    written = (tmp_path / "dog" / WEIGHTS_DIR / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size
    assert method.estimated_disk_bytes(dog, 100) == pytest.approx(written, rel=0.01)


def test_config_overrides_are_type_checked() -> None:
    config = resolve_config(
        DreamBooth.Config, DreamBooth.PRESETS, "smoke", {"train_steps": "7"}, "dreambooth"
    )
    assert config.train_steps == 7
    with pytest.raises(BenchError, match="valid:"):
        resolve_config(DreamBooth.Config, DreamBooth.PRESETS, "smoke", {"steps": "7"}, "dreambooth")
    with pytest.raises(BenchError, match="one of"):
        resolve_config(DreamBooth.Config, DreamBooth.PRESETS, "smoke", {"mixed_precision": "fp8"}, "dreambooth")
    # The sampler is the run preset's, not a method argument.
    with pytest.raises(BenchError, match="unknown argument 'scheduler'"):
        resolve_config(DreamBooth.Config, DreamBooth.PRESETS, "smoke", {"scheduler": "ddim"}, "dreambooth")


def test_base_model_floor(tmp_path: Path, dog: Subject) -> None:
    config = dataclasses.replace(BaseModel.PRESETS["smoke"], render_batch_size=3)
    method = BaseModel(config, device="cpu", sampler=FAST_SAMPLER)
    assert method.name == "base-model" and method.calibrated is False
    method.prepare(dog, tmp_path / "dog")
    assert method._model is None  # prepare loads no weights...
    recorded = json.loads((tmp_path / "dog" / "base_model.json").read_text())
    assert recorded["source"] == "tiny" and recorded["calibrated"] is False  # ...it records provenance
    assert method.identifier(dog) == ""
    images = method.generate(dog, tmp_path / "dog", ["a dog in the jungle", "a dog on the beach", "a dog"], [3, 4, 5])
    assert [im.size for im in images] == [(TINY_RESOLUTION, TINY_RESOLUTION)] * 3
    method.release()
    assert method._model is None

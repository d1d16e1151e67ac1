"""DreamBooth-LoRA on Stable Diffusion 3 (reference_impl/tiny_sd3.py, sd3.py, flow_matching.py,
lora.py): the tiny SD3 loads through stock diffusers and the project's loader; the ``sd3`` preset
follows README_sd3.md and train_dreambooth_lora_sd3.py; SD3's loss (preconditioned outputs, loss
weighting) is the script's; ``bench run`` with the ``sd3`` preset on ``tiny-sd3`` trains by flow
matching, records the SD3 render deviation, and the saved LoRA file loads with stock
``StableDiffusion3Pipeline.load_lora_weights`` and renders the run's images pixel for pixel at the
run's batch shape (the loading code docs/DREAMBOOTH.md shows)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import SD3_REPO, is_calibrated, load_base_model
from dreambench.reference_impl.dreambooth import DreamBooth
from dreambench.reference_impl.flow_matching import FlowMatchObjective, FlowMatchSettings
from dreambench.reference_impl.lora import LORA_WEIGHTS_FILE, DreamBoothLoRA
from dreambench.reference_impl.sd3 import SD3_LORA_TARGET_MODULES
from dreambench.reference_impl.tiny_sd3 import TINY_SD3_ID, TINY_SD3_RESOLUTION, ensure_tiny_sd3

ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}


def test_tiny_sd3_is_an_sd3_folder_loaded_by_stock_diffusers_and_the_loader() -> None:
    from diffusers import StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection, T5EncoderModel

    folder = ensure_tiny_sd3()
    index = json.loads((folder / "model_index.json").read_text())
    assert (
        index["_class_name"] == "StableDiffusion3Pipeline" and index["text_encoder_3"][1] == "T5EncoderModel"
    )
    stock = StableDiffusion3Pipeline.from_pretrained(folder)
    assert stock.tokenizer_2.pad_token == "!"
    base = load_base_model(TINY_SD3_ID, device="cpu")
    assert base.family == "sd3" and base.unet is None
    assert isinstance(base.text_encoder, CLIPTextModelWithProjection)
    assert isinstance(base.text_encoder_2, CLIPTextModelWithProjection)
    assert isinstance(base.text_encoder_3, T5EncoderModel)
    assert type(base.pipeline()).__name__ == "StableDiffusion3Pipeline"
    assert not is_calibrated(TINY_SD3_ID) and is_calibrated(SD3_REPO)


def test_sd3_preset_follows_readme_sd3_and_declares_the_sd3_protocol() -> None:
    sd3 = DreamBoothLoRA.PRESETS["sd3"]
    assert sd3.base_model == SD3_REPO and not sd3.prior_preservation
    assert (sd3.learning_rate, sd3.train_steps, sd3.train_batch_size, sd3.lora_rank) == (4e-4, 500, 4, 4)
    assert (sd3.weighting_scheme, sd3.precondition_outputs, sd3.max_sequence_length) == (
        "logit_normal",
        True,
        77,
    )
    assert (sd3.mixed_precision, sd3.adam_weight_decay) == ("fp16", 1e-4)
    method = DreamBoothLoRA(sd3, device="cpu")  # nothing downloaded to build it
    assert method.render_deviation is not None
    assert {k: v for k, v in method.render_deviation.items() if k != "reason"} == {
        "scheduler": "flow-euler",
        "steps": 28,
        "guidance": 7.0,
        "resolution": 1024,
    }


@pytest.mark.parametrize("scheme", ["logit_normal", "sigma_sqrt", "cosmap"])
def test_sd3_objective_is_the_scripts_preconditioned_weighted_loss(scheme: str) -> None:
    """train_dreambooth_lora_sd3.py's loss, written out as the script writes it, equals the
    trainer's MSE over the objective's (prediction, target) for the same draws."""
    from diffusers.training_utils import compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3

    base = load_base_model(TINY_SD3_ID, device="cpu")
    settings = FlowMatchSettings(weighting_scheme=scheme, precondition_outputs=True, max_sequence_length=77)
    objective = FlowMatchObjective(base, ["a photo of sks dog"], settings, "cpu")
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    rows = torch.zeros(2, dtype=torch.long)
    pred, target = objective(base.transformer, latents, rows, torch.Generator().manual_seed(7))
    ours = torch.nn.functional.mse_loss(pred.float(), target.float())

    # The script, same generator stream: noise, then u; sigmas at the drawn timesteps.
    gen = torch.Generator().manual_seed(7)
    noise = torch.randn(latents.shape, generator=gen)
    u = compute_density_for_timestep_sampling(
        scheme, 2, logit_mean=0.0, logit_std=1.0, mode_scale=1.29, generator=gen
    )
    indices = (u * 1000).long()
    scheduler = objective.scheduler
    sigmas = scheduler.sigmas[indices].view(-1, 1, 1, 1)
    noisy = (1.0 - sigmas) * latents + sigmas * noise
    embeds, pooled = objective.conditioning
    with torch.no_grad():
        model_pred = base.transformer(
            hidden_states=noisy,
            timestep=scheduler.timesteps[indices],
            encoder_hidden_states=embeds[rows],
            pooled_projections=pooled[rows],
            return_dict=False,
        )[0]
    model_pred = model_pred * (-sigmas) + noisy
    weighting = compute_loss_weighting_for_sd3(weighting_scheme=scheme, sigmas=sigmas)
    script = torch.mean(
        (weighting.float() * (model_pred.float() - latents.float()) ** 2).reshape(2, -1), 1
    ).mean()
    assert float(ours) == pytest.approx(float(script), rel=1e-5)
    # The conditioning is 77 + 77 CLIP tokens then 77 T5 tokens, pooled from both CLIP encoders.
    assert embeds.shape[1] == 77 + 77 and pooled.shape[1] == 2 * base.text_encoder.config.projection_dim


def test_full_finetuning_refuses_an_sd3_base_before_anything_is_written() -> None:
    method = DreamBooth(
        dataclasses.replace(DreamBooth.PRESETS["smoke"], base_model=TINY_SD3_ID), device="cpu"
    )
    with pytest.raises(BenchError, match="StableDiffusion3Pipeline layout"):
        method.check_ready()


def test_bench_run_on_tiny_sd3_and_stock_sd3_pipeline_reproduces_its_images(
    dreambench_data: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusion3Pipeline
    from PIL import Image
    from safetensors.torch import load_file

    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    out = tmp_path / "runs"
    args = [
        "run", "--method", "dreambooth-lora", "--method-preset", "sd3", "--subjects", "dog",
        "--preset", "smoke", "--method-args", "base_model=tiny-sd3,train_steps=3,render_batch_size=2",
        "--prompts", str(prompts), "--images-per-prompt", "2", "--data", str(dreambench_data),
        "--out", str(out), "--device", "cpu", "--quiet", "--keep-weights",
    ]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["calibrated"] is False
    deviation = results["render_protocol"]["deviation"]
    assert deviation["fields"] == {
        "scheduler": "flow-euler",
        "guidance": 7.0,
        "resolution": TINY_SD3_RESOLUTION,
    }
    subject = run_dir / "subjects" / "dog"
    done = json.loads((subject / "prepare" / "done.json").read_text())
    assert done["config"]["precondition_outputs"] is True and len(done["losses"]) == 3
    weights = subject / "prepare" / "weights"
    saved = load_file(weights / LORA_WEIGHTS_FILE)
    assert saved and all(k.startswith("transformer.") and ".lora_" in k for k in saved)
    assert {k.split(".lora_")[0].split(".attn.")[-1] for k in saved} == set(SD3_LORA_TARGET_MODULES)
    records = [json.loads(line) for line in (subject / "images.jsonl").read_text().splitlines()]
    assert len(records) == 2

    # docs/DREAMBOOTH.md: the base model's folder + the LoRA file in stock diffusers, one batch of 2.
    pipe = StableDiffusion3Pipeline.from_pretrained(ensure_tiny_sd3())
    pipe.load_lora_weights(weights)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe(
        [r["prompt"] for r in records],
        height=TINY_SD3_RESOLUTION,
        width=TINY_SD3_RESOLUTION,
        num_inference_steps=8,
        guidance_scale=7.0,
        generator=[torch.Generator().manual_seed(r["seed"]) for r in records],
    ).images
    for record, image in zip(records, stock, strict=True):
        ours = Image.open(subject / "images" / record["file"]).convert("RGB")
        assert ours.tobytes() == image.convert("RGB").tobytes()


@pytest.mark.parametrize(
    ("repo", "family"),
    [("black-forest-labs/FLUX.1-dev", "flux"), ("stabilityai/stable-diffusion-3-medium-diffusers", "sd3")],
)
def test_flow_bases_load_from_an_offline_hub_cache_at_their_pinned_revisions(
    repo: str, family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLUX.1-dev and SD3 medium default to their pinned commits, like SD 1.5 and SDXL: offline and
    not cached, one line naming repo@commit; cached at that commit, loaded from there and keyed by it."""
    import shutil

    import huggingface_hub.constants

    from dreambench.reference_impl.base_model import PINNED_REVISIONS
    from dreambench.reference_impl.tiny_flux import ensure_tiny_flux

    revision = PINNED_REVISIONS[repo]
    assert len(revision) == 40 and int(revision, 16) >= 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(BenchError, match=f"{repo}@{revision} is not in the local Hugging Face cache") as err:
        load_base_model(repo, device="cpu")
    assert "\n" not in str(err.value)

    snapshot = tmp_path / "hf" / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    shutil.copytree(ensure_tiny_flux() if family == "flux" else ensure_tiny_sd3(), snapshot)  # stand-ins
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    base = load_base_model(repo, device="cpu")
    assert base.family == family and base.folder == snapshot
    assert base.description["key"] == f"{repo}@{revision}" and base.description["calibrated"] is True

"""DreamBooth-LoRA on FLUX.1 (reference_impl/tiny_flux.py, tiny_t5.py, flux.py, flow_matching.py,
lora.py): the tiny FLUX.1 loads through stock diffusers and the project's loader, its T5 tokenizer
is built offline and deterministically; ``bench run`` with the ``flux`` preset on ``tiny-flux``
trains by flow matching, records the FLUX render deviation, and the saved LoRA file loads with
stock ``FluxPipeline.load_lora_weights`` and renders the run's images pixel for pixel at the
run's batch shape (the loading code docs/DREAMBOOTH.md shows)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import FLUX_REPO, is_calibrated, load_base_model
from dreambench.reference_impl.dreambooth import DreamBooth
from dreambench.reference_impl.lora import FLUX_LORA_TARGET_MODULES, LORA_WEIGHTS_FILE, DreamBoothLoRA
from dreambench.reference_impl.tiny_flux import TINY_FLUX_ID, TINY_FLUX_RESOLUTION, ensure_tiny_flux
from dreambench.reference_impl.tiny_t5 import write_t5_tokenizer

ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}


def test_tiny_flux_is_a_flux_folder_loaded_by_stock_diffusers_and_the_loader(tmp_path: Path) -> None:
    from diffusers import FluxPipeline
    from transformers import T5EncoderModel, T5Tokenizer

    folder = ensure_tiny_flux()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "FluxPipeline" and index["text_encoder_2"][1] == "T5EncoderModel"
    stock = FluxPipeline.from_pretrained(folder)
    assert stock.transformer.config.guidance_embeds
    base = load_base_model(TINY_FLUX_ID, device="cpu")
    assert base.family == "flux" and base.unet is None and isinstance(base.text_encoder_2, T5EncoderModel)
    assert type(base.pipeline()).__name__ == "FluxPipeline"
    assert not is_calibrated(TINY_FLUX_ID) and is_calibrated(FLUX_REPO)
    # The T5 tokenizer: built in code, the same every time; pads to 512 with </s> appended, no <unk>.
    write_t5_tokenizer(tmp_path / "again")
    again = T5Tokenizer.from_pretrained(tmp_path / "again")
    ids = base.tokenizer_2("a photo of sks dog", padding="max_length", max_length=512).input_ids
    assert ids == again("a photo of sks dog", padding="max_length", max_length=512).input_ids
    assert len(ids) == 512 and base.tokenizer_2.unk_token_id not in ids
    assert ids[ids.index(base.tokenizer_2.eos_token_id) + 1] == base.tokenizer_2.pad_token_id


def test_flux_preset_follows_readme_flux_and_declares_the_flux_protocol() -> None:
    flux = DreamBoothLoRA.PRESETS["flux"]
    assert flux.base_model == FLUX_REPO and not flux.prior_preservation
    assert (flux.learning_rate, flux.train_steps, flux.train_batch_size, flux.lora_rank) == (1e-4, 500, 4, 4)
    assert (flux.training_guidance, flux.weighting_scheme, flux.max_sequence_length) == (1.0, "none", 512)
    method = DreamBoothLoRA(flux, device="cpu")  # nothing downloaded to build it
    assert method.render_deviation is not None
    assert {k: v for k, v in method.render_deviation.items() if k != "reason"} == {
        "scheduler": "flow-euler",
        "steps": 28,
        "guidance": 3.5,
        "resolution": 1024,
    }


def test_full_finetuning_refuses_a_flux_base_before_anything_is_written() -> None:
    method = DreamBooth(dataclasses.replace(DreamBooth.PRESETS["smoke"], base_model=TINY_FLUX_ID), device="cpu")
    with pytest.raises(BenchError, match="FluxPipeline layout"):
        method.check_ready()


def test_bench_run_on_tiny_flux_and_stock_flux_pipeline_reproduces_its_images(
    dreambench_data: Path, tmp_path: Path
) -> None:
    from diffusers import FluxPipeline
    from PIL import Image
    from safetensors.torch import load_file

    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    out = tmp_path / "runs"
    args = [
        "run", "--method", "dreambooth-lora", "--method-preset", "flux", "--subjects", "dog",
        "--preset", "smoke", "--method-args", "base_model=tiny-flux,train_steps=3,render_batch_size=2",
        "--prompts", str(prompts), "--images-per-prompt", "2", "--data", str(dreambench_data),
        "--out", str(out), "--device", "cpu", "--quiet", "--keep-weights",
    ]  # fmt: skip
    assert main(args) == 0
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["calibrated"] is False
    deviation = results["render_protocol"]["deviation"]
    assert deviation["fields"] == {"scheduler": "flow-euler", "guidance": 3.5, "resolution": TINY_FLUX_RESOLUTION}
    subject = run_dir / "subjects" / "dog"
    weights = subject / "prepare" / "weights"
    saved = load_file(weights / LORA_WEIGHTS_FILE)
    assert saved and all(k.startswith("transformer.") and ".lora_" in k for k in saved)
    assert {k.split(".lora_")[0].split(".", 3)[-1] for k in saved} <= set(FLUX_LORA_TARGET_MODULES)
    assert any("ff_context.net.2" in k for k in saved) and any("single_transformer_blocks" in k for k in saved)
    records = [json.loads(line) for line in (subject / "images.jsonl").read_text().splitlines()]
    assert len(records) == 2

    # docs/DREAMBOOTH.md: the base model's folder + the LoRA file in stock diffusers, one batch of 2.
    pipe = FluxPipeline.from_pretrained(ensure_tiny_flux())
    pipe.load_lora_weights(weights)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe(
        [r["prompt"] for r in records],
        height=TINY_FLUX_RESOLUTION,
        width=TINY_FLUX_RESOLUTION,
        num_inference_steps=8,
        guidance_scale=3.5,
        generator=[torch.Generator().manual_seed(r["seed"]) for r in records],
    ).images
    for record, image in zip(records, stock, strict=True):
        ours = Image.open(subject / "images" / record["file"]).convert("RGB")
        assert ours.tobytes() == image.convert("RGB").tobytes()

"""random:sd15 — Stable Diffusion 1.5's architecture with seeded random weights, built locally.

The config test always runs: it builds the model on the meta device (shapes only) and compares it
with the published configs of stable-diffusion-v1-5 at the pinned revision, written out below as
an independent copy, and with SD 1.5's published parameter counts. Building the real-size folder
on a 2-core CPU takes over a minute (1.07B parameters, 4.3 GB of safetensors), so that test is
marked slow.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import (
    is_calibrated,
    load_base_model,
    load_tokenizer,
    locate_base_model,
)
from dreambench.reference_impl.random_model import (
    RandomSpec,
    build_sd15_modules,
    parse_random_spec,
    random_model_folder,
)

# unet/config.json, vae/config.json, text_encoder/config.json and scheduler/scheduler_config.json of
# stable-diffusion-v1-5/stable-diffusion-v1-5 at 451f4fe16113bff5a5d2269ed5ad43b0592e9a14 (file
# metadata such as _diffusers_version left out).
PUBLISHED_UNET = json.loads("""{
  "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
  "center_input_sample": false, "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
  "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
  "out_channels": 4, "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
}""")
PUBLISHED_VAE = json.loads("""{
  "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
  "out_channels": 3, "sample_size": 512, "scaling_factor": 0.18215,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
}""")
PUBLISHED_TEXT_ENCODER = json.loads("""{
  "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2,
  "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
  "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
  "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 12,
  "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 768, "vocab_size": 49408
}""")
PUBLISHED_SCHEDULER = json.loads("""{
  "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false,
  "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
  "trained_betas": null
}""")


def _same(ours: object, published: object) -> bool:
    if isinstance(published, list):
        return list(ours) == published  # type: ignore[call-overload]
    return ours == published


def test_sd15_configs_match_the_published_ones() -> None:
    from diffusers import PNDMScheduler

    from dreambench.reference_impl.random_model import SD15_SCHEDULER_CONFIG

    unet, vae, text_encoder = build_sd15_modules("meta", seed=0)
    for module, published in ((unet, PUBLISHED_UNET), (vae, PUBLISHED_VAE)):
        for key, value in published.items():
            assert _same(module.config[key], value), (type(module).__name__, key)
    text_config = text_encoder.config.to_dict()
    for key, value in PUBLISHED_TEXT_ENCODER.items():
        assert text_config[key] == value, key
    scheduler = PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG).config
    for key, value in PUBLISHED_SCHEDULER.items():
        assert scheduler[key] == value, key
    assert scheduler["prediction_type"] == "epsilon"
    # SD 1.5's published parameter counts: UNet, VAE, CLIP ViT-L/14 text tower.
    counts = [sum(p.numel() for p in m.parameters()) for m in (unet, vae, text_encoder)]
    assert counts == [859_520_964, 83_653_863, 123_060_480]


def test_specs_parse_and_bad_ones_name_the_valid_forms() -> None:
    assert parse_random_spec("random:sd15") == RandomSpec("sd15", 0)
    assert parse_random_spec("random:sd15:seed=7") == RandomSpec("sd15", 7)
    assert parse_random_spec("random:sd15:seed=0").ref == "random:sd15"
    for bad in ("random:sd21", "random:sd15:seed=x", "random:"):
        with pytest.raises(BenchError, match=r"valid: random:sd15, random:flux, random:sd3 \(optionally :seed=N\)"):
            parse_random_spec(bad)
    with pytest.raises(BenchError, match="valid: random:sd15"):
        locate_base_model("random:sdxl")


def test_random_models_are_uncalibrated_wherever_a_base_model_is_accepted() -> None:
    from dreambench.reference_impl.base_method import BaseModel
    from dreambench.reference_impl.dreambooth import DreamBooth

    assert not is_calibrated("random:sd15") and not is_calibrated("tiny")
    assert is_calibrated("stable-diffusion-v1-5/stable-diffusion-v1-5")
    paper = DreamBooth.PRESETS["paper"]
    assert not DreamBooth(dataclasses.replace(paper, base_model="random:sd15")).calibrated
    assert DreamBooth(paper).calibrated
    floor = BaseModel.PRESETS["paper"]
    assert not BaseModel(dataclasses.replace(floor, base_model="random:sd15:seed=1")).calibrated


def test_tokenizer_is_the_real_clip_bpe_without_building_the_weights() -> None:
    tokenizer = load_tokenizer("random:sd15")
    assert tokenizer("a sks dog").input_ids == [49406, 320, 48136, 1929, 49407]
    assert tokenizer.model_max_length == 77
    assert not random_model_folder(RandomSpec("sd15", 0)).exists()


@pytest.mark.slow
def test_sd15_builds_once_and_loads_at_real_size_on_cpu() -> None:
    from PIL import Image

    from dreambench.reference_impl.latent_cache import encode_images

    folder, description = locate_base_model("random:sd15", device="cpu")
    assert description["source"] == "random" and description["calibrated"] is False
    assert description["initialised_on"] == "cpu" and description["key"].startswith("random:sd15@")
    marker = folder / "dreambench_random.json"
    built = marker.stat().st_mtime_ns
    assert locate_base_model("random:sd15", device="cpu") == (folder, description)  # cached
    assert marker.stat().st_mtime_ns == built
    model = load_base_model("random:sd15", device="cpu")  # the from_pretrained path real weights take
    assert model.description == description
    assert sum(p.numel() for p in model.unet.parameters()) == 859_520_964
    assert model.unet.config.sample_size * model.pipeline().vae_scale_factor == 512
    latents = encode_images(model.vae, [Image.new("RGB", (600, 512), (90, 120, 30))], 512, "cpu")
    assert tuple(latents.mean.shape) == (1, 4, 64, 64)
    assert Path(description["path"]) == folder

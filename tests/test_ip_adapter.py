"""IP-Adapter (reference_impl/ip_adapter.py): the tiny random adapter in the published h94 layout
loads through stock diffusers' ``load_ip_adapter``; images follow the subject's reference images
and the seed; several references are one list or their mean; missing or mismatched weights fail
before anything is written; ``bench run`` loads the model once for all subjects and records kind,
consumed images and the adapter's provenance."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_dreambooth import make_subject

import dreambench.reference_impl.ip_adapter as ip_adapter_module
from dreambench.cli import main
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError
from dreambench.method import RunContext
from dreambench.reference_impl.base_model import locate_base_model
from dreambench.reference_impl.ip_adapter import IPAdapter, image_prompt_embeds
from dreambench.reference_impl.ip_adapter_weights import AdapterFiles, locate_ip_adapter
from dreambench.reference_impl.random_model import SD15_UNET_CONFIG
from dreambench.reference_impl.tiny_ip_adapter import cross_attention_layers, published_keys

SMOKE = RunContext("cpu", run_preset="smoke")
PROMPT = "a dog on the beach"
ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}


def png(image: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # type: ignore[attr-defined]
    return buffer.getvalue()


@pytest.fixture(scope="module")
def subjects(dreambench_data: Path) -> dict[str, Subject]:
    return {
        "dog": make_subject(dreambench_data, "dog", "dog", ["00.jpg", "01.jpg"]),
        "can": make_subject(dreambench_data, "can", "can", ["00.jpg", "01.jpg"]),
    }


@pytest.fixture(scope="module")
def method() -> IPAdapter:
    """The smoke preset (tiny SD + tiny IP-Adapter), set up as the harness does, 2 images per call."""
    built = IPAdapter(dataclasses.replace(IPAdapter.PRESETS["smoke"], render_batch_size=2))
    built.setup(SMOKE)
    return built


def _unet(config: dict) -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel(**config)


def test_published_key_names_for_sd15() -> None:
    # h94/IP-Adapter models/ip-adapter_sd15.safetensors: the image projection plus to_k_ip/to_v_ip of
    # SD 1.5's 16 cross-attention layers, numbered 1, 3, ..., 31 (ModuleList(attn_processors)).
    keys = published_keys(_unet(SD15_UNET_CONFIG))
    expected = [f"image_proj.{k}" for k in ("proj.weight", "proj.bias", "norm.weight", "norm.bias")]
    expected += [f"ip_adapter.{n}.to_{kv}_ip.weight" for n in range(1, 32, 2) for kv in ("k", "v")]
    assert keys == expected
    # The published file's header: ip_adapter.1.to_k_ip.weight [320, 768] (layer width, cross dim).
    layers = cross_attention_layers(_unet(SD15_UNET_CONFIG))
    assert layers[0][0] == 1 and layers[0][2:] == (320, 768)


def test_tiny_adapter_has_the_published_layout_and_loads_through_stock_diffusers(method: IPAdapter) -> None:
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0
    from transformers import CLIPVisionModelWithProjection

    base_folder, base = locate_base_model("tiny")
    folder, description = locate_ip_adapter("tiny", "", AdapterFiles(), base_folder, base["key"])
    assert description["source"] == "tiny" and description["calibrated"] is False
    weights = folder / "models" / "ip-adapter_sd15.safetensors"
    assert (folder / "models" / "image_encoder" / "config.json").is_file()
    assert (folder / "models" / "image_encoder" / "model.safetensors").is_file()
    state = load_file(weights)
    tiny_unet_config = json.loads((base_folder / "unet" / "config.json").read_text())
    tiny_unet_config = {k: v for k, v in tiny_unet_config.items() if not k.startswith("_")}
    assert sorted(state) == sorted(published_keys(_unet(tiny_unet_config)))  # safetensors sorts names
    assert state["ip_adapter.1.to_k_ip.weight"].shape[1] == tiny_unet_config["cross_attention_dim"]

    pipe = StableDiffusionPipeline.from_pretrained(
        base_folder, safety_checker=None, requires_safety_checker=False
    )
    pipe.load_ip_adapter(str(folder), subfolder="models", weight_name="ip-adapter_sd15.safetensors")
    assert isinstance(pipe.image_encoder, CLIPVisionModelWithProjection)
    # The method's pipeline went through the same loader: both hold the file's tensors.
    for unet in (pipe.unet, method._require_loaded().pipe.unet):
        for index, (name, processor) in enumerate(unet.attn_processors.items()):
            if not name.endswith("attn2.processor"):
                continue
            assert isinstance(processor, (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0)), name
            assert torch.equal(processor.to_k_ip[0].weight, state[f"ip_adapter.{index}.to_k_ip.weight"])
            assert torch.equal(processor.to_v_ip[0].weight, state[f"ip_adapter.{index}.to_v_ip.weight"])
        projection = unet.encoder_hid_proj.image_projection_layers[0]
        assert torch.equal(projection.image_embeds.weight, state["image_proj.proj.weight"])


def test_images_follow_the_reference_images_and_the_seed(
    method: IPAdapter, subjects: dict[str, Subject]
) -> None:
    def image(name: str, seed: int = 7) -> bytes:
        return png(method.generate(subjects[name], Path("unused"), [PROMPT], [seed])[0])

    dog = image("dog")
    assert image("dog") == dog  # deterministic per seed
    assert image("can") != dog  # same prompt and seed, other reference images
    assert image("dog", seed=8) != dog
    # Control: with the adapter's scale at 0 the image prompt has no say, so the subjects agree.
    pipe = method._require_loaded().pipe
    pipe.set_ip_adapter_scale(0.0)
    try:
        assert image("dog") == image("can")
    finally:
        pipe.set_ip_adapter_scale(method.config.scale)


def test_several_references_are_one_list_of_tokens_or_their_mean(
    method: IPAdapter, subjects: dict[str, Subject]
) -> None:
    from dreambench.dataset.images import load_image

    pipe = method._require_loaded().pipe
    references = [load_image(p) for p in subjects["dog"].image_paths]
    tokens = image_prompt_embeds(pipe, references, "tokens", 7.5, "cpu")[0]
    mean = image_prompt_embeds(pipe, references, "mean", 7.5, "cpu")[0]
    width = pipe.image_encoder.config.projection_dim
    # [unconditional; conditional] x images x embedding width; the unconditional embeddings are zero.
    assert tokens.shape == (2, 2, width) and mean.shape == (2, 1, width)
    assert torch.count_nonzero(tokens[0]) == 0 and not torch.equal(tokens[1, 0], tokens[1, 1])
    assert torch.allclose(mean, tokens.mean(dim=1, keepdim=True))
    no_guidance = image_prompt_embeds(pipe, references, "tokens", 1.0, "cpu")[0]
    assert torch.equal(no_guidance, tokens[1:])


def test_consumed_images_are_the_first_max_references(subjects: dict[str, Subject]) -> None:
    dog = subjects["dog"]
    every = IPAdapter(IPAdapter.PRESETS["smoke"])
    first = IPAdapter(dataclasses.replace(IPAdapter.PRESETS["smoke"], max_references=1))
    assert every.consumed_images(dog) == list(dog.image_paths)
    assert first.consumed_images(dog) == [dog.image_paths[0]]
    assert every.calibrated is False and IPAdapter(IPAdapter.PRESETS["paper"]).calibrated is True


def _write_adapter(folder: Path, cross_dim: int, projection_dim: int) -> None:
    """A (not loadable, header-only useful) adapter folder in the published layout."""
    (folder / "models" / "image_encoder").mkdir(parents=True)
    save_file(
        {
            "image_proj.proj.weight": torch.zeros(4 * cross_dim, projection_dim),
            "ip_adapter.1.to_k_ip.weight": torch.zeros(320, cross_dim),
        },
        str(folder / "models" / "ip-adapter_sd15.safetensors"),
    )
    (folder / "models" / "image_encoder" / "config.json").write_text(
        json.dumps({"projection_dim": projection_dim})
    )
    (folder / "models" / "image_encoder" / "model.safetensors").write_bytes(b"")


def test_mismatched_or_incomplete_adapters_are_refused_before_loading(tmp_path: Path) -> None:
    smoke = IPAdapter.PRESETS["smoke"]
    sd15 = tmp_path / "sd15"
    _write_adapter(sd15, cross_dim=768, projection_dim=1024)
    with pytest.raises(BenchError, match="cross-attention dim 768, the base model's is 32") as info:
        IPAdapter(dataclasses.replace(smoke, adapter=str(sd15))).check_ready()
    assert "\n" not in str(info.value) and "ip-adapter_sdxl.safetensors" in str(info.value)
    (sd15 / "models" / "ip-adapter_sd15.safetensors").unlink()
    with pytest.raises(BenchError, match="has no models/ip-adapter_sd15.safetensors"):
        IPAdapter(dataclasses.replace(smoke, adapter=str(sd15))).check_ready()
    wrong_encoder = tmp_path / "wrong-encoder"
    _write_adapter(wrong_encoder, cross_dim=32, projection_dim=24)
    (wrong_encoder / "models" / "image_encoder" / "config.json").write_text(
        json.dumps({"projection_dim": 1280})
    )
    with pytest.raises(BenchError, match="image embeddings of width 24 but the encoder .* gives 1280"):
        IPAdapter(dataclasses.replace(smoke, adapter=str(wrong_encoder))).check_ready()


def _run(prompts: Path, data: Path, out: Path, subjects: str, *extra: str) -> int:
    return main(
        [
            "run",
            "--method",
            "ip-adapter",
            "--subjects",
            subjects,
            "--prompts",
            str(prompts),
            "--images-per-prompt",
            "1",
            "--data",
            str(data),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
            *extra,
        ]
    )


def test_missing_hub_weights_fail_before_anything_is_written(
    dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    out = tmp_path / "runs"
    code = _run(
        prompts,
        dreambench_data,
        out,
        "dog",
        "--preset",
        "smoke",
        "--method-preset",
        "paper",
        "--method-args",
        "base_model=tiny",
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert "h94/IP-Adapter@" in err and "hf download h94/IP-Adapter models/ip-adapter_sd15.safetensors" in err
    assert not out.exists()


def test_bench_run_loads_once_for_every_subject_and_records_the_image_prompt(
    dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    real_load = ip_adapter_module.load_ip_adapter_pipeline

    def counting_load(config: IPAdapter.Config, device: str) -> ip_adapter_module.LoadedIPAdapter:
        loads.append(device)
        return real_load(config, device)

    monkeypatch.setattr(ip_adapter_module, "load_ip_adapter_pipeline", counting_load)
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    out = tmp_path / "runs"
    args = ("--preset", "smoke", "--method-args", "render_batch_size=1")
    assert _run(prompts, dreambench_data, out, "dog,can", *args) == 0
    assert loads == ["cpu"]  # one model for both subjects

    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    run = results["run"]
    assert run["method"] == "ip-adapter" and run["method_kind"] == "encoder"
    assert run["method_config"]["adapter"] == "tiny" and run["method_config"]["combine"] == "tokens"
    assert results["calibrated"] is False
    assert any("ip-adapter" in reason for reason in results["uncalibrated_reasons"])
    for name in ("dog", "can"):
        subject = results["subjects"][name]
        assert subject["identifier"] == ""
        assert subject["images_consumed"] == subject["images_scored_against"] != []
        record = json.loads((run_dir / "subjects" / name / "prepare" / "ip_adapter.json").read_text())
        assert record["references"] == subject["images_consumed"]
        assert record["adapter"]["source"] == "tiny" and len(record["adapter"]["weight_sha256"]) == 64
        assert len(list((run_dir / "subjects" / name / "images").glob("*.png"))) == 1


# SDXL base 1.0's UNet (stabilityai/stable-diffusion-xl-base-1.0, unet/config.json): 70
# cross-attention layers (transformer depths 2 and 10 in the down path, 10 in the middle, 10 and 2
# in the up path), cross-attention dim 2048.
SDXL_UNET_CONFIG = {
    "sample_size": 128,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}


def test_published_key_names_for_sdxl() -> None:
    # h94/IP-Adapter sdxl_models/ip-adapter_sdxl.safetensors: the projection plus to_k_ip/to_v_ip of
    # SDXL's 70 cross-attention layers, numbered 1, 3, ..., 139 as diffusers' loader counts them.
    keys = published_keys(_unet(SDXL_UNET_CONFIG))
    layers = [k for k in keys if k.endswith("to_k_ip.weight")]
    assert layers == [f"ip_adapter.{n}.to_k_ip.weight" for n in range(1, 140, 2)]
    assert len(keys) == 4 + 2 * 70
    # Shapes as the published file's header lists them: ip_adapter.1.to_k_ip.weight [640, 2048],
    # ip_adapter.101.to_k_ip.weight [1280, 2048] (width of the layer, cross-attention dim).
    widths = {
        index: (width, cross) for index, _, width, cross in cross_attention_layers(_unet(SDXL_UNET_CONFIG))
    }
    assert widths[1] == (640, 2048) and widths[101] == (1280, 2048)


@pytest.mark.slow
def test_sdxl_adapter_loads_through_stock_diffusers_and_runs_through_bench_run(
    dreambench_data: Path, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionXLPipeline
    from diffusers.models.attention_processor import IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0
    from PIL import Image

    from dreambench.reference_impl.tiny_sdxl import TINY_SDXL_ID, TINY_SDXL_RESOLUTION

    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    out = tmp_path / "runs"
    overrides = f"base_model={TINY_SDXL_ID},adapter=tiny,mixed_precision=no,render_batch_size=1"
    args = ("--preset", "smoke", "--method-preset", "sdxl", "--method-args", overrides)
    assert _run(prompts, dreambench_data, out, "dog", *args) == 0

    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    config = results["run"]["method_config"]
    assert (config["base_model"], config["adapter_subfolder"], config["weight_name"]) == (
        TINY_SDXL_ID,
        "sdxl_models",
        "ip-adapter_sdxl.safetensors",
    )
    assert results["calibrated"] is False
    deviation = results["render_protocol"]["deviation"]
    assert deviation["fields"] == {"resolution": TINY_SDXL_RESOLUTION} and "SDXL" in deviation["reason"]
    (image,) = (run_dir / "subjects" / "dog" / "images").glob("*.png")
    assert Image.open(image).size == (TINY_SDXL_RESOLUTION, TINY_SDXL_RESOLUTION)
    record = json.loads((run_dir / "subjects" / "dog" / "prepare" / "ip_adapter.json").read_text())
    adapter = record["adapter"]
    assert adapter["weight_file"] == "sdxl_models/ip-adapter_sdxl.safetensors"
    assert adapter["image_encoder"] == "sdxl_models/image_encoder"

    # The tiny adapter the run used, in the published SDXL layout, loads through stock diffusers.
    folder = Path(adapter["path"])
    state = load_file(folder / adapter["weight_file"])
    pipe = StableDiffusionXLPipeline.from_pretrained(locate_base_model(TINY_SDXL_ID)[0])
    pipe.load_ip_adapter(str(folder), subfolder="sdxl_models", weight_name="ip-adapter_sdxl.safetensors")
    crossing = 0
    for index, (name, processor) in enumerate(pipe.unet.attn_processors.items()):
        if name.endswith("attn2.processor"):
            crossing += 1
            assert isinstance(processor, (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0)), name
            assert torch.equal(processor.to_k_ip[0].weight, state[f"ip_adapter.{index}.to_k_ip.weight"])
    assert crossing == len([k for k in state if k.endswith("to_v_ip.weight")]) > 0
    assert torch.equal(
        pipe.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.weight,
        state["image_proj.proj.weight"],
    )


def test_sdxl_preset_names_the_published_sdxl_adapter_and_the_native_resolution() -> None:
    sdxl = IPAdapter.PRESETS["sdxl"]
    assert sdxl.base_model == "stabilityai/stable-diffusion-xl-base-1.0" and sdxl.scale == 0.5
    assert (sdxl.adapter, sdxl.adapter_subfolder, sdxl.weight_name, sdxl.image_encoder_folder) == (
        "h94/IP-Adapter",
        "sdxl_models",
        "ip-adapter_sdxl.safetensors",
        "image_encoder",
    )
    method = IPAdapter(sdxl)  # nothing is loaded to build it
    assert method.calibrated and method.render_deviation["resolution"] == 1024
    assert IPAdapter(IPAdapter.PRESETS["paper"]).render_deviation is None

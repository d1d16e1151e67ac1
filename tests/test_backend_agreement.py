"""Same weights, two backends, same embeddings: timm vs transformers (DINO), open_clip vs transformers (CLIP).

The transformers smoke weights are converted from the timm / open_clip smoke weights by
metrics/convert.py, so this also checks the conversion (the path a user with one format takes)
and that both backends see identical pixels through the embedder-owned preprocessing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreambench.dataset.images import load_image
from dreambench.metrics.clip import CLIP_BACKENDS
from dreambench.metrics.convert import open_clip_to_hf, timm_dino_to_hf
from dreambench.metrics.dino import DINO_BACKENDS
from dreambench.metrics.weights import WeightsSource, resolve_weights

MAX_COSINE_DISTANCE = 1e-4
PROMPTS = [
    "a dog in the snow",
    "a clock on top of a wooden floor",
    "a photo of a red backpack with a city in the background, 4k!",
    "A  Cube   shaped dog",
]


@pytest.fixture(scope="module")
def images(dreambench_data: Path) -> list[Image.Image]:
    root = dreambench_data / "dataset"
    paths = [
        *sorted((root / "dog6").glob("*.jpg"))[:2],
        *sorted((root / "backpack").glob("*.jpg"))[:2],
        *sorted((root / "vase").glob("*.jpg"))[:2],
    ]
    assert len(paths) == 6
    return [load_image(p) for p in paths]


def _embedder(kind: str, backend: str):
    backends = {"dino": DINO_BACKENDS, "clip": CLIP_BACKENDS}[kind]
    return backends[backend].load(resolve_weights(kind, backend, WeightsSource.smoke()), device="cpu")


def _assert_agree(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    distance = 1.0 - np.einsum("nd,nd->n", a.astype(np.float64), b.astype(np.float64))
    assert distance.max() < MAX_COSINE_DISTANCE, distance


def _assert_inputs_are_told_apart(x: np.ndarray) -> None:
    sims = x @ x.T
    assert sims[~np.eye(len(x), dtype=bool)].max() < 0.999


def test_dino_timm_and_transformers_agree(images: list[Image.Image]) -> None:
    timm_emb, hf_emb = _embedder("dino", "timm"), _embedder("dino", "transformers")
    assert timm_emb.id.sha256 != hf_emb.id.sha256  # different files on disk ...
    a, b = timm_emb.embed_images(images), hf_emb.embed_images(images)
    _assert_agree(a, b)  # ... holding the same network
    _assert_inputs_are_told_apart(a)


def test_clip_open_clip_and_transformers_agree_on_images_and_texts(images: list[Image.Image]) -> None:
    oc, hf = _embedder("clip", "open_clip"), _embedder("clip", "transformers")
    # Same tokens from both tokenizers (the HF vocabulary was built from open_clip's BPE table).
    oc_tokens = oc.tokenizer(PROMPTS)
    hf_tokens = hf.tokenizer(PROMPTS)["input_ids"]
    for row, ids in zip(oc_tokens, hf_tokens):
        assert row[: len(ids)].tolist() == ids
    a, b = oc.embed_images(images), hf.embed_images(images)
    _assert_agree(a, b)
    _assert_inputs_are_told_apart(a)
    ta, tb = oc.embed_texts(PROMPTS), hf.embed_texts(PROMPTS)
    _assert_agree(ta, tb)
    _assert_inputs_are_told_apart(ta)


def _dino_variant_weights(kind: str, arch: str, tmp: Path) -> dict[str, WeightsSource]:
    """Local timm and transformers weights of one network, the latter converted from the former.

    DINOv2's LayerScale starts at 1e-5, which would let random blocks hide a wrong conversion of
    attention or MLP weights; the test file scales it to 0.5 so every block shapes the embedding."""
    from dreambench.metrics.convert import (
        load_state_dict_file,
        save_state_dict_file,
        write_hf_dino_folder,
        write_hf_dinov2_folder,
    )
    from dreambench.metrics.smoke_weights import ensure_smoke_weights

    state = load_state_dict_file(ensure_smoke_weights(kind, "timm"))
    state = {k: torch.full_like(v, 0.5) if k.endswith((".ls1.gamma", ".ls2.gamma")) else v for k, v in state.items()}
    timm_file = tmp / f"{kind}-timm.safetensors"
    save_state_dict_file(state, timm_file)
    if kind.startswith("dinov2"):
        folder = write_hf_dinov2_folder(timm_file, tmp / f"{kind}-hf", arch)
    else:
        folder = write_hf_dino_folder(timm_file, tmp / f"{kind}-hf", patch_size=8)
    return {"timm": WeightsSource.local(timm_file), "transformers": WeightsSource.local(folder)}


@pytest.mark.parametrize(
    ("kind", "arch"),
    [("dino-s8", "ViT-S/8"), ("dinov2-s14", "DINOv2 ViT-S/14"), ("dinov2-b14", "DINOv2 ViT-B/14")],
)
def test_other_dino_networks_timm_and_transformers_agree(
    images: list[Image.Image], tmp_path: Path, kind: str, arch: str
) -> None:
    sources = _dino_variant_weights(kind, arch, tmp_path)
    embedders = {
        backend: DINO_BACKENDS[backend].load(resolve_weights(kind, backend, source), device="cpu", arch=arch)
        for backend, source in sources.items()
    }
    assert embedders["timm"].id.arch == embedders["transformers"].id.arch == arch
    a, b = embedders["timm"].embed_images(images), embedders["transformers"].embed_images(images)
    _assert_agree(a, b)
    _assert_inputs_are_told_apart(a)


def test_dinov2_position_resampling_is_transformers_own_rule(images: list[Image.Image], tmp_path: Path) -> None:
    """Our once-at-load resampling of the 37x37 position grid to 16x16 gives what transformers'
    Dinov2Model computes itself when handed 224 px pixels (the code DreamBench++ runs)."""
    from transformers import Dinov2Model

    sources = _dino_variant_weights("dinov2-s14", "DINOv2 ViT-S/14", tmp_path)
    folder = resolve_weights("dinov2-s14", "transformers", sources["transformers"])
    ours = DINO_BACKENDS["transformers"].load(folder, device="cpu", arch="DINOv2 ViT-S/14")
    stock = Dinov2Model.from_pretrained(str(folder.path)).eval()
    assert stock.config.image_size == 518  # interpolates in its forward pass
    with torch.inference_mode():
        cls = stock(pixel_values=ours.preprocess(images)).last_hidden_state[:, 0]
    reference = torch.nn.functional.normalize(cls, dim=-1).numpy()
    _assert_agree(ours.embed_images(images), reference)


def test_timm_dinov2_conversion_maps_layer_scale_and_adds_the_mask_token() -> None:
    from dreambench.metrics.convert import timm_dinov2_to_hf

    sd = {k: v for k, v in _tiny_timm_dino().items()}
    sd["blocks.0.ls1.gamma"], sd["blocks.0.ls2.gamma"] = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    out = timm_dinov2_to_hf(sd)
    assert out["encoder.layer.0.layer_scale1.lambda1"].tolist() == [1.0, 2.0]
    assert out["encoder.layer.0.layer_scale2.lambda1"].tolist() == [3.0, 4.0]
    assert out["encoder.layer.0.attention.attention.key.weight"].tolist() == [[4.0, 5.0], [6.0, 7.0]]
    assert out["embeddings.mask_token"].shape == (1, 2) and not out["embeddings.mask_token"].any()
    with pytest.raises(ValueError, match="unconverted timm DINOv2 keys"):
        timm_dinov2_to_hf({**sd, "head.weight": torch.zeros(1)})


def _tiny_timm_dino() -> dict[str, torch.Tensor]:
    """A one-block, width-2 state dict in timm's ViT layout (shapes only matter for the key mapping)."""
    sd = {
        "cls_token": torch.zeros(1, 1, 2),
        "pos_embed": torch.zeros(1, 2, 2),
        "patch_embed.proj.weight": torch.zeros(2, 3, 1, 1),
        "patch_embed.proj.bias": torch.zeros(2),
        "norm.weight": torch.ones(2),
        "norm.bias": torch.zeros(2),
        "blocks.0.attn.qkv.weight": torch.arange(12.0).reshape(6, 2),
        "blocks.0.attn.qkv.bias": torch.arange(6.0),
    }
    for name, shape in {
        "attn.proj": (2, 2),
        "norm1": (2,),
        "norm2": (2,),
        "mlp.fc1": (4, 2),
        "mlp.fc2": (2, 4),
    }.items():
        sd[f"blocks.0.{name}.weight"] = torch.ones(shape)
        sd[f"blocks.0.{name}.bias"] = torch.zeros(shape[0])
    return sd


def test_timm_dino_conversion_splits_qkv_in_order_and_refuses_leftovers() -> None:
    out = timm_dino_to_hf(_tiny_timm_dino())
    prefix = "encoder.layer.0.attention.attention."
    assert out[prefix + "query.weight"].tolist() == [[0.0, 1.0], [2.0, 3.0]]
    assert out[prefix + "key.weight"].tolist() == [[4.0, 5.0], [6.0, 7.0]]
    assert out[prefix + "value.bias"].tolist() == [4.0, 5.0]
    assert "layernorm.weight" in out and "embeddings.cls_token" in out
    with pytest.raises(ValueError, match="unconverted timm DINO keys"):
        timm_dino_to_hf({**_tiny_timm_dino(), "head.weight": torch.zeros(1)})
    with pytest.raises(KeyError):
        open_clip_to_hf({"visual.proj": torch.zeros(2, 2)})


# The published preprocessor configs (preprocessor_config.json of facebook/dinov2-small and of
# openai/clip-vit-base-patch32), the processors DreamBench++ and most papers run through transformers.
DINOV2_SMALL_PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "resample": 3,
    "rescale_factor": 1 / 255,
    "size": {"shortest_edge": 256},
}
CLIP_B32_PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": {"shortest_edge": 224},
}


def _pil_processors() -> tuple[type, type]:
    """transformers' PIL-backed image processors: the only ones before transformers 5, kept there
    beside the new default (a torchvision tensor backend) as ``*ImageProcessorPil``."""
    try:
        from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    except ImportError:  # transformers < 5: the PIL processors are the plain classes
        from transformers import BitImageProcessor as BitImageProcessorPil
        from transformers import CLIPImageProcessor as CLIPImageProcessorPil
    return BitImageProcessorPil, CLIPImageProcessorPil


def test_preprocessing_is_transformers_pil_processors_bit_for_bit(images: list[Image.Image]) -> None:
    """The DINO-type transform (shorter side 256 bicubic, centre crop 224, ImageNet mean/std; the
    dinov2 and dreambench-plus presets' DINOv2, DreamBench++'s DINO v1) equals BitImageProcessor with
    facebook/dinov2-small's config, and the CLIP transform equals CLIPImageProcessor with
    openai/clip-vit-base-patch32's, pixel for pixel, on the dataset's photos (all square, as are
    rendered images) and on a portrait crop.

    One known difference, on some non-square images: when the resized long side minus 224 is odd,
    the crop's offset is half-integer; torchvision (dreambench, timm, open_clip) rounds it half to
    even, transformers floors it, so the two crops are one pixel apart (the landscape crop below:
    801 x 600 -> 299 x 224 for CLIP, offset 37.5 -> 38 against 37)."""
    from dreambench.metrics.clip import clip_transform
    from dreambench.metrics.dino import dino_transform

    landscape, portrait = images[0].crop((0, 100, 801, 700)), images[1].crop((50, 0, 650, 901))
    photos = [*images, portrait, landscape]
    bit, clip = _pil_processors()
    for name, ours, theirs in (
        ("dino", dino_transform(), bit(**DINOV2_SMALL_PREPROCESSOR)),
        ("clip", clip_transform(), clip(**CLIP_B32_PREPROCESSOR)),
    ):
        mine = torch.stack([ours(im) for im in photos])
        reference = theirs(photos, return_tensors="pt")["pixel_values"]
        assert mine.shape == reference.shape == (len(photos), 3, 224, 224)
        assert torch.equal(mine[:-1], reference[:-1]), name
        if name == "dino":  # 801 x 600 -> 341 x 256: offset 58.5 rounds to 58 both ways
            assert torch.equal(mine[-1], reference[-1])
        else:  # offset 37.5: 38 against 37, the same pixels one column apart
            assert not torch.equal(mine[-1], reference[-1])
            assert torch.equal(mine[-1][..., :-1], reference[-1][..., 1:])

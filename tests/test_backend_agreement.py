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

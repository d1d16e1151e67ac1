"""A tiny random IP-Adapter in the published h94/IP-Adapter file layout, matched to a base model.

``ensure_tiny_ip_adapter(base_folder, base_key, seed, weight_path, encoder_path)`` builds (once) seeded random
weights for the IP-Adapter of the base model in ``base_folder`` (a diffusers folder: the embedded
tiny SD, ``tiny-sdxl``, ``random:sd15``, ...) and saves them exactly as
https://huggingface.co/h94/IP-Adapter lays out its adapters, at the paths it is given (the
SD 1.5 adapter's by default; ``sdxl_models/ip-adapter_sdxl.safetensors`` +
``sdxl_models/image_encoder`` for the SDXL one)::

    <cache_root>/models/tiny-ip-adapter-v<build>-seed<seed>-<base and layout digest>/
        models/ip-adapter_sd15.safetensors    image_proj.* + ip_adapter.<n>.to_{k,v}_ip.weight
        models/image_encoder/                 CLIPVisionModelWithProjection (config.json, model.safetensors)
        dreambench_tiny_ip_adapter.json       build record, written last (the done marker)

It is then loaded through the same ``pipe.load_ip_adapter(folder, subfolder, weight_name,
image_encoder_folder)`` call as the real weights (reference_impl/ip_adapter.py). Everything it
produces is uncalibrated: the weights are random.

Key names and shapes follow the original implementation
(https://github.com/tencent-ailab/IP-Adapter, ip_adapter/ip_adapter.py): ``image_proj`` is its
``ImageProjModel`` (``proj``: Linear(image embed dim -> 4 x cross-attention dim), ``norm``:
LayerNorm(cross-attention dim)); ``ip_adapter`` is the state dict of
``ModuleList(unet.attn_processors.values())``, so the n-th attention processor of the UNet (in
``attn_processors`` order) owns keys ``ip_adapter.<n>.to_k_ip.weight`` / ``to_v_ip.weight``
(Linear(cross-attention dim -> the layer's width), no bias) when it is a cross-attention layer
(``attn2``); self-attention processors hold no weights, hence the odd numbers 1, 3, ..., 31 for
SD 1.5's 16 cross-attention layers. diffusers reads them back in the same order
(``UNet2DConditionLoadersMixin._convert_ip_adapter_attn_to_diffusers``, diffusers/loaders/unet.py,
counts ``key_id`` 1, 3, 5, ... over the cross-attention processors). SDXL's UNet has the same
attn1/attn2 alternation inside every transformer block, so its published file (70 cross-attention
layers in SDXL base 1.0) follows the same numbering.

The image encoder is a CLIP vision tower far smaller than the real one (OpenCLIP ViT-H/14,
projection dim 1024): 32 px input, 8 px patches, 2 layers of width 32, projection dim 24 (not the
cross-attention dim 32, so a mix-up of the two would fail to load).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.atomic import atomic_directory
from dreambench.cache_root import cache_root
from dreambench.reference_impl.base_model import quiet_loading

if TYPE_CHECKING:
    import torch
    from diffusers import UNet2DConditionModel

TINY_ADAPTER_ID = "tiny"
"""The adapter reference that selects this builder (``adapter="tiny"`` in ip-adapter's config)."""

# The published SD 1.5 names (https://huggingface.co/h94/IP-Adapter/tree/main/models).
SD15_SUBFOLDER = "models"
SD15_WEIGHT_NAME = "ip-adapter_sd15.safetensors"
IMAGE_ENCODER_FOLDER = "image_encoder"
BUILD_RECORD = "dreambench_tiny_ip_adapter.json"

# Bump when the build changes (configs, initialisation, layout): the folder name carries it.
_BUILD_VERSION = 1

# IP-Adapter (non-Plus) projects one CLIP image embedding to 4 extra context tokens
# (ImageProjModel(clip_extra_context_tokens=4) in the original code; num_image_text_embeds = 4 in
# diffusers' _convert_ip_adapter_image_proj_to_diffusers).
NUM_TOKENS = 4

TINY_IMAGE_ENCODER_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": 24,
}


def cross_attention_layers(unet: UNet2DConditionModel) -> list[tuple[int, str, int, int]]:
    """``(key index, processor name, width, cross-attention dim)`` of every cross-attention layer,
    in the order (and with the indices) of the published ``ip_adapter.<n>`` keys."""
    layers = []
    for index, name in enumerate(unet.attn_processors):
        if not name.endswith("attn2.processor"):
            continue
        attention = unet.get_submodule(name[: -len(".processor")])
        layers.append((index, name, attention.to_k.out_features, attention.to_k.in_features))
    return layers


def published_keys(unet: UNet2DConditionModel) -> list[str]:
    """The tensor names an IP-Adapter (non-Plus) file for ``unet`` holds (projection, then layers in UNet order)."""
    keys = [f"image_proj.{k}" for k in ("proj.weight", "proj.bias", "norm.weight", "norm.bias")]
    for index, _, _, _ in cross_attention_layers(unet):
        keys += [f"ip_adapter.{index}.to_k_ip.weight", f"ip_adapter.{index}.to_v_ip.weight"]
    return keys


def random_ip_adapter_state_dict(
    unet: UNet2DConditionModel, image_embed_dim: int, seed: int
) -> dict[str, torch.Tensor]:
    """Seeded random IP-Adapter weights for ``unet`` under the published key names (fp32, CPU).

    Initialised as the untrained modules would be (PyTorch's Linear / LayerNorm defaults); the
    caller's global RNG state is left as it was.
    """
    import torch

    layers = cross_attention_layers(unet)
    cross_dims = {cross for _, _, _, cross in layers}
    if len(cross_dims) != 1:
        raise ValueError(
            f"the UNet's cross-attention layers disagree on their context width: {sorted(cross_dims)}"
        )
    (cross_dim,) = cross_dims
    state: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        proj = torch.nn.Linear(image_embed_dim, NUM_TOKENS * cross_dim)
        norm = torch.nn.LayerNorm(cross_dim)
        state |= {
            "image_proj.proj.weight": proj.weight,
            "image_proj.proj.bias": proj.bias,
            "image_proj.norm.weight": norm.weight,
            "image_proj.norm.bias": norm.bias,
        }
        for index, _, width, cross in layers:
            for name in ("to_k_ip", "to_v_ip"):
                state[f"ip_adapter.{index}.{name}.weight"] = torch.nn.Linear(cross, width, bias=False).weight
    return {k: v.detach().contiguous() for k, v in state.items()}


SD15_WEIGHT_PATH = f"{SD15_SUBFOLDER}/{SD15_WEIGHT_NAME}"
SD15_ENCODER_PATH = f"{SD15_SUBFOLDER}/{IMAGE_ENCODER_FOLDER}"


def tiny_ip_adapter_folder(
    base_key: str, seed: int = 0, weight_path: str = SD15_WEIGHT_PATH, encoder_path: str = SD15_ENCODER_PATH
) -> Path:
    """Where ``ensure_tiny_ip_adapter`` keeps the adapter for the base model keyed ``base_key``
    with its files at ``weight_path`` / ``encoder_path`` (another base model or layout gets another
    folder; the SD 1.5 layout keeps the name it always had)."""
    sd15 = (weight_path, encoder_path) == (SD15_WEIGHT_PATH, SD15_ENCODER_PATH)
    named = base_key if sd15 else f"{base_key}\0{weight_path}\0{encoder_path}"
    digest = hashlib.sha256(named.encode()).hexdigest()[:12]
    return cache_root() / "models" / f"tiny-ip-adapter-v{_BUILD_VERSION}-seed{seed}-{digest}"


def ensure_tiny_ip_adapter(
    base_folder: Path,
    base_key: str,
    seed: int = 0,
    weight_path: str = SD15_WEIGHT_PATH,
    encoder_path: str = SD15_ENCODER_PATH,
) -> Path:
    """Build the tiny IP-Adapter for the base model in ``base_folder`` unless it exists; return its folder.

    ``base_key`` is the base model's cache key (``locate_base_model``'s ``description["key"]``):
    another base model gets another folder. ``weight_path`` / ``encoder_path`` are where the
    adapter file and the image encoder go (``AdapterFiles.weight_path`` / ``encoder_path``). Built
    in a temporary sibling and renamed into place.
    """
    folder = tiny_ip_adapter_folder(base_key, seed, weight_path, encoder_path)
    if (folder / BUILD_RECORD).is_file():
        return folder
    with atomic_directory(folder, replace=False) as tmp:
        _build(tmp, Path(base_folder), base_key, seed, weight_path, encoder_path)
    return folder


def _build(
    folder: Path, base_folder: Path, base_key: str, seed: int, weight_path: str, encoder_path: str
) -> None:
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    # The UNet's shapes only: built on the meta device, no weights read or allocated.
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(base_folder, subfolder="unet")
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_IMAGE_ENCODER_CONFIG))
    with quiet_loading():
        encoder.save_pretrained(folder / encoder_path, safe_serialization=True)
    state = random_ip_adapter_state_dict(unet, TINY_IMAGE_ENCODER_CONFIG["projection_dim"], seed + 1)
    weight_file = folder / weight_path
    weight_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: state[k] for k in published_keys(unet)}, str(weight_file))
    record = {
        "model": "dreambench tiny IP-Adapter (random init, h94/IP-Adapter layout)",
        "weight_file": weight_path,
        "image_encoder": encoder_path,
        "base_model_key": base_key,
        "seed": seed,
        "build_version": _BUILD_VERSION,
        "calibrated": False,
    }
    # Written last: its presence marks a complete folder.
    (folder / BUILD_RECORD).write_text(json.dumps(record, indent=2) + "\n")

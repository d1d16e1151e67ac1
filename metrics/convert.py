"""Convert DINO and CLIP weights between backend formats: timm -> transformers, open_clip -> transformers.

Why: both backends of a metric must be able to run the very same weights (the backend-agreement
test; users who have only one format on disk). The smoke weights for the transformers backends are
made by converting the timm / open_clip smoke weights with these functions.

The transformers state dicts use the key names of the checkpoints published on the hub
(facebook/dino-vits16, openai/clip-vit-base-patch32): `from_pretrained` of every supported
transformers version maps those names onto its own modules.

    timm_dino_to_hf(state_dict)  -> state dict for transformers ViTModel (DINO ViT-S/16, ViT-S/8)
    timm_dinov2_to_hf(state_dict) -> state dict for transformers Dinov2Model (DINOv2 ViT-S/14, ViT-B/14)
    open_clip_to_hf(state_dict)  -> state dict for transformers CLIPModel (OpenAI ViT-B/32)
    write_hf_dino_folder(timm_file, dst[, patch_size]), write_hf_dinov2_folder(timm_file, dst, arch),
    write_hf_clip_folder(open_clip_file, dst)
        -> a save_pretrained-style folder (config.json, model.safetensors[, tokenizer files])
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from dreambench.atomic import atomic_directory

# DINO ViT-S/16 and OpenAI CLIP ViT-B/32 shapes (the architectures the protocol fixes).
DINO_LAYERS = 12
CLIP_VISION_LAYERS = 12
CLIP_TEXT_LAYERS = 12
CLIP_CONTEXT_LENGTH = 77

StateDict = dict[str, torch.Tensor]


def _split_qkv(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """timm / open_clip keep q, k, v stacked along dim 0 (in that order); transformers keeps them apart."""
    q, k, v = weight.chunk(3, dim=0)
    return q.clone().contiguous(), k.clone().contiguous(), v.clone().contiguous()


def _layer_count(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".")[0]) for k in state_dict if k.startswith(prefix)}
    if not indices:
        raise ValueError(f"no keys starting with {prefix!r}: not the expected checkpoint layout")
    return max(indices) + 1


def timm_dino_to_hf(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """timm `vit_small_patch16_224.dino` state dict -> transformers `ViTModel` (no pooler) state dict."""
    sd = dict(state_dict)
    out: StateDict = {
        "embeddings.cls_token": sd.pop("cls_token"),
        "embeddings.position_embeddings": sd.pop("pos_embed"),
        "embeddings.patch_embeddings.projection.weight": sd.pop("patch_embed.proj.weight"),
        "embeddings.patch_embeddings.projection.bias": sd.pop("patch_embed.proj.bias"),
        "layernorm.weight": sd.pop("norm.weight"),
        "layernorm.bias": sd.pop("norm.bias"),
    }
    for i in range(_layer_count(sd, "blocks.")):
        src, dst = f"blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = _split_qkv(sd.pop(f"{src}attn.qkv.{kind}"))
            out[f"{dst}attention.attention.query.{kind}"] = q
            out[f"{dst}attention.attention.key.{kind}"] = k
            out[f"{dst}attention.attention.value.{kind}"] = v
            out[f"{dst}attention.output.dense.{kind}"] = sd.pop(f"{src}attn.proj.{kind}")
            out[f"{dst}layernorm_before.{kind}"] = sd.pop(f"{src}norm1.{kind}")
            out[f"{dst}layernorm_after.{kind}"] = sd.pop(f"{src}norm2.{kind}")
            out[f"{dst}intermediate.dense.{kind}"] = sd.pop(f"{src}mlp.fc1.{kind}")
            out[f"{dst}output.dense.{kind}"] = sd.pop(f"{src}mlp.fc2.{kind}")
    if sd:
        raise ValueError(f"unconverted timm DINO keys: {sorted(sd)[:5]}")
    return {k: v.contiguous() for k, v in out.items()}


def timm_dinov2_to_hf(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """timm `vit_*_patch14_dinov2.lvd142m` state dict -> transformers `Dinov2Model` state dict (the
    key names of facebook/dinov2-small / -base). DINOv2's mask token is used only in training and
    timm drops it; it is written as zeros so that transformers loads a complete checkpoint."""
    sd = dict(state_dict)
    cls_token = sd.pop("cls_token")
    out: StateDict = {
        "embeddings.cls_token": cls_token,
        "embeddings.mask_token": torch.zeros(1, cls_token.shape[-1], dtype=cls_token.dtype),
        "embeddings.position_embeddings": sd.pop("pos_embed"),
        "embeddings.patch_embeddings.projection.weight": sd.pop("patch_embed.proj.weight"),
        "embeddings.patch_embeddings.projection.bias": sd.pop("patch_embed.proj.bias"),
        "layernorm.weight": sd.pop("norm.weight"),
        "layernorm.bias": sd.pop("norm.bias"),
    }
    for i in range(_layer_count(sd, "blocks.")):
        src, dst = f"blocks.{i}.", f"encoder.layer.{i}."
        out[f"{dst}layer_scale1.lambda1"] = sd.pop(f"{src}ls1.gamma")
        out[f"{dst}layer_scale2.lambda1"] = sd.pop(f"{src}ls2.gamma")
        for kind in ("weight", "bias"):
            q, k, v = _split_qkv(sd.pop(f"{src}attn.qkv.{kind}"))
            out[f"{dst}attention.attention.query.{kind}"] = q
            out[f"{dst}attention.attention.key.{kind}"] = k
            out[f"{dst}attention.attention.value.{kind}"] = v
            out[f"{dst}attention.output.dense.{kind}"] = sd.pop(f"{src}attn.proj.{kind}")
            out[f"{dst}norm1.{kind}"] = sd.pop(f"{src}norm1.{kind}")
            out[f"{dst}norm2.{kind}"] = sd.pop(f"{src}norm2.{kind}")
            out[f"{dst}mlp.fc1.{kind}"] = sd.pop(f"{src}mlp.fc1.{kind}")
            out[f"{dst}mlp.fc2.{kind}"] = sd.pop(f"{src}mlp.fc2.{kind}")
    if sd:
        raise ValueError(f"unconverted timm DINOv2 keys: {sorted(sd)[:5]}")
    return {k: v.contiguous() for k, v in out.items()}


def _open_clip_tower(sd: StateDict, src: str, dst: str, layers: int) -> StateDict:
    out: StateDict = {}
    for i in range(layers):
        s, d = f"{src}{i}.", f"{dst}{i}."
        q, k, v = _split_qkv(sd.pop(f"{s}attn.in_proj_weight"))
        qb, kb, vb = _split_qkv(sd.pop(f"{s}attn.in_proj_bias"))
        out |= {
            f"{d}self_attn.q_proj.weight": q,
            f"{d}self_attn.k_proj.weight": k,
            f"{d}self_attn.v_proj.weight": v,
            f"{d}self_attn.q_proj.bias": qb,
            f"{d}self_attn.k_proj.bias": kb,
            f"{d}self_attn.v_proj.bias": vb,
        }
        for kind in ("weight", "bias"):
            out[f"{d}self_attn.out_proj.{kind}"] = sd.pop(f"{s}attn.out_proj.{kind}")
            out[f"{d}layer_norm1.{kind}"] = sd.pop(f"{s}ln_1.{kind}")
            out[f"{d}layer_norm2.{kind}"] = sd.pop(f"{s}ln_2.{kind}")
            out[f"{d}mlp.fc1.{kind}"] = sd.pop(f"{s}mlp.c_fc.{kind}")
            out[f"{d}mlp.fc2.{kind}"] = sd.pop(f"{s}mlp.c_proj.{kind}")
    return out


def open_clip_to_hf(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """open_clip `ViT-B-32(-quickgelu)` state dict -> transformers `CLIPModel` state dict.

    open_clip applies projections as `x @ proj`, transformers as `Linear(x)` = `x @ W.T`: transpose.
    """
    sd = {k: v for k, v in state_dict.items() if k != "attn_mask" and not k.endswith(".attn_mask")}
    out: StateDict = {
        "logit_scale": sd.pop("logit_scale").reshape(()),
        "text_model.embeddings.token_embedding.weight": sd.pop("token_embedding.weight"),
        "text_model.embeddings.position_embedding.weight": sd.pop("positional_embedding"),
        "text_model.final_layer_norm.weight": sd.pop("ln_final.weight"),
        "text_model.final_layer_norm.bias": sd.pop("ln_final.bias"),
        "text_projection.weight": sd.pop("text_projection").T,
        "vision_model.embeddings.class_embedding": sd.pop("visual.class_embedding"),
        "vision_model.embeddings.patch_embedding.weight": sd.pop("visual.conv1.weight"),
        "vision_model.embeddings.position_embedding.weight": sd.pop("visual.positional_embedding"),
        "vision_model.pre_layrnorm.weight": sd.pop("visual.ln_pre.weight"),
        "vision_model.pre_layrnorm.bias": sd.pop("visual.ln_pre.bias"),
        "vision_model.post_layernorm.weight": sd.pop("visual.ln_post.weight"),
        "vision_model.post_layernorm.bias": sd.pop("visual.ln_post.bias"),
        "visual_projection.weight": sd.pop("visual.proj").T,
    }
    out |= _open_clip_tower(
        sd, "transformer.resblocks.", "text_model.encoder.layers.", _layer_count(sd, "transformer.resblocks.")
    )
    out |= _open_clip_tower(
        sd,
        "visual.transformer.resblocks.",
        "vision_model.encoder.layers.",
        _layer_count(sd, "visual.transformer.resblocks."),
    )
    if sd:
        raise ValueError(f"unconverted open_clip keys: {sorted(sd)[:5]}")
    return {k: v.contiguous() for k, v in out.items()}


def hf_dino_config(patch_size: int = 16) -> object:
    """transformers `ViTConfig` of DINO ViT-S/16 or ViT-S/8 (`patch_size`; layer-norm eps 1e-6 as in
    the original DINO / timm)."""
    from transformers import ViTConfig

    return ViTConfig(
        hidden_size=384,
        num_hidden_layers=DINO_LAYERS,
        num_attention_heads=6,
        intermediate_size=1536,
        hidden_act="gelu",
        image_size=224,
        patch_size=patch_size,
        num_channels=3,
        qkv_bias=True,
        layer_norm_eps=1e-6,
    )


# DINOv2 widths (facebookresearch/dinov2 hubconf.py: vit_small / vit_base, patch 14, 518 px, LayerScale 1e-5).
DINOV2_WIDTHS: dict[str, tuple[int, int]] = {"DINOv2 ViT-S/14": (384, 6), "DINOv2 ViT-B/14": (768, 12)}


def hf_dinov2_config(arch: str) -> object:
    """transformers `Dinov2Config` of `arch` (a key of DINOV2_WIDTHS), as facebook/dinov2-small / -base."""
    from transformers import Dinov2Config

    hidden, heads = DINOV2_WIDTHS[arch]
    return Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=12,
        num_attention_heads=heads,
        mlp_ratio=4,
        hidden_act="gelu",
        image_size=518,
        patch_size=14,
        num_channels=3,
        qkv_bias=True,
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
        use_swiglu_ffn=False,
    )


def hf_clip_config() -> object:
    """transformers `CLIPConfig` of OpenAI CLIP ViT-B/32 (QuickGELU, as the OpenAI weights were trained)."""
    from transformers import CLIPConfig

    text = dict(
        vocab_size=49408,
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=CLIP_TEXT_LAYERS,
        num_attention_heads=8,
        max_position_embeddings=CLIP_CONTEXT_LENGTH,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    vision = dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=CLIP_VISION_LAYERS,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)


def write_clip_tokenizer(dst: Path) -> None:
    """Write CLIPTokenizer files (vocab.json, merges.txt, tokenizer config) into `dst`.

    Built from open_clip's bundled BPE table exactly as open_clip's SimpleTokenizer builds its
    vocabulary (256 byte tokens, the same with "</w>", the merges, then start/end of text), so
    token ids agree between the two tokenizers.
    """
    import open_clip.tokenizer as oct
    from transformers import CLIPTokenizer

    with gzip.open(oct.default_bpe(), "rt", encoding="utf-8") as f:
        merges = f.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    byte_tokens = list(oct.bytes_to_unicode().values())
    vocab = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (dst / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    # Round-trip through CLIPTokenizer so the folder also holds the files newer versions expect.
    CLIPTokenizer.from_pretrained(str(dst), model_max_length=CLIP_CONTEXT_LENGTH).save_pretrained(str(dst))


def load_state_dict_file(path: Path) -> StateDict:
    """Read a .safetensors or torch pickle (.bin/.pth, weights only) state dict onto the CPU."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    return {k.removeprefix("module."): v for k, v in obj.items()}


def save_state_dict_file(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(path))


def write_folder_atomically(dst: Path, fill: Callable[[Path], None]) -> Path:
    """Create folder `dst` by filling a temp folder beside it and renaming it into place.

    A reader never sees a half-written folder; if another process won the race, its folder is kept.
    """
    dst = Path(dst)
    if dst.is_dir():
        return dst
    with atomic_directory(dst, replace=False) as tmp:
        fill(tmp)
    return dst


def write_hf_dino_folder(timm_file: Path, dst: Path, patch_size: int = 16) -> Path:
    """Convert a timm DINO ViT-S/16 (or ViT-S/8: `patch_size=8`) weights file into a transformers
    folder `dst` (config + safetensors)."""

    def fill(tmp: Path) -> None:
        hf_dino_config(patch_size).save_pretrained(str(tmp))
        save_state_dict_file(timm_dino_to_hf(load_state_dict_file(timm_file)), tmp / "model.safetensors")

    return write_folder_atomically(dst, fill)


def write_hf_dinov2_folder(timm_file: Path, dst: Path, arch: str) -> Path:
    """Convert a timm DINOv2 weights file of `arch` ("DINOv2 ViT-S/14" | "DINOv2 ViT-B/14") into a
    transformers folder `dst` (config + safetensors)."""

    def fill(tmp: Path) -> None:
        hf_dinov2_config(arch).save_pretrained(str(tmp))
        save_state_dict_file(timm_dinov2_to_hf(load_state_dict_file(timm_file)), tmp / "model.safetensors")

    return write_folder_atomically(dst, fill)


def write_hf_clip_folder(open_clip_file: Path, dst: Path) -> Path:
    """Convert an open_clip ViT-B/32 weights file into a transformers folder (config, safetensors, tokenizer)."""

    def fill(tmp: Path) -> None:
        hf_clip_config().save_pretrained(str(tmp))
        save_state_dict_file(open_clip_to_hf(load_state_dict_file(open_clip_file)), tmp / "model.safetensors")
        write_clip_tokenizer(tmp)

    return write_folder_atomically(dst, fill)

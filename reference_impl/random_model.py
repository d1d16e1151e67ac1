"""Random-weight base models at a real architecture: ``random:sd15`` is Stable Diffusion 1.5,
``random:flux`` FLUX.1-dev and ``random:sd3`` Stable Diffusion 3 medium.

A base-model reference ``random:<architecture>`` (optionally ``random:<architecture>:seed=<N>``,
seed 0 by default) names a model with the real architecture's configs, **seeded random weights**
and the real CLIP BPE tokenizer, built on the machine that uses it; nothing is downloaded. It is
accepted wherever a base model is (``--method-args base_model=random:sd15``), so a run exercises
every real-scale code path — 512 px latents, the 860M-parameter UNet, class priors, rendering at
50 steps, scoring — and its cost table gives real per-stage timings. Everything it produces is
**uncalibrated**: the images are noise.

The model is built once per (architecture, seed) and kept as a standard diffusers folder::

    <cache_root>/models/random-sd15-v<build>-seed<seed>/
        model_index.json  unet/  vae/  text_encoder/  tokenizer/  scheduler/  dreambench_random.json

and then loaded through the same ``from_pretrained`` path as real weights (``load_base_model``).
Its weights are always drawn on the CPU (about 25 s on 2 cores, once per cache), whatever device
the run uses: weights drawn on a GPU differ from weights drawn on the CPU for the same seed, and a
run's identity must not depend on which device built its cache. They are written as fp32
safetensors (about 4.3 GB for SD 1.5); ``dreambench_random.json`` records the build (seed, torch
version) and the model's cache key (used by the class-prior cache and recorded as provenance) is a
hash of that record.

SD 1.5's configs below are those of ``stable-diffusion-v1-5/stable-diffusion-v1-5`` at the revision
the project pins (``base_model.SD15_REVISION``): every key of its unet/config.json,
vae/config.json, text_encoder/config.json and scheduler/scheduler_config.json that shapes the
model or the noise schedule, without the file metadata (``_class_name``, ``_diffusers_version``,
``_name_or_path``, ``architectures``, ``torch_dtype``, ``transformers_version``).

``random:flux`` and ``random:sd3`` are the full-size FLUX.1-dev (12B transformer, CLIP L/14,
T5 v1.1 XXL) and SD3 medium (2B transformer, CLIP L/14 and OpenCLIP bigG/14 with projection,
T5 v1.1 XXL) from their published configs (cited at each dict below), with the offline T5
tokenizer of reference_impl/tiny_t5.py (its ids are a subset of T5's 32,128): for timing, not for
images. Their folders are large (fp32: about 67 GB for FLUX.1-dev, 30 GB for SD3 medium); the GPU
benchmark builds their modules in memory instead (``build_flux_modules`` / ``build_sd3_modules``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.atomic import atomic_directory
from dreambench.cache_root import cache_root
from dreambench.errors import BenchError
from dreambench.reference_impl.tiny_model import SD_SCHEDULER_CONFIG

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

RANDOM_PREFIX = "random:"
ARCHITECTURES = ("sd15", "flux", "sd3")
PROVENANCE_FILE = "dreambench_random.json"

# Bump when the build changes (configs, initialisation, file layout): the folder name carries it.
_BUILD_VERSION = 1

SD15_RESOLUTION = 512
"""Native image size of Stable Diffusion 1.5, in pixels (64 x 64 latents)."""

SD15_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SD15_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# The text tower of openai/clip-vit-large-patch14 (CLIP ViT-L/14), as SD 1.5 ships it. The special
# token ids are the published file's (the tokenizer's real ids are 49406 / 49407; CLIPTextModel
# finds the end of text by argmax over the ids, so these fields do not change its output).
SD15_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}
SD15_SCHEDULER_CONFIG: dict[str, Any] = dict(SD_SCHEDULER_CONFIG)
"""scheduler/scheduler_config.json (PNDM over SD's scaled-linear schedule); the tiny model shares it."""

# FLUX.1-dev (black-forest-labs/FLUX.1-dev, transformer/config.json; axes_dims_rope is the
# class default [16, 56, 56], which the file also states in later revisions).
FLUX_TRANSFORMER_CONFIG: dict[str, Any] = {
    "attention_head_dim": 128,
    "axes_dims_rope": [16, 56, 56],
    "guidance_embeds": True,
    "in_channels": 64,
    "joint_attention_dim": 4096,
    "num_attention_heads": 24,
    "num_layers": 19,
    "num_single_layers": 38,
    "patch_size": 1,
    "pooled_projection_dim": 768,
}
# FLUX.1-dev vae/config.json (SD3 medium's has the same layout with its own scaling and shift).
FLUX_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "latent_channels": 16,
    "layers_per_block": 2,
    "mid_block_add_attention": True,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 1024,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "use_post_quant_conv": False,
    "use_quant_conv": False,
}
# google/t5-v1_1-xxl's encoder as FLUX.1-dev (text_encoder_2/config.json) and SD3 medium
# (text_encoder_3/config.json) ship it.
T5_XXL_CONFIG: dict[str, Any] = {
    "d_ff": 10240,
    "d_kv": 64,
    "d_model": 4096,
    "dense_act_fn": "gelu_new",
    "feed_forward_proj": "gated-gelu",
    "is_gated_act": True,
    "layer_norm_epsilon": 1e-06,
    "num_heads": 64,
    "num_layers": 24,
    "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32,
    "tie_word_embeddings": False,
    "vocab_size": 32128,
}
# stabilityai/stable-diffusion-3-medium-diffusers transformer/config.json.
SD3_TRANSFORMER_CONFIG: dict[str, Any] = {
    "attention_head_dim": 64,
    "caption_projection_dim": 1536,
    "in_channels": 16,
    "joint_attention_dim": 4096,
    "num_attention_heads": 24,
    "num_layers": 24,
    "out_channels": 16,
    "patch_size": 2,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 192,
    "sample_size": 128,
}
# SD3 medium vae/config.json: FLUX.1's layout, SD3's latent scaling and shift.
SD3_VAE_CONFIG: dict[str, Any] = {**FLUX_VAE_CONFIG, "scaling_factor": 1.5305, "shift_factor": 0.0609}
# SD3 medium text_encoder_2/config.json: the text tower of OpenCLIP ViT-bigG/14 (SDXL's second
# encoder too), with projection.
CLIP_BIGG_TEXT_CONFIG: dict[str, Any] = {
    **SD15_TEXT_ENCODER_CONFIG,
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
}

_SPEC = re.compile(r"^random:(?P<arch>[a-z0-9_-]+)(?::seed=(?P<seed>\d+))?$")


@dataclass(frozen=True)
class RandomSpec:
    """A parsed ``random:<architecture>[:seed=<N>]`` reference."""

    architecture: str
    seed: int = 0

    @property
    def ref(self) -> str:
        return f"{RANDOM_PREFIX}{self.architecture}" + (f":seed={self.seed}" if self.seed else "")


def is_random_spec(ref: str) -> bool:
    """True for any ``random:...`` base-model reference (valid or not: parse it to check)."""
    return ref.startswith(RANDOM_PREFIX)


def parse_random_spec(ref: str) -> RandomSpec:
    """``"random:sd15"`` -> RandomSpec("sd15", 0); BenchError naming the valid forms otherwise."""
    match = _SPEC.match(ref)
    if match is None or match["arch"] not in ARCHITECTURES:
        valid = ", ".join(f"{RANDOM_PREFIX}{a}" for a in ARCHITECTURES)
        raise BenchError(
            f"base model {ref!r} is not a random-weight model; valid: {valid} (optionally :seed=N)"
        )
    return RandomSpec(match["arch"], int(match["seed"] or 0))


def random_model_folder(spec: RandomSpec) -> Path:
    """Where ``ensure_random_model(spec)`` keeps its folder (it may not exist yet)."""
    return cache_root() / "models" / f"random-{spec.architecture}-v{_BUILD_VERSION}-seed{spec.seed}"


def ensure_random_model(spec: RandomSpec, device: str) -> Path:
    """Build the model for ``spec`` unless its folder exists; return the folder. The weights are
    drawn on the CPU whatever ``device`` the run uses (the module docstring says why).

    Built in a temporary sibling and renamed into place (``model_index.json`` last), so a reader or
    a concurrent builder never sees half a model; if another process finishes first, its folder wins.
    """
    folder = random_model_folder(spec)
    if (folder / PROVENANCE_FILE).is_file():
        return folder
    with atomic_directory(folder, replace=False) as tmp:
        _build(tmp, spec)
    return folder


def ensure_tokenizer() -> Path:
    """A folder holding only the real CLIP BPE tokenizer (what every random model ships), built once.

    Lets ``load_tokenizer("random:sd15")`` (e.g. for a rare-token identifier) and the GPU benchmark
    tokenize without building 1B random parameters first.
    """
    from dreambench.metrics.convert import write_clip_tokenizer

    folder = cache_root() / "models" / f"clip-bpe-tokenizer-v{_BUILD_VERSION}"
    if not (folder / "vocab.json").is_file():
        with atomic_directory(folder, replace=False) as tmp:
            write_clip_tokenizer(tmp)
    return folder


def provenance(folder: Path) -> dict[str, Any]:
    """The build record of a random model folder (architecture, seed, where the weights were drawn)."""
    return json.loads((folder / PROVENANCE_FILE).read_text())


def model_key(record: dict[str, Any]) -> str:
    """Cache key of a built random model: its reference plus a hash of its build record, so weights
    drawn elsewhere (another device type, torch version or build) never share a class-prior cache."""
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    return f"{record['ref']}@{digest}"


def build_sd15_modules(device: str, seed: int) -> tuple[UNet2DConditionModel, AutoencoderKL, CLIPTextModel]:
    """SD 1.5's UNet, VAE and ViT-L/14 text encoder with seeded random weights, fp32, on ``device``.

    The modules are created directly on ``device`` (initialising ~1.07B parameters on a CPU first
    takes ~25 s; on a GPU about a second). ``"meta"`` builds shapes only. The caller's global RNG
    state is left as it was.
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with torch.device(device):
            unet = UNet2DConditionModel(**SD15_UNET_CONFIG)
            vae = AutoencoderKL(**SD15_VAE_CONFIG)
            text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER_CONFIG))
    for module in (unet, vae, text_encoder):
        module.eval()
        module.requires_grad_(False)
    return unet, vae, text_encoder


def _t5_xxl_encoder(config_class: Any, model_class: Any) -> Any:
    """T5 v1.1 XXL's encoder with one token-embedding matrix, as in the published checkpoint: the
    encoder's ``embed_tokens`` is ``shared``. transformers ties the two in ``post_init``, but whether
    it does has been seen to depend on state left in the process (the full test suite built them
    untied, 132M parameters more), so the tie is made here explicitly."""
    model = model_class(config_class(**T5_XXL_CONFIG))
    if model.encoder.embed_tokens.weight is not model.shared.weight:
        model.encoder.set_input_embeddings(model.shared)
    return model


def build_flux_modules(device: str, seed: int) -> dict[str, Any]:
    """FLUX.1-dev's transformer, VAE, CLIP L/14 and T5 XXL encoders with seeded random weights,
    fp32, on ``device`` (``"meta"``: shapes only), keyed by their ``FluxPipeline`` component names.
    The caller's global RNG state is left as it was."""
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with torch.device(device):
            modules = {
                "transformer": FluxTransformer2DModel(**FLUX_TRANSFORMER_CONFIG),
                "vae": AutoencoderKL(**FLUX_VAE_CONFIG),
                "text_encoder": CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER_CONFIG)),
                "text_encoder_2": _t5_xxl_encoder(T5Config, T5EncoderModel),
            }
    for module in modules.values():
        module.eval()
        module.requires_grad_(False)
    return modules


def build_sd3_modules(device: str, seed: int) -> dict[str, Any]:
    """SD3 medium's transformer, VAE, CLIP L/14 and bigG/14 (with projection) and T5 XXL encoders
    with seeded random weights, fp32, on ``device`` (``"meta"``: shapes only), keyed by their
    ``StableDiffusion3Pipeline`` component names. The caller's global RNG state is left as it was."""
    import torch
    from diffusers import AutoencoderKL, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with torch.device(device):
            modules = {
                "transformer": SD3Transformer2DModel(**SD3_TRANSFORMER_CONFIG),
                "vae": AutoencoderKL(**SD3_VAE_CONFIG),
                "text_encoder": CLIPTextModelWithProjection(CLIPTextConfig(**SD15_TEXT_ENCODER_CONFIG)),
                "text_encoder_2": CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG_TEXT_CONFIG)),
                "text_encoder_3": _t5_xxl_encoder(T5Config, T5EncoderModel),
            }
    for module in modules.values():
        module.eval()
        module.requires_grad_(False)
    return modules


def _device_name(device: str) -> str:
    import torch

    if torch.device(device).type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    return torch.device(device).type


_MODEL_NAMES = {
    "sd15": "Stable Diffusion 1.5 architecture, seeded random weights",
    "flux": "FLUX.1-dev architecture, seeded random weights",
    "sd3": "Stable Diffusion 3 medium architecture, seeded random weights",
}


def _pipeline(folder: Path, spec: RandomSpec) -> Any:
    """The pipeline of ``spec``'s architecture over freshly drawn modules (its tokenizers written
    to ``folder``)."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        PNDMScheduler,
        StableDiffusion3Pipeline,
        StableDiffusionPipeline,
    )
    from transformers import CLIPTokenizer, T5Tokenizer

    from dreambench.metrics.convert import write_clip_tokenizer
    from dreambench.reference_impl.tiny_t5 import write_t5_tokenizer

    write_clip_tokenizer(folder / "tokenizer")  # the real CLIP BPE vocabulary, as SD v1 uses
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    # Drawn on the CPU whatever ``device`` is: the same seed then gives the same weights everywhere.
    if spec.architecture == "flux":
        from dreambench.reference_impl.tiny_flux import FLUX_SCHEDULER_CONFIG

        write_t5_tokenizer(folder / "tokenizer_2")
        return FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(FLUX_SCHEDULER_CONFIG),
            tokenizer=tokenizer,
            tokenizer_2=T5Tokenizer.from_pretrained(folder / "tokenizer_2"),
            **build_flux_modules("cpu", spec.seed),
        )
    if spec.architecture == "sd3":
        from dreambench.reference_impl.tiny_sd3 import SD3_SCHEDULER_CONFIG
        from dreambench.reference_impl.tiny_sdxl import _write_tokenizer_2

        _write_tokenizer_2(folder / "tokenizer_2")
        write_t5_tokenizer(folder / "tokenizer_3")
        return StableDiffusion3Pipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(SD3_SCHEDULER_CONFIG),
            tokenizer=tokenizer,
            tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
            tokenizer_3=T5Tokenizer.from_pretrained(folder / "tokenizer_3"),
            **build_sd3_modules("cpu", spec.seed),
        )
    unet, vae, text_encoder = build_sd15_modules("cpu", spec.seed)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _build(folder: Path, spec: RandomSpec) -> None:
    import torch

    from dreambench.metrics.convert import write_clip_tokenizer

    pipe = _pipeline(folder, spec)
    from dreambench.reference_impl.base_model import quiet_loading  # imports this module: no top-level import

    with quiet_loading():
        pipe.save_pretrained(folder, safe_serialization=True)
    # save_pretrained rewrites tokenizer/ in transformers' own format; put the SD-style files back.
    write_clip_tokenizer(folder / "tokenizer")
    if spec.architecture == "sd3":
        from dreambench.reference_impl.tiny_sdxl import _write_tokenizer_2

        _write_tokenizer_2(folder / "tokenizer_2")
    record = {
        "ref": spec.ref,
        "model": _MODEL_NAMES[spec.architecture],
        "architecture": spec.architecture,
        "seed": spec.seed,
        "build_version": _BUILD_VERSION,
        "initialised_on": _device_name("cpu"),
        "torch": torch.__version__,
        "calibrated": False,
    }
    # Written last: its presence marks a complete folder.
    (folder / PROVENANCE_FILE).write_text(json.dumps(record, indent=2) + "\n")

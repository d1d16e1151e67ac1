"""Base models: find and load a Stable Diffusion (v1.x / v2.x or SDXL layout) model through diffusers.

A base-model reference is one of:

* ``"tiny"`` — the embedded, randomly initialised tiny model (reference_impl/tiny_model.py), built
  on first use under the dreambench cache. Uncalibrated: for smoke runs and tests only.
* ``"tiny-trained"`` — the tiny model's architecture with shipped weights pretrained on procedurally
  generated scenes (reference_impl/tiny_trained.py): a VAE that reconstructs, a UNet with a generic
  prior; the smoke presets' base model. Uncalibrated.
* ``"tiny-sdxl"`` — the embedded, randomly initialised tiny Stable Diffusion XL
  (reference_impl/tiny_sdxl.py): two text encoders, SDXL's UNet conditioning. Uncalibrated.
* ``"tiny-flux"`` — the embedded, randomly initialised tiny FLUX.1 (reference_impl/tiny_flux.py):
  MMDiT transformer, CLIP + T5 text encoders, flow matching. Uncalibrated.
* ``"tiny-sd3"`` — the embedded, randomly initialised tiny Stable Diffusion 3
  (reference_impl/tiny_sd3.py): MMDiT transformer, two CLIP + one T5 text encoders, flow matching.
  Uncalibrated.
* ``"random:sd15"`` (optionally ``"random:sd15:seed=N"``) — Stable Diffusion 1.5's real
  architecture with seeded random weights (reference_impl/random_model.py), built on first use on
  the machine that runs it, nothing downloaded. Uncalibrated: real-scale timings, noise images.
* a local folder in the diffusers layout (``model_index.json``, ``unet/``, ``vae/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``; SDXL adds ``text_encoder_2/``, ``tokenizer_2/``).
* a Hugging Face hub id plus a pinned revision, default ``SD15_REPO`` at ``SD15_REVISION``
  (``SDXL_REPO`` at ``SDXL_REVISION`` for SDXL base 1.0; ``FLUX_REPO`` at ``FLUX_REVISION`` for
  FLUX.1-dev; ``SD3_REPO`` at ``SD3_REVISION`` for SD3 medium), fetched by ``dreambench.hub_fetch``: the
  local Hugging Face cache is tried first; only if the model is missing there and downloads are
  allowed (``HF_HUB_OFFLINE`` unset) are the needed files downloaded (fp32
  safetensors of unet/vae/text encoder(s) plus configs — not the single-file checkpoints).

``load_base_model`` returns the components (unet, vae, text encoder, tokenizer — and for SDXL the
second text encoder and tokenizer —, the scheduler's config) and a ``description`` dict for provenance: source, id, revision, resolved path, a cache
``key`` (used by the class-prior and latent caches) and ``calibrated`` (False for the tiny and the
random models; ``is_calibrated(ref)`` says the same without locating the model).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError
from dreambench.hub_fetch import HubFiles, fetch, is_hub_id
from dreambench.reference_impl.random_model import (
    ensure_random_model,
    ensure_tokenizer,
    is_random_spec,
    model_key,
    parse_random_spec,
    provenance,
)
from dreambench.reference_impl.tiny_flux import TINY_FLUX_ID, ensure_tiny_flux
from dreambench.reference_impl.tiny_model import TINY_MODEL_ID, ensure_tiny_model
from dreambench.reference_impl.tiny_sd3 import TINY_SD3_ID, ensure_tiny_sd3
from dreambench.reference_impl.tiny_sdxl import TINY_SDXL_ID, ensure_tiny_sdxl
from dreambench.reference_impl.tiny_trained import TINY_TRAINED_ID, ensure_tiny_trained

if TYPE_CHECKING:
    import torch
    from diffusers import (
        AutoencoderKL,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        T5EncoderModel,
        T5Tokenizer,
    )

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
# The repository's commit as pinned by several public projects (e.g. reproducibility manifests that
# resolve stable-diffusion-v1-5/stable-diffusion-v1-5 and its predecessor runwayml/stable-diffusion-v1-5
# to this snapshot). The mirror kept the original history, so the hash is the same for both ids.
SD15_REVISION = "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"

SDXL_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
# The repository's commit as pinned by public reproducibility manifests and model registries that
# resolve stabilityai/stable-diffusion-xl-base-1.0 (e.g. .../tree/462165984030d82259a11f4367a4eed129e94a7b/,
# the snapshot folder name in the Hugging Face cache).
SDXL_REVISION = "462165984030d82259a11f4367a4eed129e94a7b"

FLUX_REPO = "black-forest-labs/FLUX.1-dev"
# The repository's commit as independent public projects name it: the snapshot folder of their
# Hugging Face caches (models--black-forest-labs--FLUX.1-dev/snapshots/<commit>/, with the
# diffusers layout's sharded transformer/ in it). A gated repository: not checked against the hub
# itself here. An earlier commit, 0ef5fff789c832c5c7f4e127f94c8b54bbcced44, is as common; pass
# base_revision to use it.
FLUX_REVISION = "3de623fc3c33e44ffbe2bad470d0f45bccf2eb21"

SD3_REPO = "stabilityai/stable-diffusion-3-medium-diffusers"
# The same way: the snapshot folder that independent public projects' caches hold for this
# repository (models--stabilityai--stable-diffusion-3-medium-diffusers/snapshots/<commit>/). Gated;
# not checked against the hub itself here.
SD3_REVISION = "ea42f8cef0f178587cf766dc8129abd379c90671"

# The pinned commit of each hub id that has one; any other hub id defaults to "main" (recorded).
PINNED_REVISIONS = {
    SD15_REPO: SD15_REVISION,
    SDXL_REPO: SDXL_REVISION,
    FLUX_REPO: FLUX_REVISION,
    SD3_REPO: SD3_REVISION,
}

# The pipeline class (model_index.json ``_class_name``) of each supported layout.
SD_PIPELINE = "StableDiffusionPipeline"
SDXL_PIPELINE = "StableDiffusionXLPipeline"
FLUX_PIPELINE = "FluxPipeline"
SD3_PIPELINE = "StableDiffusion3Pipeline"

# Model families (``Components.family``): the layout decides the conditioning, the objective
# (epsilon/v-prediction for SD and SDXL, flow matching for FLUX.1 and SD3) and the pipeline.
FAMILY_OF_PIPELINE = {SD_PIPELINE: "sd", SDXL_PIPELINE: "sdxl", FLUX_PIPELINE: "flux", SD3_PIPELINE: "sd3"}
FLOW_FAMILIES = ("flux", "sd3")

# What a Stable Diffusion v1/v2 training+sampling run needs from the hub (fp32 safetensors only).
_HUB_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/*",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    # SDXL's second text encoder and tokenizer (absent from SD 1.x/2.x repositories: nothing to fetch).
    "tokenizer_2/*",
    "text_encoder_2/config.json",
    "text_encoder_2/model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    # FLUX.1: the transformer (sharded) instead of a UNet; T5 as text_encoder_2 (sharded).
    "transformer/config.json",
    "transformer/diffusion_pytorch_model*.safetensors*",
    "text_encoder_2/model*.safetensors*",
    # SD3: a third text encoder (T5, sharded) and tokenizer.
    "tokenizer_3/*",
    "text_encoder_3/config.json",
    "text_encoder_3/model*.safetensors*",
)


@dataclass
class Components:
    """A loaded Stable Diffusion, SDXL, FLUX.1 or SD3 model, as separate components (fp32, on ``device``).

    ``family`` is "sd", "sdxl", "flux" or "sd3" (``FAMILY_OF_PIPELINE``). ``unet`` is the denoiser of SD
    and SDXL; FLUX.1 and SD3 have ``transformer`` instead (``denoiser`` is whichever is set).
    ``text_encoder_2`` / ``tokenizer_2`` are SDXL's or SD3's second CLIP or FLUX.1's T5;
    ``text_encoder_3`` / ``tokenizer_3`` SD3's T5; ``pipeline_options``
    holds the pipeline's own config from model_index.json that changes pixels
    (SDXL: ``force_zeros_for_empty_prompt``).
    """

    folder: Path
    unet: UNet2DConditionModel | None
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler_config: dict[str, Any]
    description: dict[str, Any] = field(default_factory=dict)
    text_encoder_2: CLIPTextModelWithProjection | T5EncoderModel | None = None
    tokenizer_2: CLIPTokenizer | T5Tokenizer | None = None
    pipeline_options: dict[str, Any] = field(default_factory=dict)
    family: str = "sd"
    transformer: Any = None
    text_encoder_3: T5EncoderModel | None = None
    tokenizer_3: T5Tokenizer | None = None

    @property
    def is_sdxl(self) -> bool:
        """True for an SDXL model (two text encoders, text_time UNet conditioning)."""
        return self.family == "sdxl"

    @property
    def denoiser(self) -> Any:
        """The network that predicts noise / velocity: the UNet, or FLUX.1's transformer."""
        return self.unet if self.unet is not None else self.transformer

    def pipeline(
        self, unet: UNet2DConditionModel | None = None, text_encoder: CLIPTextModel | None = None
    ) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
        """A ``StableDiffusionPipeline`` (``StableDiffusionXLPipeline`` for SDXL) over these
        components (optionally a fine-tuned unet / text encoder).

        No safety checker and no invisible watermark: the benchmark scores raw samples (a
        blacked-out or watermarked image would change the DINO/CLIP scores), as in the DreamBooth
        evaluation.
        """
        from diffusers import PNDMScheduler, StableDiffusionPipeline

        if self.family == "flux":
            from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

            return FluxPipeline(
                scheduler=FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config),
                vae=self.vae,
                text_encoder=text_encoder if text_encoder is not None else self.text_encoder,
                tokenizer=self.tokenizer,
                text_encoder_2=self.text_encoder_2,
                tokenizer_2=self.tokenizer_2,
                transformer=self.transformer,
            )
        if self.family == "sd3":
            from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

            return StableDiffusion3Pipeline(
                transformer=self.transformer,
                scheduler=FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config),
                vae=self.vae,
                text_encoder=text_encoder if text_encoder is not None else self.text_encoder,
                tokenizer=self.tokenizer,
                text_encoder_2=self.text_encoder_2,
                tokenizer_2=self.tokenizer_2,
                text_encoder_3=self.text_encoder_3,
                tokenizer_3=self.tokenizer_3,
            )
        if self.is_sdxl:
            from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

            return StableDiffusionXLPipeline(
                vae=self.vae,
                text_encoder=text_encoder if text_encoder is not None else self.text_encoder,
                text_encoder_2=self.text_encoder_2,
                tokenizer=self.tokenizer,
                tokenizer_2=self.tokenizer_2,
                unet=unet if unet is not None else self.unet,
                # SDXL base 1.0 ships an Euler scheduler; render() replaces it with the protocol's.
                scheduler=EulerDiscreteScheduler.from_config(self.scheduler_config),
                force_zeros_for_empty_prompt=bool(self.pipeline_options.get("force_zeros_for_empty_prompt", True)),
                add_watermarker=False,
            )
        return StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=text_encoder if text_encoder is not None else self.text_encoder,
            tokenizer=self.tokenizer,
            unet=unet if unet is not None else self.unet,
            scheduler=PNDMScheduler.from_config(self.scheduler_config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` if available, else ``"mps"`` if available, else ``"cpu"``; others unchanged."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _folder_key(folder: Path) -> str:
    """A content key for a local folder: its configs and weight-file sizes (cheap, no full hash)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            rel = path.relative_to(folder).as_posix()
            digest.update(rel.encode())
            if path.suffix in {".json", ".txt"}:
                digest.update(path.read_bytes())
            else:
                digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:16]


def is_calibrated(ref: str) -> bool:
    """False for the embedded and random-weight base models (``tiny``, ``tiny-trained``, ``tiny-sdxl``,
    ``random:...``): their figures are not comparable to published ones."""
    tiny = (TINY_MODEL_ID, TINY_TRAINED_ID, TINY_SDXL_ID, TINY_FLUX_ID, TINY_SD3_ID)
    return ref not in tiny and not is_random_spec(ref)


# Native sizes known without the model on disk: SD 1.5 (UNet sample_size 64 x VAE factor 8), SDXL
# base 1.0 and FLUX.1-dev (1024, their pipelines' default height and width); random:<arch> is
# the architecture it copies (random:sd3 copies SD3 medium, 1024).
_NATIVE_RESOLUTIONS = {SD15_REPO: 512, SDXL_REPO: 1024, FLUX_REPO: 1024}
_RANDOM_NATIVE_RESOLUTIONS = {"sd15": 512, "flux": 1024, "sd3": 1024}


def native_resolution(ref: str, revision: str | None = None) -> int | None:
    """The size in pixels base model ``ref`` generates at natively, or None when not known.

    Known models from the table above; an embedded tiny model or a local folder from its configs
    (UNet ``sample_size`` x the VAE's downsampling factor, a Stable Diffusion pipeline's default
    height and width). Never downloads: a hub model outside the table is None.
    """
    if ref in _NATIVE_RESOLUTIONS:
        return _NATIVE_RESOLUTIONS[ref]
    if is_random_spec(ref):
        return _RANDOM_NATIVE_RESOLUTIONS.get(parse_random_spec(ref).architecture)
    if is_hub_id(ref):
        return None
    try:
        folder, _ = locate_base_model(ref, revision)
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (BenchError, OSError, ValueError, KeyError, TypeError):
        return None  # no UNet (FLUX.1, SD3 transformers) or no model: not known here


def locate_base_model(
    ref: str, revision: str | None = None, device: str = "auto"
) -> tuple[Path, dict[str, Any]]:
    """Resolve a base-model reference to a local diffusers folder and its description dict.

    ``revision`` applies to hub ids only; None or "" means the pinned commit for the ids of
    ``PINNED_REVISIONS`` (SD 1.5, SDXL base 1.0, FLUX.1-dev, SD3 medium) and "main" for any other
    id (the description records which). ``device`` is where a ``random:``
    model not built yet draws its weights (``"auto"``: CUDA when available); other references
    ignore it.
    """
    if is_random_spec(ref):
        spec = parse_random_spec(ref)
        folder = ensure_random_model(spec, resolve_device(device))
        record = provenance(folder)
        return folder, {
            "source": "random",
            "id": spec.ref,
            "revision": folder.name,
            "path": str(folder),
            "key": model_key(record),
            "initialised_on": record["initialised_on"],
            "calibrated": False,
        }
    tiny_builders = {
        TINY_MODEL_ID: ensure_tiny_model,
        TINY_TRAINED_ID: ensure_tiny_trained,
        TINY_SDXL_ID: ensure_tiny_sdxl,
        TINY_FLUX_ID: ensure_tiny_flux,
        TINY_SD3_ID: ensure_tiny_sd3,
    }
    if ref in tiny_builders:
        folder = tiny_builders[ref](seed=0)
        return folder, {
            "source": "tiny",
            "id": ref,
            "revision": folder.name,
            "path": str(folder),
            "key": folder.name,
            "calibrated": False,
        }
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file() and not (path / "unet" / "config.json").is_file():
            raise BenchError(
                f"base model folder {path} has no model_index.json or unet/config.json; expected a diffusers folder"
            )
        path = path.resolve()
        return path, {
            "source": "local",
            "id": str(path),
            "revision": "local",
            "path": str(path),
            "key": f"local-{_folder_key(path)}",
            "calibrated": True,
        }
    if not is_hub_id(ref):
        raise BenchError(
            f"base model {ref!r} is neither 'tiny', 'tiny-trained', 'tiny-sdxl', 'tiny-flux', 'tiny-sd3', 'random:sd15', an existing folder, "
            f"nor a hub id like {SD15_REPO!r} or {SDXL_REPO!r}"
        )
    revision = revision or PINNED_REVISIONS.get(ref, "main")
    folder = fetch(
        HubFiles(
            what="base model",
            repo_id=ref,
            revision=revision,
            files=_HUB_FILES,
            instead=("use --preset smoke (the embedded tiny model)",),
        )
    )
    return folder, {
        "source": "hub",
        "id": ref,
        "revision": revision,
        "path": str(folder),
        "key": f"{ref}@{revision}",
        "calibrated": True,
    }


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers/diffusers loading progress bars for the block, then restore them."""
    from diffusers.utils import logging as d_logging
    from transformers.utils import logging as t_logging

    t_on, d_on = t_logging.is_progress_bar_enabled(), d_logging.is_progress_bar_enabled()
    t_logging.disable_progress_bar()
    d_logging.disable_progress_bar()
    try:
        yield
    finally:
        if t_on:
            t_logging.enable_progress_bar()
        if d_on:
            d_logging.enable_progress_bar()


def pipeline_class(folder: Path, ref: str, transformers_ok: bool = False) -> str:
    """The layout of the diffusers folder ``folder``: ``SD_PIPELINE``, ``SDXL_PIPELINE`` or
    (with ``transformers_ok``: the caller handles transformer models) ``FLUX_PIPELINE`` or ``SD3_PIPELINE``.

    Read from model_index.json (a folder without one is taken as SD 1.x/2.x, unet + one text
    encoder); any other pipeline (the SDXL refiner, other transformer models) is a one-line BenchError.
    """
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        return SD_PIPELINE
    index = json.loads(index_path.read_text())
    name = index.get("_class_name", "")
    if name == SDXL_PIPELINE and index.get("text_encoder") and index.get("text_encoder_2"):
        return SDXL_PIPELINE
    if transformers_ok and name in (FLUX_PIPELINE, SD3_PIPELINE) and index.get("transformer"):
        return name
    if "text_encoder_2" in index or "transformer" in index:
        also = (
            ""
            if transformers_ok
            else f"; dreambooth-lora and base-model also take FLUX.1 ({FLUX_PIPELINE}) and SD3 ({SD3_PIPELINE})"
        )
        raise BenchError(
            f"base model {ref!r} is a {name or 'non-SD'} layout; supported: Stable Diffusion 1.x/2.x "
            f"({SD_PIPELINE}) and SDXL base ({SDXL_PIPELINE} with both text encoders){also}"
        )
    return SD_PIPELINE


def load_base_model(ref: str, revision: str | None = None, device: str = "cpu") -> Components:
    """Load unet, vae, text encoder(s) and tokenizer(s) of ``ref`` (see the module docstring) onto ``device``.

    All weights are fp32 (trainable copies must be fp32, as diffusers' DreamBooth script requires);
    methods cast frozen parts down themselves. Raises BenchError for a missing or unsupported model.
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder, description = locate_base_model(ref, revision, device)
    family = FAMILY_OF_PIPELINE[pipeline_class(folder, ref, transformers_ok=True)]
    sdxl = family == "sdxl"
    text_encoder_2 = tokenizer_2 = text_encoder_3 = tokenizer_3 = unet = transformer = None
    pipeline_options: dict[str, Any] = {}
    try:
        with quiet_loading():
            if family == "sd3":
                from diffusers import SD3Transformer2DModel
                from transformers import T5EncoderModel, T5Tokenizer

                # train_dreambooth_lora_sd3.py: both CLIP encoders with projection (their projected
                # pooled outputs are pooled_projections), T5 as text_encoder_3.
                transformer = SD3Transformer2DModel.from_pretrained(
                    folder, subfolder="transformer", torch_dtype=torch.float32
                )
                text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
                    folder, subfolder="text_encoder_2", dtype=torch.float32
                )
                tokenizer_2 = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2")
                text_encoder_3 = T5EncoderModel.from_pretrained(folder, subfolder="text_encoder_3", dtype=torch.float32)
                tokenizer_3 = T5Tokenizer.from_pretrained(folder, subfolder="tokenizer_3")
            elif family in FLOW_FAMILIES:
                from diffusers import FluxTransformer2DModel
                from transformers import T5EncoderModel, T5Tokenizer

                transformer = FluxTransformer2DModel.from_pretrained(
                    folder, subfolder="transformer", torch_dtype=torch.float32
                )
                text_encoder_2 = T5EncoderModel.from_pretrained(folder, subfolder="text_encoder_2", dtype=torch.float32)
                tokenizer_2 = T5Tokenizer.from_pretrained(folder, subfolder="tokenizer_2")
            else:
                unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float32)
            vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
            text_encoder = (CLIPTextModelWithProjection if family == "sd3" else CLIPTextModel).from_pretrained(
                folder, subfolder="text_encoder", dtype=torch.float32
            )
            tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
            if sdxl:
                # train_dreambooth_lora_sdxl.py loads text_encoder_2 as CLIPTextModelWithProjection
                # (its pooled, projected output is the UNet's text_embeds input).
                text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
                    folder, subfolder="text_encoder_2", dtype=torch.float32
                )
                tokenizer_2 = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2")
                index = json.loads((folder / "model_index.json").read_text())
                pipeline_options["force_zeros_for_empty_prompt"] = bool(
                    index.get("force_zeros_for_empty_prompt", True)
                )
        scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(
            f"base model {ref!r} at {folder} could not be loaded ({first}); re-download it or use --preset smoke"
        ) from None
    for module in (unet, transformer, vae, text_encoder, text_encoder_2, text_encoder_3):
        if module is None:
            continue
        module.to(device)
        module.eval()
        module.requires_grad_(False)
    return Components(
        folder=folder,
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler_config={k: v for k, v in scheduler_config.items() if not k.startswith("_")},
        description=description,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        pipeline_options=pipeline_options,
        family=family,
        transformer=transformer,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )


def load_tokenizer(ref: str, revision: str | None = None) -> CLIPTokenizer:
    """Only the tokenizer of a base model (e.g. for ``identifier()`` without loading weights)."""
    from transformers import CLIPTokenizer

    if is_random_spec(ref):
        parse_random_spec(ref)  # a bad spec fails here, as it would when loading the model
        # Every random model ships the real CLIP BPE tokenizer: no need to build 1B weights for it.
        with quiet_loading():
            return CLIPTokenizer.from_pretrained(ensure_tokenizer())
    folder, _ = locate_base_model(ref, revision)
    with quiet_loading():
        return CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")


def free_memory(device: str) -> None:
    """After dropping a model: on CUDA, collect reference cycles and return cached memory to the driver.

    (On CPU, reference counting already frees the tensors; a full ``gc.collect`` there costs ~0.2 s
    per call with transformers loaded, which adds up over 30 subjects.)
    """
    if device.startswith("cuda"):
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()


def autocast_dtype(mixed_precision: str, device: str) -> torch.dtype | None:
    """``"fp16"``/``"bf16"`` -> the torch dtype for CUDA autocast; ``"no"`` or a non-CUDA device -> None.

    Autocast is only used on CUDA: on CPU, bf16 autocast is slower than fp32 on most machines and
    the tiny model gains nothing from it.
    """
    import torch

    choices = {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16}
    if mixed_precision not in choices:
        raise BenchError(f"mixed_precision={mixed_precision!r} is not one of {', '.join(choices)}")
    if torch.device(device).type != "cuda":
        return None
    return choices[mixed_precision]

"""Metric presets: which embedders (backend, architecture, weights) and conventions a run scores with.

    dreambooth     the DreamBooth paper's protocol (default): DINO ViT-S/16 (timm) + OpenAI CLIP
                   ViT-B/32 (open_clip), real pinned weights, raw cosine, identifier removed for CLIP-T
    dreambooth-hf  the same weights through the transformers backends
    smoke          the same architectures with smoke weights trained offline on generated scenes
                   (the seeded random init plus a shipped delta, metrics/smoke_delta.py): offline,
                   fast to set up, ranks images (a subject's photos closer to each other than to
                   other subjects', noise below both), every number UNCALIBRATED (for tests, pipeline
                   checks and the smoke CI gate)
    dinov2         DINO computed with DINOv2 ViT-S/14 (timm vit_small_patch14_dinov2.lvd142m), CLIP-I /
                   CLIP-T and the all-pairs protocol as in `dreambooth` (the variant many 2024-2026
                   papers report); `dinov2-b`: the same with DINOv2 ViT-B/14
    dreambench-plus  DreamBench++'s evaluation code: DINO v1 ViT-S/8 ("dino") and DINOv2 ViT-S/14
                   ("dinov2"), CLIP ViT-B/32, cosine x 100, each generated image against ONE paired
                   real image (see PAIRINGS), identifier removed from the CLIP-T text
    kosmos-g       Kosmos-G's DreamBench evaluation: DINO ViT-S/16, CLIP ViT-B/32 (transformers), cosine x 100,
                   each generated image against its one source image ("paired-source"), CLIP-T on the
                   class-noun prompt (identifier removed)
    uno            UNO's DreamBench protocol as issue 19 states it: DINO ViT-S/16, CLIP ViT-B/32, cosine x 100,
                   each generated image against the subject's ONE fixed reference image
                   ("fixed-reference", metrics/data/uno-singleip.json), CLIP-T on the class-noun prompt
                   (pairing and scale unverified against UNO's evaluation code: docs/METHODS.md)
    <name>-smoke   every preset above except `dreambooth-hf` has a smoke twin: the same architectures,
                   preprocessing and conventions with smoke weights: trained ones for DINO ViT-S/16
                   and CLIP ViT-B/32, seeded random ones for the other networks (UNCALIBRATED)

A preset's `protocol` names its conventions: runs of different protocols measure different things
and the leaderboard refuses to put them side by side (a preset and its smoke twin share one).
Other papers' conventions (x100, identifier kept, other backbones) belong here as named presets,
never as silent defaults. Importing this module is cheap (no torch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dreambench.errors import BenchError, did_you_mean
from dreambench.metrics.metric_registry import BUILTIN_METRICS
from dreambench.metrics.smoke_delta import SMOKE_DELTAS
from dreambench.metrics.weights import WeightsSource

# The versions every scoring identity holds (the core metrics, and PRES and DIV whether computed or
# not), from the declarations (metrics/metric_registry.py): the leaderboard refuses to put side by
# side runs whose metric versions differ.
METRIC_VERSIONS: dict[str, int] = {
    m.name: m.version for m in BUILTIN_METRICS if m.availability == "core" or m.in_every_identity
}
# Metrics only some presets compute (dreambench-plus's second DINO network): in the identity of those
# presets only, so that the identity of the presets without them is unchanged.
EXTRA_METRIC_VERSIONS: dict[str, int] = {m.name: m.version for m in BUILTIN_METRICS if m.availability == "preset"}

DINO_ARCH = "ViT-S/16"
CLIP_ARCH = "ViT-B/32"
# Other image-similarity backbones some papers use for the DINO metric (metrics/dino.py: DINO_VARIANTS).
DINO_S8_ARCH = "ViT-S/8"
DINOV2_S14_ARCH = "DINOv2 ViT-S/14"
DINOV2_B14_ARCH = "DINOv2 ViT-B/14"
# Architecture -> the network name its weights are resolved under (metrics/weights.py PINNED_HUB).
WEIGHTS_KINDS: dict[str, str] = {
    DINO_ARCH: "dino",
    DINO_S8_ARCH: "dino-s8",
    DINOV2_S14_ARCH: "dinov2-s14",
    DINOV2_B14_ARCH: "dinov2-b14",
    CLIP_ARCH: "clip",
}
# How a generated image meets the subject's real images (DINO, CLIP-I, and DINOv2 where scored).
PAIRINGS: dict[str, str] = {
    # The DreamBooth paper: every generated image against every real image of its subject.
    "all-pairs": "all (generated, real) pairs; real-images: distinct real-real pairs",
    # DreamBench++ pairs each generated image with the one reference image it was generated from.
    # DreamBench subjects have 4-6 real images and no such mapping, so it is defined here: the
    # generated image (prompt_idx p, sample_idx s) is paired with real image number (p + s) mod n_real
    # of the subject, real images in file-name order. Every real image serves about equally often.
    "paired-source": "one pair per generated image: (p, s) with real image (p + s) mod n_real in "
    "file-name order; real-images: distinct real-real pairs",
    # UNO conditions every prompt of a subject on one named real image: each generated image is
    # paired with that image only. The per-subject list is a versioned data file (the preset's
    # `references`, metrics/reference_list.py), found among the real images by sha256.
    "fixed-reference": "one pair per generated image: the subject's one listed reference image "
    "(the preset's reference list); real-images: distinct real-real pairs",
}
# Pairings with exactly one real image per generated image (the pooled mean weighs each image once).
ONE_PAIR_PAIRINGS: tuple[str, ...] = ("paired-source", "fixed-reference")
# `backend` override accepted by the Scorer -> (dino backend, clip backend).
BACKEND_OVERRIDES: dict[str, tuple[str, str]] = {
    "native": ("timm", "open_clip"),
    "timm": ("timm", "open_clip"),
    "open_clip": ("timm", "open_clip"),
    "transformers": ("transformers", "transformers"),
}


@dataclass(frozen=True)
class EmbedderSpec:
    """An embedder to build: backend ("timm" | "open_clip" | "transformers"), arch, weights source."""

    backend: str
    arch: str
    source: WeightsSource

    @property
    def weights_kind(self) -> str:
        """The network name the weights are resolved under ("dino", "dinov2-s14", "clip", ...)."""
        if self.arch not in WEIGHTS_KINDS:
            raise BenchError(f"unknown embedder arch {self.arch!r}; valid: {', '.join(WEIGHTS_KINDS)}")
        return WEIGHTS_KINDS[self.arch]

    def as_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "arch": self.arch, "source": self.source.describe()}


@dataclass(frozen=True)
class MetricPreset:
    """A named scoring protocol.

    calibrated: False when the numbers carry no meaning (random weights); reports must say so.
    clip_t_keep_identifier: keep the rare identifier token in the CLIP-T text (default: removed).
    scale: multiplies every reported cosine (1.0 = raw cosine in [-1, 1]; 100.0 = some papers' x100).
    dinov2: a second DINO-type network, reported as its own metric "dinov2" (DreamBench++), or None.
    pairing: a key of PAIRINGS.
    references: the reference list (metrics/data/<name>.json) of pairing "fixed-reference", else "".
    protocol: the conventions' name; the leaderboard refuses to mix protocols.
    source: the file the preset's choices come from (repo, path, URL).
    """

    name: str
    description: str
    calibrated: bool
    dino: EmbedderSpec
    clip: EmbedderSpec
    clip_t_keep_identifier: bool = False
    scale: float = 1.0
    dinov2: EmbedderSpec | None = None
    pairing: str = "all-pairs"
    protocol: str = "dreambooth"
    source: str = ""
    references: str = ""

    def __post_init__(self) -> None:
        if self.pairing not in PAIRINGS:
            raise BenchError(f"unknown pairing {self.pairing!r}; valid: {', '.join(PAIRINGS)}")
        if bool(self.references) != (self.pairing == "fixed-reference"):
            raise BenchError(
                f"metric preset {self.name!r}: pairing 'fixed-reference' needs a reference list, and only it"
            )

    def pairs_per_image(self, n_real: int) -> int:
        """How many (generated, real) pairs one generated image's DINO / CLIP-I averages: 1 under a
        one-pair pairing (ONE_PAIR_PAIRINGS), else every real image of the subject."""
        return 1 if self.pairing in ONE_PAIR_PAIRINGS else n_real

    @property
    def networks(self) -> tuple[str, ...]:
        """The embedder slots this preset scores with: ("dino", "clip") and "dinov2" where it has one."""
        return ("dino", "clip", "dinov2") if self.dinov2 is not None else ("dino", "clip")

    def spec(self, network: str) -> EmbedderSpec:
        """The embedder of slot `network` ("dino" | "clip" | "dinov2")."""
        specs = {"dino": self.dino, "clip": self.clip, "dinov2": self.dinov2}
        found = specs.get(network)
        if found is None:
            raise did_you_mean(network, self.networks, f"embedder of metric preset {self.name!r}")
        return found

    def with_backend(self, backend: str) -> MetricPreset:
        """The same preset run through other backends ("native" = timm + open_clip, or "transformers")."""
        if backend not in BACKEND_OVERRIDES:
            raise did_you_mean(backend, BACKEND_OVERRIDES, "metric backend")
        dino_backend, clip_backend = BACKEND_OVERRIDES[backend]
        if any(self.spec(n).source.kind == "path" for n in self.networks):
            raise BenchError(
                f"metric preset {self.name!r} loads weights from local paths: its backend is fixed"
            )
        return dataclasses.replace(
            self,
            dino=dataclasses.replace(self.dino, backend=dino_backend),
            clip=dataclasses.replace(self.clip, backend=clip_backend),
            dinov2=None if self.dinov2 is None else dataclasses.replace(self.dinov2, backend=dino_backend),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "calibrated": self.calibrated,
            "dino": self.dino.as_dict(),
            "clip": self.clip.as_dict(),
            **({"dinov2": self.dinov2.as_dict()} if self.dinov2 is not None else {}),
            "clip_t_keep_identifier": self.clip_t_keep_identifier,
            "scale": self.scale,
            "pairing": self.pairing,
            "protocol": self.protocol,
            "source": self.source,
            **({"references": self.references} if self.references else {}),
            "metric_versions": dict(METRIC_VERSIONS),
        }


def smoke_source(arch: str) -> WeightsSource:
    """The smoke weights of an architecture: trained (a shipped delta on the seed-0 init) where a
    delta exists for its network (metrics/smoke_delta.py SMOKE_DELTAS), else the seeded random init."""
    trained = WEIGHTS_KINDS.get(arch) in SMOKE_DELTAS
    return WeightsSource.smoke_trained() if trained else WeightsSource.smoke(0)


def smoke_twin(preset: MetricPreset) -> MetricPreset:
    """`preset` with every network on smoke weights (`smoke_source`): same architectures,
    preprocessing and conventions (so the same protocol), numbers UNCALIBRATED."""

    def smoke(spec: EmbedderSpec) -> EmbedderSpec:
        return dataclasses.replace(spec, source=smoke_source(spec.arch))

    return dataclasses.replace(
        preset,
        name=f"{preset.name}-smoke",
        description=f"{preset.name} with smoke weights: pipeline checks, numbers UNCALIBRATED",
        calibrated=False,
        dino=smoke(preset.dino),
        clip=smoke(preset.clip),
        dinov2=None if preset.dinov2 is None else smoke(preset.dinov2),
    )


# Sources of the presets' choices (cited in the README's preset table and docs/RESULTS.md).
DREAMBOOTH_SOURCE = "Ruiz et al., DreamBooth (arXiv:2208.12242), section 4.1: https://arxiv.org/abs/2208.12242"
DINOV2_SOURCE = (
    "facebookresearch/dinov2 (weights; hubconf.py dinov2_vits14 / dinov2_vitb14), preprocessing from the "
    "transformers checkpoints facebook/dinov2-small / facebook/dinov2-base (preprocessor_config.json: "
    "BitImageProcessor, shortest edge 256 bicubic, center crop 224, ImageNet mean/std): "
    "https://github.com/facebookresearch/dinov2/blob/main/hubconf.py"
)
DREAMBENCH_PLUS_SOURCE = (
    "yuangpeng/dreambench_plus dreambench_plus/metrics/dino_score.py, dreambench_plus/metrics/clip_score.py, "
    "dreambench_plus/generate_images.py: "
    "https://github.com/yuangpeng/dreambench_plus/blob/main/dreambench_plus/metrics/dino_score.py"
)

KOSMOS_G_SOURCE = (
    "microsoft/unilm@7b4b9f03f16e312292ea044634ae56a87b37f3d9 kosmos-g/sample_kosmosg_dreambench.py, "
    "kosmos-g/eval/dino_score.py, kosmos-g/eval/clip_score.py, kosmos-g/eval/dreambench_prompts.py: "
    "https://github.com/microsoft/unilm/blob/7b4b9f03f16e312292ea044634ae56a87b37f3d9/kosmos-g/sample_kosmosg_dreambench.py"
)
UNO_SOURCE = (
    "bytedance/UNO datasets/dreambench_singleip.json (reference list, read from a copy: "
    "metrics/data/uno-singleip.json); pairing and x100 as dreambench issue 19 states them, not verified "
    "against UNO's eval/evaluate_clip_dino_score_single_subject.py: https://github.com/bytedance/UNO"
)


METRIC_PRESETS: dict[str, MetricPreset] = {
    "dreambooth": MetricPreset(
        name="dreambooth",
        description="DreamBooth paper protocol: DINO ViT-S/16 + OpenAI CLIP ViT-B/32 (timm/open_clip), raw cosine",
        calibrated=True,
        dino=EmbedderSpec("timm", DINO_ARCH, WeightsSource.pinned()),
        clip=EmbedderSpec("open_clip", CLIP_ARCH, WeightsSource.pinned()),
        source=DREAMBOOTH_SOURCE,
    ),
    "dreambooth-hf": MetricPreset(
        name="dreambooth-hf",
        description="DreamBooth paper protocol through the transformers backends (same weights)",
        calibrated=True,
        dino=EmbedderSpec("transformers", DINO_ARCH, WeightsSource.pinned()),
        clip=EmbedderSpec("transformers", CLIP_ARCH, WeightsSource.pinned()),
        source=DREAMBOOTH_SOURCE,
    ),
    "smoke": MetricPreset(
        name="smoke",
        description="real architectures, smoke weights self-trained on generated scenes: offline checks, "
        "numbers UNCALIBRATED",
        calibrated=False,
        dino=EmbedderSpec("timm", DINO_ARCH, smoke_source(DINO_ARCH)),
        clip=EmbedderSpec("open_clip", CLIP_ARCH, smoke_source(CLIP_ARCH)),
        source=DREAMBOOTH_SOURCE,
    ),
}
_NEW_PRESETS = (
    MetricPreset(
        name="dinov2",
        description="DINO with DINOv2 ViT-S/14 (CLS token, 256 -> 224 bicubic), CLIP ViT-B/32, all pairs, raw cosine",
        calibrated=True,
        dino=EmbedderSpec("timm", DINOV2_S14_ARCH, WeightsSource.pinned()),
        clip=EmbedderSpec("open_clip", CLIP_ARCH, WeightsSource.pinned()),
        protocol="dinov2",
        source=DINOV2_SOURCE,
    ),
    MetricPreset(
        name="dinov2-b",
        description="DINO with DINOv2 ViT-B/14 (CLS token, 256 -> 224 bicubic), CLIP ViT-B/32, all pairs, raw cosine",
        calibrated=True,
        dino=EmbedderSpec("timm", DINOV2_B14_ARCH, WeightsSource.pinned()),
        clip=EmbedderSpec("open_clip", CLIP_ARCH, WeightsSource.pinned()),
        protocol="dinov2-b",
        source=DINOV2_SOURCE,
    ),
    MetricPreset(
        name="dreambench-plus",
        description="DreamBench++ code: DINO v1 ViT-S/8 + DINOv2 ViT-S/14 + CLIP ViT-B/32, x100, one paired real image",
        calibrated=True,
        dino=EmbedderSpec("timm", DINO_S8_ARCH, WeightsSource.pinned()),
        clip=EmbedderSpec("transformers", CLIP_ARCH, WeightsSource.pinned()),
        dinov2=EmbedderSpec("transformers", DINOV2_S14_ARCH, WeightsSource.pinned()),
        scale=100.0,
        pairing="paired-source",
        protocol="dreambench-plus",
        source=DREAMBENCH_PLUS_SOURCE,
    ),
    MetricPreset(
        name="kosmos-g",
        description="Kosmos-G code: DINO ViT-S/16 + CLIP ViT-B/32 (transformers), x100, one source image per generated image",
        calibrated=True,
        dino=EmbedderSpec("timm", DINO_ARCH, WeightsSource.pinned()),
        clip=EmbedderSpec("transformers", CLIP_ARCH, WeightsSource.pinned()),
        scale=100.0,
        pairing="paired-source",
        protocol="kosmos-g",
        source=KOSMOS_G_SOURCE,
    ),
    MetricPreset(
        name="uno",
        description="UNO: DINO ViT-S/16 + CLIP ViT-B/32, x100, each generated image against the subject's one fixed reference",
        calibrated=True,
        dino=EmbedderSpec("timm", DINO_ARCH, WeightsSource.pinned()),
        clip=EmbedderSpec("open_clip", CLIP_ARCH, WeightsSource.pinned()),
        scale=100.0,
        pairing="fixed-reference",
        references="uno-singleip",
        protocol="uno",
        source=UNO_SOURCE,
    ),
)
for _preset in _NEW_PRESETS:
    METRIC_PRESETS[_preset.name] = _preset
    METRIC_PRESETS[f"{_preset.name}-smoke"] = smoke_twin(_preset)

DEFAULT_METRIC_PRESET = "dreambooth"


def get_metric_preset(name: str) -> MetricPreset:
    """The preset called `name`; unknown names raise BenchError with close matches and the valid list."""
    try:
        return METRIC_PRESETS[name]
    except KeyError:
        raise did_you_mean(name, METRIC_PRESETS, "metric preset") from None

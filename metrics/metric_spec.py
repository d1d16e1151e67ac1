"""A metric's declaration: everything the harness needs to compute, aggregate, version, show and
gate on one metric, in one frozen value (`MetricSpec`). metrics/metric_registry.py holds them.

Pairings (what a metric compares a generated image with):

    real           the subject's real images: core and preset metrics under the metric preset's
                   pairing (all pairs, or one paired source image), computed by the Scorer from
                   embeddings; an optional metric by its own rule (copy_rate); per generated image
    text           the image's prompt text (CLIP-T); per generated image; computed by the Scorer
    image          nothing: a function of the decoded generated image alone; per generated image
    prompt-group   the other images of the same (subject, prompt) (DIV); per prompt
    class-samples  "a {class}" samples the method renders, against the real images (PRES); per subject

Availability:

    core      always computed; every results.json has it (DINO, CLIP-I, CLIP-T)
    preset    computed when the metric preset has the metric's network (DINOv2 under dreambench-plus)
    optional  computed only on request (`bench run --extra-metrics NAME`); absent otherwise

Core and preset metrics are the built-ins the Scorer computes from the preset's embedders. Every
other metric is optional and brings its computation, `compute` (a callable or a lazy
``"module:function"`` string):

    pairing "image":  compute(image: PIL.Image.Image) -> float
        one figure per generated image; per prompt and per subject the mean over images, overall
        the mean over subjects (metrics/aggregate.py), like the core metrics.
    any other pairing:  compute(scorer: Scorer, images: SubjectImages) -> SubjectScore
        one subject's figure (and per-prompt figures where it has them) with its weight in the
        pooled mean, and where it decides per image, each generated image's record (`per_image`:
        file name -> {"value": figure, ...}; the report shows `image_flag` on those whose value is
        non-zero); the scorer gives cached embeddings (`scorer._image_embeddings`), the metric
        preset (`scorer.preset`) and LPIPS (`scorer.lpips`).

Importing this module is cheap (no torch, no numpy).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError

if TYPE_CHECKING:
    from dreambench.metrics.scorer import ImageRef

PAIRINGS: dict[str, str] = {
    "real": "each generated image against the subject's real images (the metric preset's pairing, "
    "or an optional metric's own rule)",
    "text": "each generated image against the text of its prompt",
    "image": "each generated image on its own",
    "prompt-group": "the images of one (subject, prompt) among themselves",
    "class-samples": "'a {class}' samples of the method against the subject's real images",
}
# Pairings with one figure per generated image: per prompt and per subject the mean over images.
PER_IMAGE_PAIRINGS: tuple[str, ...] = ("real", "text", "image")
AVAILABILITY: dict[str, str] = {
    "core": "always computed",
    "preset": "computed when the metric preset has the metric's network",
    "optional": "computed on request (--extra-metrics)",
}
# The Scorer's embedder slots (metrics/presets.py MetricPreset.networks) and LPIPS (DIV).
NETWORKS: tuple[str, ...] = ("dino", "clip", "dinov2", "lpips")


@dataclass(frozen=True)
class SubjectScore:
    """One subject's figure of an optional metric.

    value: the subject's figure; weight: its weight in the pooled mean over subjects (the number of
    pairs or images it averages); per_prompt: prompt index -> figure, where the metric has them
    (they feed the per-prompt bootstrap); per_image: generated image file name -> its record
    ({"value": figure, plus whatever explains it}), where the metric decides per image."""

    value: float
    weight: int
    per_prompt: dict[int, float] | None = None
    per_image: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class SubjectImages:
    """What an optional metric of one subject is computed from (files with their sha256)."""

    real: tuple[ImageRef, ...]
    generated: tuple[ImageRef, ...]
    prompt_idx: tuple[int, ...]  # of each generated image
    class_samples: tuple[ImageRef, ...] = ()
    images_per_prompt: int = 0

    def by_prompt(self) -> dict[int, list[ImageRef]]:
        """Generated images grouped by prompt index, in their order."""
        out: dict[int, list[ImageRef]] = {}
        for p, ref in zip(self.prompt_idx, self.generated, strict=True):
            out.setdefault(p, []).append(ref)
        return out

    def inputs(self, pairing: str) -> list[str]:
        """The sha256s a metric of `pairing` is computed from: its stored figure is reused only
        while they are the same."""
        refs = self.class_samples if pairing == "class-samples" else self.generated
        if pairing == "real":  # compared with the real images: they are inputs too
            refs = (*refs, *self.real)
        return [r.sha256 for r in refs]


@dataclass(frozen=True)
class MetricSpec:
    """One metric, declared once (see the module docstring for pairing, availability, compute).

    name: the key in scores, results.json and tables ("dino"); title: its display name ("DINO");
    version: bump it whenever the definition or preprocessing changes (the leaderboard refuses to
    mix versions, stored figures are recomputed); higher_is_better: the direction `bench compare`
    gates in and tables mark (a "↓" after the title when lower is better); networks: the embedder
    slots it needs (NETWORKS); convention: the units of its figure (None: the metric preset's,
    raw cosine or "cosine x scale"); definition: one sentence for results.json (core and preset
    metrics: a template with ``{pairs}`` and ``{<network>}`` filled from the metric preset);
    decimals: digits shown in tables; max_drop: `bench compare`'s default tolerance, in the
    figure's units; in_every_identity: the version is part of every scoring identity, computed or
    not (PRES and DIV were recorded so before optional metrics entered only when requested; keeping
    it keeps their run directories); image_flag: the word the report's gallery shows on a generated
    image whose per-image value is non-zero ("copy"), for metrics that record `per_image`.
    """

    name: str
    title: str
    version: int
    higher_is_better: bool
    pairing: str
    availability: str = "optional"
    networks: tuple[str, ...] = ()
    convention: str | None = None
    definition: str = ""
    compute: str | Callable[..., Any] | None = field(default=None, compare=False)
    decimals: int = 3
    max_drop: float = 0.01
    in_every_identity: bool = False
    image_flag: str = ""

    def __post_init__(self) -> None:
        def bad(what: str) -> BenchError:
            return BenchError(f"metric declaration {self.name!r}: {what}")

        if not self.name.isidentifier() or self.name != self.name.lower():
            raise bad("name must be a lower-case identifier (letters, digits, _)")
        if not self.title:
            raise bad("title (display name) is empty")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise bad(f"version {self.version!r} must be an integer >= 1")
        if self.pairing not in PAIRINGS:
            raise bad(f"unknown pairing {self.pairing!r}; valid: {', '.join(PAIRINGS)}")
        if self.availability not in AVAILABILITY:
            raise bad(f"unknown availability {self.availability!r}; valid: {', '.join(AVAILABILITY)}")
        unknown = [n for n in self.networks if n not in NETWORKS]
        if unknown:
            raise bad(f"unknown network {unknown[0]!r}; valid: {', '.join(NETWORKS)}")
        if self.availability == "optional":
            if self.compute is None:
                raise bad("an optional metric declares its computation (compute=...)")
            if self.pairing == "text":
                raise bad("pairing 'text' is computed by the Scorer for core and preset metrics only")
        elif self.pairing not in ("real", "text") or len(self.networks) != 1:
            raise bad("core and preset metrics pair with 'real' or 'text' through exactly one network")
        if self.decimals < 0 or self.max_drop < 0:
            raise bad("decimals and max_drop must be >= 0")

    @property
    def per_image(self) -> bool:
        """One figure per generated image (aggregated like DINO), rather than per prompt or subject."""
        return self.pairing in PER_IMAGE_PAIRINGS

    @property
    def column_title(self) -> str:
        """The table header: the title, with "↓" when lower is better ("PRES ↓")."""
        return self.title if self.higher_is_better else f"{self.title} ↓"

    def load_compute(self) -> Callable[..., Any]:
        """The computation, imported when it is a ``"module:function"`` string."""
        if self.compute is None:
            raise BenchError(f"metric {self.name!r} is computed by the Scorer, it has no compute function")
        if callable(self.compute):
            return self.compute
        module_name, sep, attr = self.compute.partition(":")
        if not sep or not module_name or not attr:
            raise BenchError(f"metric {self.name!r}: compute {self.compute!r} is not module:function")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise BenchError(f"metric {self.name!r}: cannot load {self.compute!r} ({exc})") from None

    def info(self) -> dict[str, Any]:
        """The results.json "metrics.<name>" fields the declaration fixes (version, direction,
        convention, definition); the Scorer adds the embedder id."""
        out: dict[str, Any] = {"version": self.version, "higher_is_better": self.higher_is_better}
        if self.convention is not None:
            out["convention"] = self.convention
        out["definition"] = self.definition
        return out

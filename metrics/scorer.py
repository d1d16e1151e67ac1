"""The Scorer: images on disk -> DINO / CLIP-I / CLIP-T scores, through the embedding cache.

The runner calls exactly this:

    scorer = Scorer("dreambooth", device="auto")
    scorer.metrics_info()                                   # versions, conventions, embedder ids
    scorer.score_generated(real, generated, prompts, identifier)  # one dict per generated image
    scorer.score_real_pairs(real)                           # the real-images ceiling of one subject

Weights are resolved (and hashed) lazily, once per Scorer; a network is loaded only when some
embedding is missing from the cache, and only once. Every embedding goes through `EmbeddingCache`, keyed
by (embedder id, image sha256) or (embedder id, text sha256): re-scoring the same images runs no
network. Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dreambench.errors import BenchError, did_you_mean
from dreambench.metrics.embedder import EmbedderId
from dreambench.metrics.embedding_cache import EmbeddingCache, text_sha256
from dreambench.metrics.functions import (
    clip_t_text,
    distinct_pairs_mean_cosine,
    paired_cosine,
    per_image_mean_cosine,
)
from dreambench.metrics.presets import (
    DEFAULT_METRIC_PRESET,
    METRIC_VERSIONS,
    EmbedderSpec,
    MetricPreset,
    get_metric_preset,
)

if TYPE_CHECKING:
    from dreambench.metrics.embedder import ImageEmbedder, TextEmbedder
    from dreambench.metrics.lpips_net import LpipsNet
    from dreambench.metrics.weights import ResolvedWeights

DEFINITIONS = {
    "dino": "mean over all (generated, real) pairs of the cosine of DINO ViT-S/16 CLS embeddings",
    "clip_i": "mean over all (generated, real) pairs of the cosine of CLIP ViT-B/32 image embeddings",
    "clip_t": "cosine of the CLIP ViT-B/32 embeddings of the generated image and its prompt",
}
# Metrics computed only when asked for (`bench run --metrics ...pres,div`): they cost extra renders
# (PRES) or an extra network (DIV).
OPTIONAL_METRICS: tuple[str, ...] = ("pres", "div")
# How many undecoded images are held in memory at once when embedding cache misses.
_DECODE_CHUNK = 128


@dataclass(frozen=True)
class ImageRef:
    """An image file and the sha256 of its bytes (the embedding-cache key; trusted, not re-hashed)."""

    path: Path
    sha256: str


class Scorer:
    """Scores images with a metric preset's embedders; see the module docstring."""

    def __init__(
        self,
        preset: str | MetricPreset = DEFAULT_METRIC_PRESET,
        device: str = "auto",
        batch_size: int = 32,
        backend: str | None = None,
    ) -> None:
        resolved = get_metric_preset(preset) if isinstance(preset, str) else preset
        self.preset: MetricPreset = resolved.with_backend(backend) if backend is not None else resolved
        self.calibrated: bool = self.preset.calibrated
        self.device = device
        self.batch_size = batch_size
        # Distinct images / texts that missed the cache and were run through a network.
        self.embedded_images = 0
        self.embedded_texts = 0
        self._resolved: dict[str, ResolvedWeights] = {}
        self._loaded: dict[str, ImageEmbedder] = {}
        self._lpips: LpipsNet | None = None

    # -- embedders (lazy) ------------------------------------------------------------------------

    def _weights(self, kind: str) -> ResolvedWeights:
        """Resolve (and hash) a network's weights once; cheap compared with loading the network."""
        if kind not in self._resolved:
            from dreambench.metrics.weights import resolve_weights

            spec = self._spec(kind)
            self._resolved[kind] = resolve_weights(kind, spec.backend, spec.source)
        return self._resolved[kind]

    def _spec(self, kind: str) -> EmbedderSpec:
        return {"dino": self.preset.dino, "clip": self.preset.clip}[kind]

    def _embedder_class(self, kind: str) -> type:
        from dreambench.metrics.clip import CLIP_BACKENDS
        from dreambench.metrics.dino import DINO_BACKENDS

        spec = self._spec(kind)
        backends = {"dino": DINO_BACKENDS, "clip": CLIP_BACKENDS}[kind]
        if spec.backend not in backends:
            raise did_you_mean(spec.backend, backends, f"{kind} backend")
        embedder_cls = backends[spec.backend]
        if embedder_cls.arch != spec.arch:
            raise BenchError(f"{kind} arch {spec.arch!r} is not supported; valid: {embedder_cls.arch}")
        return embedder_cls

    def embedder_id(self, kind: str) -> EmbedderId:
        """The id of network `kind` ("dino" | "clip") without loading it (weights are resolved and hashed)."""
        spec = self._spec(kind)
        weights = self._weights(kind)
        self._embedder_class(kind)
        return EmbedderId(spec.backend, spec.arch, weights.tag, weights.sha256)

    def _load(self, kind: str) -> ImageEmbedder:
        if kind not in self._loaded:
            embedder = self._embedder_class(kind).load(
                self._weights(kind), device=self.device, batch_size=self.batch_size
            )
            if embedder.id != self.embedder_id(kind):
                raise RuntimeError(
                    f"embedder id {embedder.id} differs from the resolved {self.embedder_id(kind)}"
                )
            self._loaded[kind] = embedder
        return self._loaded[kind]

    @property
    def dino(self) -> ImageEmbedder:
        """The DINO embedder, loaded on first use (once per Scorer)."""
        return self._load("dino")

    @property
    def clip(self) -> TextEmbedder:
        """The CLIP embedder (image and text towers), loaded on first use (once per Scorer)."""
        return self._load("clip")  # type: ignore[return-value]

    # -- metadata --------------------------------------------------------------------------------

    def metrics_info(self) -> dict[str, dict]:
        """Per metric: version, direction, convention, embedder id and definition (for results.json).

        Resolves and hashes the weights (the ids hold their sha256), so missing weights fail here,
        before any work; the networks themselves are loaded only when an embedding is not cached.
        """
        scale = self.preset.scale
        convention = "raw cosine in [-1, 1]" if scale == 1.0 else f"cosine x {scale:g}"
        networks = {"dino": "dino", "clip_i": "clip", "clip_t": "clip"}
        info: dict[str, dict] = {}
        for name, kind in networks.items():
            info[name] = {
                "version": METRIC_VERSIONS[name],
                "higher_is_better": True,
                "convention": convention,
                "embedder": self.embedder_id(kind).as_dict(),
                "definition": DEFINITIONS[name],
            }
        info["clip_t"]["text"] = (
            "identifier kept" if self.preset.clip_t_keep_identifier else "identifier removed"
        )
        return info

    # -- embeddings through the cache ------------------------------------------------------------

    def _image_embeddings(
        self, refs: Sequence[ImageRef], networks: tuple[str, ...] = ("dino", "clip")
    ) -> tuple[np.ndarray, ...]:
        """Embeddings of `refs` by each of `networks` (DINO (N, 384), CLIP (N, 512)), in `refs` order."""
        from dreambench.dataset.images import load_image

        if not refs:
            raise BenchError("no images to score")
        caches = {k: EmbeddingCache(self.embedder_id(k)) for k in networks}
        shas = list(dict.fromkeys(r.sha256 for r in refs))
        found = {k: caches[k].get_many("images", shas) for k in networks}
        paths = {r.sha256: Path(r.path) for r in refs}
        missing = [s for s in shas if any(s not in found[k] for k in networks)]
        for start in range(0, len(missing), _DECODE_CHUNK):
            chunk = missing[start : start + _DECODE_CHUNK]
            images = {s: load_image(paths[s]) for s in chunk}
            for k in networks:
                todo = [s for s in chunk if s not in found[k]]
                if not todo:
                    continue
                vectors = self._load(k).embed_images([images[s] for s in todo])
                for s, v in zip(todo, vectors):
                    caches[k].put("images", s, v)
                    found[k][s] = v
            self.embedded_images += len(chunk)
        return tuple(np.stack([found[k][r.sha256] for r in refs]) for k in networks)

    def _text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """CLIP text embeddings (N, 512) of `texts`, in order."""
        cache = EmbeddingCache(self.embedder_id("clip"))
        keys = {t: text_sha256(t) for t in texts}
        found = cache.get_many("texts", keys.values())
        todo = [t for t in dict.fromkeys(texts) if keys[t] not in found]
        if todo:
            for t, v in zip(todo, self.clip.embed_texts(todo)):
                cache.put("texts", keys[t], v)
                found[keys[t]] = v
            self.embedded_texts += len(todo)
        return np.stack([found[keys[t]] for t in texts])

    # -- scores ----------------------------------------------------------------------------------

    def score_generated(
        self,
        real: Sequence[ImageRef],
        generated: Sequence[ImageRef],
        prompts: Sequence[str],
        identifier: str,
    ) -> list[dict[str, float]]:
        """One dict per generated image, in order:

        dino   = mean_j cos(DINO(gen_i), DINO(real_j))    (mean over all real images of the subject)
        clip_i = mean_j cos(CLIP(gen_i), CLIP(real_j))
        clip_t = cos(CLIP(gen_i), CLIP_text(clip_t_text(prompt_i, identifier)))
        each multiplied by the preset's scale (1.0: raw cosine in [-1, 1]).
        """
        if len(prompts) != len(generated):
            raise BenchError(
                f"got {len(generated)} generated images but {len(prompts)} prompts; need one each"
            )
        if not real:
            raise BenchError("no real images to compare the generated images with")
        if not generated:
            return []
        real_dino, real_clip = self._image_embeddings(real)
        gen_dino, gen_clip = self._image_embeddings(generated)
        texts = [clip_t_text(p, identifier, self.preset.clip_t_keep_identifier) for p in prompts]
        text_emb = self._text_embeddings(texts)
        scale = self.preset.scale
        dino = per_image_mean_cosine(gen_dino, real_dino) * scale
        clip_i = per_image_mean_cosine(gen_clip, real_clip) * scale
        clip_t = paired_cosine(gen_clip, text_emb) * scale
        return [
            {"dino": float(d), "clip_i": float(c), "clip_t": float(t)}
            for d, c, t in zip(dino, clip_i, clip_t)
        ]

    @property
    def lpips(self) -> LpipsNet:
        """The LPIPS network for DIV: real weights for calibrated presets, seeded smoke weights otherwise."""
        if self._lpips is None:
            from dreambench.metrics.lpips_net import LpipsNet

            self._lpips = (
                LpipsNet.load(device=self.device)
                if self.preset.calibrated
                else LpipsNet.smoke(device=self.device)
            )
        return self._lpips

    def optional_metrics_info(self, names: Sequence[str]) -> dict[str, dict]:
        """results.json "metrics" entries of the optional metrics `names` ("pres", "div")."""
        from dreambench.metrics.diversity import METRIC as DIV
        from dreambench.metrics.preservation import METRIC as PRES

        info: dict[str, dict] = {}
        for name in names:
            if name == "pres":
                info[name] = {
                    **{k: v for k, v in PRES.items() if k != "name"},
                    "embedder": self.embedder_id("dino").as_dict(),
                }
            elif name == "div":
                info[name] = {
                    **{k: v for k, v in DIV.items() if k != "name"},
                    "embedder": self.lpips.id.as_dict(),
                }
            else:
                raise did_you_mean(name, OPTIONAL_METRICS, "optional metric")
        return info

    def score_diversity(self, images_by_prompt: Mapping[int, Sequence[ImageRef]]) -> dict:
        """DIV of one subject: ``{"div": mean over prompts, "per_prompt": {idx: mean pairwise LPIPS}}``."""
        from dreambench.dataset.images import load_image
        from dreambench.metrics.diversity import div_for_subject

        images = {p: [load_image(Path(r.path)) for r in refs] for p, refs in images_by_prompt.items()}
        return div_for_subject(self.lpips, images)

    def score_preservation(self, real: Sequence[ImageRef], class_samples: Sequence[ImageRef]) -> float:
        """PRES: mean DINO cosine between "a {class}" samples of the fine-tuned model and the real
        images (all pairs; lower = less language drift). See metrics/preservation.py."""
        from dreambench.metrics.preservation import pres_score

        (real_dino,) = self._image_embeddings(real, ("dino",))
        (class_dino,) = self._image_embeddings(class_samples, ("dino",))
        return pres_score(class_dino, real_dino) * self.preset.scale

    def score_real_pairs(self, real: Sequence[ImageRef]) -> dict[str, float]:
        """The real-images ceiling of one subject: mean cosine over distinct real-real pairs (i < j)."""
        if len(real) < 2:
            raise BenchError(f"need at least 2 real images for real-pair scores, got {len(real)}")
        real_dino, real_clip = self._image_embeddings(real)
        scale = self.preset.scale
        return {
            "dino": distinct_pairs_mean_cosine(real_dino) * scale,
            "clip_i": distinct_pairs_mean_cosine(real_clip) * scale,
        }

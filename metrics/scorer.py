"""The Scorer: images on disk -> the declared metrics' scores, through the embedding cache.

The runner calls exactly this:

    scorer = Scorer("dreambooth", device="auto")
    scorer.metrics_info()                                   # versions, conventions, embedder ids
    scorer.score_generated(real, generated, prompts, identifier, positions)  # one dict per generated image
    scorer.score_real_pairs(real)                           # the real-images ceiling of one subject
    scorer.score_optional("div", images)                    # an optional metric of one subject

The metrics are the declarations of metrics/metric_registry.py: the core and preset ones
(pairing "real" / "text") are computed here from the preset's embedders, the optional ones by their
declared computation.

Weights are resolved (and hashed) lazily, once per Scorer; a network is loaded only when some
embedding is missing from the cache, and only once. Every embedding goes through `EmbeddingCache`, keyed
by (embedder id, image sha256) or (embedder id, text sha256): re-scoring the same images runs no
network. Importing this module does not import torch.

Cache misses are embedded in batches of `batch_size` (32 on the CPU, sized for the card on CUDA)
while background threads read, hash, decode and preprocess the next images (metrics/prefetch.py),
so the network never waits for the disk. The key of an image is the sha256 of the bytes actually
read: a file whose bytes no longer hash to its `ImageRef.sha256` is refused, so no embedding is
ever stored under another image's key.

Precision: fp32 everywhere by default (on CUDA without autocast and with TF32 off); `precision="bf16"`
is an explicit fast mode, and `precision="auto"` picks bf16 where this device runs it natively, else
fp32 (metrics/precision.py; `requested_precision` keeps what was asked). bf16 on a device that
emulates it prints one warning line to stderr when the Scorer is built. The resolved precision is
part of every embedder id, so bf16 embeddings live in their own cache folder and bf16 results carry
their own identity (`identity()`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dreambench.errors import BenchError, did_you_mean
from dreambench.metrics.embedder import DEFAULT_PRECISION, EmbedderId
from dreambench.metrics.embedding_cache import EmbeddingCache, text_sha256
from dreambench.metrics.functions import (
    clip_t_text,
    distinct_pairs_mean_cosine,
    paired_cosine,
    per_image_mean_cosine,
)
from dreambench.metrics.metric_registry import get_metric, metrics
from dreambench.metrics.metric_spec import MetricSpec, SubjectImages, SubjectScore
from dreambench.metrics.precision import precision_warning, resolve_precision
from dreambench.metrics.presets import (
    DEFAULT_METRIC_PRESET,
    ONE_PAIR_PAIRINGS,
    EmbedderSpec,
    MetricPreset,
    get_metric_preset,
)
from dreambench.metrics.reference_list import load_reference_list

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from dreambench.metrics.embedder import ImageEmbedder, TextEmbedder
    from dreambench.metrics.lpips_net import LpipsNet
    from dreambench.metrics.weights import ResolvedWeights

# How each pairing is worded in a metric's definition (results.json "metrics.<name>.definition").
_PAIRING_WORDS = {
    "all-pairs": "mean over all (generated, real) pairs",
    "paired-source": "per generated image, with its one paired real image (PAIRINGS)",
    "fixed-reference": "per generated image, with the subject's one listed reference image (PAIRINGS)",
}


def _network_words(arch: str) -> str:
    return arch if arch.startswith("DINOv2") else f"DINO {arch}"


def preset_metrics(preset: MetricPreset) -> list[MetricSpec]:
    """The metrics the Scorer computes from `preset`'s embedders, in display order: the core ones
    and those whose network the preset has (DINOv2)."""
    return [
        m
        for m in metrics().values()
        if m.availability != "optional" and all(n in preset.networks for n in m.networks)
    ]


def metric_definitions(preset: MetricPreset) -> dict[str, str]:
    """The definition of each image metric under `preset` (networks and pairing named)."""
    words = {
        "pairs": _PAIRING_WORDS[preset.pairing],
        **{n: _network_words(preset.spec(n).arch) for n in preset.networks if n != "clip"},
        "clip": preset.clip.arch,
    }
    return {m.name: m.definition.format_map(words) for m in preset_metrics(preset)}
# Cache misses are planned in chunks of this many images (at least one batch): per chunk, every DINO
# batch, then every CLIP batch. The same plan as before prefetching, so fp32 numbers keep their bits.
_DECODE_CHUNK = 128
# Batches prepared ahead of the one the network is running (bounds memory: ~0.6 MB per image).
_PREFETCH_BATCHES = 2


@dataclass(frozen=True)
class ImageRef:
    """An image file and the sha256 of its bytes: the embedding-cache key. A cache hit trusts it; a
    miss re-hashes the bytes it reads and refuses the file when they differ."""

    path: Path
    sha256: str


class Scorer:
    """Scores images with a metric preset's embedders; see the module docstring."""

    def __init__(
        self,
        preset: str | MetricPreset = DEFAULT_METRIC_PRESET,
        device: str = "auto",
        batch_size: int | None = None,
        backend: str | None = None,
        precision: str = DEFAULT_PRECISION,
        decode_workers: int | None = None,
        clip_t_keep_identifier: bool | None = None,
        extra_metrics: Sequence[str] = (),
    ) -> None:
        """`batch_size` / `decode_workers`: None picks them for the device (32 and 1 thread on the
        CPU, where the network needs both cores; sized for the card and up to 8 threads on CUDA).
        `clip_t_keep_identifier`: None keeps the preset's CLIP-T text rule; True / False overrides it
        (`--clip-t-keep-identifier`). `extra_metrics`: the optional metrics the run computes
        (`--extra-metrics`); their versions enter `identity()`."""
        resolved = get_metric_preset(preset) if isinstance(preset, str) else preset
        if clip_t_keep_identifier is not None:
            resolved = dataclasses.replace(resolved, clip_t_keep_identifier=clip_t_keep_identifier)
        self.preset: MetricPreset = resolved.with_backend(backend) if backend is not None else resolved
        self.calibrated: bool = self.preset.calibrated
        # "auto" is resolved here, once (metrics/precision.py); only the resolved precision enters
        # embedder ids and identity(), which is what a Ray worker rebuilds its Scorer from.
        self.requested_precision = precision
        self.precision = resolve_precision(precision, device)
        warning = precision_warning(self.precision, device)
        if warning is not None:
            print(warning, file=sys.stderr)  # before any work: bf16 is emulated on this device
        self.device = device
        if batch_size is not None and batch_size < 1:
            raise BenchError(f"batch_size must be >= 1, got {batch_size}")
        if decode_workers is not None and decode_workers < 1:
            raise BenchError(f"decode_workers must be >= 1, got {decode_workers}")
        self._batch_size = batch_size
        self._decode_workers = decode_workers
        for name in extra_metrics:
            if get_metric(name).availability != "optional":
                raise BenchError(f"metric {name!r} is always computed; it is not an extra metric")
        self.extra_metrics: tuple[str, ...] = tuple(dict.fromkeys(extra_metrics))
        # Distinct images / texts that missed the cache and were run through a network.
        self.embedded_images = 0
        self.embedded_texts = 0
        self._resolved: dict[str, ResolvedWeights] = {}
        self._loaded: dict[str, ImageEmbedder] = {}
        # Seconds spent loading networks so far (bench/cost.py records it as a stage's load_s).
        self.load_seconds = 0.0
        self._lpips: LpipsNet | None = None

    # -- embedders (lazy) ------------------------------------------------------------------------

    def _weights(self, kind: str) -> ResolvedWeights:
        """Resolve (and hash) a network's weights once; cheap compared with loading the network."""
        if kind not in self._resolved:
            from dreambench.metrics.weights import resolve_weights

            spec = self._spec(kind)
            self._resolved[kind] = resolve_weights(spec.weights_kind, spec.backend, spec.source)
        return self._resolved[kind]

    def _spec(self, kind: str) -> EmbedderSpec:
        return self.preset.spec(kind)

    def _embedder_class(self, kind: str) -> type:
        from dreambench.metrics.clip import CLIP_BACKENDS
        from dreambench.metrics.dino import DINO_BACKENDS

        spec = self._spec(kind)
        backends = CLIP_BACKENDS if kind == "clip" else DINO_BACKENDS
        if spec.backend not in backends:
            raise did_you_mean(spec.backend, backends, f"{kind} backend")
        embedder_cls = backends[spec.backend]
        archs = embedder_cls.archs if hasattr(embedder_cls, "archs") else (embedder_cls.arch,)
        if spec.arch not in archs:
            raise BenchError(f"{kind} arch {spec.arch!r} is not supported; valid: {', '.join(archs)}")
        return embedder_cls

    def embedder_id(self, kind: str) -> EmbedderId:
        """The id of network `kind` ("dino" | "clip") without loading it (weights are resolved and hashed)."""
        spec = self._spec(kind)
        weights = self._weights(kind)
        recipe = self._embedder_class(kind).precision_recipe(self.precision)
        return EmbedderId(spec.backend, spec.arch, weights.tag, weights.sha256, self.precision, recipe)

    def identity(self) -> dict[str, Any]:
        """Every scoring input that can change a figure: metric preset, conventions (scale, CLIP-T
        text, pairing, protocol), metric versions, precision and every embedder id (backend, arch,
        weights tag and sha256).

        It is part of the run's identity (RunConfig.scoring) and, as `identity_key()`, stamped on
        every scores.jsonl row: finished scores are reused only under the identity they were made with.
        """
        identity: dict[str, Any] = {
            "metric_preset": self.preset.name,
            "precision": self.precision,
            "scale": self.preset.scale,
            "clip_t_keep_identifier": self.preset.clip_t_keep_identifier,
            "metric_versions": self._metric_versions(),
            "embedders": {kind: self.embedder_id(kind).as_dict() for kind in self.preset.networks},
        }
        # Conventions at their DreamBooth values are left out, so that identities (and the run
        # directories they name) made before other conventions existed stay the same.
        if self.preset.pairing != "all-pairs":
            identity["pairing"] = self.preset.pairing
        if self.preset.protocol != "dreambooth":
            identity["protocol"] = self.preset.protocol
        if self.preset.references:
            identity["references"] = load_reference_list(self.preset.references).record()
        return identity

    def _metric_versions(self) -> dict[str, int]:
        """The versions of the metrics this Scorer computes (and of those in every identity)."""
        computed = {m.name for m in preset_metrics(self.preset)} | set(self.extra_metrics)
        return {
            name: m.version for name, m in metrics().items() if name in computed or m.in_every_identity
        }

    def identity_key(self) -> str:
        """16 hex digits of sha256 over the canonical JSON of `identity()`."""
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    @property
    def batch_size(self) -> int:
        """Images per forward pass (see __init__)."""
        if self._batch_size is None:
            from dreambench.metrics.embedder import default_batch_size, resolve_device

            self._batch_size = default_batch_size(resolve_device(self.device))
        return self._batch_size

    @property
    def decode_workers(self) -> int:
        """Threads that read, decode and preprocess images ahead of the network (see __init__)."""
        if self._decode_workers is None:
            from dreambench.metrics.embedder import resolve_device

            gpu = resolve_device(self.device).type == "cuda"
            self._decode_workers = min(8, os.cpu_count() or 1) if gpu else 1
        return self._decode_workers

    def _load(self, kind: str) -> ImageEmbedder:
        if kind not in self._loaded:
            # The DINO-type classes load several architectures; CLIP has one.
            arch = {} if kind == "clip" else {"arch": self._spec(kind).arch}
            embedder = self._embedder_class(kind).load(
                self._weights(kind),
                device=self.device,
                batch_size=self.batch_size,
                precision=self.precision,
                **arch,
            )
            if embedder.id != self.embedder_id(kind):
                raise RuntimeError(
                    f"embedder id {embedder.id} differs from the resolved {self.embedder_id(kind)}"
                )
            self._loaded[kind] = embedder
        return self._loaded[kind]

    def _load_all(self, networks: Sequence[str]) -> dict[str, ImageEmbedder]:
        """Load `networks`, those not loaded yet side by side in threads: building a model is mostly
        single-threaded random initialisation (then overwritten by the checkpoint), so on 2+ cores
        both networks are ready in about the time of the larger one (start-up to the first image)."""
        todo = [k for k in networks if k not in self._loaded]
        started = time.perf_counter()
        if len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor

            # Here, in this thread: the imports (two threads importing timm / open_clip /
            # transformers at once can deadlock on Python's module locks) and the weights'
            # resolution (a first smoke-weights build, one-time work) before the threads start.
            for kind in todo:
                self._embedder_class(kind).import_backend()
                self._weights(kind)

            with ThreadPoolExecutor(len(todo), thread_name_prefix="dreambench-load") as pool:
                list(pool.map(self._load, todo))
        loaded = {k: self._load(k) for k in networks}
        if todo:
            # One-off work inside the first scoring stage; `bench cost` counts it apart from images/s.
            self.load_seconds += time.perf_counter() - started
        return loaded

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
        definitions = metric_definitions(self.preset)
        info: dict[str, dict] = {}
        for m in preset_metrics(self.preset):
            info[m.name] = {
                **m.info(),
                "convention": m.convention or convention,
                "embedder": self.embedder_id(m.networks[0]).as_dict(),
                "definition": definitions[m.name],
            }
            if m.pairing == "text":
                info[m.name]["text"] = (
                    "identifier kept" if self.preset.clip_t_keep_identifier else "identifier removed"
                )
        return info

    # -- embeddings through the cache ------------------------------------------------------------

    def _image_embeddings(
        self, refs: Sequence[ImageRef], networks: tuple[str, ...] = ("dino", "clip")
    ) -> tuple[np.ndarray, ...]:
        """Embeddings of `refs` by each of `networks` (DINO (N, 384), CLIP (N, 512), ...), in `refs` order."""
        if not refs:
            raise BenchError("no images to score")
        caches = {k: EmbeddingCache(self.embedder_id(k)) for k in networks}
        shas = list(dict.fromkeys(r.sha256 for r in refs))
        found = {k: caches[k].get_many("images", shas) for k in networks}
        paths = {r.sha256: Path(r.path) for r in refs}
        missing = [s for s in shas if any(s not in found[k] for k in networks)]
        if missing:
            embedders = self._load_all(networks)
            plan = _batch_plan(missing, found, networks, self.batch_size)
            for kind, batch, pixels in self._prefetched(plan, embedders, paths):
                vectors = embedders[kind].embed_pixels(pixels)
                caches[kind].put_many("images", zip(batch, vectors))
                found[kind].update(zip(batch, vectors))
            self.embedded_images += len(missing)
        return tuple(np.stack([found[k][r.sha256] for r in refs]) for k in networks)

    def _prefetched(
        self,
        plan: list[tuple[str, list[str]]],
        embedders: Mapping[str, ImageEmbedder],
        paths: Mapping[str, Path],
    ) -> Iterator[tuple[str, list[str], torch.Tensor]]:
        """The plan's batches with their pixels, prepared by background threads ahead of use.

        Each image is read and decoded once; its pixels for every network that needs it are kept
        until that network's batch comes (at most one chunk's worth).
        """
        from dreambench.metrics.prefetch import background, ordered_map

        needs: dict[str, list[str]] = {}
        for kind, batch in plan:
            for sha in batch:
                needs.setdefault(sha, []).append(kind)

        def prepare(sha: str) -> tuple[str, dict[str, torch.Tensor]]:
            image = _read_image(paths[sha], sha)
            return sha, {kind: embedders[kind].preprocess([image])[0] for kind in needs[sha]}

        def batches() -> Iterator[tuple[str, list[str], torch.Tensor]]:
            import torch

            prepared = ordered_map(
                prepare,
                list(needs),
                workers=self.decode_workers,
                window=max(self.batch_size, 2 * self.decode_workers),
            )
            ready: dict[tuple[str, str], torch.Tensor] = {}
            for kind, batch in plan:
                for sha in batch:
                    while (kind, sha) not in ready:
                        done, pixels = next(prepared)
                        ready.update(((k, done), x) for k, x in pixels.items())
                yield kind, batch, torch.stack([ready.pop((kind, sha)) for sha in batch])

        return background(batches(), depth=_PREFETCH_BATCHES)
    def _text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """CLIP text embeddings (N, 512) of `texts`, in order."""
        cache = EmbeddingCache(self.embedder_id("clip"))
        keys = {t: text_sha256(t) for t in texts}
        found = cache.get_many("texts", keys.values())
        todo = [t for t in dict.fromkeys(texts) if keys[t] not in found]
        if todo:
            vectors = self.clip.embed_texts(todo)
            cache.put_many("texts", ((keys[t], v) for t, v in zip(todo, vectors)))
            found.update((keys[t], v) for t, v in zip(todo, vectors))
            self.embedded_texts += len(todo)
        return np.stack([found[keys[t]] for t in texts])

    # -- scores ----------------------------------------------------------------------------------

    def score_generated(
        self,
        real: Sequence[ImageRef],
        generated: Sequence[ImageRef],
        prompts: Sequence[str],
        identifier: str,
        positions: Sequence[tuple[int, int]] | None = None,
    ) -> list[dict[str, Any]]:
        """One dict per generated image, in order. Pairing "all-pairs" (the DreamBooth paper):

        dino   = mean_j cos(DINO(gen_i), DINO(real_j))    (mean over all real images of the subject)
        clip_i = mean_j cos(CLIP(gen_i), CLIP(real_j))
        clip_t = cos(CLIP(gen_i), CLIP_text(clip_t_text(prompt_i, identifier)))

        Pairing "paired-source" (DreamBench++): dino / clip_i (and dinov2) are the cosine with the
        one real image `paired_source_index(positions[i], len(real))`, whose file name the row
        records as "paired_with". `positions`: (prompt_idx, sample_idx) of each generated image,
        required for that pairing. Pairing "fixed-reference" (UNO): the cosine with the subject's one
        real image in the preset's reference list (found by sha256), also recorded as "paired_with".
        Every figure is multiplied by the preset's scale (1.0: raw cosine).
        """
        if len(prompts) != len(generated):
            raise BenchError(
                f"got {len(generated)} generated images but {len(prompts)} prompts; need one each"
            )
        if not real:
            raise BenchError("no real images to compare the generated images with")
        if not generated:
            return []
        networks = self.preset.networks
        real_emb = dict(zip(networks, self._image_embeddings(real, networks)))
        gen_emb = dict(zip(networks, self._image_embeddings(generated, networks)))
        scale = self.preset.scale
        declared = preset_metrics(self.preset)
        extra: list[dict[str, Any]] = [{} for _ in generated]
        if self.preset.pairing == "paired-source":
            if positions is None or len(positions) != len(generated):
                raise BenchError(
                    f"metric preset {self.preset.name!r} pairs each image with one real image: "
                    "give the (prompt_idx, sample_idx) of every generated image"
                )
            index = [paired_source_index(p, s, len(real)) for p, s in positions]
            extra = [{"paired_with": Path(real[k].path).name} for k in index]
        elif self.preset.pairing == "fixed-reference":
            references = load_reference_list(self.preset.references)
            fixed = references.index_in([(Path(r.path).name, r.sha256) for r in real])
            index = [fixed] * len(generated)
            extra = [{"paired_with": Path(real[fixed].path).name} for _ in generated]
        figures: dict[str, np.ndarray] = {}
        for m in declared:
            k = m.networks[0]
            if m.pairing == "text":
                texts = [clip_t_text(p, identifier, self.preset.clip_t_keep_identifier) for p in prompts]
                figures[m.name] = paired_cosine(gen_emb[k], self._text_embeddings(texts)) * scale
            elif self.preset.pairing in ONE_PAIR_PAIRINGS:
                figures[m.name] = paired_cosine(gen_emb[k], real_emb[k][index]) * scale
            else:
                figures[m.name] = per_image_mean_cosine(gen_emb[k], real_emb[k]) * scale
        return [{**{m: float(f[i]) for m, f in figures.items()}, **extra[i]} for i in range(len(generated))]

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
        """results.json "metrics" entries of the optional metrics `names` ("pres", "div", ...):
        the declaration's fields and, where it uses a network, that network's id."""
        info: dict[str, dict] = {}
        for name in names:
            m = get_metric(name)
            if m.availability != "optional":
                raise BenchError(f"metric {name!r} is always computed; it is not an optional metric")
            info[name] = m.info()
            ids = {n: (self.lpips.id if n == "lpips" else self.embedder_id(n)).as_dict() for n in m.networks}
            if ids:
                info[name]["embedder"] = ids[m.networks[0]]
            if len(ids) > 1:  # copy_rate: DINO and CLIP
                info[name]["embedders"] = ids
        return info

    def score_optional(self, name: str, images: SubjectImages) -> SubjectScore:
        """One subject's figure of the optional metric `name`, by its declared computation."""
        m = get_metric(name)
        compute = m.load_compute()
        if m.pairing != "image":
            return compute(self, images)
        from dreambench.dataset.images import load_image
        from dreambench.metrics.aggregate import mean_per_prompt

        values = [float(compute(load_image(Path(r.path)))) for r in images.generated]
        return mean_per_prompt(values, images.prompt_idx)

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
        networks = self.preset.networks
        emb = dict(zip(networks, self._image_embeddings(real, networks)))
        scale = self.preset.scale
        return {
            m.name: distinct_pairs_mean_cosine(emb[m.networks[0]]) * scale
            for m in preset_metrics(self.preset)
            if m.pairing == "real"
        }


def paired_source_index(prompt_idx: int, sample_idx: int, n_real: int) -> int:
    """The real image (index in the subject's file-name order) that the generated image
    (prompt_idx, sample_idx) is paired with under "paired-source" (metrics/presets.py PAIRINGS)."""
    if n_real < 1:
        raise BenchError("no real images to pair the generated images with")
    return (prompt_idx + sample_idx) % n_real


def _batch_plan(
    missing: Sequence[str], found: Mapping[str, Mapping[str, np.ndarray]], networks: Sequence[str], batch_size: int
) -> list[tuple[str, list[str]]]:
    """(network, image keys) per forward pass, in the order they run: chunk by chunk, each network's
    misses of the chunk in batches of `batch_size`. Batch composition decides the last bits of an fp32
    forward pass on the CPU, so this order is part of the bit-identity guarantee."""
    chunk_size = max(_DECODE_CHUNK, batch_size)
    plan: list[tuple[str, list[str]]] = []
    for start in range(0, len(missing), chunk_size):
        chunk = missing[start : start + chunk_size]
        for kind in networks:
            todo = [s for s in chunk if s not in found[kind]]
            plan += [(kind, todo[i : i + batch_size]) for i in range(0, len(todo), batch_size)]
    return plan


def _read_image(path: Path, sha256: str) -> Image.Image:
    """Decode `path`, refusing it when its bytes do not hash to `sha256` (the key its embedding
    will be stored under): a changed or substituted file never poisons the cache."""
    from dreambench.dataset.images import load_image

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BenchError(f"image file {path} not found") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BenchError(
            f"{path} changed since it was indexed: its bytes hash to {actual[:12]}..., not {sha256[:12]}...; "
            "restore the file, or for a run directory rerun with --force"
        )
    return load_image(path)

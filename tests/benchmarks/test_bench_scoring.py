"""Scoring at the hardware's limit, measured in one run on the same images (smoke weights: the same
compute as the real ones):

  (a) bare forward throughput of both embedders at the Scorer's precision, pixels prepared
      beforehand: the limit, in images/s (both networks: 1 / (1/dino + 1/clip));
  (b) the full Scorer path from an empty embedding cache (read, hash, decode, preprocess, forward,
      cache writes), networks already loaded: images/s, and (b)/(a);
  (c) a re-score from the warm cache of R images (``DREAMBENCH_BENCH_RESCORE_IMAGES``, default
      3,158: a 30-subject run's 3,000 generated + 158 real images), each file read and hashed as
      `bench eval` does, then looked up (seconds; no network runs). The first N entries are (b)'s
      real embeddings; the other R - N are written through ``EmbeddingCache.put_many`` with seeded
      unit vectors, since embedding 3,158 images first would take a quarter of an hour here and a
      lookup's cost does not depend on the vector it finds;
  (d) a fresh process from start-up to its first embedded image (imports, weights resolution with
      the memoised sha256, network loading, one forward pass), seconds.

    pytest tests/benchmarks/test_bench_scoring.py --benchmark-enable -s
    DREAMBENCH_BENCH_SCORING_IMAGES=1000 DREAMBENCH_BENCH_PRECISION=bf16 pytest ... (job size, precision)

Every figure is printed with the machine it was taken on: the CPU model and whether this process's
torch runs bf16 natively there (metrics/precision.py). ``test_scoring_precision_side_by_side``
runs fp32 and bf16 in one process over the same images, interleaved batch by batch ((a) and (b)
for each), and reports bf16's speed as a ratio to fp32's. On a CPU with bf16 units the emulated
case can be measured too: ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` keeps torch to its
AVX2 kernels, where bf16 is emulated as on a CPU without bf16 units.

The job is N distinct 512-px PNGs made from the dataset's photos (the size `bench run` renders).
Figures go to the benchmark's extra_info (see --benchmark-json) and are printed. The CUDA entry
(marker ``gpu``, off by default) reports the Scorer path's images/s on the card.

``test_scorer_process_beside_the_plain_transformers_path`` runs, alternately and twice each, two
whole processes over the same N images from an empty embedding cache: dreambench's Scorer
(start-up, weights, hashing, decoding, both networks, cache writes) and the path a user would write
with transformers alone (``ViTImageProcessor`` + ``ViTModel``, ``CLIPImageProcessor`` +
``CLIPModel``, batch 32, the same smoke weights converted to transformers' format). It reports
both wall times (the faster of each pair) and their ratio.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreambench.cache_root import cache_root
from dreambench.dataset.images import load_image
from dreambench.metrics.embedding_cache import EmbeddingCache
from dreambench.metrics.precision import cpu_bf16_support, cpu_model
from dreambench.metrics.scorer import ImageRef, Scorer

N_IMAGES = int(os.environ.get("DREAMBENCH_BENCH_SCORING_IMAGES", "64"))
RESCORE_IMAGES = int(os.environ.get("DREAMBENCH_BENCH_RESCORE_IMAGES", "3158"))
PRECISION = os.environ.get("DREAMBENCH_BENCH_PRECISION", "fp32")
SIDE = 512
_STARTUP = """
import hashlib, sys
from pathlib import Path
from dreambench.metrics.scorer import ImageRef, Scorer
path = Path(sys.argv[1])
scorer = Scorer("smoke", device=sys.argv[2], precision=sys.argv[3])
scorer._image_embeddings([ImageRef(path, hashlib.sha256(path.read_bytes()).hexdigest())])
assert scorer.embedded_images == 1
"""
# Whole process: the Scorer over the listed images (hashing included, as `bench eval` hashes them).
_SCORER_PROCESS = """
import hashlib, sys
from pathlib import Path
from dreambench.metrics.scorer import ImageRef, Scorer
paths = [Path(p) for p in Path(sys.argv[1]).read_text().splitlines()]
scorer = Scorer("smoke", device="cpu")
scorer._image_embeddings([ImageRef(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths])
assert scorer.embedded_images == len(paths)
"""
# Whole process: what a user would write with transformers alone (the baseline).
_TRANSFORMERS_PROCESS = """
import sys
from pathlib import Path
import torch
from PIL import Image
from transformers import CLIPImageProcessor, CLIPModel, ViTImageProcessor, ViTModel
from transformers.utils import logging
logging.disable_progress_bar()
dino_dir, clip_dir, listing = sys.argv[1:4]
paths = Path(listing).read_text().splitlines()
vit = ViTModel.from_pretrained(dino_dir, add_pooling_layer=False).eval()
clip = CLIPModel.from_pretrained(clip_dir).eval()
vit_processor, clip_processor = ViTImageProcessor(), CLIPImageProcessor()
rows = 0
with torch.inference_mode():
    for i in range(0, len(paths), 32):
        images = [Image.open(p).convert("RGB") for p in paths[i : i + 32]]
        dino = vit(**vit_processor(images, return_tensors="pt")).last_hidden_state[:, 0]
        clip_i = clip.get_image_features(**clip_processor(images, return_tensors="pt"))
        clip_i = clip_i if isinstance(clip_i, torch.Tensor) else clip_i.pooler_output  # v5: an output
        rows += len(dino) + len(clip_i)
assert rows == 2 * len(paths)
"""


_RESIZED: dict[Path, Image.Image] = {}


def _distinct_images(folder: Path, sources: list[Path], n: int, tag: int, start: int = 0) -> list[ImageRef]:
    """`n` 512-px PNGs with distinct bytes (one pixel differs), made from `sources` in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for i in range(start, start + n):
        path = folder / f"{tag}-{i:05d}.png"
        source = sources[i % len(sources)]
        if source not in _RESIZED:
            _RESIZED[source] = load_image(source).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
        image = _RESIZED[source].copy()
        image.putpixel((i % SIDE, (i // SIDE) % SIDE), (tag % 256, i % 256, (i // 256) % 256))
        image.save(path)
        refs.append(ImageRef(path, hashlib.sha256(path.read_bytes()).hexdigest()))
    return refs


@pytest.fixture(scope="module")
def sources(dreambench_data: Path) -> list[Path]:
    return sorted((dreambench_data / "dataset").glob("*/*.jpg"))


def _clear_embeddings() -> None:
    import shutil

    shutil.rmtree(cache_root() / "embeddings", ignore_errors=True)


def _bare_forward_s(scorer: Scorer, refs: list[ImageRef]) -> dict[str, float]:
    """Seconds of forward passes alone (pixels prepared beforehand), per network, in batches."""
    seconds = {}
    for kind in ("dino", "clip"):
        embedder = scorer._load(kind)
        size = scorer.batch_size
        batches = [
            embedder.preprocess([load_image(r.path) for r in refs[i : i + size]])
            for i in range(0, len(refs), size)
        ]
        embedder.embed_pixels(batches[0][:2])  # first-call allocations
        start = time.perf_counter()
        for batch in batches:
            embedder.embed_pixels(batch)
        seconds[kind] = time.perf_counter() - start
    return seconds


def _startup_s(folder: Path, sources: list[Path], device: str) -> float:
    """Wall seconds of a fresh process up to its first embedded image (second of two runs: the
    first fills the weights-hash memo and the OS file cache, as any earlier run would have)."""
    seconds = 0.0
    for tag in (1, 2):
        (ref,) = _distinct_images(folder, sources, 1, tag=10_000 + tag)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", _STARTUP, str(ref.path), device, PRECISION],
            check=True,
            env=os.environ.copy(),
        )
        seconds = time.perf_counter() - start
    return seconds


def _machine() -> dict[str, object]:
    """The CPU the figures were taken on and its bf16 capability for this process's torch."""
    import torch

    support = cpu_bf16_support()
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "bf16_native": support.native,
        "bf16_reason": support.reason,
    }


def _report(benchmark, figures: dict[str, object]) -> None:
    """Figures into extra_info and printed, after the machine they were taken on."""
    figures = {**_machine(), **figures}
    benchmark.extra_info.update({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})
    print(
        "\n" + "\n".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in figures.items())
    )


def _measure(benchmark, folder: Path, sources: list[Path], device: str) -> dict[str, float]:
    refs = _distinct_images(folder, sources, N_IMAGES, tag=0)
    scorer = Scorer("smoke", device=device, precision=PRECISION)
    forward = _bare_forward_s(scorer, refs)
    limit = N_IMAGES / (forward["dino"] + forward["clip"])

    _clear_embeddings()
    start = time.perf_counter()
    cold = scorer._image_embeddings(refs)
    cold_s = time.perf_counter() - start
    assert scorer.embedded_images == N_IMAGES

    # (c): the N images of (b) plus R - N more whose entries are written directly (module doc).
    extra = _distinct_images(folder, sources, max(RESCORE_IMAGES - N_IMAGES, 0), tag=0, start=N_IMAGES)
    rng = np.random.default_rng(0)
    for kind, width in (("dino", cold[0].shape[1]), ("clip", cold[1].shape[1])):
        vectors = rng.standard_normal((len(extra), width)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        EmbeddingCache(scorer.embedder_id(kind)).put_many("images", zip((r.sha256 for r in extra), vectors))
    paths = [r.path for r in refs + extra]

    def rescore() -> tuple[np.ndarray, ...]:
        hashed = [ImageRef(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]
        return Scorer("smoke", device=device, precision=PRECISION)._image_embeddings(hashed)

    start = time.perf_counter()
    warm = benchmark.pedantic(rescore, rounds=3, iterations=1)
    warm_s = benchmark.stats.stats.min if benchmark.stats is not None else time.perf_counter() - start
    assert all(np.array_equal(a[:N_IMAGES], b) for a, b in zip(warm, cold))

    figures = {
        "images": N_IMAGES,
        "precision": PRECISION,
        "batch_size": scorer.batch_size,
        "decode_workers": scorer.decode_workers,
        "a_dino_images_per_s": N_IMAGES / forward["dino"],
        "a_clip_images_per_s": N_IMAGES / forward["clip"],
        "a_both_images_per_s": limit,
        "b_cold_images_per_s": N_IMAGES / cold_s,
        "b_over_a": (N_IMAGES / cold_s) / limit,
        "c_rescore_images": len(paths),
        "c_warm_rescore_s": warm_s,
        "d_startup_to_first_image_s": _startup_s(folder, sources, device),
    }
    _report(benchmark, figures)
    return figures


def test_scoring_pipeline_cpu(
    benchmark, sources: list[Path], tmp_path: Path, empty_embedding_cache: Path
) -> None:
    figures = _measure(benchmark, tmp_path / "job", sources, "cpu")
    assert figures["b_over_a"] > 0 and figures["c_warm_rescore_s"] > 0


def test_scoring_precision_side_by_side(
    benchmark, sources: list[Path], tmp_path: Path, empty_embedding_cache: Path
) -> None:
    """fp32 and bf16 on the same images in one process, interleaved batch by batch (which goes
    first alternates), so a change of load hits both: (a) the bare forward passes of both networks
    over the same prepared batches, (b) the Scorer from an empty cache, batch by batch (fp32 and
    bf16 embeddings have different ids, so each misses the cache). Reports bf16's speed over
    fp32's with the machine and whether bf16 is native there."""
    refs = _distinct_images(tmp_path / "job", sources, N_IMAGES, tag=0)
    scorers = {p: Scorer("smoke", device="cpu", precision=p) for p in ("fp32", "bf16")}
    size = scorers["fp32"].batch_size
    forward_s = dict.fromkeys(scorers, 0.0)
    cold_s = dict.fromkeys(scorers, 0.0)

    def in_turn(step: int) -> list[str]:
        return list(scorers) if step % 2 == 0 else list(reversed(scorers))

    def interleaved() -> None:
        step = 0
        for kind in ("dino", "clip"):
            embedders = {p: s._load(kind) for p, s in scorers.items()}
            batches = [
                embedders["fp32"].preprocess([load_image(r.path) for r in refs[i : i + size]])
                for i in range(0, len(refs), size)
            ]
            for embedder in embedders.values():
                embedder.embed_pixels(batches[0][:2])  # first-call allocations
            for batch in batches:
                for precision in in_turn(step):
                    start = time.perf_counter()
                    embedders[precision].embed_pixels(batch)
                    forward_s[precision] += time.perf_counter() - start
                step += 1
        _clear_embeddings()
        for i in range(0, len(refs), size):
            for precision in in_turn(step):
                start = time.perf_counter()
                scorers[precision]._image_embeddings(refs[i : i + size])
                cold_s[precision] += time.perf_counter() - start
            step += 1

    benchmark.pedantic(interleaved, rounds=1, iterations=1)
    assert all(s.embedded_images == N_IMAGES for s in scorers.values())
    a = {p: N_IMAGES / forward_s[p] for p in scorers}  # both networks: 1 / (1/dino + 1/clip)
    b = {p: N_IMAGES / cold_s[p] for p in scorers}
    _report(
        benchmark,
        {
            "images": N_IMAGES,
            "batch_size": size,
            "a_fp32_images_per_s": a["fp32"],
            "a_bf16_images_per_s": a["bf16"],
            "a_bf16_over_fp32": a["bf16"] / a["fp32"],
            "b_fp32_images_per_s": b["fp32"],
            "b_bf16_images_per_s": b["bf16"],
            "b_bf16_over_fp32": b["bf16"] / b["fp32"],
        },
    )


@pytest.mark.gpu
def test_scoring_pipeline_cuda(
    benchmark, sources: list[Path], tmp_path: Path, empty_embedding_cache: Path
) -> None:
    import torch

    assert torch.cuda.is_available(), "the gpu marker was selected but torch sees no CUDA device"
    figures = _measure(benchmark, tmp_path / "job", sources, "cuda")
    print(
        f"cuda scoring: {figures['b_cold_images_per_s']:.1f} images/s (fp32, batch {figures['batch_size']})"
    )
    assert figures["b_cold_images_per_s"] > 0


def test_scorer_process_beside_the_plain_transformers_path(
    benchmark, sources: list[Path], tmp_path: Path, empty_embedding_cache: Path
) -> None:
    from dreambench.metrics.smoke_weights import ensure_smoke_weights

    refs = _distinct_images(tmp_path / "job", sources, N_IMAGES, tag=0)
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(str(r.path) for r in refs))
    # The smoke preset's (trained) weights, built outside the timing; the transformers script reads
    # the converted copies of the same weights.
    dino_dir = ensure_smoke_weights("dino", "transformers", trained=True)
    clip_dir = ensure_smoke_weights("clip", "transformers", trained=True)
    ensure_smoke_weights("dino", "timm", trained=True)  # the Scorer process's own weights
    ensure_smoke_weights("clip", "open_clip", trained=True)

    def timed(script: str, *args: object) -> float:
        _clear_embeddings()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", script, *map(str, args)], check=True, env=os.environ.copy())
        return time.perf_counter() - start

    def both() -> dict[str, float]:
        seconds: dict[str, list[float]] = {"dreambench": [], "transformers": []}
        for _ in range(2):  # alternated, so a change of load hits both
            seconds["dreambench"].append(timed(_SCORER_PROCESS, listing))
            seconds["transformers"].append(timed(_TRANSFORMERS_PROCESS, dino_dir, clip_dir, listing))
        return {k: min(v) for k, v in seconds.items()}

    best = benchmark.pedantic(both, rounds=1, iterations=1)
    _report(
        benchmark,
        {
            "images": N_IMAGES,
            "dreambench_process_s": best["dreambench"],
            "transformers_process_s": best["transformers"],
            "dreambench_over_transformers_time": best["dreambench"] / best["transformers"],
        },
    )
    assert best["dreambench"] > 0 and best["transformers"] > 0

"""Scoring at the hardware's limit, measured in one run on the same images (smoke weights: the same
compute as the real ones):

  (a) bare forward throughput of both embedders at the Scorer's precision, pixels prepared
      beforehand: the limit, in images/s (both networks: 1 / (1/dino + 1/clip));
  (b) the full Scorer path from an empty embedding cache (read, hash, decode, preprocess, forward,
      cache writes), networks already loaded: images/s, and (b)/(a);
  (c) a re-score of the same images from the warm cache (seconds; no network runs);
  (d) a fresh process from start-up to its first embedded image (imports, weights resolution with
      the memoised sha256, network loading, one forward pass), seconds.

    pytest tests/benchmarks/test_bench_scoring.py --benchmark-enable -s
    DREAMBENCH_BENCH_SCORING_IMAGES=1000 DREAMBENCH_BENCH_PRECISION=bf16 pytest ... (job size, precision)

The job is N distinct 512-px PNGs made from the dataset's photos (the size `bench run` renders).
Figures go to the benchmark's extra_info (see --benchmark-json) and are printed. The CUDA entry
(marker ``gpu``, off by default) reports the Scorer path's images/s on the card.
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
from dreambench.metrics.scorer import ImageRef, Scorer

N_IMAGES = int(os.environ.get("DREAMBENCH_BENCH_SCORING_IMAGES", "64"))
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


def _distinct_images(folder: Path, sources: list[Path], n: int, tag: int) -> list[ImageRef]:
    """`n` 512-px PNGs with distinct bytes (one pixel differs), made from `sources` in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for i in range(n):
        path = folder / f"{tag}-{i:05d}.png"
        image = load_image(sources[i % len(sources)]).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
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

    def rescore() -> tuple[np.ndarray, ...]:
        return Scorer("smoke", device=device, precision=PRECISION)._image_embeddings(refs)

    start = time.perf_counter()
    warm = benchmark.pedantic(rescore, rounds=3, iterations=1)
    warm_s = benchmark.stats.stats.min if benchmark.stats is not None else time.perf_counter() - start
    assert all(np.array_equal(a, b) for a, b in zip(cold, warm))

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
        "c_warm_rescore_s": warm_s,
        "d_startup_to_first_image_s": _startup_s(folder, sources, device),
    }
    benchmark.extra_info.update({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})
    print("\n" + "\n".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in figures.items()))
    return figures


def test_scoring_pipeline_cpu(
    benchmark, sources: list[Path], tmp_path: Path, empty_embedding_cache: Path
) -> None:
    figures = _measure(benchmark, tmp_path / "job", sources, "cpu")
    assert figures["b_over_a"] > 0 and figures["c_warm_rescore_s"] > 0


@pytest.mark.gpu
def test_scoring_pipeline_cuda(
    benchmark, sources: list[Path], tmp_path: Path, empty_embedding_cache: Path
) -> None:
    import torch

    assert torch.cuda.is_available(), "the gpu marker was selected but torch sees no CUDA device"
    figures = _measure(benchmark, tmp_path / "job", sources, "cuda")
    print(f"cuda scoring: {figures['b_cold_images_per_s']:.1f} images/s (fp32, batch {figures['batch_size']})")
    assert figures["b_cold_images_per_s"] > 0

"""Throughput of the image embedders: images/s at batch 32 on the CPU, smoke weights (same compute as real).

    pytest tests/benchmarks/test_bench_embedders.py --benchmark-enable

With the project's default `--benchmark-disable` each benchmark runs once, as a plain test. The
images/s figure is stored in the benchmark's extra_info (see --benchmark-json) and printed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreambench.dataset.images import load_image
from dreambench.metrics.clip import OpenClipEmbedder
from dreambench.metrics.dino import TimmDinoEmbedder
from dreambench.metrics.weights import WeightsSource, resolve_weights

BATCH = 32


@pytest.fixture(scope="module")
def batch(dreambench_data: Path) -> list[Image.Image]:
    """32 real dataset images (the first ones of several subjects, repeated if need be)."""
    paths = sorted((dreambench_data / "dataset").glob("*/*.jpg"))[:BATCH]
    images = [load_image(p) for p in paths]
    return [images[i % len(images)] for i in range(BATCH)]


@pytest.mark.parametrize(
    ("kind", "backend", "embedder_cls"),
    [("dino", "timm", TimmDinoEmbedder), ("clip", "open_clip", OpenClipEmbedder)],
    ids=["dino-timm", "clip-open_clip-image"],
)
def test_image_embedder_throughput(
    benchmark, batch: list[Image.Image], kind: str, backend: str, embedder_cls
) -> None:
    embedder = embedder_cls.load(
        resolve_weights(kind, backend, WeightsSource.smoke()), device="cpu", batch_size=BATCH
    )
    embedder.embed_images(batch[:2])  # warm-up (first-call allocations)
    out = benchmark.pedantic(embedder.embed_images, args=(batch,), rounds=3, iterations=1)
    assert out.shape[0] == BATCH
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    if benchmark.stats is not None:  # None under --benchmark-disable
        images_per_s = BATCH / benchmark.stats.stats.mean
        benchmark.extra_info["images_per_s"] = round(images_per_s, 2)
        print(f"\n{kind}/{backend}: {images_per_s:.2f} images/s (batch {BATCH}, CPU)")


@pytest.mark.parametrize("per_pass", [5, BATCH], ids=["batch5", "batch32"])
@pytest.mark.parametrize(
    ("kind", "backend", "embedder_cls"),
    [("dino", "timm", TimmDinoEmbedder), ("clip", "open_clip", OpenClipEmbedder)],
    ids=["dino-timm", "clip-open_clip-image"],
)
def test_fp32_and_bf16_side_by_side(
    benchmark, batch: list[Image.Image], kind: str, backend: str, embedder_cls, per_pass: int
) -> None:
    """fp32 and `--scoring-precision bf16`, interleaved in one process on the same pixels,
    `per_pass` images per forward pass (the real-images ceiling passes 4-6 images at a time,
    generated images go in batches of 32). Best of 3 rounds each; images/s and the bf16 speed-up
    go to extra_info."""
    import time

    weights = resolve_weights(kind, backend, WeightsSource.smoke())
    embedders = {
        precision: embedder_cls.load(weights, device="cpu", batch_size=per_pass, precision=precision)
        for precision in ("fp32", "bf16")
    }
    pixels = embedders["fp32"].preprocess(batch)
    passes = [pixels[i : i + per_pass] for i in range(0, len(pixels), per_pass)]
    for embedder in embedders.values():
        embedder.embed_pixels(passes[0])  # warm-up
    best = dict.fromkeys(embedders, float("inf"))

    def rounds() -> None:
        for _ in range(3):
            for precision, embedder in embedders.items():
                start = time.perf_counter()
                for chunk in passes:
                    embedder.embed_pixels(chunk)
                best[precision] = min(best[precision], time.perf_counter() - start)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    figures = {f"{p}_images_per_s": len(pixels) / s for p, s in best.items()}
    figures["bf16_speedup"] = best["fp32"] / best["bf16"]
    benchmark.extra_info.update({k: round(v, 3) for k, v in figures.items()})
    print(f"\n{kind}/{backend}, {per_pass} per pass: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    assert all(s < float("inf") for s in best.values())

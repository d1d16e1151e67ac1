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

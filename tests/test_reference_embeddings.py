"""fp32 scoring keeps its bits: embeddings of five dataset images (and two texts) must equal, bit for
bit, the ones stored in tests/data/reference_embeddings_smoke.{npz,json}.

The stored vectors were computed by the Scorer of commit 482527b (before batched cache writes and
prefetching) with the smoke weights, on the CPU in fp32, from an empty embedding cache. A change of
decoding, preprocessing, batching, precision or weights generation shows up here as a mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dreambench.metrics.scorer import ImageRef, Scorer

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def reference() -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((DATA / "reference_embeddings_smoke.json").read_text())
    with np.load(DATA / "reference_embeddings_smoke.npz") as arrays:
        return meta, {k: arrays[k] for k in arrays.files}


@pytest.mark.parametrize("decode_workers", [1, 3])
@pytest.mark.parametrize("backend", ["timm", "transformers"])
def test_fp32_embeddings_are_bit_identical_to_the_stored_reference(
    backend: str,
    decode_workers: int,
    reference: tuple[dict, dict[str, np.ndarray]],
    dreambench_data: Path,
    empty_embedding_cache: Path,
) -> None:
    meta, arrays = reference
    refs = [ImageRef(dreambench_data / "dataset" / name, sha) for name, sha in meta["images"].items()]
    scorer = Scorer("smoke", device="cpu", backend=backend, decode_workers=decode_workers)
    for kind in ("dino", "clip"):
        # Same weights bytes as when the reference was made (else the comparison means nothing).
        assert scorer.embedder_id(kind).sha256 == meta["embedders"][backend][kind]["sha256"]
    dino, clip = scorer._image_embeddings(refs)
    text = scorer._text_embeddings(meta["texts"])
    assert scorer.embedded_images == len(refs)  # computed now, not read from a cache
    for name, got in (("dino", dino), ("clip", clip), ("clip_text", text)):
        want = arrays[f"{backend}_{name}"]
        assert got.dtype == want.dtype == np.float32
        assert np.array_equal(got, want), f"{backend} {name}: max |diff| {np.abs(got - want).max():.3g}"
    # And read back from the cache: the same bits.
    again = Scorer("smoke", device="cpu", backend=backend)
    for got, name in zip(again._image_embeddings(refs), ("dino", "clip")):
        assert np.array_equal(got, arrays[f"{backend}_{name}"])
    assert again.embedded_images == 0

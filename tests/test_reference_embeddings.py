"""fp32 scoring keeps its numbers: embeddings of five dataset images (and two texts) are compared with
the ones stored in tests/data/reference_embeddings_smoke.{npz,json}.

The stored vectors were first computed by the Scorer of commit 482527b (before batched cache writes
and prefetching) with the then random smoke weights, and recomputed (`write_reference`, the same
procedure) when the smoke preset moved to the trained smoke weights (smoke-trained:v1), on the CPU
in fp32, from an empty embedding cache. Two checks:

- On any CPU, every component is within `TOLERANCE` (1e-5 absolute; the vectors are unit length) of
  the reference. fp32 matrix products are not bit-identical across CPU instruction sets or thread
  counts: torch's AVX2 / AVX-512 / scalar kernels, MKL's and oneDNN's ISA paths and 1 or 2 threads
  moved these vectors by at most 2.3e-7 (measured with ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS,
  ONEDNN_MAX_CPU_ISA and OMP_NUM_THREADS on an AVX-512 CPU; an AVX2-only CPU showed 1.7e-7). A change
  of decoding, preprocessing, precision or weights moves them far more: every decoded pixel off by one
  level >= 2.6e-4, a resize 2 px smaller 1.4e-4, bilinear for bicubic 3.7e-4, bf16 1.8e-3. So
  1e-5 sits 40x above the CPU noise and 14x below the smallest real change.
- On the machine class that holds the reference (recorded beside it as "machine_class": CPU vendor,
  model, SIMD flags, torch version, torch's CPU capability and thread count), the weights files hash
  to the recorded sha256 and the vectors are equal bit for bit, which also catches changes too small
  for the tolerance (e.g. a batch split that only reorders the arithmetic). The seeded smoke weights
  themselves are bit-identical only where torch's random kernels are: on a CPU without AVX2 they
  differ in the last bits, so their sha256 is checked on the reference's machine class too.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dreambench.metrics.scorer import ImageRef, Scorer

DATA = Path(__file__).parent / "data"
TOLERANCE = 1e-5
VECTORS = ("dino", "clip", "clip_text")
# Instruction-set flags that pick torch's, MKL's and oneDNN's kernels (x86 and Arm spellings).
SIMD_FLAGS = frozenset(
    "avx avx2 fma avx512f avx512bw avx512vl avx512dq avx512_vnni avx512_bf16 avx512_fp16 avx_vnni "
    "amx_tile amx_bf16 amx_int8 asimd sve sve2".split()
)


def machine_class() -> dict[str, Any]:
    """What decides the bits of an fp32 forward pass on this CPU (recorded beside the reference)."""
    import torch

    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {
        "machine": platform.machine(),
        "cpu_vendor": fields.get("vendor_id") or fields.get("CPU implementer") or platform.processor(),
        "cpu_model": fields.get("model name", ""),
        "simd_flags": sorted(flags & SIMD_FLAGS),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }


@dataclass(frozen=True)
class Embedded:
    """One fresh embedding of the reference inputs: weights sha256 per network, the vectors, and the
    image vectors read back from the embedding cache they were written to."""

    weights_sha256: dict[str, str]
    vectors: dict[str, np.ndarray]
    cached: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def reference() -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((DATA / "reference_embeddings_smoke.json").read_text())
    with np.load(DATA / "reference_embeddings_smoke.npz") as arrays:
        return meta, {k: arrays[k] for k in arrays.files}


@pytest.fixture(scope="module")
def embed(
    reference: tuple[dict, dict[str, np.ndarray]],
    dreambench_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, int], Embedded]:
    """Embeds the reference inputs once per (backend, decode workers) from an empty embedding cache
    that shares the session's smoke weights; both tests below read the same result."""
    from dreambench.cache_root import cache_root

    meta, _ = reference
    refs = [ImageRef(dreambench_data / "dataset" / name, sha) for name, sha in meta["images"].items()]
    done: dict[tuple[str, int], Embedded] = {}

    def run(backend: str, decode_workers: int) -> Embedded:
        if (backend, decode_workers) in done:
            return done[backend, decode_workers]
        weights = cache_root() / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        root = tmp_path_factory.mktemp(f"empty-cache-{backend}-{decode_workers}")
        (root / "weights").symlink_to(weights, target_is_directory=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DREAMBENCH_CACHE", str(root))
            scorer = Scorer("smoke", device="cpu", backend=backend, decode_workers=decode_workers)
            dino, clip = scorer._image_embeddings(refs)
            text = scorer._text_embeddings(meta["texts"])
            assert scorer.embedded_images == len(refs)  # computed now, not read from a cache
            again = Scorer("smoke", device="cpu", backend=backend)
            cached = dict(zip(("dino", "clip"), again._image_embeddings(refs)))
            assert again.embedded_images == 0
            shas = {kind: scorer.embedder_id(kind).sha256 for kind in ("dino", "clip")}
        done[backend, decode_workers] = Embedded(
            shas, {"dino": dino, "clip": clip, "clip_text": text}, cached
        )
        return done[backend, decode_workers]

    return run


@pytest.mark.parametrize("decode_workers", [1, 3])
@pytest.mark.parametrize("backend", ["timm", "transformers"])
def test_fp32_embeddings_match_the_stored_reference_on_any_cpu(
    backend: str,
    decode_workers: int,
    reference: tuple[dict, dict[str, np.ndarray]],
    embed: Callable[[str, int], Embedded],
) -> None:
    """Decoding, preprocessing, batching (which images go together), precision and weights are those
    of the reference, up to the last-bit differences of CPU kernels; cache reads return the bits computed."""
    _, arrays = reference
    embedded = embed(backend, decode_workers)
    for name in VECTORS:
        got, want = embedded.vectors[name], arrays[f"{backend}_{name}"]
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
        diff = float(np.abs(got - want).max())
        assert diff <= TOLERANCE, f"{backend} {name}: max |diff| {diff:.3g} > {TOLERANCE:g}"
    for name, got in embedded.cached.items():
        assert np.array_equal(got, embedded.vectors[name]), f"{backend} {name} read back from the cache"


@pytest.mark.parametrize("decode_workers", [1, 3])
@pytest.mark.parametrize("backend", ["timm", "transformers"])
def test_fp32_embeddings_are_bit_identical_on_the_reference_machine_class(
    backend: str,
    decode_workers: int,
    reference: tuple[dict, dict[str, np.ndarray]],
    embed: Callable[[str, int], Embedded],
) -> None:
    """On the machine class that made the reference: the same weights bytes and the same bits."""
    meta, arrays = reference
    here = machine_class()
    if here != meta["machine_class"]:
        differs = {k: here.get(k) for k, v in meta["machine_class"].items() if here.get(k) != v}
        pytest.skip(
            f"bit-identity holds on the reference's machine class only; this CPU differs in {differs}"
        )
    embedded = embed(backend, decode_workers)
    for kind, sha in embedded.weights_sha256.items():
        assert sha == meta["embedders"][backend][kind]["sha256"], f"{backend} {kind} smoke weights"
    for name in VECTORS:
        got, want = embedded.vectors[name], arrays[f"{backend}_{name}"]
        assert np.array_equal(got, want), f"{backend} {name}: max |diff| {np.abs(got - want).max():.3g}"


def write_reference(data: Path) -> None:
    """Recompute tests/data/reference_embeddings_smoke.{npz,json} the way the `embed` fixture embeds
    (the Scorer, the smoke preset, CPU fp32, an empty embedding cache, one decode worker), keeping the
    recorded inputs; run on the machine class to record: `python tests/test_reference_embeddings.py DATA`."""
    import tempfile

    from dreambench.cache_root import cache_root

    meta = json.loads((DATA / "reference_embeddings_smoke.json").read_text())
    refs = [ImageRef(data / "dataset" / name, sha) for name, sha in meta["images"].items()]
    arrays: dict[str, np.ndarray] = {}
    weights = cache_root() / "weights"
    for backend in ("timm", "transformers"):
        with tempfile.TemporaryDirectory() as root, pytest.MonkeyPatch.context() as patch:
            (Path(root) / "weights").symlink_to(weights, target_is_directory=True)
            patch.setenv("DREAMBENCH_CACHE", root)
            scorer = Scorer("smoke", device="cpu", backend=backend, decode_workers=1)
            arrays[f"{backend}_dino"], arrays[f"{backend}_clip"] = scorer._image_embeddings(refs)
            arrays[f"{backend}_clip_text"] = scorer._text_embeddings(meta["texts"])
            meta["embedders"][backend] = {k: scorer.embedder_id(k).as_dict() for k in ("dino", "clip")}
    meta["machine_class"] = machine_class()
    np.savez(DATA / "reference_embeddings_smoke.npz", **arrays)
    (DATA / "reference_embeddings_smoke.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    write_reference(Path(sys.argv[1]))

"""Embedders, weights resolution, smoke weights and the embedding cache (CPU, offline, smoke weights)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_hub_fetch import hub_snapshot, offline_hub_cache

from dreambench.dataset.images import load_image
from dreambench.errors import BenchError
from dreambench.metrics.clip import OpenClipEmbedder
from dreambench.metrics.dino import TimmDinoEmbedder
from dreambench.metrics.embedder import EmbedderId, ImageEmbedder, TextEmbedder, resolve_device
from dreambench.metrics.embedding_cache import EmbeddingCache, text_sha256
from dreambench.metrics.functions import distinct_pairs_mean_cosine, mean_pairwise_cosine
from dreambench.metrics.smoke_weights import ensure_smoke_weights
from dreambench.metrics.weights import ENV_VARS, PINNED_HUB, WeightsSource, file_sha256, resolve_weights


@pytest.fixture(scope="module")
def images(dreambench_data: Path) -> list[Image.Image]:
    """Six real dataset images from two subjects (frame 0, RGB)."""
    root = dreambench_data / "dataset"
    paths = sorted((root / "dog").glob("*.jpg"))[:3] + sorted((root / "clock").glob("*.jpg"))[:3]
    assert len(paths) == 6
    return [load_image(p) for p in paths]


@pytest.fixture(scope="module")
def dino() -> TimmDinoEmbedder:
    return TimmDinoEmbedder.load(resolve_weights("dino", "timm", WeightsSource.smoke()), device="cpu")


@pytest.fixture(scope="module")
def clip() -> OpenClipEmbedder:
    return OpenClipEmbedder.load(resolve_weights("clip", "open_clip", WeightsSource.smoke()), device="cpu")


@pytest.fixture
def offline_empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline, with no weights env overrides."""
    hub = offline_hub_cache(tmp_path, monkeypatch)
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    return hub


# -- EmbedderId ----------------------------------------------------------------------------------


def test_embedder_id_key_is_filesystem_safe_stable_and_unique() -> None:
    base = EmbedderId("timm", "ViT-S/16", "hub:timm/vit_small_patch16_224.dino@abc", "0" * 64)
    variants = [
        base,
        EmbedderId("transformers", "ViT-S/16", base.weights, base.sha256),
        EmbedderId("timm", "ViT-S/8", base.weights, base.sha256),
        EmbedderId("timm", "ViT-S/16", "smoke:seed0", base.sha256),
        EmbedderId("timm", "ViT-S/16", base.weights, "1" * 64),
        EmbedderId("timm", "ViT-S/16", base.weights, base.sha256, "bf16"),
    ]
    keys = [v.key for v in variants]
    assert len(set(keys)) == len(keys)
    assert base.key == EmbedderId(**base.as_dict()).key
    for key in keys:
        assert key and "/" not in key and len(key) <= 60
        assert all(ch.isalnum() or ch in "-_" for ch in key)
    assert base.as_dict() == {
        "backend": "timm",
        "arch": "ViT-S/16",
        "weights": "hub:timm/vit_small_patch16_224.dino@abc",
        "sha256": "0" * 64,
        "precision": "fp32",
    }


def test_embedders_satisfy_the_protocols(dino: TimmDinoEmbedder, clip: OpenClipEmbedder) -> None:
    assert isinstance(dino, ImageEmbedder)
    assert isinstance(clip, TextEmbedder)
    assert dino.id.weights == "smoke:seed0" and clip.id.weights == "smoke:seed0"
    assert (dino.id.backend, dino.id.arch) == ("timm", "ViT-S/16")
    assert (clip.id.backend, clip.id.arch) == ("open_clip", "ViT-B/32")


# -- embeddings ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(
    dino: TimmDinoEmbedder, clip: OpenClipEmbedder, images: list[Image.Image]
) -> dict[str, np.ndarray]:
    """The six images through both embedders once, at the default batch size (32)."""
    return {"dino": dino.embed_images(images), "clip": clip.embed_images(images)}


def test_image_embeddings_are_unit_float32_rows(
    embedded: dict[str, np.ndarray], clip: OpenClipEmbedder
) -> None:
    for name, dim in (("dino", 384), ("clip", 512)):
        out = embedded[name]
        assert out.shape == (6, dim) and out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    texts = clip.embed_texts(["a dog", "a clock on a table", "a red cube"])
    assert texts.shape == (3, 512) and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_identical_images_score_one(
    dino: TimmDinoEmbedder, clip: OpenClipEmbedder, images: list[Image.Image], embedded: dict[str, np.ndarray]
) -> None:
    twins = [images[0].copy(), images[0].copy()]
    for name, embedder in (("dino", dino), ("clip", clip)):
        twin_rows = embedder.embed_images(twins)
        assert mean_pairwise_cosine(embedded[name][:1], twin_rows) == pytest.approx(1.0, abs=1e-6)
        assert distinct_pairs_mean_cosine(twin_rows) == pytest.approx(1.0, abs=1e-6)


def test_different_images_give_different_embeddings(embedded: dict[str, np.ndarray]) -> None:
    # Random weights must still separate inputs, or every smoke score would be a constant.
    for name, rows in embedded.items():
        sims = rows @ rows.T
        off_diagonal = sims[~np.eye(len(rows), dtype=bool)]
        assert off_diagonal.max() < 0.999, name


def test_batch_split_and_order_invariance(
    dino: TimmDinoEmbedder, clip: OpenClipEmbedder, images: list[Image.Image], embedded: dict[str, np.ndarray]
) -> None:
    order = [2, 0, 1]  # batch size 1 and a permuted order vs. the batch-32 embeddings of the fixture
    for name, embedder in (("dino", dino), ("clip", clip)):
        embedder.batch_size = 1
        try:
            one_by_one = embedder.embed_images([images[i] for i in order])
        finally:
            embedder.batch_size = 32
        np.testing.assert_allclose(one_by_one, embedded[name][order], atol=1e-5)
    texts = ["a dog in the snow", "a clock", "a photo of a backpack on the beach"]
    clip.batch_size = 1
    try:
        single = clip.embed_texts(texts)
    finally:
        clip.batch_size = 32
    np.testing.assert_allclose(single, clip.embed_texts(texts), atol=1e-5)


def test_non_rgb_images_are_converted(
    dino: TimmDinoEmbedder, images: list[Image.Image], embedded: dict[str, np.ndarray]
) -> None:
    np.testing.assert_allclose(
        dino.embed_images([images[0].convert("RGBA")]), embedded["dino"][:1], atol=1e-5
    )


def test_empty_batch_is_refused(dino: TimmDinoEmbedder) -> None:
    with pytest.raises(BenchError, match="empty"):
        dino.embed_images([])


def test_resolve_device() -> None:
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(BenchError, match="unknown device"):
        resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(BenchError, match="CUDA is not available"):
            resolve_device("cuda")


# -- smoke weights -------------------------------------------------------------------------------


def test_smoke_weights_are_built_once_and_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dino: TimmDinoEmbedder
) -> None:
    first = ensure_smoke_weights("dino", "timm", 0)
    mtime = first.stat().st_mtime_ns
    assert ensure_smoke_weights("dino", "timm", 0) == first
    assert first.stat().st_mtime_ns == mtime  # not rewritten
    assert file_sha256(first) == dino.id.sha256
    # A fresh cache rebuilds the same bytes from the seed; another seed gives other weights.
    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path / "other-cache"))
    rebuilt = ensure_smoke_weights("dino", "timm", 0)
    assert rebuilt != first and file_sha256(rebuilt) == dino.id.sha256
    assert file_sha256(ensure_smoke_weights("dino", "timm", 1)) != dino.id.sha256
    leftovers = [p.name for p in rebuilt.parent.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # temp folders were renamed or removed


def test_smoke_weights_unknown_pair_is_refused() -> None:
    with pytest.raises(BenchError, match="no smoke weights for dino/open_clip"):
        ensure_smoke_weights("dino", "open_clip")


def test_smoke_weights_load_by_path_like_real_weights(
    dino: TimmDinoEmbedder, images: list[Image.Image], embedded: dict[str, np.ndarray]
) -> None:
    smoke_file = ensure_smoke_weights("dino", "timm", 0)
    by_path = resolve_weights("dino", "timm", WeightsSource.local(smoke_file))
    assert by_path.tag == f"file:{smoke_file.resolve()}"
    assert by_path.sha256 == dino.id.sha256
    other = TimmDinoEmbedder.load(by_path, device="cpu")
    assert other.id != dino.id and other.id.sha256 == dino.id.sha256
    np.testing.assert_allclose(other.embed_images(images[:1]), embedded["dino"][:1], atol=1e-6)


# -- weights resolution --------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "backend"), sorted(PINNED_HUB))
def test_pinned_weights_missing_offline_give_a_one_line_hint(
    kind: str, backend: str, offline_empty_hub: Path
) -> None:
    hub = PINNED_HUB[(kind, backend)]
    with pytest.raises(BenchError) as err:
        resolve_weights(kind, backend, WeightsSource.pinned())
    message = str(err.value)
    assert "\n" not in message
    assert f"hf download {hub.repo_id} --revision {hub.revision}" in message
    assert ENV_VARS[kind] in message and "--preset smoke" in message


def test_pinned_weights_come_from_the_offline_hub_cache(
    offline_empty_hub: Path, dino: TimmDinoEmbedder
) -> None:
    hub = PINNED_HUB[("dino", "timm")]
    commit = "0123456789abcdef0123456789abcdef01234567"
    smoke_file = ensure_smoke_weights("dino", "timm", 0)
    snapshot = hub_snapshot(
        offline_empty_hub, hub.repo_id, {hub.weight_files[0]: smoke_file}, ref=hub.revision, commit=commit
    )
    resolved = resolve_weights("dino", "timm", WeightsSource.pinned())
    assert resolved.tag == f"hub:{hub.repo_id}@{commit}"  # "main" recorded as the commit it meant
    assert resolved.path == snapshot / hub.weight_files[0]
    assert resolved.sha256 == dino.id.sha256


def test_pinned_transformers_weights_resolve_to_the_snapshot_folder(offline_empty_hub: Path) -> None:
    hub = PINNED_HUB[("dino", "transformers")]
    folder = ensure_smoke_weights("dino", "transformers", 0)
    files = {"config.json": folder / "config.json", "model.safetensors": folder / "model.safetensors"}
    snapshot = hub_snapshot(offline_empty_hub, hub.repo_id, files, commit=hub.revision)
    resolved = resolve_weights("dino", "transformers", WeightsSource.pinned())
    assert resolved.path == snapshot and resolved.file == snapshot / "model.safetensors"
    assert resolved.tag == f"hub:{hub.repo_id}@{hub.revision}"


def test_env_override_replaces_the_hub(offline_empty_hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smoke_file = ensure_smoke_weights("dino", "timm", 0)
    monkeypatch.setenv("DREAMBENCH_DINO_WEIGHTS", str(smoke_file.parent))  # a folder works too
    resolved = resolve_weights("dino", "timm", WeightsSource.pinned())
    assert resolved.path == smoke_file.resolve()
    assert resolved.tag == f"file:{smoke_file.resolve()}"
    # The CLIP weights are unaffected by the DINO override.
    with pytest.raises(BenchError, match="DREAMBENCH_CLIP_WEIGHTS"):
        resolve_weights("clip", "open_clip", WeightsSource.pinned())


def test_bad_local_weights_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="does not exist"):
        resolve_weights("dino", "timm", WeightsSource.local(tmp_path / "nope.safetensors"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BenchError, match="no weights file"):
        resolve_weights("clip", "open_clip", WeightsSource.local(empty))
    lone = tmp_path / "lone" / "model.safetensors"
    lone.parent.mkdir()
    shutil.copyfile(ensure_smoke_weights("dino", "timm", 0), lone)
    with pytest.raises(BenchError, match="write_hf_dino_folder"):
        resolve_weights("dino", "transformers", WeightsSource.local(lone))
    with pytest.raises(BenchError, match="unknown embedder dino/open_clip"):
        resolve_weights("dino", "open_clip", WeightsSource.smoke())
    with pytest.raises(BenchError, match="unknown weights source kind"):
        WeightsSource("somewhere")


def test_file_sha256_is_memoised_by_path_size_and_mtime(tmp_path: Path) -> None:
    import hashlib

    from dreambench.cache_root import cache_root

    path = tmp_path / "weights.bin"
    path.write_bytes(b"some weights")
    real = hashlib.sha256(b"some weights").hexdigest()
    assert file_sha256(path) == real
    memos = [p for p in (cache_root() / "weights" / "sha256").glob("*.json") if str(path) in p.read_text()]
    assert len(memos) == 1
    memo = json.loads(memos[0].read_text())
    memos[0].write_text(json.dumps({**memo, "sha256": "f" * 64}))
    assert file_sha256(path) == "f" * 64  # the memo answered, the file was not rehashed
    os.utime(path, ns=(memo["mtime_ns"] + 10**9, memo["mtime_ns"] + 10**9))
    assert file_sha256(path) == real  # a changed mtime invalidates the memo


# -- embedding cache -----------------------------------------------------------------------------


def test_embedding_cache_round_trip_and_isolation(tmp_path: Path) -> None:
    id_a = EmbedderId("timm", "ViT-S/16", "smoke:seed0", "a" * 64)
    id_b = EmbedderId("timm", "ViT-S/16", "smoke:seed1", "b" * 64)
    cache = EmbeddingCache(id_a, root=tmp_path)
    sha = "c" * 64
    vector = np.arange(4, dtype=np.float32) / 10
    assert cache.get("images", sha) is None
    cache.put("images", sha, vector)
    np.testing.assert_array_equal(cache.get("images", sha), vector)
    assert cache.get("texts", sha) is None  # images and texts are separate spaces of keys
    assert EmbeddingCache(id_b, root=tmp_path).get("images", sha) is None  # other embedder, other folder
    assert json.loads((tmp_path / id_a.key / "id.json").read_text()) == id_a.as_dict()
    assert cache.get_many("images", [sha, "d" * 64, sha]).keys() == {sha}
    assert [p.name for p in (tmp_path / id_a.key / "images").rglob("*") if p.name.startswith(".")] == []


def test_embedding_cache_treats_damaged_files_as_misses(tmp_path: Path) -> None:
    cache = EmbeddingCache(EmbedderId("timm", "ViT-S/16", "smoke:seed0", "a" * 64), root=tmp_path)
    sha = text_sha256("a dog")
    cache.put("texts", sha, np.ones(3, dtype=np.float32))
    path = next((tmp_path / cache.embedder_id.key / "texts").rglob("*.npy"))
    path.write_bytes(path.read_bytes()[:20])  # truncated (never happens with atomic writes, but disks fail)
    assert cache.get("texts", sha) is None
    cache.put("texts", sha, np.ones(3, dtype=np.float32))
    assert cache.get("texts", sha) is not None
    with pytest.raises(BenchError, match="bad sha256"):
        cache.get("images", "not-a-sha")
    with pytest.raises(BenchError, match="unknown embedding kind"):
        cache.get("audio", sha)


def test_open_clip_bf16_runs_its_attention_fused_in_fp32(
    images: list[Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_clip at bf16 (OpenClipEmbedder, recipe "attention-fp32"): the attention layers take
    torch's fused fp32 path, the rest runs under bf16 autocast; the recipe is in the id, which the
    Scorer knows before loading; the embeddings stay within bf16's deviation of fp32."""
    import torch

    from dreambench.metrics.scorer import Scorer

    weights = resolve_weights("clip", "open_clip", WeightsSource.smoke_trained())
    fp32 = OpenClipEmbedder.load(weights, device="cpu")
    bf16 = OpenClipEmbedder.load(weights, device="cpu", precision="bf16")
    assert (bf16.id.precision, bf16.id.recipe) == ("bf16", "attention-fp32")
    assert "recipe" not in fp32.id.as_dict() and bf16.id.as_dict()["recipe"] == "attention-fp32"
    assert Scorer("smoke", precision="bf16").embedder_id("clip") == bf16.id
    assert Scorer("smoke").embedder_id("clip") == fp32.id

    fused: list[torch.dtype] = []
    native = torch._native_multi_head_attention

    def counting(query: torch.Tensor, *args: object, **kwargs: object) -> object:
        fused.append(query.dtype)
        return native(query, *args, **kwargs)

    monkeypatch.setattr(torch, "_native_multi_head_attention", counting)
    batch = fp32.preprocess(images)
    low = bf16.embed_pixels(batch)
    assert fused and set(fused) == {torch.float32}  # every vision layer, fused, in fp32
    fused.clear()
    high = fp32.embed_pixels(batch)
    assert len(fused) > 0  # fp32 takes the same fused path
    cosine = np.sum(low * high, axis=1)
    assert not np.array_equal(low, high) and float(np.max(1 - cosine)) < 1e-3
    texts = bf16.embed_texts(["a photo of a dog", "a red clock"])
    assert float(np.max(1 - np.sum(texts * fp32.embed_texts(["a photo of a dog", "a red clock"]), axis=1))) < 1e-3

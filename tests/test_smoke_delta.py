"""The trained smoke weights: the shipped delta is checked, merged once per cache, loaded by path
like real weights, and part of the scoring identity (never mistaken for the random smoke weights)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dreambench.errors import BenchError
from dreambench.metrics.convert import load_state_dict_file
from dreambench.metrics.scorer import ImageRef, Scorer
from dreambench.metrics.smoke_delta import SMOKE_DELTAS, delta_path, load_delta, merge_delta
from dreambench.metrics.smoke_weights import ensure_smoke_weights, random_init
from dreambench.metrics.weights import WeightsSource, resolve_weights


def test_shipped_deltas_are_small_and_hash_to_their_record() -> None:
    total = sum(delta_path(spec).stat().st_size for spec in SMOKE_DELTAS.values())
    assert total <= 10 * 2**20
    for spec in SMOKE_DELTAS.values():
        delta = load_delta(spec)  # raises on a sha256 mismatch
        assert all(v.dtype == torch.float16 for v in delta.values())
        assert all(k.split(".", 1)[1].startswith(spec.prefix) for k in delta)


def test_a_changed_delta_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dreambench.metrics.smoke_delta as smoke_delta

    spec = SMOKE_DELTAS["dino"]
    changed = tmp_path / spec.file
    shutil.copyfile(delta_path(spec), changed)
    with changed.open("r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    monkeypatch.setattr(smoke_delta, "delta_path", lambda s: tmp_path / s.file)
    with pytest.raises(BenchError, match="sha256"):
        load_delta(spec)


def test_merge_is_the_low_rank_product_plus_the_additions() -> None:
    base = {"w": torch.randn(4, 2, 3), "b": torch.randn(4)}
    a, b, d = torch.randn(2, 6).half(), torch.randn(4, 2).half(), torch.randn(4).half()
    merged = merge_delta(base, {"lora_a.w": a, "lora_b.w": b, "add.b": d})
    want = (base["w"].double().reshape(4, 6) + b.double() @ a.double()).float().reshape(4, 2, 3)
    assert torch.equal(merged["w"], want)
    assert torch.equal(merged["b"], (base["b"].double() + d.double()).float())
    with pytest.raises(BenchError, match="match no weight"):
        merge_delta(base, {"add.missing": d})


def test_trained_weights_are_merged_once_loaded_by_path_and_in_the_identity() -> None:
    native = ensure_smoke_weights("dino", "timm", trained=True)
    assert native.parent.name == f"dino-timm-trained-{SMOKE_DELTAS['dino'].version}"
    mtime = native.stat().st_mtime_ns
    assert ensure_smoke_weights("dino", "timm", trained=True) == native and native.stat().st_mtime_ns == mtime
    merged = load_state_dict_file(native)
    assert torch.equal(
        merged["norm.weight"],
        merge_delta(random_init("dino", 0), load_delta(SMOKE_DELTAS["dino"]))["norm.weight"],
    )
    trained = resolve_weights("dino", "timm", WeightsSource.smoke_trained())
    random = resolve_weights("dino", "timm", WeightsSource.smoke(0))
    assert trained.path == native and trained.tag == "smoke-trained:v1" and trained.sha256 != random.sha256
    embedders = Scorer("smoke", device="cpu").identity()["embedders"]
    assert {e["weights"] for e in embedders.values()} == {"smoke-trained:v1"}
    assert embedders["dino"]["sha256"] == trained.sha256
    # The transformers weights are converted from the merged timm / open_clip ones.
    folder = ensure_smoke_weights("clip", "transformers", trained=True)
    assert folder.name == f"clip-transformers-trained-{SMOKE_DELTAS['clip'].version}"
    assert (folder / "config.json").is_file()


def test_trained_weights_exist_only_where_a_delta_does() -> None:
    with pytest.raises(BenchError, match="no trained smoke weights for dinov2-s14/timm"):
        ensure_smoke_weights("dinov2-s14", "timm", trained=True)
    with pytest.raises(BenchError, match="seed 0"):
        ensure_smoke_weights("dino", "timm", 1, trained=True)


def test_both_backends_of_the_trained_weights_agree(dreambench_data: Path) -> None:
    """timm / open_clip and the transformers weights converted from them embed alike."""
    import numpy as np

    from dreambench.dataset.dreambooth import load_subjects

    subject = load_subjects(dreambench_data)[0]
    refs = [ImageRef(p, h) for p, h in zip(subject.image_paths[:3], subject.image_sha256[:3])]
    native = Scorer("smoke", device="cpu")._image_embeddings(refs)
    converted = Scorer("smoke", device="cpu", backend="transformers")._image_embeddings(refs)
    for a, b in zip(native, converted):
        assert float(np.max(1.0 - np.einsum("nd,nd->n", a.astype(np.float64), b.astype(np.float64)))) < 1e-4

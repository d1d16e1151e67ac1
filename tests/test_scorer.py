"""The Scorer and the metric presets (CPU, offline; smoke weights, real dataset images)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from dreambench.dataset.images import file_sha256, load_image
from dreambench.errors import BenchError
from dreambench.metrics.clip import CLIP_BACKENDS
from dreambench.metrics.dino import DINO_BACKENDS
from dreambench.metrics.functions import clip_t_text
from dreambench.metrics.presets import METRIC_PRESETS, METRIC_VERSIONS, MetricPreset, get_metric_preset
from dreambench.metrics.scorer import ImageRef, Scorer
from dreambench.metrics.weights import ENV_VARS, PINNED_HUB

PROMPTS = ["a sks dog in the snow", "a sks dog on the beach"]


def _refs(folder: Path, n: int) -> list[ImageRef]:
    return [ImageRef(path=p, sha256=file_sha256(p)) for p in sorted(folder.glob("*.jpg"))[:n]]


@pytest.fixture(scope="module")
def real(dreambench_data: Path) -> list[ImageRef]:
    return _refs(dreambench_data / "dataset" / "dog", 2)


@pytest.fixture(scope="module")
def generated(dreambench_data: Path) -> list[ImageRef]:
    # Stand-ins for generated images: another dog subject's photos.
    return _refs(dreambench_data / "dataset" / "dog2", 2)


@pytest.fixture(scope="module")
def smoke_scorer() -> Scorer:
    return Scorer("smoke", device="cpu")


@pytest.fixture(scope="module")
def scores(smoke_scorer: Scorer, real: list[ImageRef], generated: list[ImageRef]) -> list[dict[str, float]]:
    # Start from an empty embedding cache: earlier tests of the session may have embedded these images.
    import shutil

    from dreambench.cache_root import cache_root

    shutil.rmtree(cache_root() / "embeddings", ignore_errors=True)
    return smoke_scorer.score_generated(real, generated, PROMPTS, "sks")


# -- presets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(METRIC_PRESETS))
def test_metric_preset_contract(name: str) -> None:
    preset = get_metric_preset(name)
    assert preset.name == name and preset.description and preset.source and preset.protocol
    for kind in preset.networks:
        spec = preset.spec(kind)
        backends = CLIP_BACKENDS if kind == "clip" else DINO_BACKENDS
        assert spec.backend in backends
        cls = backends[spec.backend]
        assert spec.arch in (cls.archs if kind != "clip" else (cls.arch,))
        if spec.source.kind == "pinned":
            assert (spec.weights_kind, spec.backend) in PINNED_HUB
    uses_smoke = bool({"smoke", "smoke-trained"} & {preset.spec(k).source.kind for k in preset.networks})
    assert preset.calibrated is not uses_smoke
    assert preset.as_dict()["metric_versions"] == METRIC_VERSIONS
    hf = preset.with_backend("transformers")
    assert (hf.dino.backend, hf.clip.backend) == ("transformers", "transformers")
    assert hf.dino.source == preset.dino.source and hf.calibrated == preset.calibrated
    native = hf.with_backend("timm")
    assert (native.dino.backend, native.clip.backend) == ("timm", "open_clip")


def test_default_preset_is_the_paper_protocol() -> None:
    preset = get_metric_preset("dreambooth")
    assert preset.calibrated and preset.scale == 1.0 and not preset.clip_t_keep_identifier
    assert (preset.dino.backend, preset.clip.backend) == ("timm", "open_clip")
    hf = get_metric_preset("dreambooth-hf")  # the same protocol and weights, other backends
    assert (
        dataclasses.replace(preset.with_backend("transformers"), name=hf.name, description=hf.description)
        == hf
    )
    assert Scorer().preset == preset


def test_unknown_preset_and_backend_are_refused_with_suggestions() -> None:
    with pytest.raises(BenchError, match=r"unknown metric preset 'smok'.*did you mean 'smoke'"):
        get_metric_preset("smok")
    with pytest.raises(BenchError, match="unknown metric backend 'transformer'"):
        Scorer("smoke", backend="transformer")


def test_backend_override_switches_both_networks() -> None:
    scorer = Scorer("dreambooth", backend="transformers")
    assert (scorer.preset.dino.backend, scorer.preset.clip.backend) == ("transformers", "transformers")
    assert scorer.calibrated


# -- offline without weights ---------------------------------------------------------------------


def test_default_preset_offline_without_weights_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real: list[ImageRef], generated: list[ImageRef]
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    scorer = Scorer()  # lazy: constructing costs nothing and cannot fail on weights
    for call in (scorer.metrics_info, lambda: scorer.score_generated(real, generated, PROMPTS, "sks")):
        with pytest.raises(BenchError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message
        assert "timm/vit_small_patch16_224.dino" in message and "--preset smoke" in message


# -- scoring -------------------------------------------------------------------------------------


def test_metrics_info(smoke_scorer: Scorer) -> None:
    info = smoke_scorer.metrics_info()
    assert set(info) == {"dino", "clip_i", "clip_t"}
    for name, entry in info.items():
        assert entry["version"] == METRIC_VERSIONS[name]
        assert entry["higher_is_better"] is True
        assert entry["convention"] == "raw cosine in [-1, 1]"
        assert entry["embedder"]["weights"] == "smoke-trained:v1"
        assert len(entry["embedder"]["sha256"]) == 64
        assert entry["definition"]
    assert info["dino"]["embedder"]["backend"] == "timm"
    assert info["clip_i"]["embedder"] == info["clip_t"]["embedder"]
    assert info["clip_i"]["embedder"]["backend"] == "open_clip"
    assert smoke_scorer.calibrated is False


def test_score_generated_matches_an_independent_computation(
    smoke_scorer: Scorer, scores: list[dict[str, float]], real: list[ImageRef], generated: list[ImageRef]
) -> None:
    dino, clip = smoke_scorer.dino, smoke_scorer.clip
    real_images = [load_image(r.path) for r in real]
    gen_images = [load_image(r.path) for r in generated]
    real_dino, gen_dino = dino.embed_images(real_images), dino.embed_images(gen_images)
    real_clip, gen_clip = clip.embed_images(real_images), clip.embed_images(gen_images)
    texts = clip.embed_texts(["a dog in the snow", "a dog on the beach"])
    assert len(scores) == len(generated)
    for i, row in enumerate(scores):
        assert set(row) == {"dino", "clip_i", "clip_t"}
        expected_dino = sum(float(gen_dino[i] @ r) for r in real_dino) / len(real_dino)
        expected_clip_i = sum(float(gen_clip[i] @ r) for r in real_clip) / len(real_clip)
        assert row["dino"] == pytest.approx(expected_dino, abs=1e-5)
        assert row["clip_i"] == pytest.approx(expected_clip_i, abs=1e-5)
        assert row["clip_t"] == pytest.approx(float(gen_clip[i] @ texts[i]), abs=1e-5)
        assert all(-1.0 <= v <= 1.0 for v in row.values())


def test_rescoring_runs_no_network(
    monkeypatch: pytest.MonkeyPatch,
    smoke_scorer: Scorer,
    scores: list[dict[str, float]],
    real: list[ImageRef],
    generated: list[ImageRef],
) -> None:
    assert smoke_scorer.embedded_images >= len(real) + len(generated)
    assert smoke_scorer.embedded_texts >= len(set(PROMPTS))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network was loaded although every embedding is cached")

    for backends in (DINO_BACKENDS, CLIP_BACKENDS):
        for cls in backends.values():
            monkeypatch.setattr(cls, "load", classmethod(refuse))
    again = Scorer("smoke", device="cpu")
    assert again.score_generated(real, generated, PROMPTS, "sks") == scores
    assert again.embedded_images == 0 and again.embedded_texts == 0
    # Duplicated images are looked up once and scored identically.
    doubled = again.score_generated(real, [generated[0], generated[0]], PROMPTS[:2], "sks")
    assert doubled[0]["dino"] == doubled[1]["dino"] == scores[0]["dino"]


def test_embedders_are_built_once(smoke_scorer: Scorer, scores: list[dict[str, float]]) -> None:
    assert smoke_scorer.dino is smoke_scorer.dino
    assert smoke_scorer.clip is smoke_scorer.clip


def test_score_real_pairs(smoke_scorer: Scorer, real: list[ImageRef]) -> None:
    out = smoke_scorer.score_real_pairs(real)
    assert set(out) == {"dino", "clip_i"}
    emb = smoke_scorer.dino.embed_images([load_image(r.path) for r in real])
    pairs = [float(emb[i] @ emb[j]) for i in range(len(real)) for j in range(i + 1, len(real))]
    assert out["dino"] == pytest.approx(sum(pairs) / len(pairs), abs=1e-5)
    with pytest.raises(BenchError, match="at least 2 real images"):
        smoke_scorer.score_real_pairs(real[:1])


def test_bad_inputs_are_refused(
    smoke_scorer: Scorer, real: list[ImageRef], generated: list[ImageRef]
) -> None:
    with pytest.raises(BenchError, match="2 generated images but 1 prompts"):
        smoke_scorer.score_generated(real, generated, PROMPTS[:1], "sks")
    with pytest.raises(BenchError, match="no real images"):
        smoke_scorer.score_generated([], generated, PROMPTS, "sks")
    assert smoke_scorer.score_generated(real, [], [], "sks") == []


def _variant(**changes: object) -> MetricPreset:
    return dataclasses.replace(get_metric_preset("smoke"), name="smoke-variant", **changes)


def test_scale_and_identifier_conventions_come_from_the_preset(
    scores: list[dict[str, float]], real: list[ImageRef], generated: list[ImageRef], smoke_scorer: Scorer
) -> None:
    x100 = Scorer(_variant(scale=100.0), device="cpu")
    assert x100.metrics_info()["dino"]["convention"] == "cosine x 100"
    for a, b in zip(x100.score_generated(real, generated, PROMPTS, "sks"), scores):
        for name in a:
            assert a[name] == pytest.approx(100.0 * b[name], rel=1e-9)
    kept = Scorer(_variant(clip_t_keep_identifier=True), device="cpu")
    assert kept.metrics_info()["clip_t"]["text"] == "identifier kept"
    kept_scores = kept.score_generated(real, generated, PROMPTS, "sks")
    with_identifier = smoke_scorer.clip.embed_texts([clip_t_text(PROMPTS[0], "sks", keep_identifier=True)])
    gen_clip = smoke_scorer.clip.embed_images([load_image(generated[0].path)])
    assert kept_scores[0]["clip_t"] == pytest.approx(float(gen_clip[0] @ with_identifier[0]), abs=1e-5)
    assert kept_scores[0]["clip_t"] != pytest.approx(scores[0]["clip_t"], abs=1e-6)
    assert kept_scores[0]["dino"] == scores[0]["dino"]
    np.testing.assert_array_equal([s["clip_i"] for s in kept_scores], [s["clip_i"] for s in scores])


# A fresh interpreter: the Scorer loads its networks side by side in threads; every library they
# import must already be imported when the threads start (two threads importing timm and open_clip
# at once stopped with Python's _DeadlockError on torchvision's module lock).
_IMPORTS_BEFORE_THREADS = """
import concurrent.futures, sys
seen = []
class Spy(concurrent.futures.ThreadPoolExecutor):
    def __init__(self, *args, **kwargs):
        if kwargs.get("thread_name_prefix") == "dreambench-load":  # not the libraries' own pools
            seen.append({m for m in sys.argv[2].split(",") if m in sys.modules})
        super().__init__(*args, **kwargs)
concurrent.futures.ThreadPoolExecutor = Spy
from dreambench.metrics.scorer import Scorer
assert "torch" not in sys.modules and "timm" not in sys.modules  # nothing imported them yet
scorer = Scorer(sys.argv[1], device="cpu")
scorer._load_all(scorer.preset.networks)
assert seen == [set(sys.argv[2].split(","))], seen
"""


@pytest.mark.parametrize(
    ("preset", "modules"),
    [
        ("smoke", "torch,torchvision.transforms,timm,open_clip"),
        (
            "dreambench-plus-smoke",
            "timm,transformers.models.dinov2.modeling_dinov2,transformers.models.clip.modeling_clip",
        ),
    ],
)
def test_networks_load_side_by_side_only_after_their_imports(preset: str, modules: str) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_BEFORE_THREADS, preset, modules],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr[-2000:]

"""The named metric presets beyond the paper's (`dinov2`, `dinov2-b`, `dreambench-plus`) end to end
through `bench eval` on smoke weights (their seeded twins), checked against an independent
computation on the same weights; their record in results.json and the run identity; the
leaderboard's refusal to mix presets."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.dataset.images import load_image
from dreambench.errors import BenchError
from dreambench.leaderboard.compatibility import check_comparable
from dreambench.leaderboard.results import load_results
from dreambench.metrics.dino import DINO_BACKENDS
from dreambench.metrics.presets import METRIC_PRESETS, get_metric_preset
from dreambench.metrics.scorer import ImageRef, Scorer
from dreambench.metrics.weights import WeightsSource, resolve_weights

PROMPTS = {
    "name": "two",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a {0} {1} on a beach"],
    "live": ["a {0} {1} in the snow", "a {0} {1} on a beach"],
}
IMAGES_PER_PROMPT = 2


@pytest.fixture(scope="module")
def eval_inputs(dreambench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four 'generated' images of dog (2 prompts x 2 samples): crops of cat photos, so they differ."""
    root = tmp_path_factory.mktemp("presets")
    prompts = root / "two.json"
    prompts.write_text(json.dumps(PROMPTS))
    images = root / "mine" / "dog"
    images.mkdir(parents=True)
    cats = sorted((dreambench_data / "dataset" / "cat").glob("*.jpg"))
    for i, (p, s) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        load_image(cats[i]).resize((96, 80)).save(images / f"{p}-{s}.png")
    return {"prompts": prompts, "images": images, "root": root}


def _eval(
    inputs: dict[str, Path], data: Path, metric_preset: str | None, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    args = ["eval", str(inputs["images"].parent), "--identifier", "sks", "--prompts", str(inputs["prompts"])]
    args += ["--images-per-prompt", str(IMAGES_PER_PROMPT), "--preset", "smoke", "--data", str(data)]
    args += ["--out", str(inputs["root"] / "runs"), "--json", "--device", "cpu"]
    if metric_preset is not None:
        args += ["--metric-preset", metric_preset]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def _real(data: Path) -> list[Path]:
    return sorted((data / "dataset" / "dog").glob("*.jpg"))


def _generated(inputs: dict[str, Path]) -> list[Path]:
    return [inputs["images"] / f"{p}-{s}.png" for p, s in [(0, 0), (0, 1), (1, 0), (1, 1)]]


def _embed(kind: str, backend: str, arch: str, paths: list[Path]) -> np.ndarray:
    """Embeddings from the DINO-type network loaded straight from its smoke weights (not via the Scorer)."""
    weights = resolve_weights(kind, backend, WeightsSource.smoke())
    embedder = DINO_BACKENDS[backend].load(weights, device="cpu", arch=arch)
    return embedder.embed_images([load_image(p) for p in paths]).astype(np.float64)


@pytest.mark.parametrize(
    ("preset", "kind", "arch", "protocol"),
    [
        ("dinov2-smoke", "dinov2-s14", "DINOv2 ViT-S/14", "dinov2"),
        ("dinov2-b-smoke", "dinov2-b14", "DINOv2 ViT-B/14", "dinov2-b"),
    ],
)
def test_dinov2_presets_run_end_to_end_with_the_all_pairs_protocol(
    eval_inputs: dict[str, Path],
    dreambench_data: Path,
    capsys: pytest.CaptureFixture[str],
    preset: str,
    kind: str,
    arch: str,
    protocol: str,
) -> None:
    results = _eval(eval_inputs, dreambench_data, preset, capsys)
    assert results["run"]["metric_preset"] == preset
    assert results["calibrated"] is False
    assert results["protocol"]["metric_protocol"] == protocol
    assert "facebookresearch/dinov2" in results["protocol"]["metric_source"]
    assert results["protocol"]["pairing"].startswith("all (generated, real) pairs")
    dino = results["metrics"]["dino"]
    assert dino["embedder"]["arch"] == arch and dino["embedder"]["backend"] == "timm"
    assert dino["convention"] == "raw cosine in [-1, 1]"
    assert arch in dino["definition"]
    assert "dinov2" not in results["metrics"]  # one DINO network, reported as "dino"
    # Independent computation: all (generated, real) pairs, mean over them.
    gen = _embed(kind, "timm", arch, _generated(eval_inputs))
    real = _embed(kind, "timm", arch, _real(dreambench_data))
    expected = float((gen @ real.T).mean())
    subject = results["subjects"]["dog"]
    assert subject["dino"] == pytest.approx(expected, abs=1e-5)
    assert subject["pair_counts"]["dino"] == 4 * len(_real(dreambench_data))


def test_dreambench_plus_preset_pairs_each_image_with_one_source_and_scales_by_100(
    eval_inputs: dict[str, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _eval(eval_inputs, dreambench_data, "dreambench-plus-smoke", capsys)
    assert results["run"]["metric_preset"] == "dreambench-plus-smoke"
    assert results["protocol"]["metric_protocol"] == "dreambench-plus"
    assert "yuangpeng/dreambench_plus" in results["protocol"]["metric_source"]
    assert "(p + s) mod n_real" in results["protocol"]["pairing"]
    assert results["protocol"]["clip_t_text"] == "identifier removed"
    metrics = results["metrics"]
    assert metrics["dino"]["embedder"]["arch"] == "ViT-S/8"
    assert metrics["dinov2"]["embedder"]["arch"] == "DINOv2 ViT-S/14"
    assert metrics["dinov2"]["embedder"]["backend"] == "transformers"
    assert metrics["clip_i"]["embedder"]["backend"] == "transformers"
    assert {m["convention"] for m in metrics.values()} == {"cosine x 100"}
    run_dir = Path(results["run"]["run_dir"])
    rows = [
        json.loads(line) for line in (run_dir / "subjects" / "dog" / "scores.jsonl").read_text().splitlines()
    ]
    real_paths = _real(dreambench_data)
    real_names = [p.name for p in real_paths]
    assert [r["paired_with"] for r in rows] == [
        real_names[(r["prompt_idx"] + r["sample_idx"]) % len(real_names)] for r in rows
    ]
    # Independent computation: 100 x cos(generated image, its one paired real image).
    for kind, backend, arch, metric in (
        ("dino-s8", "timm", "ViT-S/8", "dino"),
        ("dinov2-s14", "transformers", "DINOv2 ViT-S/14", "dinov2"),
    ):
        gen = _embed(kind, backend, arch, _generated(eval_inputs))
        real = _embed(kind, backend, arch, real_paths)
        paired = np.array([real[real_names.index(r["paired_with"])] for r in rows])
        expected = 100.0 * np.einsum("nd,nd->n", gen, paired)
        assert [r[metric] for r in rows] == pytest.approx(expected.tolist(), abs=1e-3)
    subject = results["subjects"]["dog"]
    assert subject["pair_counts"]["dino"] == subject["pair_counts"]["dinov2"] == len(rows)
    assert results["overall"]["dinov2"] == pytest.approx(float(np.mean([r["dinov2"] for r in rows])))
    assert 1.0 < abs(subject["clip_t"]) <= 100.0  # x100, not raw


def test_leaderboard_refuses_to_mix_metric_presets(
    eval_inputs: dict[str, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Same conventions otherwise (raw cosine), both uncalibrated: only the preset differs.
    paper = Path(_eval(eval_inputs, dreambench_data, None, capsys)["run"]["run_dir"])
    dinov2 = Path(_eval(eval_inputs, dreambench_data, "dinov2-smoke", capsys)["run"]["run_dir"])
    with pytest.raises(
        BenchError, match=r"metric preset protocol .*'smoke' vs 'dinov2-smoke'.*'dreambooth' vs 'dinov2'"
    ):
        check_comparable([load_results(paper), load_results(dinov2)])
    # A second run of the same preset is comparable.
    twin = tmp_path / "again"
    shutil.copytree(dinov2, twin)
    check_comparable([load_results(dinov2), load_results(twin)])
    # Through the CLI: one line, exit 2.
    board = tmp_path / "board"
    board.mkdir()
    for run in (paper, dinov2):
        shutil.copytree(run, board / run.name)
    assert main(["leaderboard", str(board)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "metric preset protocol" in err


def test_unknown_metric_preset_is_one_line_with_the_valid_names(
    eval_inputs: dict[str, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", str(eval_inputs["images"].parent), "--prompts", str(eval_inputs["prompts"])]
    args += [
        "--data",
        str(dreambench_data),
        "--out",
        str(eval_inputs["root"] / "bad"),
        "--metric-preset",
        "dinov3",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown metric preset 'dinov3'" in err and "dinov2" in err


def test_presets_are_part_of_the_scoring_identity() -> None:
    paper, dinov2, plus = Scorer("smoke"), Scorer("dinov2-smoke"), Scorer("dreambench-plus-smoke")
    # The paper's identity keeps its keys (run directories made before these presets stay valid).
    assert "protocol" not in paper.identity() and "pairing" not in paper.identity()
    assert dinov2.identity()["protocol"] == "dinov2"
    assert dinov2.identity()["embedders"]["dino"]["arch"] == "DINOv2 ViT-S/14"
    plus_identity = plus.identity()
    assert plus_identity["pairing"] == "paired-source" and plus_identity["scale"] == 100.0
    assert set(plus_identity["embedders"]) == {"dino", "clip", "dinov2"}
    assert plus_identity["metric_versions"]["dinov2"] == 1
    assert len({s.identity_key() for s in (paper, dinov2, plus)}) == 3


@pytest.mark.parametrize("name", ["dinov2", "dinov2-b", "dreambench-plus"])
def test_each_new_preset_has_a_smoke_twin_with_the_same_conventions(name: str) -> None:
    preset, twin = get_metric_preset(name), METRIC_PRESETS[f"{name}-smoke"]
    assert preset.calibrated and not twin.calibrated
    for field in ("protocol", "pairing", "scale", "clip_t_keep_identifier", "source"):
        assert getattr(twin, field) == getattr(preset, field)
    for network in preset.networks:
        real, smoke = preset.spec(network), twin.spec(network)
        assert (real.backend, real.arch, real.source.kind) == (smoke.backend, smoke.arch, "pinned")
        # Trained smoke weights where a delta exists (DINO ViT-S/16, CLIP ViT-B/32), random elsewhere.
        trained = real.weights_kind in ("dino", "clip")
        assert smoke.source == (WeightsSource.smoke_trained() if trained else WeightsSource.smoke(0))


def test_pinned_weights_missing_offline_name_the_hub_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hf-cache")
    with pytest.raises(BenchError, match="timm/vit_small_patch14_dinov2.lvd142m"):
        Scorer("dinov2").identity()
    with pytest.raises(BenchError, match="timm/vit_small_patch8_224.dino"):
        Scorer("dreambench-plus").identity()


def test_generated_image_rows_without_positions_are_refused_under_paired_source(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (10, 200, 30)).save(image)
    ref = ImageRef(image, hashlib.sha256(image.read_bytes()).hexdigest())
    with pytest.raises(BenchError, match="prompt_idx, sample_idx"):
        Scorer("dreambench-plus-smoke", device="cpu").score_generated([ref], [ref], ["a dog"], "")


def test_readme_metric_preset_table_matches_the_code() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Metric presets", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]
    assert sorted(row[0].strip("`") for row in rows) == sorted(METRIC_PRESETS)
    for name, dino, clip, backends, pairing, scale, protocol, weights in rows:
        preset = get_metric_preset(name.strip("`"))
        assert dino.startswith(preset.dino.arch)
        assert (preset.dinov2 is None) or (preset.dinov2.arch in dino)
        assert clip == preset.clip.arch
        assert {b.split(" ")[0] for b in backends.split(", ")} == {
            preset.spec(n).backend for n in preset.networks
        }
        assert (pairing, scale, protocol) == (preset.pairing, f"×{preset.scale:g}", preset.protocol)
        assert weights == ("pinned" if preset.calibrated else "smoke")

"""The one-to-one and fixed-reference protocol presets `kosmos-g` and `uno` end to end through
`bench eval` on their smoke twins: the pairing and the class-noun CLIP-T text against an independent
computation on the same weights, x100, the run identity (another preset, another run directory; the
reference list in the identity), the leaderboard's refusal to mix protocols, and the shipped
reference list against the dataset manifest."""

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
from dreambench.dataset.manifest import load_manifest
from dreambench.errors import BenchError
from dreambench.leaderboard.compatibility import check_comparable
from dreambench.leaderboard.results import load_results
from dreambench.metrics.clip import CLIP_BACKENDS
from dreambench.metrics.dino import DINO_BACKENDS
from dreambench.metrics.presets import METRIC_PRESETS, get_metric_preset
from dreambench.metrics.reference_list import DATA_DIR, load_reference_list
from dreambench.metrics.scorer import ImageRef, Scorer
from dreambench.metrics.weights import WeightsSource, resolve_weights

PROMPTS = {
    "name": "two",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a {0} {1} on a beach"],
    "live": ["a {0} {1} in the snow", "a {0} {1} on a beach"],
}
# The class-noun prompts Kosmos-G (eval/dreambench_prompts.py, `prompt.format(object_class)`) and UNO
# (dreambench_singleip.json "prompt") score CLIP-T on: the template with the class noun only.
CLASS_NOUN_TEXTS = {0: "a dog in the snow", 1: "a dog on a beach"}
POSITIONS = [(0, 0), (0, 1), (1, 0), (1, 1)]


@pytest.fixture(scope="module")
def eval_inputs(dreambench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four 'generated' images of dog (2 prompts x 2 samples): crops of cat photos, so they differ."""
    root = tmp_path_factory.mktemp("protocols")
    prompts = root / "two.json"
    prompts.write_text(json.dumps(PROMPTS))
    images = root / "mine" / "dog"
    images.mkdir(parents=True)
    cats = sorted((dreambench_data / "dataset" / "cat").glob("*.jpg"))
    for i, (p, s) in enumerate(POSITIONS):
        load_image(cats[i]).resize((96, 80)).save(images / f"{p}-{s}.png")
    return {"prompts": prompts, "images": images, "root": root}


def _eval(
    inputs: dict[str, Path], data: Path, metric_preset: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    args = ["eval", str(inputs["images"].parent), "--identifier", "sks", "--prompts", str(inputs["prompts"])]
    args += [
        "--images-per-prompt",
        "2",
        "--preset",
        "smoke",
        "--data",
        str(data),
        "--metric-preset",
        metric_preset,
    ]
    args += ["--out", str(inputs["root"] / "runs"), "--json", "--device", "cpu"]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    path = Path(results["run"]["run_dir"]) / "subjects" / "dog" / "scores.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _real(data: Path) -> list[Path]:
    return sorted((data / "dataset" / "dog").glob("*.jpg"))


def _generated(inputs: dict[str, Path], rows: list[dict[str, Any]]) -> list[Path]:
    return [inputs["images"] / f"{r['prompt_idx']}-{r['sample_idx']}.png" for r in rows]


def _dino(paths: list[Path]) -> np.ndarray:
    """DINO ViT-S/16 embeddings straight from the (trained) smoke weights (not through the Scorer)."""
    embedder = DINO_BACKENDS["timm"].load(
        resolve_weights("dino", "timm", WeightsSource.smoke_trained()), device="cpu"
    )
    return embedder.embed_images([load_image(p) for p in paths]).astype(np.float64)


def _clip(backend: str) -> Any:
    weights = resolve_weights("clip", backend, WeightsSource.smoke_trained())
    return CLIP_BACKENDS[backend].load(weights, device="cpu")


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.einsum("nd,nd->n", a, b)


def _check_clip_t(rows: list[dict[str, Any]], generated: list[Path], backend: str) -> None:
    """CLIP-T = 100 x cos(image, the class-noun prompt), computed independently."""
    clip = _clip(backend)
    images = clip.embed_images([load_image(p) for p in generated]).astype(np.float64)
    texts = clip.embed_texts([CLASS_NOUN_TEXTS[r["prompt_idx"]] for r in rows]).astype(np.float64)
    assert [r["clip_t"] for r in rows] == pytest.approx((100.0 * _cos(images, texts)).tolist(), abs=1e-3)


def test_uno_scores_every_image_against_the_subjects_one_listed_reference_x100(
    eval_inputs: dict[str, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _eval(eval_inputs, dreambench_data, "uno-smoke", capsys)
    assert results["run"]["metric_preset"] == "uno-smoke"
    assert results["protocol"]["metric_protocol"] == "uno"
    assert "bytedance/UNO" in results["protocol"]["metric_source"]
    assert "listed reference image" in results["protocol"]["pairing"]
    assert {m["convention"] for m in results["metrics"].values()} == {"cosine x 100"}
    rows = _rows(results)
    assert {r["paired_with"] for r in rows} == {"02.jpg"}  # dog's reference in UNO's list
    generated = _generated(eval_inputs, rows)
    real = _real(dreambench_data)
    reference = next(p for p in real if p.name == "02.jpg")
    # Independent computation: 100 x cos(generated image, the named reference only).
    gen, ref = _dino(generated), _dino([reference])
    expected = 100.0 * _cos(gen, np.repeat(ref, len(gen), axis=0))
    assert [r["dino"] for r in rows] == pytest.approx(expected.tolist(), abs=1e-3)
    # ...which is not the all-pairs figure.
    all_pairs = 100.0 * np.mean([_cos(gen, np.repeat(_dino([p]), len(gen), axis=0)) for p in real], axis=0)
    assert not np.allclose([r["dino"] for r in rows], all_pairs, atol=1e-3)
    clip = _clip("open_clip")
    gen_clip = clip.embed_images([load_image(p) for p in generated]).astype(np.float64)
    ref_clip = clip.embed_images([load_image(reference)]).astype(np.float64)
    expected_clip = 100.0 * _cos(gen_clip, np.repeat(ref_clip, len(gen_clip), axis=0))
    assert [r["clip_i"] for r in rows] == pytest.approx(expected_clip.tolist(), abs=1e-3)
    _check_clip_t(rows, generated, "open_clip")
    subject = results["subjects"]["dog"]
    assert subject["pair_counts"]["dino"] == subject["pair_counts"]["clip_i"] == len(rows)
    assert subject["dino"] == pytest.approx(float(np.mean(expected)), abs=1e-3)


def test_kosmos_g_pairs_each_image_with_one_source_image_x100(
    eval_inputs: dict[str, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _eval(eval_inputs, dreambench_data, "kosmos-g-smoke", capsys)
    assert results["protocol"]["metric_protocol"] == "kosmos-g"
    assert "microsoft/unilm@7b4b9f03f16e312292ea044634ae56a87b37f3d9" in results["protocol"]["metric_source"]
    assert results["metrics"]["clip_i"]["embedder"]["backend"] == "transformers"
    assert results["metrics"]["dino"]["embedder"]["arch"] == "ViT-S/16"
    rows = _rows(results)
    real = _real(dreambench_data)
    names = [p.name for p in real]
    assert [r["paired_with"] for r in rows] == [
        names[(r["prompt_idx"] + r["sample_idx"]) % len(names)] for r in rows
    ]
    generated = _generated(eval_inputs, rows)
    gen, real_emb = _dino(generated), _dino(real)
    paired = np.array([real_emb[names.index(r["paired_with"])] for r in rows])
    assert [r["dino"] for r in rows] == pytest.approx((100.0 * _cos(gen, paired)).tolist(), abs=1e-3)
    _check_clip_t(rows, generated, "transformers")
    assert results["subjects"]["dog"]["pair_counts"]["dino"] == len(rows)


def test_each_protocol_is_its_own_run_and_the_leaderboard_refuses_to_mix_them(
    eval_inputs: dict[str, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    runs = {
        name: _eval(eval_inputs, dreambench_data, name, capsys) for name in ("uno-smoke", "kosmos-g-smoke")
    }
    runs["smoke"] = _eval(eval_inputs, dreambench_data, "dreambench-plus-smoke", capsys)
    dirs = {name: Path(r["run"]["run_dir"]) for name, r in runs.items()}
    assert len(set(dirs.values())) == 3
    uno_config = json.loads((dirs["uno-smoke"] / "config.json").read_text())
    data_file = DATA_DIR / "uno-singleip.json"
    assert json.dumps(uno_config).count(hashlib.sha256(data_file.read_bytes()).hexdigest()) >= 1
    with pytest.raises(BenchError, match=r"metric preset protocol .*'uno' vs 'kosmos-g'"):
        check_comparable([load_results(dirs["uno-smoke"]), load_results(dirs["kosmos-g-smoke"])])
    with pytest.raises(BenchError, match="metric preset protocol"):
        check_comparable([load_results(dirs["kosmos-g-smoke"]), load_results(dirs["smoke"])])
    board = tmp_path / "board"
    board.mkdir()
    for run in (dirs["uno-smoke"], dirs["kosmos-g-smoke"]):
        shutil.copytree(run, board / run.name)
    assert main(["leaderboard", str(board)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "metric preset protocol" in err


def test_the_reference_list_is_in_the_identity_and_the_old_identities_are_unchanged() -> None:
    uno, kosmos, paper = Scorer("uno-smoke"), Scorer("kosmos-g-smoke"), Scorer("smoke")
    identity = uno.identity()
    assert identity["pairing"] == "fixed-reference" and identity["protocol"] == "uno"
    assert identity["scale"] == 100.0 and identity["clip_t_keep_identifier"] is False
    assert identity["references"] == load_reference_list("uno-singleip").record()
    assert kosmos.identity()["pairing"] == "paired-source" and "references" not in kosmos.identity()
    assert "references" not in paper.identity() and "pairing" not in paper.identity()
    assert len({s.identity_key() for s in (uno, kosmos, paper)}) == 3


def test_a_subject_without_a_listed_reference_is_refused_in_one_line(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (10, 200, 30)).save(image)
    ref = ImageRef(image, hashlib.sha256(image.read_bytes()).hexdigest())
    with pytest.raises(
        BenchError, match=r"reference list 'uno-singleip' .* none of this subject's real images \(a.png\)"
    ):
        Scorer("uno-smoke", device="cpu").score_generated([ref], [ref], ["a dog"], "", positions=[(0, 0)])


def test_the_uno_reference_list_names_one_manifest_image_per_dreambooth_subject() -> None:
    manifest = load_manifest()
    references = load_reference_list("uno-singleip")
    assert set(references.files) == set(manifest["subjects"])
    for subject, file in references.files.items():
        assert manifest["subjects"][subject]["images"][file] == references.hashes[subject]
    # The examples dreambench issue 19 quotes from UNO's datasets/dreambench_singleip.json.
    assert (references.files["backpack"], references.files["cat"], references.files["dog5"]) == (
        "02.jpg",
        "04.jpg",
        "00.jpg",
    )
    assert references.source["repo"] == "bytedance/UNO"
    with pytest.raises(BenchError, match="unknown reference list 'nope'; valid: uno-singleip"):
        load_reference_list("nope")


@pytest.mark.parametrize("name", ["kosmos-g", "uno"])
def test_each_protocol_preset_has_a_smoke_twin_with_the_same_conventions(name: str) -> None:
    preset, twin = get_metric_preset(name), METRIC_PRESETS[f"{name}-smoke"]
    assert preset.calibrated and not twin.calibrated
    for field in ("protocol", "pairing", "scale", "clip_t_keep_identifier", "source", "references"):
        assert getattr(twin, field) == getattr(preset, field)
    for network in preset.networks:
        real, smoke = preset.spec(network), twin.spec(network)
        assert (real.backend, real.arch) == (smoke.backend, smoke.arch)
        assert (real.source.kind, smoke.source.kind) == ("pinned", "smoke-trained")

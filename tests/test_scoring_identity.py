"""Labels that cannot be false: the scoring identity (embedder backend, weights ids + sha256,
precision) decides which run directory a result lives in and whether finished scores are reused;
images are keyed by the bytes actually read.

End-to-end through the CLI with the real-images method (5 real images of one subject, smoke weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dreambench.cli import main
from dreambench.config import RunConfig
from dreambench.dataset.images import file_sha256, load_image
from dreambench.errors import BenchError
from dreambench.metrics.embedder import inference_context
from dreambench.metrics.embedding_cache import EmbeddingCache
from dreambench.metrics.scorer import ImageRef, Scorer


def _run(capsys: pytest.CaptureFixture[str], data: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(
        ["run", "--method", "real-images", "--preset", "smoke", "--data", str(data), "--out", str(out), "--quiet"]
        + list(extra)
    )
    return code, capsys.readouterr().err


def _new_run_dir(out: Path, before: set[Path]) -> Path:
    (run_dir,) = {p for p in out.iterdir() if p.is_dir()} - before
    return run_dir


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _scores(run_dir: Path, subject: str) -> list[dict]:
    text = (run_dir / "subjects" / subject / "scores.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def timm_run(dreambench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("runs")
    args = ["--subjects", "dog,cat", "--data", str(dreambench_data), "--out", str(out), "--quiet"]
    assert main(["run", "--method", "real-images", "--preset", "smoke", *args]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return out, run_dir


def test_other_backend_is_rescored_in_its_own_run_never_relabelled(
    timm_run: tuple[Path, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, timm_dir = timm_run
    timm_scores = (timm_dir / "subjects" / "dog" / "scores.jsonl").read_bytes()
    timm_results = (timm_dir / "results.json").read_bytes()
    before = {p for p in out.iterdir() if p.is_dir()}
    code, err = _run(capsys, dreambench_data, out, "--subjects", "dog", "--embedder-backend", "transformers")
    assert code == 0, err
    hf_dir = _new_run_dir(out, before)
    # The first run is untouched: nothing relabelled there.
    assert (timm_dir / "subjects" / "dog" / "scores.jsonl").read_bytes() == timm_scores
    assert (timm_dir / "results.json").read_bytes() == timm_results
    hf, timm = _results(hf_dir), _results(timm_dir)
    assert set(hf["subjects"]) == {"dog"}  # cat was not selected: not carried over under new ids
    for metric in ("dino", "clip_i", "clip_t"):
        assert hf["metrics"][metric]["embedder"]["backend"] == "transformers"
        assert timm["metrics"][metric]["embedder"]["backend"] in ("timm", "open_clip")
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["scoring"]["embedders"]["dino"] == hf["metrics"]["dino"]["embedder"]
    # Every subject and every score row carries the identity it was scored under.
    for results, run_dir in ((hf, hf_dir), (timm, timm_dir)):
        key = results["scoring"]["identity_key"]
        for name, subject in results["subjects"].items():
            assert subject["scoring"] == key
            assert all(row["scoring"] == key for row in _scores(run_dir, name))
    assert hf["scoring"]["identity_key"] != timm["scoring"]["identity_key"]


def test_scores_of_another_identity_are_recomputed(
    timm_run: tuple[Path, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, timm_dir = timm_run
    path = timm_dir / "subjects" / "cat" / "scores.jsonl"
    good = _scores(timm_dir, "cat")
    # As if written under other embedders: same images, another identity, other figures.
    forged = [{**row, "scoring": "0" * 16, "dino": 0.999, "clip_i": 0.999} for row in good]
    path.write_text("".join(json.dumps(r) + "\n" for r in forged))
    code, err = _run(capsys, dreambench_data, out, "--subjects", "cat")
    assert code == 0, err
    assert _scores(timm_dir, "cat") == good
    assert _results(timm_dir)["subjects"]["cat"]["dino"] == pytest.approx(good[0]["dino"])


def test_bf16_is_its_own_identity_marked_and_never_compared_with_fp32(
    timm_run: tuple[Path, Path], dreambench_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, timm_dir = timm_run
    before = {p for p in out.iterdir() if p.is_dir()}
    code, err = _run(capsys, dreambench_data, out, "--subjects", "dog", "--scoring-precision", "bf16")
    assert code == 0, err
    bf16_dir = _new_run_dir(out, before)
    results = _results(bf16_dir)
    assert results["scoring"]["precision"] == "bf16"
    assert {results["metrics"][m]["embedder"]["precision"] for m in ("dino", "clip_i")} == {"bf16"}
    assert json.loads((bf16_dir / "config.json").read_text())["scoring"]["precision"] == "bf16"
    assert _results(timm_dir)["scoring"]["precision"] == "fp32"

    assert main(["leaderboard", str(bf16_dir), str(timm_dir), "--format", "json"]) == 0
    runs = {Path(r["run_dir"]).name: r for r in json.loads(capsys.readouterr().out)["runs"]}
    bf16_label, fp32_label = runs[bf16_dir.name]["label"], runs[timm_dir.name]["label"]
    assert (runs[bf16_dir.name]["scoring_precision"], runs[timm_dir.name]["scoring_precision"]) == ("bf16", "fp32")
    assert main(["leaderboard", str(bf16_dir), str(timm_dir), "--format", "md"]) == 0
    table = capsys.readouterr().out
    assert f"{bf16_label}†§" in table and "§ scored in reduced precision" in table
    assert f"{fp32_label}†§" not in table and f"{fp32_label}†" in table

    code = main(["compare", str(timm_dir), str(bf16_dir)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "scoring precision differs (fp32 vs bf16)" in lines[0]

    # As calibrated runs (real weights) too: shown side by side with the mark, never refused for it.
    calibrated = []
    for run_dir in (timm_dir, bf16_dir):
        copy = tmp_path / "calibrated" / run_dir.name
        copy.mkdir(parents=True)
        (copy / "results.json").write_text(json.dumps({**_results(run_dir), "calibrated": True}))
        calibrated.append(copy)
    assert main(["leaderboard", *map(str, calibrated), "--format", "md"]) == 0
    table = capsys.readouterr().out
    assert f"{bf16_label}§" in table and f"{fp32_label}§" not in table


def test_scoring_identity_changes_the_run_config_hash() -> None:
    base = dict(
        method="m", method_preset="p", method_config={}, preset="smoke", metric_preset="smoke",
        prompt_set={}, images_per_prompt=1, base_seed=0, dataset={},
    )
    fp32, bf16 = Scorer("smoke", device="cpu"), Scorer("smoke", device="cpu", precision="bf16")
    hf = Scorer("smoke", device="cpu", backend="transformers")
    hashes = {RunConfig(**base, scoring=s.identity()).hash for s in (fp32, bf16, hf)}  # type: ignore[arg-type]
    assert len(hashes) == 3
    assert len({fp32.identity_key(), bf16.identity_key(), hf.identity_key()}) == 3
    # bf16 embeddings live in their own cache folder; fp32 keeps the folder it always had.
    assert fp32.embedder_id("dino").key != bf16.embedder_id("dino").key
    assert bf16.embedder_id("dino").key.endswith("-bf16")


def test_unknown_precision_is_one_line() -> None:
    with pytest.raises(BenchError, match="unknown scoring precision 'fp16'; valid: fp32, bf16"):
        Scorer("smoke", precision="fp16")


def test_fp32_scoring_turns_tf32_off_and_restores_it() -> None:
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with inference_context(torch.device("cpu"), "fp32"):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
            assert not torch.is_autocast_enabled("cpu")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# -- the bytes actually read ---------------------------------------------------------------------


@pytest.fixture
def modified_dataset(dreambench_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A dataset folder of links to the real files, except a modified copy of dog/00.jpg."""
    root = tmp_path / "dreambooth" / "dataset"
    for folder in sorted((dreambench_data / "dataset").iterdir()):
        if folder.is_dir():
            (root / folder.name).mkdir(parents=True)
            for f in folder.iterdir():
                (root / folder.name / f.name).symlink_to(f)
    modified = root / "dog" / "00.jpg"
    image = load_image(modified)
    image.paste((0, 0, 0), (0, 0, image.width // 2, image.height // 2))  # other pixels, other bytes
    modified.unlink()
    image.save(modified, format="JPEG", quality=95)
    return root.parent, modified


def test_modified_dataset_image_is_refused_before_any_work(
    modified_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, modified = modified_dataset
    out = tmp_path / "runs"
    code, err = _run(capsys, data, out, "--subjects", "dog")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert str(modified) in lines[0] and "differs from" in lines[0]
    assert not out.exists() or not any(out.iterdir())
    # Other subjects of the same folder are unaffected.
    code, err = _run(capsys, data, out, "--subjects", "cat")
    assert code == 0, err


def test_a_modified_copy_cannot_poison_the_cache_for_the_genuine_file(
    modified_dataset: tuple[Path, Path], dreambench_data: Path, empty_embedding_cache: Path
) -> None:
    # From an empty cache: a hit trusts its key, so the attack is storing under the wrong key.
    _, modified = modified_dataset
    genuine = dreambench_data / "dataset" / "dog" / "00.jpg"
    genuine_sha = file_sha256(genuine)
    scorer = Scorer("smoke", device="cpu")
    cache = EmbeddingCache(scorer.embedder_id("dino"))
    before = cache.get("images", genuine_sha)
    # The modified bytes offered under the genuine file's key: refused, nothing stored.
    with pytest.raises(BenchError, match=f"{modified}.*changed since it was indexed"):
        scorer._image_embeddings([ImageRef(modified, genuine_sha)])
    assert before is None and cache.get("images", genuine_sha) is None
    # The genuine file's figures stay genuine: what the cache returns is what the network says.
    (cached,) = scorer._image_embeddings([ImageRef(genuine, genuine_sha)], ("dino",))
    direct = scorer.dino.embed_images([load_image(genuine)])
    poisoned = scorer.dino.embed_images([load_image(modified)])
    # (Batch composition moves fp32 results by ulps only; the modified image by far more.)
    np.testing.assert_allclose(cached, direct, atol=1e-5)
    assert np.abs(poisoned - direct).max() > 1e-3

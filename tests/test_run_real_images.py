"""End-to-end: the real-images ceiling through the CLI on the smoke embedders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dreambench.cli import main


def _results(out: Path) -> tuple[Path, dict]:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, json.loads((run_dir / "results.json").read_text())


def _embedding_files() -> set[Path]:
    root = Path(os.environ["DREAMBENCH_CACHE"]) / "embeddings"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture(scope="module")
def real_run(dreambench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "run",
            "--method",
            "real-images",
            "--subjects",
            "all",
            "--preset",
            "smoke",
            "--data",
            str(dreambench_data),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return _results(out)


def test_real_images_run_writes_schema_valid_results(real_run: tuple[Path, dict]) -> None:
    run_dir, results = real_run
    assert run_dir.name.startswith("real-images-smoke-")
    assert results["schema_version"] == 1
    assert len(results["subjects"]) == 30
    assert results["overall"]["n_subjects"] == 30
    assert results["overall_live"]["n_subjects"] == 9
    assert results["overall_object"]["n_subjects"] == 21
    assert results["calibrated"] is False and results["uncalibrated_reasons"]
    for key in ("manifest_sha256", "commit"):
        assert results["dataset"][key]
    assert set(results["prompt_set"]) == {"name", "version", "sha256"}
    for metric in ("dino", "clip_i", "clip_t"):
        info = results["metrics"][metric]
        assert info["version"] >= 1 and info["embedder"]["sha256"]
    dog = results["subjects"]["dog"]
    assert dog["clip_t"] is None and -1.0 <= dog["dino"] <= 1.0 and -1.0 <= dog["clip_i"] <= 1.0
    assert results["overall"]["clip_t"] is None
    means = [s["dino"] for s in results["subjects"].values()]
    assert results["overall"]["dino"] == pytest.approx(sum(means) / len(means))
    for name in ("config.json", "stamp.json"):
        assert (run_dir / name).is_file()
    stamp = json.loads((run_dir / "stamp.json").read_text())
    assert stamp["libraries"]["torch"] and stamp["device"].startswith("cpu")


def test_rerun_recomputes_nothing(real_run: tuple[Path, dict], dreambench_data: Path) -> None:
    run_dir, results = real_run
    scores = run_dir / "subjects" / "dog" / "scores.jsonl"
    before = (scores.stat().st_mtime_ns, _embedding_files())
    code = main(
        [
            "run",
            "--method",
            "real-images",
            "--subjects",
            "all",
            "--preset",
            "smoke",
            "--data",
            str(dreambench_data),
            "--out",
            str(run_dir.parent),
            "--quiet",
        ]
    )
    assert code == 0
    assert (scores.stat().st_mtime_ns, _embedding_files()) == before
    again = json.loads((run_dir / "results.json").read_text())
    assert again["subjects"] == results["subjects"]  # incl. cost: nothing reran


def test_force_redoes_subject(real_run: tuple[Path, dict], dreambench_data: Path) -> None:
    run_dir, results = real_run
    scores = run_dir / "subjects" / "cat" / "scores.jsonl"
    before = scores.stat().st_mtime_ns
    code = main(
        [
            "run",
            "--method",
            "real-images",
            "--subjects",
            "cat",
            "--preset",
            "smoke",
            "--force",
            "--data",
            str(dreambench_data),
            "--out",
            str(run_dir.parent),
            "--quiet",
        ]
    )
    assert code == 0
    assert scores.stat().st_mtime_ns != before
    again = json.loads((run_dir / "results.json").read_text())
    assert again["subjects"]["cat"]["dino"] == pytest.approx(results["subjects"]["cat"]["dino"], abs=1e-6)


def test_json_output(
    real_run: tuple[Path, dict], dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = real_run
    code = main(
        [
            "run",
            "--method",
            "real-images",
            "--subjects",
            "dog,cat",
            "--preset",
            "smoke",
            "--json",
            "--data",
            str(dreambench_data),
            "--out",
            str(run_dir.parent),
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    # results.json covers every subject finished in the run directory, not only this selection
    assert len(printed["subjects"]) == 30


def test_summary_table_marks_uncalibrated(
    real_run: tuple[Path, dict], dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = real_run
    code = main(
        [
            "run",
            "--method",
            "real-images",
            "--subjects",
            "live",
            "--preset",
            "smoke",
            "--data",
            str(dreambench_data),
            "--out",
            str(run_dir.parent),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "UNCALIBRATED" in out and "dog8" in out and "n/a" in out


def test_custom_subject(tmp_path: Path, dreambench_data: Path) -> None:
    import shutil

    mine = tmp_path / "my_mug"
    mine.mkdir()
    for src in sorted((dreambench_data / "dataset" / "can").glob("*.jpg"))[:3]:
        shutil.copy(src, mine / src.name)
    out = tmp_path / "runs"
    code = main(
        [
            "run",
            "--method",
            "real-images",
            "--subject-dir",
            str(mine),
            "--class-noun",
            "mug",
            "--preset",
            "smoke",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    _, results = _results(out)
    assert list(results["subjects"]) == ["my_mug"]
    assert results["subjects"]["my_mug"]["class_noun"] == "mug"
    assert results["dataset"]["custom"]["my_mug"]["kind"] == "object"


def test_leaderboard_reads_real_run(real_run: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, results = real_run
    assert main(["leaderboard", str(run_dir), "--format", "json"]) == 0
    board = capsys.readouterr().out
    assert "real-images" in board
    assert main(["leaderboard", str(run_dir), "--format", "md"]) == 0
    table = capsys.readouterr().out
    assert "†" in table and "n/a" in table
    assert f"{results['overall']['dino']:.3f}" in table

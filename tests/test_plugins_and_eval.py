"""Outside methods (module:Class, entry points), `bench eval` on external images, resume of a
generating method, and the disk-space check — all through the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.registry import available_methods

REPO = Path(__file__).resolve().parents[1]
TWO_PROMPTS = {
    "name": "two",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a red {0} {1}"],
    "live": ["a {0} {1} in the snow", "a {0} {1} wearing a red hat"],
}


@pytest.fixture()
def example_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "docs" / "examples"))


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "two.json"
    path.write_text(json.dumps(TWO_PROMPTS))
    return path


def _run(args: list[str], data: Path, out: Path) -> int:
    return main(["run", *args, "--preset", "smoke", "--data", str(data), "--out", str(out), "--quiet"])


def _only_run(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if (p / "results.json").exists()]
    return run_dir


def test_outside_method_end_to_end_and_image_rebuild(
    example_on_path: None, prompts_file: Path, dreambench_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    args = [
        "--method",
        "mean_color:MeanColor",
        "--subjects",
        "dog,can",
        "--prompts",
        str(prompts_file),
        "--method-args",
        "noise=0.1",
    ]
    assert _run(args, dreambench_data, out) == 0
    run_dir = _only_run(out)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["run"]["method_config"] == {"size": 64, "noise": 0.1}
    assert (
        results["subjects"]["dog"]["n_generated"] == 8 and results["subjects"]["dog"]["identifier"] == "sks"
    )
    index = [json.loads(line) for line in (run_dir / "subjects/dog/images.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in index[::4]] == ["a sks dog in the snow", "a sks dog wearing a red hat"]
    scores = run_dir / "subjects/dog/scores.jsonl"
    victim = run_dir / "subjects/dog/images/1-2.png"
    original = victim.read_bytes()
    victim.unlink()
    before = scores.read_text()
    assert _run(args, dreambench_data, out) == 0
    assert victim.read_bytes() == original, "a deleted image must come back byte-identical"
    assert scores.read_text() == before
    assert hashlib.sha256(original).hexdigest() == index[6]["sha256"]


def test_entry_point_plugin_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_on_path: None
) -> None:
    dist = tmp_path / "site" / "my_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dreambench.methods]\nmean-color = mean_color:MeanColor\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert available_methods()["mean-color"] == "mean_color:MeanColor"
    assert main(["methods", "mean-color", "--json"]) == 0


def test_disk_space_check_refuses_before_writing(
    example_on_path: None,
    prompts_file: Path,
    dreambench_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mean_color

    monkeypatch.setattr(
        mean_color.MeanColor, "estimated_disk_bytes", lambda self, s, n: 10**18, raising=False
    )
    out = tmp_path / "runs"
    code = _run(
        ["--method", "mean_color:MeanColor", "--subjects", "dog", "--prompts", str(prompts_file)],
        dreambench_data,
        out,
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "not enough disk space" in err and err.count("\n") == 1
    assert not out.exists() or not any(out.rglob("*.json"))


def _write_external(root: Path, subjects: dict[str, int], n_prompts: int = 2, per_prompt: int = 2) -> None:
    for name, shade in subjects.items():
        folder = root / name
        folder.mkdir(parents=True)
        for p in range(n_prompts):
            for s in range(per_prompt):
                Image.new("RGB", (48, 48), (shade, 40 * p, 60 * s)).save(folder / f"{p}-{s}.png")


def test_eval_scores_external_images(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "mine"
    _write_external(images, {"dog": 200, "vase": 30})
    (images / "dog" / "notes.txt").write_text("ignore me")
    out = tmp_path / "runs"
    code = main(
        [
            "eval",
            str(images),
            "--prompts",
            str(prompts_file),
            "--images-per-prompt",
            "2",
            "--preset",
            "smoke",
            "--data",
            str(dreambench_data),
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert "notes.txt" in captured.err
    assert sorted(results["subjects"]) == ["dog", "vase"]
    assert results["run"]["method"] == "external:mine"
    assert results["subjects"]["vase"]["n_generated"] == 4
    assert all(-1 <= results["subjects"]["dog"][m] <= 1 for m in ("dino", "clip_i", "clip_t"))


def test_eval_reports_missing_images(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "mine"
    _write_external(images, {"dog": 200})
    (images / "dog" / "1-1.png").unlink()
    out = tmp_path / "runs"
    code = main(
        [
            "eval",
            str(images),
            "--prompts",
            str(prompts_file),
            "--images-per-prompt",
            "2",
            "--preset",
            "smoke",
            "--data",
            str(dreambench_data),
            "--out",
            str(out),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "1 expected image(s) missing: dog/1-1.png" in err and err.count("\n") == 1
    assert not out.exists()


def test_eval_unknown_subject_folder(
    prompts_file: Path, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "mine"
    _write_external(images, {"dgo": 10})
    code = main(
        [
            "eval",
            str(images),
            "--prompts",
            str(prompts_file),
            "--preset",
            "smoke",
            "--data",
            str(dreambench_data),
        ]
    )
    assert code == 2
    assert "unknown subject 'dgo'" in capsys.readouterr().err


def test_missing_dataset_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "runs"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "bench dataset fetch" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_unreadable_real_image_is_one_line(
    tmp_path: Path, dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "broken_subject"
    mine.mkdir()
    for src in sorted((dreambench_data / "dataset" / "can").glob("*.jpg"))[:2]:
        shutil.copy(src, mine / src.name)
    (mine / "99.jpg").write_bytes(b"not a jpeg at all")
    code = main(
        [
            "run",
            "--method",
            "real-images",
            "--subject-dir",
            str(mine),
            "--class-noun",
            "can",
            "--preset",
            "smoke",
            "--out",
            str(tmp_path / "runs"),
            "--quiet",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "99.jpg" in err and err.count("\n") == 1 and "Traceback" not in err


def test_pres_and_div(
    example_on_path: None,
    prompts_file: Path,
    dreambench_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "runs"
    args = [
        "--method",
        "mean_color:MeanColor",
        "--subjects",
        "dog,can",
        "--prompts",
        str(prompts_file),
        "--extra-metrics",
        "div,pres",
        "--pres-samples",
        "3",
    ]
    assert _run(args, dreambench_data, out) == 0
    run_dir = _only_run(out)
    results = json.loads((run_dir / "results.json").read_text())
    dog = results["subjects"]["dog"]
    assert dog["div"] > 0 and -1 <= dog["pres"] <= 1
    assert set(dog["per_prompt"]["0"]) >= {"dino", "div"}
    assert (
        results["metrics"]["pres"]["higher_is_better"] is False
        and results["metrics"]["div"]["embedder"]["backend"] == "lpips"
    )
    assert results["overall"]["div"] == pytest.approx((dog["div"] + results["subjects"]["can"]["div"]) / 2)
    assert results["protocol"]["pres_samples"] == 3
    pres = [json.loads(line) for line in (run_dir / "subjects/dog/pres.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in pres] == ["a dog"] * 3 and (run_dir / "subjects/dog/pres/2.png").is_file()
    # Identical images have no diversity: noise=0 renders one flat colour per subject.
    flat = tmp_path / "flat"
    assert _run([*args, "--method-args", "noise=0"], dreambench_data, flat) == 0
    flat_results = json.loads((_only_run(flat) / "results.json").read_text())
    assert flat_results["subjects"]["dog"]["div"] == pytest.approx(0.0, abs=1e-6)
    # A rerun reuses the stored PRES/DIV.
    stored = (run_dir / "subjects/dog/optional_scores.json").stat().st_mtime_ns
    assert _run(args, dreambench_data, out) == 0
    assert json.loads((run_dir / "results.json").read_text())["subjects"]["dog"]["div"] == dog["div"]
    assert (run_dir / "subjects/dog/optional_scores.json").stat().st_mtime_ns == stored
    capsys.readouterr()
    assert main(["leaderboard", str(run_dir), str(_only_run(flat)), "--format", "md"]) == 0
    table = capsys.readouterr().out
    assert "| PRES ↓ | DIV |" in table and f"{results['overall']['div']:.3f}" in table


def test_unknown_extra_metric(
    example_on_path: None, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        ["--method", "mean_color:MeanColor", "--subjects", "dog", "--extra-metrics", "dvi"],
        dreambench_data,
        tmp_path / "r",
    )
    assert code == 2
    assert "did you mean 'div'" in capsys.readouterr().err


def test_compare_gates_a_regressed_smoke_run(
    example_on_path: None,
    prompts_file: Path,
    dreambench_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Real runs, not synthetic results: an unchanged rerun passes the gate, a degraded method fails it."""
    base = ["--method", "mean_color:MeanColor", "--subjects", "dog,can,vase", "--prompts", str(prompts_file)]
    assert _run([*base, "--method-args", "noise=0.02"], dreambench_data, tmp_path / "baseline") == 0
    assert _run([*base, "--method-args", "noise=0.02"], dreambench_data, tmp_path / "same") == 0
    assert _run([*base, "--method-args", "noise=0.6,size=16"], dreambench_data, tmp_path / "worse") == 0
    baseline, same, worse = (str(_only_run(tmp_path / d)) for d in ("baseline", "same", "worse"))
    capsys.readouterr()
    assert main(["compare", baseline, same]) == 0
    assert "FAIL" not in capsys.readouterr().out
    assert (
        main(
            [
                "compare",
                baseline,
                worse,
                "--max-drop",
                "dino=0.001,clip_i=0.001,clip_t=0.5",
                "--format",
                "json",
            ]
        )
        == 1
    )
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert "dino" in report["regressions"]

"""`bench cost RUN_DIR`: per-stage rates from the run's own cost records, the whole-benchmark
extrapolation, and the native-resolution line of `bench run` (results.json run.native_resolution)."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from dreambench.cli import main
from dreambench.stage_rates import PAPER_WORKLOAD

TWO_PROMPTS = {
    "name": "two",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a red {0} {1}"],
    "live": ["a {0} {1} in the snow", "a {0} {1} wearing a red hat"],
}


def _smoke_run(tmp: Path, data: Path, method: str) -> Path:
    """`bench run` of ``method``: smoke preset, subject dog, 2 prompts x 1 image."""
    prompts = tmp / "two.json"
    prompts.write_text(json.dumps(TWO_PROMPTS))
    out = tmp / "runs"
    args = ["run", "--method", method, "--preset", "smoke", "--subjects", "dog", "--images-per-prompt", "1"]
    args += ["--prompts", str(prompts), "--data", str(data), "--out", str(out), "--quiet", "--device", "cpu"]
    assert main(args) == 0
    (run_dir,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    return run_dir


@pytest.fixture(scope="module")
def dreambooth_run(tmp_path_factory: pytest.TempPathFactory, dreambench_data: Path) -> tuple[Path, str]:
    # One tiny run shared by the tests below (a module fixture cannot take capsys: stderr kept here).
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        run_dir = _smoke_run(tmp_path_factory.mktemp("cost"), dreambench_data, "dreambooth")
    return run_dir, err.getvalue()


def test_rates_are_counts_over_seconds_of_the_cost_records(
    dreambooth_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = dreambooth_run
    results = json.loads((run_dir / "results.json").read_text())
    (cost,) = [s["cost"] for s in results["subjects"].values()]
    priors, train = cost["prepare"]["parts"]["class_priors"], cost["prepare"]["parts"]["train"]
    # What the run did: the smoke preset's class images and steps, 2 renders, 2 generated + the real scored.
    config = results["run"]["method_config"]
    n_priors, n_steps = config["num_class_images"], config["train_steps"]
    assert (priors["images"], train["steps"], cost["render"]["images"]) == (n_priors, n_steps, 2)
    assert cost["score"]["images"] == 2 + results["subjects"]["dog"]["n_real"]
    # The run totals carry the same counts (bench/cost.py summarize_costs).
    assert results["cost"]["stages"]["render"]["images"] == 2
    assert results["cost"]["stages"]["prepare"]["parts"]["train"]["steps"] == n_steps

    assert main(["cost", str(run_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    stages = report["stages"]
    assert stages["class_priors"]["rate_per_s"] == pytest.approx(priors["images"] / priors["wall_s"])
    net_train = train["wall_s"] - train["compile_s"]
    assert stages["train"]["seconds_per_unit"] == pytest.approx(net_train / train["steps"])
    assert stages["render"]["rate_per_s"] == pytest.approx(
        cost["render"]["images"] / cost["render"]["wall_s"]
    )
    net_score = cost["score"]["wall_s"] - cost["score"]["load_s"]  # the scorer's load is one-off
    assert cost["score"]["load_s"] > 0
    assert stages["score"]["rate_per_s"] == pytest.approx(cost["score"]["images"] / net_score)
    other = cost["prepare"]["wall_s"] - priors["wall_s"] - train["wall_s"]
    assert stages["prepare_other"]["seconds_per_unit"] == pytest.approx(other)

    # The extrapolation multiplies the workload out at those rates, and the total is their sum.
    terms = {t["stage"]: t["seconds"] for t in report["extrapolation"]}
    w = PAPER_WORKLOAD
    assert terms["class priors"] == pytest.approx(
        w.classes * w.class_images_per_class * priors["wall_s"] / n_priors
    )
    assert terms["train"] == pytest.approx(w.subjects * w.train_steps_per_subject * net_train / n_steps)
    assert terms["render"] == pytest.approx(w.renders * cost["render"]["wall_s"] / 2)
    assert terms["score"] == pytest.approx(w.scored_images * net_score / cost["score"]["images"])
    assert terms["compile / load"] == pytest.approx(train["compile_s"] + cost["score"]["load_s"])
    assert report["total_seconds"] == pytest.approx(math.fsum(terms.values()))

    # The text table shows the same figures, and says the smoke protocol is not the paper's.
    assert main(["cost", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert f"{stages['class_priors']['rate_per_s']:.3f} images/s" in text
    assert f"{stages['train']['seconds_per_unit'] * 1000:.1f} ms/step" in text
    assert f"{stages['render']['rate_per_s']:.3f} images/s" in text
    assert "NOT the paper protocol (512 px, 50 ddim steps)" in text
    assert "random weights: timing only" in text


def test_rerun_with_cached_class_priors_and_old_results(
    dreambooth_run: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A results.json without counts (older runs) still reads: rows not recorded, the total incomplete."""
    run_dir, _ = dreambooth_run
    results = json.loads((run_dir / "results.json").read_text())
    for subject in results["subjects"].values():
        for record in subject["cost"].values():
            record.pop("images", None)
            record.pop("parts", None)
    old = tmp_path / "results.json"
    old.write_text(json.dumps(results))
    assert main(["cost", str(old), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stages"]["render"]["rate_per_s"] is None
    assert report["stages"]["train"]["note"] == "not recorded by this run"
    assert report["total_seconds"] is None
    assert "render" in report["missing_terms"]
    assert main(["cost", str(old)]) == 0
    assert "incomplete" in capsys.readouterr().out


def test_cost_of_a_folder_without_results_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cost", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no results.json" in err and len(err.splitlines()) == 1


def test_native_resolution_recorded_and_silent_when_it_is_the_protocols(
    dreambooth_run: tuple[Path, str],
) -> None:
    run_dir, err = dreambooth_run
    results = json.loads((run_dir / "results.json").read_text())
    assert (
        results["run"]["native_resolution"]
        == results["render_protocol"]["protocol"]["sampler"]["resolution"]
        == 32
    )
    assert "native" not in err


WIDE = '''
from dreambench.reference_impl.base_method import BaseModel


class WideBase(BaseModel):
    """The base-model floor on a model said to be native at 64 px."""

    name = "wide-base"
    native_resolution = 64
'''


def test_native_resolution_that_differs_is_stated_in_one_line(
    tmp_path: Path, dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = tmp_path / "wide.py"
    plugin.write_text(WIDE)
    run_dir = _smoke_run(tmp_path, dreambench_data, f"{plugin}:WideBase")
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "native" in line]
    assert len(notes) == 1 and "native at 64 px" in notes[0] and "renders at 32 px" in notes[0]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["run"]["native_resolution"] == 64


def test_paper_workload_matches_the_dataset_prompts_and_preset(dreambench_data: Path) -> None:
    from dreambench.dataset.dreambooth import load_subjects
    from dreambench.dataset.prompts import load_prompt_set
    from dreambench.reference_impl.dreambooth import DreamBooth

    subjects = load_subjects(dreambench_data)
    prompts = load_prompt_set(None)
    paper = DreamBooth.PRESETS["paper"]
    per_subject = {s.name: len(prompts.live if s.kind == "live" else prompts.object) * 4 for s in subjects}
    assert PAPER_WORKLOAD.subjects == len(subjects)
    assert PAPER_WORKLOAD.classes == len({s.class_noun for s in subjects})
    assert PAPER_WORKLOAD.renders == sum(per_subject.values())
    assert PAPER_WORKLOAD.scored_images == PAPER_WORKLOAD.renders + sum(len(s.image_paths) for s in subjects)
    assert PAPER_WORKLOAD.class_images_per_class == paper.num_class_images
    assert PAPER_WORKLOAD.train_steps_per_subject == paper.train_steps

"""Metrics declared once (metrics/metric_registry.py): every declaration is complete, and an outside
metric registered from this test module flows through `bench run` -> results.json -> every
leaderboard format -> `bench compare` with no other edit."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_plugins_and_eval import TWO_PROMPTS

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.leaderboard.results import METRICS
from dreambench.metrics.metric_registry import (
    CORE_METRICS,
    get_metric,
    metrics,
    optional_metric_names,
    register_metric,
    unregister_metric,
)
from dreambench.metrics.metric_spec import AVAILABILITY, NETWORKS, PAIRINGS, MetricSpec
from dreambench.metrics.scorer import Scorer

REPO = Path(__file__).resolve().parents[1]


def grain(image: Image.Image) -> float:
    """Toy metric: the standard deviation of the grey levels, in [0, 1] (lower = smoother)."""
    return float(np.asarray(image.convert("L"), dtype=np.float64).std() / 255)


GRAIN = MetricSpec(
    "grain", "Grain", 1, False, "image", convention="std of grey levels in [0, 1]", compute=grain,
    definition="standard deviation of the generated image's grey levels", decimals=4, max_drop=0.001,
)


@pytest.fixture()
def grain_metric() -> Iterator[MetricSpec]:
    register_metric(GRAIN)
    yield GRAIN
    unregister_metric("grain")


@pytest.fixture()
def example_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "docs" / "examples"))


def _run(out: Path, data: Path, prompts: Path, noise: float, extra: str = "grain") -> dict:
    args = "run --method mean_color:MeanColor --subjects dog,can --images-per-prompt 2 --preset smoke --quiet"
    args += f" --method-args noise={noise} --extra-metrics {extra}"
    args += f" --prompts {prompts} --data {data} --out {out}"
    assert main(args.split()) == 0
    # The run just made (a new metric version may name another run directory beside the old one).
    found = [p / "results.json" for p in out.iterdir() if (p / "results.json").exists()]
    return json.loads(max(found, key=lambda p: p.stat().st_mtime_ns).read_text())


# -- declarations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(metrics()))
def test_every_declaration_is_complete(name: str) -> None:
    m = get_metric(name)
    assert m.name == name and m.title and m.version >= 1 and m.definition
    assert m.pairing in PAIRINGS and m.availability in AVAILABILITY
    assert all(n in NETWORKS for n in m.networks)
    assert isinstance(m.higher_is_better, bool) and m.decimals >= 0 and m.max_drop >= 0
    if m.availability == "optional":
        assert callable(m.load_compute()) and name in optional_metric_names()
    else:
        assert m.compute is None and len(m.networks) == 1 and name not in optional_metric_names()
    assert (m.availability == "core") == (name in CORE_METRICS)


def test_the_core_tuple_is_the_declarations() -> None:
    assert METRICS == CORE_METRICS == ("dino", "clip_i", "clip_t")


def test_bad_declarations_and_registrations_are_one_line_errors() -> None:
    with pytest.raises(BenchError, match="pairing 'pixels'"):
        MetricSpec("x", "X", 1, True, pairing="pixels", compute=grain)
    with pytest.raises(BenchError, match="declares its computation"):
        MetricSpec("x", "X", 1, True, pairing="image")
    with pytest.raises(BenchError, match="built in"):
        register_metric(MetricSpec("dino", "D", 1, True, pairing="image", compute=grain))
    with pytest.raises(BenchError, match="did you mean 'dino'"):
        get_metric("dinoo")


def test_a_computed_extra_metric_enters_the_scoring_identity(grain_metric: MetricSpec) -> None:
    plain, with_grain = Scorer("smoke"), Scorer("smoke", extra_metrics=("grain",))
    assert "grain" not in plain.identity()["metric_versions"]
    assert with_grain.identity()["metric_versions"]["grain"] == 1
    assert plain.identity_key() != with_grain.identity_key()
    # PRES and DIV were always part of every identity: asking for them changes nothing.
    assert Scorer("smoke", extra_metrics=("pres", "div")).identity() == plain.identity()


# -- end to end ------------------------------------------------------------------------------------


def test_registered_metric_flows_through_run_leaderboard_and_compare(
    grain_metric: MetricSpec,
    example_on_path: None,
    dreambench_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompts = tmp_path / "two.json"
    prompts.write_text(json.dumps(TWO_PROMPTS))
    smooth = _run(tmp_path / "smooth", dreambench_data, prompts, noise=0.02)
    grainy = _run(tmp_path / "grainy", dreambench_data, prompts, noise=0.4)

    # results.json: per subject (with per-prompt figures), overall, intervals, metric info.
    dog = smooth["subjects"]["dog"]
    assert 0 < dog["grain"] < grainy["subjects"]["dog"]["grain"]
    assert set(dog["per_prompt"]["0"]) >= {"dino", "grain"} and dog["pair_counts"]["grain"] == 4
    assert dog["grain"] == pytest.approx(np.mean([p["grain"] for p in dog["per_prompt"].values()]))
    assert smooth["overall"]["grain"] == pytest.approx((dog["grain"] + smooth["subjects"]["can"]["grain"]) / 2)
    assert smooth["overall"]["grain_n_subjects"] == 2
    low, high = smooth["ci"]["overall"]["grain"]
    assert low <= smooth["overall"]["grain"] <= high
    assert smooth["metrics"]["grain"] == {
        "version": 1,
        "higher_is_better": False,
        "convention": "std of grey levels in [0, 1]",
        "definition": "standard deviation of the generated image's grey levels",
    }
    run_dir = Path(smooth["run"]["run_dir"])
    stored = json.loads((run_dir / "subjects/dog/optional_scores.json").read_text())["grain"]
    assert stored["version"] == 1 and stored["value"] == dog["grain"]

    # Every leaderboard format shows it, with its title, direction and decimals.
    grainy_dir = str(Path(grainy["run"]["run_dir"]))
    dirs = [str(run_dir), grainy_dir]
    shown = f"{smooth['overall']['grain']:.4f}"
    for fmt in ("md", "csv", "json", "html"):
        capsys.readouterr()
        assert main(["leaderboard", *dirs, "--format", fmt]) == 0
        text = capsys.readouterr().out
        if fmt == "md":
            assert "| Grain ↓ |" in text and shown in text and "## Per subject: Grain ↓" in text
        elif fmt == "html":
            assert "<th>Grain ↓</th>" in text and shown in text
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            overall = next(r for r in rows if r["scope"] == "overall" and r["run"] == str(run_dir))
            assert float(overall["grain"]) == smooth["overall"]["grain"] and overall["grain_ci_low"]
            assert any(r["scope"] == "subject:dog" and r["grain"] for r in rows)
        else:
            data = json.loads(text)
            assert "grain" in data["metrics"] and data["metric_versions"]["grain"] == 1
            run = next(r for r in data["runs"] if r["run_dir"] == str(run_dir))
            assert run["overall"]["grain"]["value"] == smooth["overall"]["grain"]
            assert run["subjects"]["dog"]["grain"]["value"] == dog["grain"]

    # bench compare gates on it in its direction: more grain (lower is better) is a regression...
    capsys.readouterr()
    loose = "dino=1,clip_i=1,clip_t=1"
    assert main(["compare", str(run_dir), grainy_dir, "--max-drop", loose, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["regressions"] == ["grain"]
    assert report["metrics"]["grain"]["higher_is_better"] is False and report["metrics"]["grain"]["delta"] > 0
    # ... and less grain is not.
    assert main(["compare", grainy_dir, str(run_dir), "--max-drop", loose, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["grain"]["verdict"] in ("improved", "ok")


def test_a_new_version_recomputes_the_stored_figure(
    example_on_path: None, dreambench_data: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "two.json"
    prompts.write_text(json.dumps(TWO_PROMPTS))
    register_metric(GRAIN)
    try:
        first = _run(tmp_path / "v1", dreambench_data, prompts, noise=0.1)
        register_metric(
            MetricSpec(**{**GRAIN.__dict__, "version": 2, "compute": lambda image: 2 * grain(image)})
        )
        # Whether the new version names another run directory or recomputes in the same one, the
        # figure is the new definition's, recorded with its version.
        second = _run(tmp_path / "v1", dreambench_data, prompts, noise=0.1)
    finally:
        unregister_metric("grain")
    assert second["metrics"]["grain"]["version"] == 2
    assert second["subjects"]["dog"]["grain"] == pytest.approx(2 * first["subjects"]["dog"]["grain"])


def test_unknown_extra_metric_lists_the_registered_ones(
    grain_metric: MetricSpec, example_on_path: None, dreambench_data: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompts = tmp_path / "two.json"
    prompts.write_text(json.dumps(TWO_PROMPTS))
    with pytest.raises(AssertionError):
        _run(tmp_path / "r", dreambench_data, prompts, noise=0.1, extra="grian")
    err = capsys.readouterr().err
    assert "did you mean 'grain'" in err and err.count("\n") == 1

"""leaderboard/compare.py and `bench compare`: the regression gate over two results.json files.

Runs are synthetic results.json files (docs/RESULTS.md) written by `write_run`: every run shares
the same seeded base scores per (subject, prompt); a run differs from the base by `shift`, either
one number for every subject or one number per subject.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from results_factory import results_document

import dreambench.cli
from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.leaderboard.compare import (
    DEFAULT_MAX_DROP,
    IMPROVED,
    NOT_APPLICABLE,
    NOT_SIGNIFICANT,
    OK,
    REGRESSED,
    compare_runs,
    parse_max_drop,
)
from dreambench.leaderboard.results import load_results

SUBJECTS: tuple[tuple[str, str], ...] = (
    ("backpack", "object"),
    ("cat", "live"),
    ("clock", "object"),
    ("dog6", "live"),
    ("teapot", "object"),
    ("vase", "object"),
    ("dog", "live"),
    ("candle", "object"),
)
N_PROMPTS = 5
METRIC_NAMES = ("dino", "clip_i", "clip_t")
EMBEDDER = {"backend": "timm", "arch": "vit_small_patch16_224.dino", "weights": "dino", "sha256": "aa11"}


@pytest.fixture(autouse=True)
def _compare_command_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench compare` until bench/cli.py lists it (then this is a no-op)."""
    if "dreambench.commands.compare" not in dreambench.cli.COMMAND_MODULES:
        monkeypatch.setattr(
            dreambench.cli, "COMMAND_MODULES", (*dreambench.cli.COMMAND_MODULES, "dreambench.commands.compare")
        )


def make_results(
    *,
    name: str = "dreambooth-smoke-base",
    method: str = "dreambooth",
    shift: float | list[float] = 0.0,
    shift_metrics: tuple[str, ...] = METRIC_NAMES,
    clip_t: bool = True,
    per_prompt: bool = True,
    prompt_version: str = "1",
    metric_version: int = 1,
    embedder_sha256: str = "aa11",
    drop_subjects: dict[str, str] | None = None,
    calibrated: bool = True,
) -> dict[str, Any]:
    """A results.json dict; `drop_subjects` maps subjects to leave out -> failure reason ("" = not run)."""
    drop_subjects = drop_subjects or {}
    rng = np.random.default_rng(0)  # the same base scores for every run
    shifts = shift if isinstance(shift, list) else [shift] * len(SUBJECTS)
    subjects: dict[str, Any] = {}
    for (subject, kind), delta in zip(SUBJECTS, shifts, strict=True):
        base = {"dino": 0.6, "clip_i": 0.78, "clip_t": 0.3}
        prompts: dict[str, dict[str, float | None]] = {}
        effect = rng.normal(0, 0.05)
        for p in range(N_PROMPTS):
            noise = rng.normal(0, 0.03, 3)
            prompts[str(p)] = {
                m: base[m] + effect + float(noise[i]) + (delta if m in shift_metrics else 0.0)
                for i, m in enumerate(METRIC_NAMES)
            }
            if not clip_t:
                prompts[str(p)]["clip_t"] = None
        if subject in drop_subjects:
            continue
        entry: dict[str, Any] = {"kind": kind, "class_noun": subject, "identifier": "sks"}
        for m in METRIC_NAMES:
            values = [v[m] for v in prompts.values() if v[m] is not None]
            entry[m] = float(np.mean(values)) if values else None
        if per_prompt:
            entry["per_prompt"] = prompts
        subjects[subject] = entry

    return results_document(
        subjects,
        method=method,
        preset="smoke",
        run_name=name,
        config_hash=name[-8:],
        calibrated=calibrated,
        embedder={**EMBEDDER, "sha256": embedder_sha256},
        metric_version=metric_version,
        prompt_version=prompt_version,
        failures={s: r for s, r in drop_subjects.items() if r},
    )


def write_run(root: Path, name: str, **kwargs: Any) -> Path:
    """Write make_results(**kwargs) as <root>/<name>/results.json; return the run directory."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(make_results(name=name, **kwargs), indent=1))
    return run_dir


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return write_run(tmp_path, "baseline")


# Per-subject DINO shifts with mean -0.02 but signs that disagree: the interval straddles 0.
MIXED_DROP = [0.05, -0.09, 0.05, -0.09, 0.05, -0.09, 0.05, -0.09]


def gate(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["compare", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


# --- exit codes ---------------------------------------------------------------------------------


def test_improved_run_passes(tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = write_run(tmp_path, "current", shift=0.02)
    code, out, _ = gate(capsys, baseline, current)
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith(("DINO", "CLIP"))]
    assert [row.split()[-1] for row in rows] == [IMPROVED] * 3 and "PASS" in out


def test_unchanged_run_passes(tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = write_run(tmp_path, "current")
    code, out, _ = gate(capsys, baseline, current, "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["passed"] is True and report["regressions"] == []
    for metric in METRIC_NAMES:
        entry = report["metrics"][metric]
        assert (entry["delta"], entry["ci"], entry["p_value"], entry["verdict"]) == (0.0, [0.0, 0.0], 1.0, OK)


def test_regression_beyond_tolerance_fails(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(tmp_path, "current", shift=-0.03, shift_metrics=("dino",))
    code, out, _ = gate(capsys, baseline, current)
    assert code == 1
    dino_row = next(line for line in out.splitlines() if line.startswith("DINO"))
    assert "-0.0300" in dino_row and "REGRESSED" in dino_row
    assert "FAIL: DINO fell" in out and "CLIP-I" in out
    # Within a looser tolerance the same drop passes.
    assert gate(capsys, baseline, current, "--max-drop", "dino=0.05")[0] == 0


def test_drop_within_tolerance_passes(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(tmp_path, "current", shift=-0.004)
    code, out, _ = gate(capsys, baseline, current)
    assert code == 0  # dino/clip_i tolerate 0.01, clip_t 0.005
    assert gate(capsys, baseline, current, "--max-drop", "clip_t=0.001")[0] == 1


def test_require_significance_passes_a_drop_whose_interval_straddles_zero(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(tmp_path, "current", shift=MIXED_DROP, shift_metrics=("dino",))
    code, out, _ = gate(capsys, baseline, current, "--format", "json")
    dino = json.loads(out)["metrics"]["dino"]
    assert dino["delta"] == pytest.approx(-0.02)
    assert dino["ci"][0] < 0 < dino["ci"][1]
    assert code == 1  # tolerance alone: fails
    code, out, _ = gate(capsys, baseline, current, "--require-significance", "--format", "json")
    assert code == 0
    assert json.loads(out)["metrics"]["dino"]["verdict"] == NOT_SIGNIFICANT


def test_require_significance_fails_a_drop_whose_interval_lies_below_zero(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(tmp_path, "current", shift=-0.03, shift_metrics=("dino",))
    code, out, _ = gate(capsys, baseline, current, "--require-significance", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["regressions"] == ["dino"] and report["metrics"]["dino"]["ci"][1] < 0


def test_incompatible_prompt_set_is_exit_2_one_line(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(tmp_path, "current", prompt_version="2")
    code, out, err = gate(capsys, baseline, current)
    assert code == 2 and out == ""
    assert "prompt_set.version" in one_line_error(err)


def test_incompatible_metric_version_is_exit_2(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(tmp_path, "current", metric_version=2)
    code, _, err = gate(capsys, baseline, current)
    assert code == 2 and "metrics.clip_i.version" in one_line_error(err)


def test_different_embedders_are_exit_2(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Even when one run is uncalibrated (allowed side by side in a leaderboard), a gate across
    # embedders would compare different measurements.
    current = write_run(tmp_path, "current", embedder_sha256="ff99", calibrated=False)
    code, _, err = gate(capsys, baseline, current)
    assert code == 2 and "embedder" in one_line_error(err)


def test_missing_subject_is_exit_2_naming_it(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(
        tmp_path, "current", drop_subjects={"dog6": "TrainingDiverged: loss is nan", "vase": ""}
    )
    code, _, err = gate(capsys, baseline, current)
    line = one_line_error(err)
    assert code == 2
    assert "dog6 (failed: TrainingDiverged: loss is nan)" in line and "vase" in line
    code, _, err = gate(capsys, current, baseline)  # the other way round
    assert code == 2 and "baseline run" in one_line_error(err) and "dog6" in err


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("dino=0.01,foo=0.1", "'foo=0.1'"),
        ("dino", "'dino'"),
        ("dino=abc", "'dino=abc'"),
        ("clip_i=-0.1", "'clip_i=-0.1'"),
        ("dino=nan", "'dino=nan'"),
        (",", "','"),
    ],
)
def test_bad_max_drop_is_exit_2_naming_item_and_metrics(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str], value: str, named: str
) -> None:
    current = write_run(tmp_path, "current")
    code, _, err = gate(capsys, baseline, current, f"--max-drop={value}")
    line = one_line_error(err)
    assert code == 2 and named in line and "dino, clip_i, clip_t" in line


def test_unreadable_results_are_exit_2(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text("{not json")
    code, _, err = gate(capsys, baseline, broken)
    assert code == 2 and "not valid JSON" in one_line_error(err)
    code, _, err = gate(capsys, tmp_path / "nowhere", baseline)
    assert code == 2 and "nowhere" in one_line_error(err)


def test_bad_n_boot_is_exit_2(tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = gate(capsys, baseline, baseline, "--n-boot", "0")
    assert code == 2 and "--n-boot" in one_line_error(err)


# --- n/a metrics, formats -----------------------------------------------------------------------


def test_metric_null_in_both_runs_is_na_and_never_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The real-images ceiling: no CLIP-T, no per_prompt.
    base = write_run(tmp_path, "real-base", method="real-images", clip_t=False, per_prompt=False)
    current = write_run(
        tmp_path, "real-current", method="real-images", clip_t=False, per_prompt=False, shift=0.001
    )
    code, out, _ = gate(capsys, base, current, "--max-drop", "clip_t=0")
    assert code == 0
    clip_t_row = next(line for line in out.splitlines() if line.startswith("CLIP-T"))
    assert clip_t_row.split() == ["CLIP-T", *["n/a"] * 3, "n/a", "n/a", "0", NOT_APPLICABLE]


def test_json_has_per_subject_deltas(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(tmp_path, "current", shift=MIXED_DROP, shift_metrics=("dino",))
    _, out, _ = gate(capsys, baseline, current, "--format", "json", "--n-boot", "200", "--seed", "3")
    report = json.loads(out)
    deltas = report["metrics"]["dino"]["subject_deltas"]
    expected = {name: shift for (name, _), shift in zip(SUBJECTS, MIXED_DROP)}
    assert deltas == pytest.approx(expected)
    assert report["metrics"]["clip_i"]["subject_deltas"] == pytest.approx(dict.fromkeys(expected, 0.0))
    assert report["statistics"]["n_boot"] == 200 and report["statistics"]["seed"] == 3
    assert report["baseline"]["path"].endswith("baseline/results.json")


def test_markdown_format(tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = write_run(tmp_path, "current", shift=-0.03, shift_metrics=("dino",))
    code, out, _ = gate(capsys, baseline, current, "--format", "md")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "### dreambench regression gate: FAIL"
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + len(METRIC_NAMES)
    assert all(line.count("|") == 9 for line in table)
    assert "REGRESSED" in table[2]


def test_seeded_output_is_deterministic(
    tmp_path: Path, baseline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write_run(tmp_path, "current", shift=MIXED_DROP)
    first = gate(capsys, baseline, current, "--format", "json", "--seed", "5")
    assert gate(capsys, baseline, current, "--format", "json", "--seed", "5") == first
    assert gate(capsys, baseline, current, "--format", "json", "--seed", "6") != first


# --- pure logic ---------------------------------------------------------------------------------


def test_parse_max_drop_keeps_defaults_for_unnamed_metrics() -> None:
    assert parse_max_drop(None) == DEFAULT_MAX_DROP
    assert parse_max_drop(" dino = 0.02 ") == {**DEFAULT_MAX_DROP, "dino": 0.02}
    with pytest.raises(BenchError, match="unknown metric 'clipi'"):
        parse_max_drop("clipi=0.1")


@pytest.mark.parametrize(
    ("max_drop", "message"), [({"clipi": 0.1}, "unknown metric"), ({"dino": -0.1}, ">= 0")]
)
def test_compare_runs_validates_max_drop(tmp_path: Path, max_drop: dict[str, float], message: str) -> None:
    run = load_results(write_run(tmp_path, "base"))
    with pytest.raises(BenchError, match=message):
        compare_runs(run, run, max_drop=max_drop)


def test_lower_is_better_metric_regresses_when_it_rises(tmp_path: Path) -> None:
    def lower_is_better(run_dir: Path) -> Path:
        path = run_dir / "results.json"
        raw = json.loads(path.read_text())
        raw["metrics"]["dino"]["higher_is_better"] = False
        path.write_text(json.dumps(raw))
        return path

    base = load_results(lower_is_better(write_run(tmp_path, "base")))
    rose = load_results(lower_is_better(write_run(tmp_path, "rose", shift=0.03, shift_metrics=("dino",))))
    fell = load_results(lower_is_better(write_run(tmp_path, "fell", shift=-0.03, shift_metrics=("dino",))))
    assert compare_runs(base, rose).metrics[0].verdict == REGRESSED
    assert compare_runs(base, fell).metrics[0].verdict == IMPROVED


def test_metric_missing_from_one_run_is_na_with_a_note(tmp_path: Path) -> None:
    base = load_results(write_run(tmp_path, "base", clip_t=False))
    current = load_results(write_run(tmp_path, "current"))
    comparison = compare_runs(base, current)
    clip_t = comparison.metrics[2]
    assert clip_t.verdict == NOT_APPLICABLE and clip_t.baseline is None and clip_t.current is not None
    assert any("clip_t does not apply to the baseline run" in note for note in comparison.notes)


def test_prompts_differing_within_a_subject_are_refused(tmp_path: Path) -> None:
    base_dir = write_run(tmp_path, "base")
    current_dir = write_run(tmp_path, "current")
    path = current_dir / "results.json"
    raw = json.loads(path.read_text())
    raw["subjects"]["cat"]["per_prompt"]["17"] = raw["subjects"]["cat"]["per_prompt"].pop("0")
    path.write_text(json.dumps(raw))
    with pytest.raises(BenchError, match="'cat': prompts differ"):
        compare_runs(load_results(base_dir), load_results(current_dir))

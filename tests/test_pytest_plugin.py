"""bench/pytest_plugin.py: the `dreambench_gate` fixture, run inside a user's own test suite.

Each test writes baseline and current runs (the synthetic results.json of tests/test_compare.py),
then runs a small user test suite through `pytester` with `-p dreambench.pytest_plugin`. Entry-point
autoloading is switched off in the inner runs: once dreambench is installed with its `pytest11`
entry point, the same module would otherwise be registered twice (as "dreambench" and as
"dreambench.pytest_plugin"), which pluggy refuses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_compare import MIXED_DROP, write_run

from dreambench.errors import BenchError
from dreambench.leaderboard.compare import Comparison
from dreambench.pytest_plugin import DreambenchGate

pytest_plugins = ["pytester"]


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    return {
        "baseline": write_run(tmp_path, "baseline"),
        "same": write_run(tmp_path, "same"),
        "dropped": write_run(tmp_path, "dropped", shift=-0.03, shift_metrics=("dino", "clip_t")),
        "noisy_drop": write_run(tmp_path, "noisy-drop", shift=MIXED_DROP, shift_metrics=("dino",)),
        "other_prompts": write_run(tmp_path, "other-prompts", prompt_version="2"),
    }


def run_user_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
) -> pytest.RunResult:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user=source)
    return pytester.runpytest("-p", "dreambench.pytest_plugin")


def test_gate_passes_and_returns_the_comparison(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, runs: dict[str, Path]
) -> None:
    result = run_user_suite(
        pytester,
        monkeypatch,
        f"""
def test_quality(dreambench_gate):
    comparison = dreambench_gate.check({str(runs["same"])!r}, {str(runs["baseline"])!r})
    assert comparison.passed
    assert [m.verdict for m in comparison.metrics] == ["ok", "ok", "ok"]
""",
    )
    result.assert_outcomes(passed=1)


def test_gate_failure_lists_each_regressed_metric(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, runs: dict[str, Path]
) -> None:
    result = run_user_suite(
        pytester,
        monkeypatch,
        f"""
def test_quality(dreambench_gate):
    dreambench_gate.check({str(runs["dropped"])!r}, {str(runs["baseline"])!r},
                          max_drop={{"dino": 0.01, "clip_i": 0.01, "clip_t": 0.005}})
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: dreambench regression: *dropped*results.json against baseline *baseline*",
            "*DINO fell from 0.* to 0.* (delta -0.0300, 95% CI *, p 0.008; tolerance 0.01)",
            "*CLIP-T fell from 0.* to 0.* (delta -0.0300, *tolerance 0.005)",
        ]
    )
    assert "95% CI [-0.0300, -0.0300]" in result.stdout.str()
    assert "CLIP-I fell" not in result.stdout.str()
    # The plugin opts out of assertion rewriting (it has no asserts): no warning when it was
    # imported before pytest loads it.
    assert "PytestAssertRewriteWarning" not in result.stdout.str()


def test_gate_options_reach_the_comparison(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, runs: dict[str, Path]
) -> None:
    # A noisy drop of 0.02 fails on tolerance alone, passes with require_significance; a loose
    # max_drop lets the clean drop through.
    result = run_user_suite(
        pytester,
        monkeypatch,
        f"""
import pytest

def test_tolerance_only(dreambench_gate):
    with pytest.raises(AssertionError, match="DINO fell"):
        dreambench_gate.check({str(runs["noisy_drop"])!r}, {str(runs["baseline"])!r})

def test_significance(dreambench_gate):
    comparison = dreambench_gate.check({str(runs["noisy_drop"])!r}, {str(runs["baseline"])!r},
                                       require_significance=True, n_boot=500, seed=1)
    assert comparison.metrics[0].verdict == "not significant"

def test_loose_tolerance(dreambench_gate):
    dreambench_gate.check({str(runs["dropped"])!r}, {str(runs["baseline"])!r},
                          max_drop={{"dino": 0.05, "clip_t": 0.05}})
""",
    )
    result.assert_outcomes(passed=3)


def test_unusable_input_is_an_error_not_a_regression(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, runs: dict[str, Path]
) -> None:
    result = run_user_suite(
        pytester,
        monkeypatch,
        f"""
def test_quality(dreambench_gate):
    dreambench_gate.check({str(runs["other_prompts"])!r}, {str(runs["baseline"])!r})
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*BenchError: cannot compare *prompt_set.version differs*"])
    assert "AssertionError" not in result.stdout.str()


def test_fixture_is_absent_without_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guards the tests above: the fixture comes from the plugin, not from anything else in scope.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_user="def test_quality(dreambench_gate):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'dreambench_gate' not found*"])


def test_gate_object_directly(runs: dict[str, Path]) -> None:
    gate = DreambenchGate()
    comparison = gate.check(runs["same"] / "results.json", runs["baseline"], n_boot=100)
    assert isinstance(comparison, Comparison) and comparison.passed
    with pytest.raises(AssertionError, match=r"DINO fell .*\n  CLIP-T fell"):
        gate.check(runs["dropped"], runs["baseline"], n_boot=100)
    with pytest.raises(BenchError, match="does not exist"):
        gate.check(runs["baseline"].parent / "missing", runs["baseline"])

"""A pytest plugin: gate your own test suite on dreambench results.

Registered through the ``pytest11`` entry point ``dreambench``, so an installed dreambench makes
it available to every test suite in the environment (``-p no:dreambench`` switches it off). Where
the entry point is not installed, load it with ``-p dreambench.pytest_plugin`` (with the entry point
installed that would register the module twice, which pytest refuses). It provides the fixture
``dreambench_gate``::

    def test_no_quality_regression(dreambench_gate):
        dreambench_gate.check("runs/dreambooth-smoke-3f2a9c1e", "baseline/",
                              max_drop={"dino": 0.01, "clip_i": 0.01, "clip_t": 0.005})

``check`` runs the same comparison as ``bench compare`` (leaderboard/compare.py) and raises
AssertionError listing each regressed metric when the gate fails; it returns the Comparison
otherwise. Unusable input (missing files, different prompt sets, subjects or embedders) raises
BenchError, so pytest reports an error, not a failure.

This module is imported by every pytest run in an environment where dreambench is installed:
it imports nothing heavy at module level. It holds no assert statements, so it opts out of
pytest's assertion rewriting (PYTEST_DONT_REWRITE), which would otherwise warn whenever the module
was imported before pytest loads it as a plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from dreambench.leaderboard.compare import Comparison


class DreambenchGate:
    """The object the ``dreambench_gate`` fixture returns; see `check`."""

    def check(
        self,
        run_dir: str | Path,
        baseline: str | Path,
        max_drop: Mapping[str, float] | None = None,
        require_significance: bool = False,
        n_boot: int = 2000,
        level: float = 0.95,
        seed: int = 0,
    ) -> Comparison:
        """Compare the run in `run_dir` against `baseline` (run directories or results.json files).

        `max_drop` overrides the default tolerances per metric (dino 0.01, clip_i 0.01,
        clip_t 0.005); with `require_significance` a drop beyond tolerance fails only when the
        delta's interval lies wholly below 0. Raises AssertionError when a metric regressed.
        """
        from dreambench.leaderboard.compare import compare_runs, regression_text
        from dreambench.leaderboard.results import load_results

        comparison = compare_runs(
            load_results(Path(baseline)),
            load_results(Path(run_dir)),
            max_drop=None if max_drop is None else dict(max_drop),
            require_significance=require_significance,
            n_boot=n_boot,
            level=level,
            seed=seed,
        )
        if not comparison.passed:
            lines = [
                f"dreambench regression: {comparison.current.path} against baseline {comparison.baseline.path}",
                *(f"  {regression_text(m, level)}" for m in comparison.regressions),
            ]
            raise AssertionError("\n".join(lines))
        return comparison


@pytest.fixture
def dreambench_gate() -> DreambenchGate:
    """Gate a dreambench run against a baseline: ``dreambench_gate.check(run_dir, baseline, ...)``."""
    return DreambenchGate()

"""`bench compare BASELINE CURRENT`: the CI regression gate between two runs.

BASELINE and CURRENT are run directories (or their results.json files). For each metric it prints
baseline, current, delta (current - baseline), the paired bootstrap interval of the delta, the
sign-flip permutation p-value and a verdict. Exit status: 0 when no metric fell by more than its
tolerance (--max-drop; with --require-significance, a drop counts only when the delta's interval
lies wholly below 0), 1 when one did, 2 when the runs cannot be compared (different prompt sets,
metric versions, embedders or subjects; unreadable files; bad options). See docs/CI.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dreambench.leaderboard.compare import Comparison

FORMATS: tuple[str, ...] = ("text", "json", "md")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="regression gate: compare a run against a baseline (exit 1 on a regression)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "baseline", type=Path, metavar="BASELINE", help="baseline run directory or results.json"
    )
    parser.add_argument("current", type=Path, metavar="CURRENT", help="current run directory or results.json")
    parser.add_argument(
        "--max-drop",
        default=None,
        metavar="METRIC=X,...",
        help="largest tolerated drop per metric, raw cosine units "
        "(default: dino=0.01,clip_i=0.01,clip_t=0.005; unnamed metrics keep their default)",
    )
    parser.add_argument(
        "--require-significance",
        action="store_true",
        help="fail only when, beyond the tolerance, the interval of the delta lies wholly below 0",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument(
        "--n-boot", type=int, default=2000, metavar="N", help="bootstrap resamples (default: 2000)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="seed of the resampling (default: 0)"
    )
    parser.add_argument(
        "--level", type=float, default=0.95, metavar="L", help="interval level (default: 0.95)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreambench.leaderboard.compare import compare_runs, parse_max_drop
    from dreambench.leaderboard.results import load_results

    max_drop = parse_max_drop(args.max_drop)
    comparison = compare_runs(
        load_results(args.baseline),
        load_results(args.current),
        max_drop=max_drop,
        require_significance=args.require_significance,
        n_boot=args.n_boot,
        level=args.level,
        seed=args.seed,
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(comparison.to_dict(), indent=2) + "\n")
    elif args.format == "md":
        sys.stdout.write(render_markdown(comparison))
    elif sys.stdout.isatty():
        _print_rich(comparison)
    else:
        sys.stdout.write(render_text(comparison))
    return 0 if comparison.passed else 1


def table_rows(comparison: Comparison) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and rows of the comparison table, as text cells (shared by every format)."""
    from dreambench.leaderboard.compare import p_value_text
    from dreambench.leaderboard.table import METRIC_TITLES

    header = (
        "metric",
        "baseline",
        "current",
        "delta",
        f"{comparison.level * 100:g}% CI of delta",
        "p",
        "max drop",
        "verdict",
    )
    rows = [
        (
            METRIC_TITLES.get(m.metric, m.metric),
            _figure(m.baseline),
            _figure(m.current),
            "n/a" if m.delta is None else f"{m.delta:+.4f}",
            "n/a" if m.ci is None else f"[{m.ci[0]:+.4f}, {m.ci[1]:+.4f}]",
            p_value_text(m.p_value),
            f"{m.max_drop:.4g}",
            m.verdict.upper() if m.failed else m.verdict,
        )
        for m in comparison.metrics
    ]
    return header, rows


def summary_line(comparison: Comparison) -> str:
    """PASS / FAIL and, on failure, each regressed metric with its drop and tolerance."""
    from dreambench.leaderboard.compare import regression_text

    if comparison.passed:
        return "PASS: no metric fell by more than its tolerance"
    return "FAIL: " + "; ".join(regression_text(m, comparison.level) for m in comparison.regressions)


def render_text(comparison: Comparison) -> str:
    header, rows = table_rows(comparison)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()

    out = [*_run_lines(comparison), "", line(header), *(line(row) for row in rows), ""]
    out += [f"note: {note}" for note in comparison.notes]
    out.append(summary_line(comparison))
    return "\n".join(out) + "\n"


def render_markdown(comparison: Comparison) -> str:
    header, rows = table_rows(comparison)
    status = "PASS" if comparison.passed else "FAIL"
    out = [f"### dreambench regression gate: {status}", ""]
    out += [f"- {line}" for line in _run_lines(comparison)]
    out += ["", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * 6 + ["---"]) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out += ["", *(f"> {note}" for note in comparison.notes), summary_line(comparison)]
    return "\n".join(out) + "\n"


def _print_rich(comparison: Comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for line in _run_lines(comparison):
        console.print(line, markup=False, highlight=False)
    header, rows = table_rows(comparison)
    table = Table()
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i in (0, len(header) - 1) else "right")
    for row, m in zip(rows, comparison.metrics):
        style = "bold red" if m.failed else ("green" if m.verdict == "improved" else None)
        table.add_row(*row, style=style)
    console.print(table)
    for note in comparison.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(summary_line(comparison), style="bold green" if comparison.passed else "bold red")


def _run_lines(comparison: Comparison) -> list[str]:
    mode = "tolerance and significance" if comparison.require_significance else "tolerance"
    return [
        f"baseline: {comparison.baseline.path} ({comparison.baseline.method}, {comparison.baseline.preset})",
        f"current:  {comparison.current.path} ({comparison.current.method}, {comparison.current.preset})",
        f"gate: {mode}; paired bootstrap over subjects and prompts (n_boot={comparison.n_boot}, "
        f"seed={comparison.seed})",
    ]


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"

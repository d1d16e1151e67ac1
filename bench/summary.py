"""The summary table printed at the end of `bench run` / `bench eval`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from dreambench.runner import RunOutcome

def _metrics(results: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(name, column title, decimals) of every metric the run reports: the declared ones in display
    order (metrics/metric_registry.py), then any other its "metrics" section names."""
    from dreambench.metrics.metric_registry import display_order, find_metric

    out = []
    for name in display_order(list(results.get("metrics") or {})):
        spec = find_metric(name)
        out.append((name, name, 3) if spec is None else (name, spec.column_title, spec.decimals))
    return out


def _fmt(value: float | None, decimals: int) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    title = f"{results['run']['method']} ({results['run']['preset']})"
    if not results["calibrated"]:
        title += " — UNCALIBRATED: " + "; ".join(results["uncalibrated_reasons"])
    table = Table(title=title)
    table.add_column("subject")
    table.add_column("kind")
    metrics = _metrics(results)
    for _, label, _ in metrics:
        table.add_column(label, justify="right")
    for name, s in sorted(results["subjects"].items()):
        table.add_row(name, s["kind"], *(_fmt(s.get(m), d) for m, _, d in metrics))
    for scope, label in (("overall_live", "live"), ("overall_object", "object"), ("overall", "overall")):
        agg = results[scope]
        if agg["n_subjects"]:
            table.add_row(
                f"[bold]{label}[/bold] ({agg['n_subjects']})", "", *(_fmt(agg.get(m), d) for m, _, d in metrics)
            )
    console.print(table)
    console.print(f"results: {results['run']['run_dir']}/results.json")
    for name, error in sorted(results["failures"].items()):
        console.print(f"[red]failed[/red] {name}: {error}")


def finish(results: dict[str, Any], failures: dict[str, str], as_json: bool, quiet: bool) -> int:
    """End of `bench run` / `bench eval`: print results (JSON or the table), list failures, exit code.

    Exit 1 when some subject failed (the others' results are written), else 0.
    """
    import json
    import sys

    if as_json:
        json.dump(results, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    elif not quiet:
        print_summary(results)
    if failures:
        sys.stderr.write(
            f"{len(failures)} subject(s) failed: {', '.join(sorted(failures))}; rerun to retry them\n"
        )
        return 1
    return 0


def finish_outcome(outcome: RunOutcome, args: Any) -> int:
    """`finish` for a command's outcome, with its --json / --quiet options."""
    return finish(outcome.results, outcome.failures, as_json=args.json, quiet=args.quiet)

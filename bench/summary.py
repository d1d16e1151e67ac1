"""The summary table printed at the end of `bench run` / `bench eval`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from dreambench.runner import RunOutcome

_METRICS = (("dino", "DINO"), ("clip_i", "CLIP-I"), ("clip_t", "CLIP-T"))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    title = f"{results['run']['method']} ({results['run']['preset']})"
    if not results["calibrated"]:
        title += " — UNCALIBRATED: " + "; ".join(results["uncalibrated_reasons"])
    table = Table(title=title)
    table.add_column("subject")
    table.add_column("kind")
    for _, label in _METRICS:
        table.add_column(label, justify="right")
    for name, s in sorted(results["subjects"].items()):
        table.add_row(name, s["kind"], *(_fmt(s.get(m)) for m, _ in _METRICS))
    for scope, label in (("overall_live", "live"), ("overall_object", "object"), ("overall", "overall")):
        agg = results[scope]
        if agg["n_subjects"]:
            table.add_row(
                f"[bold]{label}[/bold] ({agg['n_subjects']})", "", *(_fmt(agg.get(m)) for m, _ in _METRICS)
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

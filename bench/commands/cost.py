"""`bench cost RUN_DIR`: a run's per-stage rates (class priors images/s, train ms/step, render and
scoring images/s) from its own cost records, and the whole `paper` benchmark's time at those rates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost", help="per-stage rates of a run and the whole benchmark's time at them", description=__doc__
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or its results.json)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreambench.stage_rates import cost_report, format_report, read_results

    report = cost_report(read_results(Path(args.run_dir)))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0

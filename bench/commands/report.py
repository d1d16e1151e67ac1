"""`bench report RUN_DIR... [-o OUT_DIR] [--data DIR]`: a self-contained HTML report folder.

One run gives that run's report; several (or a folder of run directories) give a leaderboard
report with a page per run. The folder holds index.html and assets/ (thumbnails, the CLIP-T vs
DINO plot as PNG and SVG); every link is relative and nothing is fetched from the network, so it
can be opened from disk, moved, or published as is. Real images come from the dataset (--data,
else $DREAMBENCH_DATA, else the cache); without it the report says so instead. Default OUT_DIR:
RUN_DIR/report for one run, ./report for several.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreambench.commands.leaderboard import add_run_dirs_argument
from dreambench.commands.output_path import check_output_path
from dreambench.errors import BenchError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write an HTML report (run pages, image grids, fidelity vs prompt-following plot)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    add_run_dirs_argument(parser)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="OUT_DIR",
        help="report folder (default: RUN_DIR/report for one run, ./report for several)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="the dataset's location, for the real images (default: the dataset's environment variable, e.g. $DREAMBENCH_DATA for dreambooth, else the cache)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreambench.commands.leaderboard import expand_run_dirs
    from dreambench.leaderboard.report import write_report
    from dreambench.leaderboard.results import load_results

    runs = [load_results(p) for p in expand_run_dirs(args.run_dirs)]
    output: Path = args.output or (runs[0].run_dir / "report" if len(runs) == 1 else Path("report"))
    if output.exists() and not output.is_dir():
        raise BenchError(
            f"-o {output} is a file; give a folder for the report (e.g. {output.with_suffix('')})"
        )
    check_output_path(output, "-o", folder=True)
    report = write_report(runs, output, data=args.data)
    pages = len(report.run_pages)
    sys.stderr.write(
        f"wrote {report.index} ({pages} run page{'s' if pages != 1 else ''}, "
        f"{report.thumbnails_made} new thumbnails)\n"
    )
    return 0

"""`bench leaderboard RUN_DIR... [--format md|csv|json|html] [-o FILE]`: tables from results.json.

A RUN_DIR may be a run directory, a results.json file, or a folder of run directories (e.g.
`runs/`), which stands for every child holding a results.json. Output goes to stdout (Markdown on
a terminal is drawn as rich tables; piped, it is plain Markdown text) or, with -o, atomically to
FILE. Without --format, the format follows FILE's suffix (.md .csv .json .html), else Markdown.
Nothing is written unless every run loads and the runs are comparable.

--reported adds the figures published in papers (leaderboard/data/reported.json) in their own
section, "reported, not re-measured", each with its source and stated protocol; a published row
also stands in the overall table where its stated protocol matches every measured run
(leaderboard/reported.py). `bench compare` never reads them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.commands.output_path import check_output_path
from dreambench.errors import BenchError
from dreambench.leaderboard.formats import TABLE_FORMATS

if TYPE_CHECKING:
    from dreambench.leaderboard.table import Leaderboard

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="tabulate finished runs (md, csv, json or html)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    add_run_dirs_argument(parser)
    parser.add_argument(
        "--format",
        default=None,
        metavar="FORMAT",
        help=f"output format: {', '.join(TABLE_FORMATS)} (default: from -o's suffix, else md)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=None, metavar="FILE", help="write to FILE instead of stdout"
    )
    parser.add_argument(
        "--reported",
        action="store_true",
        help="also show figures published in papers (reported, not re-measured), with their sources",
    )
    parser.set_defaults(func=run)


def add_run_dirs_argument(parser: argparse.ArgumentParser) -> None:
    """The RUN_DIR... positional shared by `bench leaderboard` and `bench report`."""
    parser.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="run directory, results.json, or a folder of run directories",
    )


def expand_run_dirs(paths: list[Path]) -> list[Path]:
    """Resolve the command's arguments to results.json paths (deduplicated, in argument order).

    A folder without results.json stands for its children that have one, sorted by name.
    """
    from dreambench.leaderboard.results import RESULTS_FILENAME

    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise BenchError(f"{path} does not exist; pass run directories written by `bench run`")
        if path.is_file():
            found.append(path)
        elif (path / RESULTS_FILENAME).exists():
            found.append(path / RESULTS_FILENAME)
        else:
            children = sorted(
                c / RESULTS_FILENAME for c in path.iterdir() if (c / RESULTS_FILENAME).is_file()
            )
            if not children:
                raise BenchError(
                    f"{path} holds no {RESULTS_FILENAME}, nor does any folder in it; "
                    "pass run directories written by `bench run`"
                )
            found += children
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def load_board(paths: list[Path], reported: bool = False) -> Leaderboard:
    """Load every run the arguments name and arrange them (BenchError if any is bad or incomparable);
    `reported`: with the published rows (leaderboard/reported.py)."""
    from dreambench.leaderboard.reported import load_reported
    from dreambench.leaderboard.results import load_results
    from dreambench.leaderboard.table import build_leaderboard

    rows = load_reported().rows if reported else ()
    return build_leaderboard([load_results(p) for p in expand_run_dirs(paths)], reported=rows)


def render(fmt: str, board: Leaderboard, output: Path | None) -> str:
    """The board as text in format `fmt`; `output`'s folder (or the cwd) anchors links to files."""
    from dreambench.leaderboard.formats import get_table_format

    return get_table_format(fmt).render(board, link_base=output.parent if output is not None else Path.cwd())


def run(args: argparse.Namespace) -> int:
    from dreambench.leaderboard.formats import format_for_output, get_table_format

    output: Path | None = args.output
    # Checked before any run is read: an unknown --format is one line naming the valid ones.
    fmt = (get_table_format(args.format) if args.format else format_for_output(output)).name
    if output is not None and output.is_dir():
        raise BenchError(
            f"-o {output} is a directory; give a file name such as {output / ('leaderboard.' + fmt)}"
        )
    if output is not None:
        check_output_path(output, "-o", folder=False)
    board = load_board(args.run_dirs, reported=args.reported)
    if output is None and fmt == "md" and sys.stdout.isatty():
        _print_rich(board)
        return 0
    text = render(fmt, board, output)
    if output is None:
        sys.stdout.write(text)
        return 0
    from dreambench.atomic import atomic_write_text

    atomic_write_text(output, text)
    sys.stderr.write(f"wrote {output}\n")
    return 0


def _print_rich(board: Leaderboard) -> None:
    """Draw the tables for a terminal; the same content as the Markdown output."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for text_table in board.tables():
        table = Table(title=text_table.title, title_justify="left")
        for name, numeric in zip(text_table.header, text_table.numeric, strict=True):
            table.add_column(name, justify="right" if numeric else "left")
        for row in text_table.rows:
            table.add_row(*row)
        console.print(table)
    for line in (*board.footnotes, *board.notes):
        console.print(line, markup=False, highlight=False)

"""The `bench` command line.

Each subcommand lives in its own module under bench/commands/ and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func=<callable(args) -> int>``.
Modules must import cheaply (no torch at import time): heavy imports go inside the function.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from dreambench import __version__
from dreambench.errors import BenchError

COMMAND_MODULES: tuple[str, ...] = (
    "dreambench.commands.run",
    "dreambench.commands.eval",
    "dreambench.commands.dataset",
    "dreambench.commands.leaderboard",
    "dreambench.commands.methods",
    "dreambench.commands.compare",
    "dreambench.commands.report",
    "dreambench.commands.cost",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line and exit code 2 (as BenchError does)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message}; see `{self.prog} --help`\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="dreambench: the DreamBooth subject-driven benchmark.")
    parser.add_argument("--version", action="version", version=f"dreambench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM stops like Ctrl-C: the current step's temp files are dropped, finished files stay.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: finished work is kept; rerun the same command to resume\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

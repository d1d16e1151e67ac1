"""`bench methods`: list every method (built-in and plugins) with its hyperparameters and defaults."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "methods", help="list methods and their hyperparameters", description=__doc__
    )
    parser.add_argument(
        "name", nargs="?", default=None, help="show one method (registry name or module:Class)"
    )
    parser.add_argument(
        "--method-preset",
        default="paper",
        help="show defaults of this hyperparameter preset (default: paper)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from dreambench.registry import available_methods, method_hyperparameters, resolve_method_class

    names = [args.name] if args.name else sorted(available_methods())
    listing = {}
    for name in names:
        cls = resolve_method_class(name)
        presets = sorted(getattr(cls, "PRESETS", {}))
        listing[name] = {
            "target": available_methods().get(name, name),
            "presets": presets,
            "hyperparameters": method_hyperparameters(cls, args.method_preset),
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        }
    # A method with one preset uses it for every run (registry.method_preset_for); the others
    # must know the preset asked for, or the table would show another preset's defaults.
    known = sorted({p for info in listing.values() if len(info["presets"]) > 1 for p in info["presets"]})
    if known and args.method_preset not in known:
        from dreambench.errors import did_you_mean

        raise did_you_mean(args.method_preset, known, "method preset")
    if args.json:
        json.dump(listing, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    console = Console()
    for name, info in listing.items():
        table = Table(
            title=f"{name}  ({info['target']})  presets: {', '.join(info['presets']) or '-'}",
            title_justify="left",
        )
        table.add_column("hyperparameter")
        table.add_column(f"default ({args.method_preset})")
        for key, value in info["hyperparameters"].items():
            table.add_row(key, repr(value))
        if not info["hyperparameters"]:
            table.add_row("(none)", "")
        console.print(table)
        if info["summary"]:
            console.print(f"  {info['summary']}\n")
    return 0

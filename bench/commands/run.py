"""`bench run`: train/prepare a method per subject, render the prompt set, score, write results."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from dreambench.commands.subject_args import add_subject_args, subject_options
from dreambench.executors import EXECUTORS

if TYPE_CHECKING:
    from dreambench.request import RunRequest


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the benchmark for one method", description=__doc__)
    parser.add_argument("--method", required=True, help="registry name (see `bench methods`) or module:Class")
    parser.add_argument(
        "--method-args", default=None, help="k=v,k2=v2 or @file.yaml|json: the method's hyperparameters"
    )
    parser.add_argument(
        "--method-preset", default=None, help="the method's hyperparameter preset (default: from --preset)"
    )
    parser.add_argument(
        "--images-per-prompt", type=int, default=4, help="samples per prompt (default: 4, as in the paper)"
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed of every image seed (default: 0)")
    parser.add_argument(
        "--pres-samples", type=int, default=8, help="'a {class}' samples per subject for PRES (default: 8)"
    )
    parser.add_argument("--force", action="store_true", help="redo the selected subjects from scratch")
    parser.add_argument(
        "--executor", default="local", choices=tuple(EXECUTORS), help="who runs the subjects (default: local)"
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster address for --executor ray (default: start a local one)"
    )
    parser.add_argument("--keep-weights", action="store_true", help="keep fine-tuned weights after rendering")
    add_subject_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreambench.request import execute_request
    from dreambench.summary import finish_outcome

    return finish_outcome(execute_request(request_from_args(args)), args)


def request_from_args(args: argparse.Namespace) -> RunRequest:
    """The run request the command's options describe."""
    from dreambench.request import RunRequest

    own = ("method", "method_args", "method_preset", "images_per_prompt", "seed", "pres_samples", "force")
    own += ("executor", "address", "keep_weights")
    return RunRequest(**{name: getattr(args, name) for name in own}, **subject_options(args))

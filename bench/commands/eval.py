"""`bench eval IMAGES_DIR`: score images generated elsewhere (layout: <subject>/<p>-<s>.png)."""

from __future__ import annotations

import argparse

from dreambench.commands.subject_args import add_subject_args, subject_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="score externally generated images", description=__doc__)
    parser.add_argument(
        "images_dir", metavar="IMAGES_DIR", help="folder of <subject>/<prompt_idx>-<sample_idx>.png"
    )
    parser.add_argument(
        "--name", default=None, help="method name shown in results (default: the folder name)"
    )
    parser.add_argument(
        "--identifier",
        default="",
        help="identifier used in the prompts (recorded; CLIP-T removes it by default)",
    )
    parser.add_argument("--images-per-prompt", type=int, default=4, help="samples per prompt (default: 4)")
    add_subject_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreambench.request import RunRequest, execute_request
    from dreambench.summary import finish_outcome

    request = RunRequest(
        images_dir=args.images_dir,
        name=args.name,
        identifier=args.identifier,
        images_per_prompt=args.images_per_prompt,
        **subject_options(args),
    )
    return finish_outcome(execute_request(request), args)

"""`bench eval IMAGES_DIR`: score images generated elsewhere (layout: <subject>/<p>-<s>.png)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.commands.output_path import check_output_path
from dreambench.commands.subject_args import (
    add_subject_args,
    device_from_args,
    extra_metrics_from_args,
    subjects_from_args,
)

if TYPE_CHECKING:
    from dreambench.runner import RunOutcome


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
    from dreambench.summary import finish_outcome

    return finish_outcome(execute(args), args)


def execute(args: argparse.Namespace) -> RunOutcome:
    """Do the command's work and return the run's outcome (used by `dreambench.evaluate`)."""
    from dreambench.dataset.prompts import load_prompt_set
    from dreambench.errors import BenchError
    from dreambench.external import ExternalImages, import_external, scan_external
    from dreambench.method import MethodHandle
    from dreambench.metrics.presets import get_metric_preset
    from dreambench.metrics.scorer import Scorer
    from dreambench.presets import get_run_preset
    from dreambench.run_lock import run_lock
    from dreambench.runner import RunSpec, execute_run, make_run_config
    from dreambench.store import RunDir

    if args.images_per_prompt < 1:
        raise BenchError(f"--images-per-prompt {args.images_per_prompt} must be at least 1")
    check_output_path(Path(args.out), "--out", folder=True)
    device = device_from_args(args.device)
    images_dir = Path(args.images_dir)
    if not images_dir.is_dir():
        raise BenchError(
            f"IMAGES_DIR {images_dir} is not a folder (layout: <subject>/<prompt_idx>-<sample_idx>.png)"
        )
    if args.subjects is None and not args.subject_dir:
        present = sorted(p.name for p in images_dir.iterdir() if p.is_dir())
        if not present:
            raise BenchError(
                f"IMAGES_DIR {images_dir} has no subject folders (layout: <subject>/<prompt_idx>-<sample_idx>.png)"
            )
        args.subjects = ",".join(present)
    preset = get_run_preset(args.preset)
    # Checked before any work: an unknown --metric-preset is one line naming the valid ones.
    metric_preset = get_metric_preset(args.metric_preset or preset.metric_preset)
    subjects, dataset_info = subjects_from_args(args)
    prompt_set = load_prompt_set(args.prompts)
    layout = scan_external(images_dir, subjects, prompt_set, args.images_per_prompt)
    for path in layout.unexpected:
        sys.stderr.write(
            f"warning: ignoring {path}: not <prompt_idx>-<sample_idx>.png within the prompt set\n"
        )
    scorer = Scorer(
        metric_preset,
        device=device,
        backend=args.embedder_backend,
        clip_t_keep_identifier=True if args.clip_t_keep_identifier else None,
        precision=args.scoring_precision,
    )
    method = MethodHandle(ExternalImages(f"external:{args.name or images_dir.resolve().name}", args.identifier))

    config = make_run_config(
        method=method,
        method_args={"identifier": args.identifier},
        preset=preset.name,
        method_preset="none",
        metric_preset=scorer.preset.name,
        clip_t_keep_identifier=scorer.preset.clip_t_keep_identifier,
        scoring=scorer.identity(),
        prompt_set=prompt_set,
        images_per_prompt=args.images_per_prompt,
        base_seed=0,
        dataset_info=dataset_info,
    )
    rd = RunDir(Path(args.out) / config.run_name)
    spec = RunSpec(
        config=config,
        method_args={},
        prompt_set=prompt_set,
        run_dir=rd.root,
        device=device,
        optional_metrics=extra_metrics_from_args(args, ("div",)),
    )
    # The import writes into the run directory too: hold its lock from here (execute_run re-enters it).
    with run_lock(rd.root):
        for subject in subjects:
            import_external(layout, rd, subject, prompt_set, args.identifier, args.images_per_prompt)
        return execute_run(
            spec=spec,
            subjects=subjects,
            method=method,
            scorer=scorer,
            progress_enabled=not (args.quiet or args.json),
        )

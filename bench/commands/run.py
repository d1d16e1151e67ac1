"""`bench run`: train/prepare a method per subject, render the prompt set, score, write results."""

from __future__ import annotations

import argparse
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
        "--executor", default="local", choices=("local", "ray"), help="who runs the subjects (default: local)"
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster address for --executor ray (default: start a local one)"
    )
    parser.add_argument("--keep-weights", action="store_true", help="keep fine-tuned weights after rendering")
    add_subject_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dreambench.summary import finish_outcome

    return finish_outcome(execute(args), args)


def execute(args: argparse.Namespace) -> RunOutcome:
    """Do the command's work and return the run's outcome (used by `dreambench.evaluate`)."""
    from dreambench.dataset.prompts import load_prompt_set
    from dreambench.errors import BenchError
    from dreambench.executors import executor_class
    from dreambench.hyperparams import parse_method_args
    from dreambench.metrics.presets import get_metric_preset
    from dreambench.metrics.scorer import Scorer
    from dreambench.presets import get_run_preset
    from dreambench.registry import create_method, method_preset_for, resolve_method_class
    from dreambench.runner import RunSpec, execute_run, make_run_config

    if args.pres_samples < 1:
        raise BenchError(f"--pres-samples {args.pres_samples} must be at least 1")
    if args.images_per_prompt < 1:
        raise BenchError(f"--images-per-prompt {args.images_per_prompt} must be at least 1")
    check_output_path(Path(args.out), "--out", folder=True)
    device = device_from_args(args.device, runs_here=args.executor == "local")
    preset = get_run_preset(args.preset)
    # Checked before any work: an unknown --metric-preset is one line naming the valid ones.
    metric_preset = get_metric_preset(args.metric_preset or preset.metric_preset)
    method_preset = args.method_preset or preset.method_preset
    method_args = parse_method_args(args.method_args)
    subjects, dataset_info = subjects_from_args(args)
    prompt_set = load_prompt_set(args.prompts)
    method_preset = method_preset_for(
        resolve_method_class(args.method), method_preset, explicit=args.method_preset is not None
    )
    method = create_method(args.method, method_preset, method_args)
    scorer = Scorer(
        metric_preset,
        device=device,
        backend=args.embedder_backend,
        clip_t_keep_identifier=True if args.clip_t_keep_identifier else None,
        precision=args.scoring_precision,
    )
    config = make_run_config(
        method=method,
        method_args=method_args,
        preset=preset.name,
        method_preset=method_preset,
        metric_preset=scorer.preset.name,
        clip_t_keep_identifier=scorer.preset.clip_t_keep_identifier,
        scoring=scorer.identity(),
        prompt_set=prompt_set,
        images_per_prompt=args.images_per_prompt,
        base_seed=args.seed,
        dataset_info=dataset_info,
    )
    spec = RunSpec(
        config=config,
        method_args=method_args,
        prompt_set=prompt_set,
        run_dir=Path(args.out) / config.run_name,
        device=device,
        keep_weights=args.keep_weights,
        embedder_backend=args.embedder_backend,
        optional_metrics=extra_metrics_from_args(args, ("pres", "div")),
        pres_samples=args.pres_samples,
    )
    executor = executor_class(args.executor)(address=args.address) if args.executor != "local" else None
    return execute_run(
        spec=spec,
        subjects=subjects,
        method=method,
        scorer=scorer,
        executor=executor,
        force=args.force,
        progress_enabled=not (args.quiet or args.json),
    )

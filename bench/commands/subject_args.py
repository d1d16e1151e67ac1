"""Command-line options shared by `bench run` and `bench eval`: which subjects, prompts, presets."""

from __future__ import annotations

import argparse
from typing import Any

from dreambench.dataset.location import DEFAULT_DATASET
from dreambench.dataset.subject import KINDS
from dreambench.errors import BenchError
from dreambench.metrics.embedder import DEFAULT_PRECISION, PRECISION_CHOICES
from dreambench.metrics.presets import METRIC_PRESETS
from dreambench.presets import RUN_PRESETS


def add_dataset_args(parser: argparse.ArgumentParser) -> None:
    """--dataset and --data: which dataset, and where its copy lives (also `bench dataset`'s)."""
    from dreambench.dataset.registry import available_datasets

    parser.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        metavar="NAME",
        help=f"{' | '.join(available_datasets())} (default: {DEFAULT_DATASET}); its name and pin are "
        "part of the run's identity",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="where the dataset's copy lives, e.g. a google/dreambooth clone or its dataset/ folder "
        "(default: the dataset's environment variable, $DREAMBENCH_DATA for dreambooth, then the cache)",
    )


def add_subject_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--subjects",
        default=None,
        help="all | live | objects | a dataset category | a,b,c | @file.txt (default: all, or none when "
        "--subject-dir is given)",
    )
    add_dataset_args(parser)
    parser.add_argument(
        "--subject-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a custom subject's image folder (repeatable)",
    )
    parser.add_argument(
        "--class-noun",
        action="append",
        default=[],
        metavar="NOUN",
        help="class noun of each --subject-dir, in order",
    )
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        choices=KINDS,
        help="live|object for each --subject-dir (default object)",
    )
    parser.add_argument(
        "--prompts",
        default=None,
        help="prompt set name or a JSON/YAML file (default: the dataset's, dreambench for dreambooth)",
    )
    parser.add_argument(
        "--preset", default="dreambooth", choices=sorted(RUN_PRESETS), help="run preset (default: dreambooth)"
    )
    parser.add_argument(
        "--metric-preset",
        default=None,
        metavar="NAME",
        help="score with this metric preset instead of the run preset's: "
        + ", ".join(METRIC_PRESETS)
        + " (README: metric presets; part of the run's identity)",
    )
    parser.add_argument(
        "--embedder-backend",
        default=None,
        choices=("timm", "transformers"),
        help="override the metric preset's embedder backend",
    )
    parser.add_argument(
        "--scoring-precision",
        default=DEFAULT_PRECISION,
        choices=PRECISION_CHOICES,
        help="embedder arithmetic: fp32 (default, the protocol), bf16 (faster only where bf16 runs "
        "natively: AVX512-BF16/AMX CPUs, Ampere+ GPUs; elsewhere slower, with a warning) or auto "
        "(bf16 where native, else fp32; the precision used is recorded). bf16 rows are marked and "
        "never compared with fp32 ones; see docs/PERFORMANCE.md",
    )
    parser.add_argument(
        "--extra-metrics",
        default="",
        help="optional metrics, comma-separated: " + ", ".join(_optional_metric_names()) + " (README: "
        "metrics; pres renders 'a {class}' samples, div runs LPIPS; part of the run's identity)",
    )
    parser.add_argument(
        "--clip-t-keep-identifier",
        action="store_true",
        help="keep the identifier in the CLIP-T text (default: removed, as in the DreamBooth paper); part of the run's identity",
    )
    parser.add_argument("--out", default="runs", help="folder that holds run directories (default: ./runs)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress and no summary table")
    parser.add_argument(
        "--json", action="store_true", help="print results.json to stdout instead of the summary table"
    )


DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:<index>", "mps")


def device_from_args(device: str, *, runs_here: bool = True) -> str:
    """The validated --device, with ``auto`` resolved (cuda when available, else cpu).

    Checked before any work and even when nothing is left to compute, so a typo or a device this
    machine lacks is one line and exit 2, never a traceback from deep inside a model. With
    ``runs_here=False`` (subjects run on other machines, e.g. a Ray cluster whose driver has no
    GPU) only the name is checked: the executor checks what its workers have.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise BenchError(f"unknown --device {device!r}; valid: {', '.join(DEVICES)}") from None
    if parsed.type == "cpu" and parsed.index is None:
        return device
    if parsed.type == "cuda" and not runs_here:
        return device
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(
                f"--device {device!r}: CUDA is not available on this machine; use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise BenchError(
                f"--device {device!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return device
    if parsed.type == "mps" and parsed.index is None:
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise BenchError(
                f"--device {device!r}: MPS is not available on this machine; use --device cpu or auto"
            )
        return device
    raise BenchError(f"unknown --device {device!r}; valid: {', '.join(DEVICES)}")


def _optional_metric_names() -> tuple[str, ...]:
    from dreambench.metrics.metric_registry import optional_metric_names

    return optional_metric_names()


def subject_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options `add_subject_args` added, as `dreambench.request.RunRequest` fields."""
    from dreambench.request import REPEATABLE_OPTIONS

    names = ("dataset", "subjects", "data", "prompts", "preset", "metric_preset", "embedder_backend", "out")
    names += ("device", "scoring_precision", "extra_metrics", "clip_t_keep_identifier")
    return {
        **{name: getattr(args, name) for name in names},
        **{name: tuple(getattr(args, name)) for name in REPEATABLE_OPTIONS},
        "progress": not (args.quiet or args.json),
    }

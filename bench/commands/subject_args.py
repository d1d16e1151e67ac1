"""Command-line options shared by `bench run` and `bench eval`: which subjects, prompts, presets."""

from __future__ import annotations

import argparse
from typing import Any

from dreambench.dataset.subject import KINDS, Subject
from dreambench.errors import BenchError
from dreambench.presets import RUN_PRESETS


def add_subject_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--subjects",
        default=None,
        help="all | live | objects | a,b,c | @file.txt (default: all, or none when --subject-dir is given)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="google/dreambooth clone or its dataset/ folder (default: $DREAMBENCH_DATA, then the cache)",
    )
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
        "--prompts", default="dreambench", help="prompt set name or a JSON/YAML file (default: dreambench)"
    )
    parser.add_argument(
        "--preset", default="dreambooth", choices=sorted(RUN_PRESETS), help="run preset (default: dreambooth)"
    )
    parser.add_argument(
        "--embedder-backend",
        default=None,
        choices=("timm", "transformers"),
        help="override the metric preset's embedder backend",
    )
    parser.add_argument(
        "--extra-metrics",
        default="",
        help="optional metrics, comma-separated: pres (language drift; renders 'a {class}' samples), div (LPIPS diversity)",
    )
    parser.add_argument("--out", default="runs", help="folder that holds run directories (default: ./runs)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress and no summary table")
    parser.add_argument(
        "--json", action="store_true", help="print results.json to stdout instead of the summary table"
    )


def extra_metrics_from_args(args: argparse.Namespace, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The validated --extra-metrics names, in canonical order."""
    from dreambench.errors import did_you_mean

    names = [n.strip() for n in args.extra_metrics.split(",") if n.strip()]
    for name in names:
        if name not in allowed:
            raise did_you_mean(name, allowed, "extra metric")
    return tuple(m for m in allowed if m in names)


def subjects_from_args(args: argparse.Namespace) -> tuple[list[Subject], dict[str, Any]]:
    """The selected subjects and the dataset description recorded in results.json."""
    from dreambench.dataset.custom import custom_subject
    from dreambench.dataset.manifest import DREAMBOOTH_COMMIT, DREAMBOOTH_REPO, manifest_sha256

    if args.class_noun and len(args.class_noun) != len(args.subject_dir):
        raise BenchError(
            f"{len(args.subject_dir)} --subject-dir but {len(args.class_noun)} --class-noun; give one class noun per folder"
        )
    if args.subject_dir and not args.class_noun:
        raise BenchError("--subject-dir needs a --class-noun for each folder (e.g. --class-noun dog)")
    if len(args.kind) > len(args.subject_dir):
        raise BenchError(
            f"{len(args.kind)} --kind for {len(args.subject_dir)} --subject-dir; give at most one per folder"
        )
    kinds = list(args.kind) + ["object"] * (len(args.subject_dir) - len(args.kind))
    custom = [
        custom_subject(d, noun, kind) for d, noun, kind in zip(args.subject_dir, args.class_noun, kinds)
    ]

    spec = args.subjects if args.subjects is not None else (None if custom else "all")
    subjects: list[Subject] = []
    info: dict[str, Any] = {}
    if spec is not None:
        from dreambench.dataset.dreambooth import load_subjects
        from dreambench.dataset.selection import select_subjects

        subjects = select_subjects(spec, load_subjects(args.data))
        info = {
            "name": "dreambooth",
            "repo": DREAMBOOTH_REPO,
            "commit": DREAMBOOTH_COMMIT,
            "manifest_sha256": manifest_sha256(),
        }
    names = {s.name for s in subjects}
    for subject in custom:
        if subject.name in names:
            raise BenchError(
                f"custom subject {subject.name!r} clashes with a selected subject of the same name; rename its folder"
            )
        names.add(subject.name)
    if custom:
        info["custom"] = {
            s.name: {"class_noun": s.class_noun, "kind": s.kind, "images": list(s.image_sha256)}
            for s in custom
        }
    subjects += custom
    if not subjects:
        raise BenchError(
            "no subjects selected; use --subjects all|live|objects|a,b,c or --subject-dir DIR --class-noun NOUN"
        )
    return subjects, info

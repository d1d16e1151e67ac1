"""`bench dataset fetch | verify | info [--dataset NAME]`: get, check and describe a dataset,
through its declaration (dataset/registry.py; default: the official DreamBooth dataset)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from dreambench.commands.output_path import check_output_path
from dreambench.commands.subject_args import add_dataset_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dataset", help="fetch, verify or describe a dataset (default: DreamBooth)"
    )
    commands = parser.add_subparsers(dest="dataset_command", metavar="ACTION")
    commands.required = True

    fetch = commands.add_parser("fetch", help="download the dataset's pinned revision (verified)")
    add_dataset_args(fetch)
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    fetch.set_defaults(func=run_fetch)

    verify = commands.add_parser("verify", help="check every file's sha256 against the pinned manifest")
    add_dataset_args(verify)
    verify.set_defaults(func=run_verify)

    info = commands.add_parser("info", help="list subjects, classes, kinds and image sizes")
    add_dataset_args(info)
    info.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    info.set_defaults(func=run_info)


def run_fetch(args: argparse.Namespace) -> int:
    from dreambench.dataset.registry import get_dataset

    declaration = get_dataset(args.dataset)
    dest, _ = declaration.location.requested(args.data)
    check_output_path(Path(dest), "--data", folder=True)
    root = declaration.fetch_into(dest, progress=not args.no_progress)
    sys.stderr.write(f"dataset ready at {root}\n")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from dreambench.dataset.registry import get_dataset

    declaration = get_dataset(args.dataset)
    root = declaration.data_dir(args.data)
    problems = declaration.verify(root)
    if problems:
        for problem in problems:
            print(problem)
        print(
            f"{len(problems)} problem(s) in {root}; {declaration.command_hint('fetch --data NEW_DIR')} gets a clean copy"
        )
        return 1
    subjects = declaration.load(root)
    images = sum(len(s.image_paths) for s in subjects)
    print(f"ok: {len(subjects)} subjects, {images} images in {root} match {declaration.pinned}")
    return 0


def _describe(dataset: str, data: str | None) -> dict[str, Any]:
    from dreambench.dataset.images import load_image
    from dreambench.dataset.registry import get_dataset

    declaration = get_dataset(dataset)
    root = declaration.data_dir(data)
    subjects = []
    # A description, not a check: the sizes of the files present (`bench dataset verify` checks bytes).
    for subject in declaration.load(root):
        images = []
        for path, sha in zip(subject.image_paths, subject.image_sha256, strict=True):
            width, height = load_image(path).size
            images.append({"file": path.name, "sha256": sha, "width": width, "height": height})
        entry = {"name": subject.name, "class_noun": subject.class_noun, "kind": subject.kind}
        if subject.category is not None:
            entry["category"] = subject.category
        subjects.append({**entry, "images": images})
    return {
        **declaration.record(),
        "title": declaration.title,
        "data_dir": str(root),
        "default_prompt_set": declaration.default_prompt_set,
        "prompt_sets": sorted(declaration.prompt_sets),
        "categories": dict(declaration.categories),
        "subjects": subjects,
    }


def _sizes_cell(images: list[dict[str, Any]]) -> str:
    counts = Counter(f"{im['width']}x{im['height']}" for im in images)
    return ", ".join(size if n == 1 else f"{size} ×{n}" for size, n in sorted(counts.items()))


def run_info(args: argparse.Namespace) -> int:
    info = _describe(args.dataset, args.data)
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    subjects = info["subjects"]
    n_images = sum(len(s["images"]) for s in subjects)
    n_live = sum(s["kind"] == "live" for s in subjects)
    table = Table(
        title=f"{info['title']} dataset {info['repo']}@{info['commit'][:7]} at {info['data_dir']}",
        caption=f"{len(subjects)} subjects ({n_live} live), {n_images} images; sizes are after decoding",
    )
    categories = any("category" in s for s in subjects)
    for column in ("subject", "class", "kind", *(("category",) if categories else ())):
        table.add_column(column)
    table.add_column("images", justify="right")
    table.add_column("sizes (WxH)")
    for s in subjects:
        own = (s.get("category") or "",) if categories else ()
        table.add_row(
            s["name"], s["class_noun"], s["kind"], *own, str(len(s["images"])), _sizes_cell(s["images"])
        )
    Console().print(table)
    return 0

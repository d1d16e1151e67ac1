"""`bench dataset fetch | verify | info`: get, check and describe the official DreamBooth dataset."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from dreambench.commands.output_path import check_output_path


def _add_data_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="google/dreambooth clone (root or its dataset/ folder); default: $DREAMBENCH_DATA, "
        "else <cache>/dreambooth",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="fetch, verify or describe the DreamBooth dataset")
    commands = parser.add_subparsers(dest="dataset_command", metavar="ACTION")
    commands.required = True

    fetch = commands.add_parser("fetch", help="download the pinned google/dreambooth dataset (verified)")
    _add_data_flag(fetch)
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    fetch.set_defaults(func=run_fetch)

    verify = commands.add_parser("verify", help="check every file's sha256 against the pinned manifest")
    _add_data_flag(verify)
    verify.set_defaults(func=run_verify)

    info = commands.add_parser("info", help="list subjects, classes, kinds and image sizes")
    _add_data_flag(info)
    info.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    info.set_defaults(func=run_info)


def run_fetch(args: argparse.Namespace) -> int:
    from dreambench.dataset.fetch import fetch_dataset
    from dreambench.dataset.location import requested_data_dir

    dest, _ = requested_data_dir(args.data)
    check_output_path(Path(dest), "--data", folder=True)
    root = fetch_dataset(dest, progress=not args.no_progress)
    sys.stderr.write(f"dataset ready at {root}\n")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from dreambench.dataset.dreambooth import verify_dataset
    from dreambench.dataset.location import resolve_data_dir
    from dreambench.dataset.manifest import DREAMBOOTH_COMMIT, DREAMBOOTH_REPO, load_manifest

    root = resolve_data_dir(args.data)
    problems = verify_dataset(root)
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s) in {root}; `bench dataset fetch --data NEW_DIR` gets a clean copy")
        return 1
    subjects = load_manifest()["subjects"]
    images = sum(len(s["images"]) for s in subjects.values())
    print(
        f"ok: {len(subjects)} subjects, {images} images in {root} match {DREAMBOOTH_REPO}@{DREAMBOOTH_COMMIT[:7]}"
    )
    return 0


def _describe(data: str | None) -> dict[str, Any]:
    from dreambench.dataset.dreambooth import load_subjects
    from dreambench.dataset.images import load_image
    from dreambench.dataset.location import resolve_data_dir
    from dreambench.dataset.manifest import DREAMBOOTH_COMMIT, DREAMBOOTH_REPO, manifest_sha256

    subjects = []
    # A description, not a check: the sizes of the files present (`bench dataset verify` checks bytes).
    for subject in load_subjects(data, check_files=False):
        images = []
        for path, sha in zip(subject.image_paths, subject.image_sha256, strict=True):
            width, height = load_image(path).size
            images.append({"file": path.name, "sha256": sha, "width": width, "height": height})
        subjects.append(
            {"name": subject.name, "class_noun": subject.class_noun, "kind": subject.kind, "images": images}
        )
    return {
        "data_dir": str(resolve_data_dir(data)),
        "repo": DREAMBOOTH_REPO,
        "commit": DREAMBOOTH_COMMIT,
        "manifest_sha256": manifest_sha256(),
        "subjects": subjects,
    }


def _sizes_cell(images: list[dict[str, Any]]) -> str:
    counts = Counter(f"{im['width']}x{im['height']}" for im in images)
    return ", ".join(size if n == 1 else f"{size} ×{n}" for size, n in sorted(counts.items()))


def run_info(args: argparse.Namespace) -> int:
    info = _describe(args.data)
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    subjects = info["subjects"]
    n_images = sum(len(s["images"]) for s in subjects)
    n_live = sum(s["kind"] == "live" for s in subjects)
    table = Table(
        title=f"DreamBooth dataset {info['repo']}@{info['commit'][:7]} at {info['data_dir']}",
        caption=f"{len(subjects)} subjects ({n_live} live), {n_images} images; sizes are after decoding",
    )
    for column in ("subject", "class", "kind"):
        table.add_column(column)
    table.add_column("images", justify="right")
    table.add_column("sizes (WxH)")
    for s in subjects:
        table.add_row(s["name"], s["class_noun"], s["kind"], str(len(s["images"])), _sizes_cell(s["images"]))
    Console().print(table)
    return 0

"""`bench dataset fetch | verify [--record] | info [--dataset NAME]`: get, check and describe a
dataset, through its declaration (dataset/registry.py; default: the official DreamBooth dataset).
`verify --record` writes the sha256 manifest of a copy of a dataset that is not pinned file by file
yet (its declaration's `build_manifest`) to the user's cache."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.commands.output_path import check_output_path
from dreambench.commands.subject_args import add_dataset_args
from dreambench.errors import BenchError

if TYPE_CHECKING:
    from dreambench.dataset.declaration import DatasetDeclaration


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
    verify.add_argument(
        "--record",
        action="store_true",
        help="for a dataset whose file sha256s are not pinned yet (dreambench-plus, customconcept101, "
        "dreambooth-pairs): write the manifest with the sha256 of every file of the copy to --manifest-out",
    )
    verify.add_argument(
        "--manifest-out",
        metavar="PATH",
        default=None,
        help="where --record writes the manifest (default: <cache>/manifests/<dataset>.json)",
    )
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
    if args.manifest_out is not None and not args.record:
        raise BenchError("--manifest-out applies only with --record")
    root = declaration.data_dir(args.data)
    if args.record:
        return _record(declaration, root, args.manifest_out)
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


def _record(declaration: DatasetDeclaration, root: Path, out: str | None) -> int:
    """`verify --record`: the manifest with the copy's sha256s, written to `out` or the cache.

    It is a record of this copy, not a pin: the committed manifest (what runs are identified by) is
    unchanged until someone who checked the copy commits the recorded file in its place.
    """
    from dreambench.cache_root import cache_root
    from dreambench.dataset.file_pin import write_manifest
    from dreambench.dataset.registry import available_datasets, get_dataset

    if declaration.build_manifest is None:
        recordable = [n for n in available_datasets() if get_dataset(n).build_manifest is not None]
        raise BenchError(
            f"dataset {declaration.name!r} is pinned file by file by its committed manifest; --record applies "
            f"to datasets whose sha256s are recorded from a copy: {', '.join(recordable)}"
        )
    default = cache_root() / "manifests" / f"{declaration.name}.json"
    path = Path(out).expanduser() if out is not None else default
    check_output_path(path, "--manifest-out", folder=False)
    manifest = declaration.build_manifest(root)  # everything is read before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(path, manifest)
    print(
        f"recorded the sha256s of {root} in {path}; to pin {declaration.name}, check the copy and "
        f"commit that file as {declaration.manifest}"
    )
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

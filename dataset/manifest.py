"""The pinned manifest of the official DreamBooth dataset (google/dreambooth at one commit).

The manifest is data only, no images: for each of the 30 subjects its class noun (from the
dataset's own prompts_and_classes.txt), its kind (live or object, which picks the prompt list) and
the sha256 of every image file; plus the sha256 of the two text files that ship beside them.
`dataset/data/dreambooth_manifest.json` is generated from a clone by `build_manifest` and committed,
so fetch and verify can check a download byte for byte without the network.

Regenerate (only if the pinned commit changes): ``python -m dreambench.dataset.manifest /path/to/dreambooth``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from dreambench.atomic import atomic_write_text
from dreambench.dataset.images import IMAGE_SUFFIXES, file_sha256
from dreambench.dataset.subject import Kind
from dreambench.errors import BenchError

DREAMBOOTH_REPO = "google/dreambooth"
DREAMBOOTH_COMMIT = "4f887af7970a06fc0cd3adaa1d0b368547d6a1d0"
MANIFEST_PATH = Path(__file__).resolve().parent / "data" / "dreambooth_manifest.json"

# The paper's live subjects (animals, prompted with accessories and outfits); the rest are objects.
LIVE_SUBJECTS: frozenset[str] = frozenset(
    {"cat", "cat2", "dog", "dog2", "dog3", "dog5", "dog6", "dog7", "dog8"}
)
CLASSES_FILE = "prompts_and_classes.txt"
TEXT_FILES: tuple[str, ...] = (CLASSES_FILE, "references_and_licenses.txt")


def parse_classes(text: str) -> dict[str, str]:
    """Subject name -> class noun from the "subject_name,class" block of prompts_and_classes.txt."""
    classes: dict[str, str] = {}
    in_block = False
    for raw in text.splitlines():
        line = raw.strip()
        if line == "subject_name,class":
            in_block = True
            continue
        if in_block:
            if not line or "," not in line:
                break
            name, noun = line.split(",", 1)
            classes[name.strip()] = noun.strip()
    return classes


def build_manifest(data_dir: Path) -> dict[str, Any]:
    """Build the manifest from a google/dreambooth clone (clone root or its dataset/ folder)."""
    data_dir = Path(data_dir)
    root = data_dir / "dataset" if (data_dir / "dataset").is_dir() else data_dir
    classes_path = root / CLASSES_FILE
    if not classes_path.is_file():
        raise BenchError(f"{classes_path} not found; point build_manifest at a google/dreambooth clone")
    classes = parse_classes(classes_path.read_text(encoding="utf-8"))
    subjects: dict[str, Any] = {}
    for name, noun in sorted(classes.items()):
        folder = root / name
        if not folder.is_dir():
            raise BenchError(f"subject folder {folder} listed in {CLASSES_FILE} is missing")
        kind: Kind = "live" if name in LIVE_SUBJECTS else "object"
        images = {
            p.name: file_sha256(p)
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        }
        subjects[name] = {"class_noun": noun, "kind": kind, "images": images}
    files = {f: file_sha256(root / f) for f in TEXT_FILES if (root / f).is_file()}
    return {"repo": DREAMBOOTH_REPO, "commit": DREAMBOOTH_COMMIT, "subjects": subjects, "files": files}


def canonical_json_bytes(obj: Any) -> bytes:
    """The one byte form that hashes use: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@lru_cache(maxsize=8)
def _manifest_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    """The committed manifest: {"repo", "commit", "subjects": {name: {"class_noun", "kind",
    "images": {file: sha256}}}, "files": {file: sha256}}. A fresh dict each call.

    Another dataset's manifest (`path`) may have its own shape; only its JSON is read here.
    """
    return json.loads(_manifest_text(Path(path)))


def manifest_sha256(path: Path = MANIFEST_PATH) -> str:
    """sha256 of a manifest's canonical JSON bytes (stable under re-indenting the file): the
    "manifest_sha256" of the dataset pin recorded in results.json and the run identity."""
    return hashlib.sha256(canonical_json_bytes(load_manifest(path))).hexdigest()


def write_manifest(data_dir: Path, out: Path = MANIFEST_PATH) -> None:
    atomic_write_text(out, json.dumps(build_manifest(data_dir), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dreambench.dataset.manifest /path/to/google/dreambooth")
    write_manifest(Path(sys.argv[1]))

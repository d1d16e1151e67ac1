"""Reference lists: one named real image per subject, shipped as versioned data files in metrics/data/.

A metric preset with pairing "fixed-reference" (metrics/presets.py PAIRINGS) scores every generated
image of a subject against that subject's one listed reference image only. The list names each
reference by file name and sha256 (from the dataset's manifest); the Scorer finds it among the
subject's real images by sha256, so it is the same bytes whatever the folder layout, and a subject
whose real images hold none of the listed references is refused.

    metrics/data/<name>.json = {"name", "version", "description", "source": {...},
                                "references": {subject: {"file": "02.jpg", "sha256": "..."}}}

The list's name, version and file sha256 enter the scoring identity (Scorer.identity()), so an edited
list never reuses scores made with the old one. Importing this module is cheap (no torch, no numpy).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dreambench.errors import BenchError

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class ReferenceList:
    """One reference image per subject: subject -> (file name, sha256)."""

    name: str
    version: str
    sha256: str  # of the data file's bytes
    source: dict[str, object]
    files: dict[str, str]  # subject -> file name
    hashes: dict[str, str]  # subject -> sha256 of the image

    def record(self) -> dict[str, str]:
        """What the scoring identity and results.json hold: name, version and the file's sha256."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def index_in(self, real: Sequence[tuple[str, str]]) -> int:
        """The position of the listed reference among a subject's real images, given as
        (file name, sha256) pairs; BenchError when none or several of them is a listed reference."""
        wanted = set(self.hashes.values())
        found = [i for i, (_, sha) in enumerate(real) if sha in wanted]
        if len(found) != 1:
            names = ", ".join(name for name, _ in real) or "none"
            what = "none" if not found else f"{len(found)}"
            raise BenchError(
                f"reference list {self.name!r} pairs each subject with one listed real image; {what} of this "
                f"subject's real images ({names}) is listed: it covers the subjects "
                f"{', '.join(sorted(self.files))}"
            )
        return found[0]


@cache
def load_reference_list(name: str) -> ReferenceList:
    """The reference list `name` (metrics/data/<name>.json); unknown names list the shipped ones."""
    path = DATA_DIR / f"{name}.json"
    if not path.is_file():
        shipped = sorted(p.stem for p in DATA_DIR.glob("*.json"))
        raise BenchError(f"unknown reference list {name!r}; valid: {', '.join(shipped) or 'none'}")
    data = path.read_bytes()
    obj = json.loads(data)
    refs = obj["references"]
    return ReferenceList(
        name=obj["name"],
        version=str(obj["version"]),
        sha256=hashlib.sha256(data).hexdigest(),
        source=obj["source"],
        files={s: r["file"] for s, r in refs.items()},
        hashes={s: r["sha256"] for s, r in refs.items()},
    )

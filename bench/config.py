"""The frozen run configuration and its hash, which names the run directory.

Only what changes the numbers goes into the hash: method and its resolved hyperparameters, metric
preset, prompt set (version + content hash), images per prompt, base seed and the dataset manifest.
Subjects are not part of it, so running more subjects later extends the same run; device and
paths are provenance (stamp.json), not configuration.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunConfig:
    method: str
    method_preset: str
    method_config: dict[str, Any]
    preset: str
    metric_preset: str
    prompt_set: dict[str, str]
    images_per_prompt: int
    base_seed: int
    dataset: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hash(self) -> str:
        """First 8 hex digits of sha256 over the canonical JSON of the config."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:8]

    @property
    def run_name(self) -> str:
        """`<method>-<preset>-<hash>`, e.g. `dreambooth-smoke-3f2a9c1e` (module:Class made path-safe)."""
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", self.method).strip("_")
        return f"{slug}-{self.preset}-{self.hash}"

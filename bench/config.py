"""The frozen run configuration and its hash, which names the run directory.

Only what changes the numbers goes into the hash: method, its code identity and its resolved hyperparameters, metric
preset, prompt set (version + content hash), render protocol (+ any declared deviation), images
per prompt, base seed, the dataset manifest, the rare-identifier candidate list (when the method
draws from it), whether CLIP-T keeps the identifier, and the scoring identity (both embedders'
backend, architecture, weights tag and sha256, the scoring precision, metric versions).
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
    method: str  # the method's canonical name
    method_preset: str
    method_config: dict[str, Any]
    preset: str
    metric_preset: str
    prompt_set: dict[str, str]
    images_per_prompt: int
    base_seed: int
    dataset: dict[str, str]
    method_class: str = ""  # "module:Class" (or "/abs/path/file.py:Class") of the code that produced the images
    # The method's code identity (dreambench.code_identity): dreambench's version + source digest
    # for built-ins, the distribution's version or the module's source digest for plugins, and the
    # method's declared version. Edited code is another run directory. None only for configs built
    # by hand (tests) and runs made before it was recorded.
    code: dict[str, Any] | None = None
    # The run preset's render protocol (+ sha256) and any deviation the method declares
    # (dreambench.presets.render_record); None for a method that renders nothing.
    render_protocol: dict[str, Any] | None = None
    # Name, version, sha256 and size of the shipped rare-identifier list when the method draws its
    # identifier from it (reference_impl/identifier.py); None otherwise.
    identifier_candidates: dict[str, Any] | None = None
    # The CLIP-T text keeps the subject identifier (--clip-t-keep-identifier); default: removed.
    clip_t_keep_identifier: bool = False
    # Scorer.identity(): embedder backends, arch, weights tag + sha256, precision, metric versions.
    # Another backend, weights file or precision is another run directory; None only for configs
    # built by hand (tests).
    scoring: dict[str, Any] | None = None
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

"""Load and validate one run's results.json (schema in docs/RESULTS.md).

The leaderboard reads nothing else from a run: every figure, version and hash it shows comes from
this file. Validation is strict about what the tables need (schema version, run identity, prompt
set, metric versions, figures) and says, in one line, which file is wrong and how.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dreambench.errors import BenchError
from dreambench.metrics.metric_registry import CORE_METRICS

#: The results.json schema the runner writes and the leaderboard reads.
SCHEMA_VERSION = 1
RESULTS_FILENAME = "results.json"

#: The figures every results.json has (the core metrics' declarations), in display order.
METRICS: tuple[str, ...] = CORE_METRICS

_REWRITE_HINT = "rerun `bench run` to rewrite it"


@dataclass(frozen=True)
class RunResults:
    """One run's results.json, validated.

    `raw` is the parsed file as is; the properties are the parts the leaderboard uses. Equality and
    hashing go by `path` only (the raw dict is not hashable).
    """

    path: Path
    raw: dict[str, Any] = field(compare=False, hash=False, repr=False)

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def method(self) -> str:
        return str(self.raw["run"]["method"])

    @property
    def preset(self) -> str:
        return str(self.raw["run"]["preset"])

    @property
    def metric_preset(self) -> str | None:
        """The metric preset that scored the run (metrics/presets.py); None in files that predate it."""
        value = self.raw["run"].get("metric_preset")
        return None if value is None else str(value)

    @property
    def base_model(self) -> str:
        """The diffusion model the method ran on (the method's declared ``base_model``, recorded as
        ``run.base_model``), or "-" for methods without one (real-images, external images, plugins).
        Files written before ``run.base_model`` existed: the ``base_model`` hyperparameter."""
        run = self.raw["run"]
        value = run["base_model"] if "base_model" in run else (run.get("method_config") or {}).get("base_model")
        return str(value) if value else "-"

    @property
    def method_kind(self) -> str:
        """finetune / encoder / none / external (dreambench.method); "unknown" in older files."""
        return str(self.raw["run"].get("method_kind", "unknown"))

    @property
    def config_hash(self) -> str | None:
        value = self.raw["run"].get("config_hash")
        return None if value is None else str(value)

    @property
    def calibrated(self) -> bool:
        return bool(self.raw["calibrated"])

    @property
    def uncalibrated_reasons(self) -> list[str]:
        return [str(r) for r in self.raw.get("uncalibrated_reasons") or []]

    @property
    def prompt_set(self) -> dict[str, str]:
        """{"name", "version", "sha256"} of the prompt set the run was generated and scored with."""
        ps = self.raw["prompt_set"]
        return {key: str(ps[key]) for key in ("name", "version", "sha256")}

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """The `metrics` section: per metric its version, convention and embedder id."""
        return self.raw["metrics"]

    @property
    def metric_versions(self) -> dict[str, int]:
        return {name: int(spec["version"]) for name, spec in self.metrics.items()}

    @property
    def metric_conventions(self) -> dict[str, str]:
        """Metric name -> convention string (e.g. "raw cosine in [-1, 1]"), where recorded."""
        return {name: str(spec["convention"]) for name, spec in self.metrics.items() if "convention" in spec}

    @property
    def scoring_precision(self) -> str:
        """The embedders' arithmetic: "fp32" (the protocol) or "bf16" (`--scoring-precision bf16`).

        Results written before the precision was recorded were scored in fp32 on the CPU and under
        fp16 autocast on CUDA; their stamp's device tells which ("fp16-autocast" for the latter).
        """
        recorded = (self.raw.get("scoring") or {}).get("precision")
        if recorded is not None:
            return str(recorded)
        device = str((self.raw.get("stamp") or {}).get("device", ""))
        return "fp16-autocast" if device.startswith("cuda") else "fp32"

    @property
    def reduced_precision(self) -> bool:
        """True when the figures were not computed in fp32 (marked in every table)."""
        return self.scoring_precision != "fp32"

    @property
    def embedder_ids(self) -> dict[str, str]:
        """Metric name -> a canonical string of its embedder id (backend, arch, weights, sha256,
        precision; a result written before ids held the precision gets `scoring_precision`)."""
        return {
            name: json.dumps({"precision": self.scoring_precision, **spec["embedder"]}, sort_keys=True)
            for name, spec in self.metrics.items()
            if spec.get("embedder") is not None
        }

    @property
    def network_ids(self) -> dict[str, str]:
        """`embedder_ids` without the arithmetic (precision and its recipe): which networks and
        weights made the figures. The leaderboard puts runs side by side on this (a
        reduced-precision row is marked, not refused)."""
        arithmetic = ("precision", "recipe")
        return {
            name: json.dumps({k: v for k, v in spec["embedder"].items() if k not in arithmetic}, sort_keys=True)
            for name, spec in self.metrics.items()
            if spec.get("embedder") is not None
        }

    @property
    def subjects(self) -> dict[str, dict[str, Any]]:
        """Subject name -> its entry (kind, class_noun, dino, clip_i, clip_t, per_prompt, ...)."""
        return self.raw["subjects"]

    @property
    def overall(self) -> dict[str, Any]:
        """Mean over subjects: {"n_subjects", "dino", "clip_i", "clip_t", optional "ci", ...}."""
        return self.raw["overall"]

    @property
    def overall_live(self) -> dict[str, Any] | None:
        """Mean over live subjects, or None when the run has none (or did not record it)."""
        return self.raw.get("overall_live")

    @property
    def overall_object(self) -> dict[str, Any] | None:
        """Mean over object subjects, or None when the run has none (or did not record it)."""
        return self.raw.get("overall_object")

    @property
    def failures(self) -> dict[str, str]:
        """Subject name -> one-line reason, for subjects that produced no figures."""
        return {str(k): str(v) for k, v in (self.raw.get("failures") or {}).items()}


def load_results(run_dir_or_file: Path) -> RunResults:
    """Read and validate `<run_dir>/results.json` (or the given results.json path).

    Raises BenchError (one line naming the file and the problem) when the file is missing, is not
    JSON, has another schema_version, or lacks a key the leaderboard needs.
    """
    given = Path(run_dir_or_file)
    path = given / RESULTS_FILENAME if given.is_dir() else given
    if not path.exists():
        if not given.exists():
            raise BenchError(f"{given} does not exist; pass a run directory written by `bench run`")
        raise BenchError(f"{path} does not exist; finish the run with `bench run` to write it")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path} cannot be read ({exc}); {_REWRITE_HINT}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchError(
            f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}; {_REWRITE_HINT}"
        ) from None
    _validate(path, raw)
    return RunResults(path=path, raw=raw)


def _validate(path: Path, raw: Any) -> None:
    def fail(what: str) -> BenchError:
        return BenchError(f"{path} {what}; {_REWRITE_HINT}")

    if not isinstance(raw, dict):
        raise fail(f"holds a JSON {type(raw).__name__}, expected an object")
    if "schema_version" not in raw:
        raise fail("has no schema_version (not a dreambench results file?)")
    version = raw["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise fail(f"has schema_version {version!r}; this dreambench reads schema_version {SCHEMA_VERSION}")

    for key in ("run", "calibrated", "prompt_set", "metrics", "subjects", "overall"):
        if key not in raw:
            raise fail(f"lacks the required key {key!r}")
    _require_object(fail, raw, "run", ("method", "preset"))
    if not isinstance(raw["calibrated"], bool):
        raise fail(f"has calibrated={raw['calibrated']!r}, expected true or false")
    _require_object(fail, raw, "prompt_set", ("name", "version", "sha256"))

    metrics = raw["metrics"]
    if not isinstance(metrics, dict):
        raise fail("has 'metrics' that is not an object")
    for name, spec in metrics.items():
        if not isinstance(spec, dict) or "version" not in spec:
            raise fail(f"lacks the required key 'metrics.{name}.version'")
        if not isinstance(spec["version"], int) or isinstance(spec["version"], bool):
            raise fail(f"has metrics.{name}.version={spec['version']!r}, expected an integer")

    for name, spec in metrics.items():
        for key, kind in (("embedder", dict), ("convention", str), ("higher_is_better", bool)):
            if spec.get(key) is not None and not isinstance(spec[key], kind):
                raise fail(f"has metrics.{name}.{key}={spec[key]!r}, expected {_TYPE_NAMES[kind]}")

    subjects = raw["subjects"]
    if not isinstance(subjects, dict):
        raise fail("has 'subjects' that is not an object")
    for name, entry in subjects.items():
        if not isinstance(entry, dict):
            raise fail(f"has subjects.{name} that is not an object")
        if "kind" not in entry:
            raise fail(f"lacks the required key 'subjects.{name}.kind' (valid: {', '.join(SUBJECT_KINDS)})")
        if entry["kind"] not in SUBJECT_KINDS:
            raise fail(f"has subjects.{name}.kind={entry['kind']!r}; valid: {', '.join(SUBJECT_KINDS)}")
        _check_figures(fail, f"subjects.{name}", entry, metrics, required=False)
        _check_per_prompt(fail, f"subjects.{name}", entry.get("per_prompt"), metrics)

    _check_figures(fail, "overall", raw["overall"], metrics, required=True)
    for key in ("overall_live", "overall_object"):
        if raw.get(key) is not None:
            _check_figures(fail, key, raw[key], metrics, required=False)

    # A figure shown in the overall table must say which metric version produced it.
    for metric in METRICS:
        if raw["overall"][metric] is not None and metric not in metrics:
            raise fail(f"has overall.{metric} but no 'metrics.{metric}' entry with its version")

    failures = raw.get("failures")
    if failures is not None and not isinstance(failures, dict):
        raise fail("has 'failures' that is not an object of subject -> reason")

    # Sections optional by schema (older files lack them; docs/RESULTS.md says what is shown
    # instead): absent or null is fine, present of the wrong type is not.
    for key, kind in _OPTIONAL_SECTIONS.items():
        if raw.get(key) is not None and not isinstance(raw[key], kind):
            raise fail(f"has {key}={_shown(raw[key])}, expected {_TYPE_NAMES[kind]}")
    _check_ci_section(fail, raw.get("ci"))
    cost = raw.get("cost")
    if cost is not None and cost.get("total") is not None and not isinstance(cost["total"], dict):
        raise fail(f"has cost.total={_shown(cost['total'])}, expected an object")


#: The kinds a subject can have (dreambench.dataset.subject).
SUBJECT_KINDS: tuple[str, ...] = ("live", "object")

_TYPE_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string", bool: "true or false"}

#: Top-level sections a results.json may lack (files of earlier schema-1 versions), with their type.
_OPTIONAL_SECTIONS: dict[str, type] = {
    "uncalibrated_reasons": list,
    "dataset": dict,
    "protocol": dict,
    "render_protocol": dict,
    "scoring": dict,
    "ci": dict,
    "cost": dict,
    "stamp": dict,
    "overall_live": dict,
    "overall_object": dict,
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _check_per_prompt(fail: Any, where: str, per_prompt: Any, metrics: dict[str, Any]) -> None:
    """A subject's optional per_prompt: prompt index -> figures (the real-images ceiling has none)."""
    if per_prompt is None:
        return
    if not isinstance(per_prompt, dict):
        raise fail(f"has {where}.per_prompt={_shown(per_prompt)}, expected an object of prompt index -> figures")
    for prompt, figures in per_prompt.items():
        _check_figures(fail, f"{where}.per_prompt.{prompt}", figures, metrics, required=False)


def _check_ci_section(fail: Any, ci: Any) -> None:
    """The top-level bootstrap section: each overall section's and each subject's intervals."""
    if ci is None:
        return
    for key in ("overall", "overall_live", "overall_object"):
        if ci.get(key) is not None:
            _check_intervals(fail, f"ci.{key}", ci[key])
    subjects = ci.get("subjects")
    if subjects is None:
        return
    if not isinstance(subjects, dict):
        raise fail(f"has ci.subjects={_shown(subjects)}, expected an object of subject -> intervals")
    for name, intervals in subjects.items():
        _check_intervals(fail, f"ci.subjects.{name}", intervals)


def _require_object(fail: Any, raw: dict[str, Any], key: str, fields: tuple[str, ...]) -> None:
    section = raw[key]
    if not isinstance(section, dict):
        raise fail(f"has {key!r} that is not an object")
    for name in fields:
        if section.get(name) is None:
            raise fail(f"lacks the required key '{key}.{name}'")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_figures(fail: Any, where: str, section: Any, metrics: dict[str, Any], *, required: bool) -> None:
    """Figures (the core metrics and every metric the file's "metrics" section names) are finite
    numbers or null; an optional `ci` maps metric -> [low, high]. Only the core ones are required."""
    if not isinstance(section, dict):
        raise fail(f"has {where!r} that is not an object")
    for metric in dict.fromkeys([*METRICS, *metrics]):
        if metric not in section:
            if required and metric in METRICS:
                raise fail(f"lacks the required key '{where}.{metric}'")
            continue
        value = section[metric]
        if value is not None and not _is_number(value):
            raise fail(f"has {where}.{metric}={value!r}, expected a finite number or null")
    if "n_subjects" in section and not (
        isinstance(section["n_subjects"], int) and not isinstance(section["n_subjects"], bool)
    ):
        raise fail(f"has {where}.n_subjects={section['n_subjects']!r}, expected an integer")
    if section.get("ci") is not None:
        _check_intervals(fail, f"{where}.ci", section["ci"])


def _check_intervals(fail: Any, where: str, ci: Any) -> None:
    """metric -> [low, high] with low <= high."""
    if not isinstance(ci, dict):
        raise fail(f"has {where} that is not an object of metric -> [low, high]")
    for metric, bounds in ci.items():
        ok = (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(_is_number(b) for b in bounds)
            and bounds[0] <= bounds[1]
        )
        if not ok:
            raise fail(f"has {where}.{metric}={bounds!r}, expected [low, high] with low <= high")

"""May these runs share a table? The leaderboard refuses to put incomparable figures side by side.

Two runs are comparable when they were scored on the same prompt set (name, version, sha256) with
the same metric definitions (version, convention, direction) for every metric both report, where
both rendered images, the same render protocol (`render_protocol.protocol.sha256`: sampler and its
config, steps, guidance, resolution, negative prompt, images per prompt, seeding; the run preset's,
the same for every method of it), and, where both have CLIP-T figures, the same CLIP-T text
convention (`protocol.clip_t_text`: identifier removed or kept). The real-images ceiling renders
nothing (`render_protocol: null`) and so is comparable with any protocol; a results file written
before render protocols were recorded has no such entry and is not compared on it. A method's
declared deviation from the protocol (`render_protocol.deviation`) does not refuse the row: it is
flagged in every table (`render_deviation`). Other protocol fields (seed, pairing text) are not
compared.

Embedders are special: the smoke metric presets score with seeded or self-trained models, so a smoke
run and a real run differ in embedder id by design. That is allowed (every such row is marked
uncalibrated) and reported by `embedder_notes`. Two *calibrated* runs with different embedders
(e.g. DINO ViT-S/16 vs ViT-S/8) measure different things under the same name: refused. The scoring
precision is not part of this check: a bf16 row is shown beside fp32 ones with its § mark
(`bench compare`, a gate, refuses across precisions).

Datasets: runs on different datasets (results.json "dataset"."name"; "dreambooth" when a results
file predates the name) or whose subject groups were scored by different rules are refused: their
overall figures average other subjects.

Metric presets: runs scored under different metric protocols (`protocol.metric_protocol`:
"dreambooth", "dinov2", "dinov2-b", "dreambench-plus"; metrics/presets.py) use other networks,
pairings or scales under the same metric names: refused, calibrated or not. A preset and its smoke
twin share a protocol (the smoke row is marked uncalibrated). A results file written before the
protocol was recorded was scored under the DreamBooth conventions.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from dreambench.errors import BenchError
from dreambench.leaderboard.results import RunResults

_PROMPT_SET_FIELDS: tuple[str, ...] = ("name", "version", "sha256")
# Fields of a metric's spec that change what its number means.
_METRIC_FIELDS: tuple[str, ...] = ("version", "convention", "higher_is_better")


def check_comparable(runs: list[RunResults]) -> None:
    """Raise BenchError naming both runs and the differing field if any two runs are incomparable."""
    for a, b in combinations(runs, 2):
        # Other subjects (another dataset, or the same subjects scored as groups by another rule)
        # make the overall figures another quantity, even under the same prompt set.
        if dataset_name(a) != dataset_name(b):
            raise _refusal(a, b, "dataset.name", dataset_name(a), dataset_name(b))
        if _group_scoring(a) != _group_scoring(b):
            raise _refusal(a, b, "dataset.subject_groups", _group_scoring(a), _group_scoring(b))
        for key in _PROMPT_SET_FIELDS:
            if a.prompt_set[key] != b.prompt_set[key]:
                raise _refusal(a, b, f"prompt_set.{key}", a.prompt_set[key], b.prompt_set[key])
        if metric_protocol(a) != metric_protocol(b):
            raise _refusal(
                a,
                b,
                f"metric preset protocol (run.metric_preset {_metric_preset(a)!r} vs {_metric_preset(b)!r})",
                metric_protocol(a),
                metric_protocol(b),
            )
        render_a, render_b = render_protocol(a), render_protocol(b)
        if render_a is not None and render_b is not None and render_a["sha256"] != render_b["sha256"]:
            field = f"render_protocol ({_protocol_diff(render_a, render_b)})"
            raise _refusal(a, b, field, render_a["sha256"][:12], render_b["sha256"][:12])
        for metric in sorted(set(a.metrics) & set(b.metrics)):
            spec_a, spec_b = a.metrics[metric], b.metrics[metric]
            for key in _METRIC_FIELDS:
                if key in spec_a and key in spec_b and spec_a[key] != spec_b[key]:
                    raise _refusal(a, b, f"metrics.{metric}.{key}", spec_a[key], spec_b[key])
            # Networks and weights, not precision: a bf16 row is marked in the tables, not refused.
            emb_a, emb_b = a.network_ids.get(metric), b.network_ids.get(metric)
            if a.calibrated and b.calibrated and emb_a and emb_b and emb_a != emb_b:
                raise _refusal(a, b, f"metrics.{metric}.embedder", emb_a, emb_b)
        # CLIP-T with the identifier kept in the text is another metric; only matters where both
        # runs have a CLIP-T figure (the real-images ceiling has none).
        text_a, text_b = (
            a.raw.get("protocol", {}).get("clip_t_text"),
            b.raw.get("protocol", {}).get("clip_t_text"),
        )
        has_clip_t = a.overall["clip_t"] is not None and b.overall["clip_t"] is not None
        if has_clip_t and text_a is not None and text_b is not None and text_a != text_b:
            raise _refusal(a, b, "protocol.clip_t_text", text_a, text_b)


def dataset_name(run: RunResults) -> str:
    """The dataset a run's subjects come from (results.json "dataset"."name"): "dreambooth" for
    results written before datasets were named, "custom" for a run of --subject-dir subjects only."""
    record = run.raw.get("dataset")
    if not isinstance(record, dict):
        return "dreambooth"
    name = record.get("name")
    if isinstance(name, str) and name:
        return name
    return "custom" if record.get("custom") else "dreambooth"


def _group_scoring(run: RunResults) -> str | None:
    record = run.raw.get("dataset")
    return record.get("subject_groups") if isinstance(record, dict) else None


def metric_protocol(run: RunResults) -> str:
    """The metric conventions a run was scored under (metrics/presets.py `MetricPreset.protocol`);
    "dreambooth" for results written before it was recorded (the only conventions then)."""
    return str((run.raw.get("protocol") or {}).get("metric_protocol", "dreambooth"))


def _metric_preset(run: RunResults) -> str:
    return str(run.raw["run"].get("metric_preset", "?"))


def render_protocol(run: RunResults) -> dict[str, Any] | None:
    """The run preset's render protocol a run recorded (with ``sha256``), or None where it renders
    nothing or predates the record."""
    record = run.raw.get("render_protocol")
    return record.get("protocol") if isinstance(record, dict) else None


def render_deviation(run: RunResults) -> dict[str, Any] | None:
    """The deviation from the preset's render protocol the run's method declared (reason, fields), or None."""
    record = run.raw.get("render_protocol")
    deviation = record.get("deviation") if isinstance(record, dict) else None
    return deviation if isinstance(deviation, dict) else None


def _protocol_diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The first differing field of two protocol records, e.g. "sampler.scheduler 'ddim' vs 'pndm'"."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    for key in sorted(set(flat_a) | set(flat_b)):
        if key != "sha256" and flat_a.get(key) != flat_b.get(key):
            return f"{key} {flat_a.get(key)!r} vs {flat_b.get(key)!r}"
    return "sha256"


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def embedder_notes(runs: list[RunResults]) -> list[str]:
    """A note naming the metrics whose embedder differs across runs (allowed: see module docstring)."""
    metrics = sorted({m for run in runs for m in run.network_ids})
    differing = [m for m in metrics if len({r.network_ids[m] for r in runs if m in r.network_ids}) > 1]
    if not differing:
        return []
    return [
        f"embedders differ across these runs for {', '.join(differing)}; figures from smoke "
        "(uncalibrated) embedders are not comparable with the others"
    ]


def _refusal(a: RunResults, b: RunResults, field: str, value_a: object, value_b: object) -> BenchError:
    return BenchError(
        f"cannot compare {a.run_dir} and {b.run_dir}: {field} differs ({value_a!r} vs {value_b!r}); "
        "put only runs rendered with the same protocol and scored with the same prompt set, metric "
        "preset and metric versions in one leaderboard"
    )

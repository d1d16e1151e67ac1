"""May these runs share a table? The leaderboard refuses to put incomparable figures side by side.

Two runs are comparable when they were scored on the same prompt set (name, version, sha256) with
the same metric definitions (version, convention, direction) for every metric both report, and,
where both have CLIP-T figures, the same CLIP-T text convention (`protocol.clip_t_text`: identifier
removed or kept). Other protocol fields (images per prompt, seed, pairing text) are not compared:
the real-images ceiling legitimately differs in them.

Embedders are special: the smoke metric preset scores with seeded random-weight models, so a smoke
run and a real run differ in embedder id by design. That is allowed (every such row is marked
uncalibrated) and reported by `embedder_notes`. Two *calibrated* runs with different embedders
(e.g. DINO ViT-S/16 vs ViT-S/8) measure different things under the same name: refused.
"""

from __future__ import annotations

from itertools import combinations

from dreambench.errors import BenchError
from dreambench.leaderboard.results import RunResults

_PROMPT_SET_FIELDS: tuple[str, ...] = ("name", "version", "sha256")
# Fields of a metric's spec that change what its number means.
_METRIC_FIELDS: tuple[str, ...] = ("version", "convention", "higher_is_better")


def check_comparable(runs: list[RunResults]) -> None:
    """Raise BenchError naming both runs and the differing field if any two runs are incomparable."""
    for a, b in combinations(runs, 2):
        for key in _PROMPT_SET_FIELDS:
            if a.prompt_set[key] != b.prompt_set[key]:
                raise _refusal(a, b, f"prompt_set.{key}", a.prompt_set[key], b.prompt_set[key])
        for metric in sorted(set(a.metrics) & set(b.metrics)):
            spec_a, spec_b = a.metrics[metric], b.metrics[metric]
            for key in _METRIC_FIELDS:
                if key in spec_a and key in spec_b and spec_a[key] != spec_b[key]:
                    raise _refusal(a, b, f"metrics.{metric}.{key}", spec_a[key], spec_b[key])
            emb_a, emb_b = a.embedder_ids.get(metric), b.embedder_ids.get(metric)
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


def embedder_notes(runs: list[RunResults]) -> list[str]:
    """A note naming the metrics whose embedder differs across runs (allowed: see module docstring)."""
    metrics = sorted({m for run in runs for m in run.embedder_ids})
    differing = [m for m in metrics if len({r.embedder_ids[m] for r in runs if m in r.embedder_ids}) > 1]
    if not differing:
        return []
    return [
        f"embedders differ across these runs for {', '.join(differing)}; figures from random-weight "
        "(uncalibrated) embedders are not comparable with the others"
    ]


def _refusal(a: RunResults, b: RunResults, field: str, value_a: object, value_b: object) -> BenchError:
    return BenchError(
        f"cannot compare {a.run_dir} and {b.run_dir}: {field} differs ({value_a!r} vs {value_b!r}); "
        "put only runs scored with the same prompt set and metric versions in one leaderboard"
    )

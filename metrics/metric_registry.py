"""Every metric, declared once: the built-ins here, outside ones registered or installed.

The Scorer, aggregation, statistics, `bench compare`, every leaderboard table, the run summary and
`--extra-metrics` iterate these declarations (metrics/metric_spec.py `MetricSpec`); nothing else in
the package names a metric. Order is the display order: built-ins first, then the others in the
order they were registered.

Adding a metric is one module (its computation) plus one declaration:

    # my_pkg/brightness.py
    from dreambench.metrics.metric_spec import MetricSpec

    def brightness(image) -> float:                      # pairing "image": one figure per image
        return sum(image.convert("L").getdata()) / (255 * image.width * image.height)

    SPEC = MetricSpec(name="brightness", title="Bright", version=1, higher_is_better=True,
                      pairing="image", convention="mean grey level in [0, 1]",
                      definition="mean grey level of the generated image", compute=brightness)

and either ``register_metric(SPEC)`` from Python (then `dreambench.cli.main([...])` or
`dreambench.evaluate(...)` in the same process), or an entry point in the group
``dreambench.metrics`` naming the declaration (``brightness = "my_pkg.brightness:SPEC"``), loaded the
first time the metrics are listed. Outside metrics are optional: `bench run --extra-metrics
brightness` computes them. A computed optional metric's name and version are part of the scoring
identity (Scorer(extra_metrics=...)); its stored figures are reused only under the same version.

Importing this module is cheap (no torch, no numpy): the leaderboard reads it.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator, Mapping, Sequence

from dreambench.errors import BenchError, did_you_mean
from dreambench.metrics.metric_spec import MetricSpec

ENTRY_POINT_GROUP = "dreambench.metrics"

# MetricSpec(name, title, version, higher_is_better, pairing, availability, networks, ...).
BUILTIN_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("dino", "DINO", 1, True, "real", "core", ("dino",), max_drop=0.01,
               definition="{pairs} of the cosine of {dino} CLS embeddings"),
    MetricSpec("clip_i", "CLIP-I", 1, True, "real", "core", ("clip",), max_drop=0.01,
               definition="{pairs} of the cosine of CLIP {clip} image embeddings"),
    MetricSpec("clip_t", "CLIP-T", 1, True, "text", "core", ("clip",), max_drop=0.005,
               definition="cosine of the CLIP {clip} embeddings of the generated image and its prompt"),
    # dreambench-plus's second DINO-type network, reported as its own metric.
    MetricSpec("dinov2", "DINOv2", 1, True, "real", "preset", ("dinov2",), max_drop=0.01,
               definition="{pairs} of the cosine of {dinov2} CLS embeddings"),
    # DreamBooth paper, Table 3: language drift (metrics/preservation.py); lower is better.
    MetricSpec(
        "pres", "PRES", 1, False, "class-samples", "optional", ("dino",),
        convention="raw cosine in [-1, 1]",
        definition="mean over all (class-prompt sample, real image) pairs of the cosine of DINO ViT-S/16 CLS "
        "embeddings; class samples are rendered by the fine-tuned model from 'a {class}' (no identifier)",
        compute="dreambench.metrics.preservation:score", in_every_identity=True,
    ),
    # DreamBooth paper, Table 3: diversity (metrics/diversity.py).
    MetricSpec(
        "div", "DIV", 1, True, "prompt-group", "optional", ("lpips",),
        convention="raw LPIPS distance (AlexNet, v0.1, 256x256 bicubic), >= 0",
        definition="mean LPIPS distance over the distinct pairs of images of one (subject, prompt); "
        "mean over prompts per subject, mean over subjects overall",
        compute="dreambench.metrics.diversity:score", in_every_identity=True,
    ),
    # Copying inflates DINO and CLIP-I above the real-images ceiling (metrics/copy_detection.py).
    MetricSpec(
        "copy_rate", "Copy", 1, False, "real", "optional", ("dino", "clip"),
        convention="share of generated images in [0, 1]",
        definition="share of generated images that copy a reference photo: within the pixel limit of one "
        "(32x32 box-averaged RGB, mean absolute difference < min(0.015, half the closest pair of reference "
        "photos)), or closer to one in both DINO and CLIP than the subject's two most similar reference "
        "photos are to each other; mean over subjects overall",
        compute="dreambench.metrics.copy_detection:score", max_drop=0.02, image_flag="copy",
    ),
)  # fmt: skip

#: The metrics every results.json has, in display order ("dino", "clip_i", "clip_t").
CORE_METRICS: tuple[str, ...] = tuple(m.name for m in BUILTIN_METRICS if m.availability == "core")

_BUILTIN: dict[str, MetricSpec] = {m.name: m for m in BUILTIN_METRICS}
_registered: dict[str, MetricSpec] = {}
_plugins: dict[str, MetricSpec] | None = None


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add an outside metric (optional, see the module docstring); registering the same name again
    replaces it. A built-in's name is refused. Returns `spec`."""
    if not isinstance(spec, MetricSpec):
        raise BenchError(f"a metric is registered as a MetricSpec, not {type(spec).__name__}")
    if spec.name in _BUILTIN:
        raise BenchError(f"metric {spec.name!r} is built in; register yours under another name")
    if spec.availability != "optional":
        raise BenchError(
            f"metric {spec.name!r}: outside metrics are optional (computed with --extra-metrics), "
            f"not {spec.availability!r}"
        )
    _registered[spec.name] = spec
    return spec


def unregister_metric(name: str) -> None:
    """Remove a metric added with `register_metric` (tests, interactive sessions)."""
    if name not in _registered:
        raise did_you_mean(name, _registered, "registered metric")
    del _registered[name]


def _entry_point_metrics() -> dict[str, MetricSpec]:
    """Installed plugins' declarations (group ``dreambench.metrics``), loaded once per process."""
    global _plugins
    if _plugins is None:
        found: dict[str, MetricSpec] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                spec = ep.load()
            except Exception as exc:
                raise BenchError(f"metric plugin {ep.name!r} ({ep.value}) cannot be loaded: {exc}") from None
            if not isinstance(spec, MetricSpec) or spec.name != ep.name or spec.name in _BUILTIN:
                raise BenchError(
                    f"metric plugin {ep.name!r} ({ep.value}) must name a MetricSpec called {ep.name!r} "
                    f"that is not a built-in ({', '.join(_BUILTIN)})"
                )
            if spec.availability != "optional":
                raise BenchError(f"metric plugin {ep.name!r}: outside metrics are optional")
            found[spec.name] = spec
        _plugins = found
    return _plugins


def metrics() -> dict[str, MetricSpec]:
    """Every metric by name, in display order: built-ins, installed plugins, registered ones."""
    return {**_BUILTIN, **_entry_point_metrics(), **_registered}


def get_metric(name: str) -> MetricSpec:
    """The declaration of `name`; an unknown name is a did-you-mean BenchError."""
    found = metrics()
    if name not in found:
        raise did_you_mean(name, found, "metric")
    return found[name]


def find_metric(name: str) -> MetricSpec | None:
    """The declaration of `name`, or None (a results file may hold a metric this process lacks)."""
    return metrics().get(name)


def optional_metric_names() -> tuple[str, ...]:
    """The metrics `--extra-metrics` offers, in display order."""
    return tuple(name for name, m in metrics().items() if m.availability == "optional")


def select_optional_metrics(names: str | Sequence[str], *, renders: bool) -> tuple[str, ...]:
    """The optional metrics a run computes, validated, in display order.

    ``names``: ``"pres,div"`` or a sequence of names. ``renders``: whether the run renders with a
    method (False for `bench eval`), so metrics over the method's "a {class}" samples (PRES) can be
    computed; otherwise they are not offered. An unknown name is a did-you-mean error.
    """
    listed = names.split(",") if isinstance(names, str) else list(names)
    wanted = [n.strip() for n in listed if n.strip()]
    choices = [
        n for n in optional_metric_names() if renders or get_metric(n).pairing != "class-samples"
    ]
    for name in wanted:
        if name not in choices:
            raise did_you_mean(name, choices, "extra metric")
    return tuple(m for m in choices if m in wanted)


def metric_title(name: str) -> str:
    """The display name of `name` ("CLIP-I"); the name itself for a metric this process lacks."""
    spec = find_metric(name)
    return name if spec is None else spec.title


def display_order(names: Iterator[str] | tuple[str, ...] | list[str] | set[str]) -> list[str]:
    """`names` in display order: declared ones in declaration order, then the others sorted."""
    given = set(names)
    declared = [n for n in metrics() if n in given]
    return declared + sorted(given - set(declared))


class _Titles(Mapping[str, str]):
    """A read-only view: metric name -> display name, for every metric declared now."""

    def __getitem__(self, name: str) -> str:
        spec = find_metric(name)
        if spec is None:
            raise KeyError(name)
        return spec.title

    def __iter__(self) -> Iterator[str]:
        return iter(metrics())

    def __len__(self) -> int:
        return len(metrics())


#: Metric name -> display name ("dino" -> "DINO"), following registrations.
METRIC_TITLES: Mapping[str, str] = _Titles()

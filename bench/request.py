"""One run request: what `bench run`, `bench eval` and `dreambench.evaluate()` all describe.

The CLI builds a `RunRequest` from its options, `dreambench.evaluate()` from its keyword arguments;
`execute_request` validates it (one-line `BenchError` before anything is written), builds the
method, the scorer, the run config and the run spec, and runs it. No argparse on this path.

A request either runs a method (``method=``) or scores images made elsewhere (``images_dir=``,
layout ``<subject>/<prompt_idx>-<sample_idx>.png``). ``method`` may be

* a registry or entry-point name (``"dreambooth"``), ``"module:Class"`` or ``"path/to/file.py:Class"``;
* a class that follows the Method contract (built like a named one: preset + ``method_args``);
* an instance, run as it is (in this process only). Its settings must be recordable: it keeps its
  hyperparameters in a ``config`` dataclass (as the built-in methods do), so that they enter the
  run's identity; ``method_args`` and ``method_preset`` do not apply to it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError

if TYPE_CHECKING:
    from dreambench.dataset.subject import Subject
    from dreambench.method import MethodHandle
    from dreambench.metrics.scorer import Scorer
    from dreambench.runner import RunOutcome


@dataclass(frozen=True)
class RunRequest:
    """Every option of a run; field names are the CLI's options with dashes as underscores."""

    # What runs: exactly one of these.
    method: Any = None  # name, "module:Class", "file.py:Class", a Method class or instance
    images_dir: str | Path | None = None  # score images made elsewhere (`bench eval`)
    # Subjects.
    dataset: str = "dreambooth"
    subjects: str | None = None  # all | live | objects | a,b,c | @file.txt (default: all)
    data: str | Path | None = None
    subject_dir: tuple[str | Path, ...] = ()
    class_noun: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    prompts: str | Path | None = None  # a prompt set name or file; None: the dataset's default
    # Presets and scoring.
    preset: str = "dreambooth"
    metric_preset: str | None = None
    embedder_backend: str | None = None
    scoring_precision: str | None = None  # None: the scorer's default
    extra_metrics: str | tuple[str, ...] = ()
    clip_t_keep_identifier: bool = False
    images_per_prompt: int = 4
    # Method runs only.
    method_args: str | Mapping[str, Any] | None = None
    method_preset: str | None = None
    seed: int = 0
    pres_samples: int = 8
    force: bool = False
    executor: str = "local"
    address: str | None = None
    keep_weights: bool = False
    # Scoring outside images only.
    name: str | None = None
    identifier: str = ""
    # Where and how.
    out: str | Path = "runs"
    device: str = "auto"
    progress: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RunRequest:
        """A request from keyword options; an unknown one is a one-line error naming the valid ones."""
        valid = [f.name for f in fields(cls)]
        for key in options:
            if key not in valid:
                raise BenchError(f"unknown option {key!r}; valid: {', '.join(valid)}")
        listed = {k: tuple(v) for k, v in options.items() if k in REPEATABLE_OPTIONS and v is not None}
        return cls(**{**options, **listed})


#: Options given once per custom subject folder (repeatable on the command line).
REPEATABLE_OPTIONS = ("subject_dir", "class_noun", "kind")
# Options that mean something only when a method runs, or only when outside images are scored.
_METHOD_ONLY = ("method_args", "method_preset", "seed", "pres_samples", "force", "executor", "address", "keep_weights")
_IMAGES_ONLY = ("name", "identifier")


def execute_request(request: RunRequest) -> RunOutcome:
    """Validate ``request``, then run (or resume) it; returns the run's outcome (results.json et al.)."""
    if (request.method is None) == (request.images_dir is None):
        raise BenchError("a run takes exactly one of method= (run a method) or images_dir= (score images)")
    _refuse_inapplicable(request)
    if request.images_per_prompt < 1:
        raise BenchError(f"--images-per-prompt {request.images_per_prompt} must be at least 1")
    from dreambench.commands.output_path import check_output_path

    check_output_path(Path(request.out), "--out", folder=True)
    if request.method is not None:
        return _run_method(request)
    return _score_images(request)


def _refuse_inapplicable(request: RunRequest) -> None:
    defaults = RunRequest()
    inapplicable = _IMAGES_ONLY if request.method is not None else _METHOD_ONLY
    for name in inapplicable:
        if getattr(request, name) != getattr(defaults, name):
            doing = "running a method" if request.method is not None else "scoring images (images_dir)"
            raise BenchError(f"option {name!r} does not apply when {doing}")


def _subjects(request: RunRequest, subjects: str | None = None) -> tuple[list[Subject], dict[str, Any]]:
    from dreambench.dataset.selection import resolve_subjects

    chosen, record = resolve_subjects(
        dataset=request.dataset,
        subjects=request.subjects if subjects is None else subjects,
        data=request.data,
        subject_dirs=request.subject_dir,
        class_nouns=request.class_noun,
        kinds=request.kind,
    )
    if any(s.members for s in chosen):
        from dreambench.metrics.subject_groups import GROUP_SCORING

        # How groups are scored can move their figures: part of the dataset record (the identity).
        record = {**record, "subject_groups": GROUP_SCORING}
    return chosen, record


def _scorer(request: RunRequest, device: str, *, renders: bool) -> Scorer:
    """The scorer of the request's metric preset, with the optional metrics it asks for (their
    versions enter the scoring identity); ``renders``: a method renders (PRES can be computed)."""
    from dreambench.metrics.metric_registry import select_optional_metrics
    from dreambench.metrics.presets import get_metric_preset
    from dreambench.metrics.scorer import Scorer
    from dreambench.presets import get_run_preset

    preset = get_run_preset(request.preset)
    # Checked before any work: an unknown --metric-preset is one line naming the valid ones.
    metric_preset = get_metric_preset(request.metric_preset or preset.metric_preset)
    precision = {} if request.scoring_precision is None else {"precision": request.scoring_precision}
    return Scorer(
        metric_preset,
        device=device,
        backend=request.embedder_backend,
        clip_t_keep_identifier=True if request.clip_t_keep_identifier else None,
        extra_metrics=select_optional_metrics(request.extra_metrics, renders=renders),
        **precision,
    )


def build_method(request: RunRequest, preset: str) -> tuple[MethodHandle, str, dict[str, Any]]:
    """(the method, its hyperparameter preset, the overrides recorded for it) from ``request.method``."""
    from dreambench.hyperparams import parse_method_args
    from dreambench.method import MethodHandle
    from dreambench.registry import create_method, method_preset_for, resolve_method_class

    spec = request.method
    if isinstance(spec, (str, type)):
        cls = resolve_method_class(spec)
        method_args = parse_method_args(request.method_args)
        method_preset = method_preset_for(
            cls, request.method_preset or preset, explicit=request.method_preset is not None
        )
        return create_method(spec, method_preset, method_args), method_preset, method_args
    # An instance, run as it is: its settings must be recordable in the run's identity.
    for name in ("method_args", "method_preset"):
        if getattr(request, name) is not None:
            raise BenchError(f"option {name!r} does not apply to a method instance; pass its class instead")
    if request.executor != "local":
        raise BenchError(
            f"a method instance runs in this process only; pass its class or name for --executor {request.executor}"
        )
    handle = MethodHandle(spec)
    if handle.config_dict() is None:
        raise BenchError(
            f"method instance {handle.name!r} keeps no `config` dataclass, so its settings cannot enter "
            "the run's identity; pass its class (with method_args) or give it a `config`"
        )
    return handle, "instance", {}


def _run_method(request: RunRequest) -> RunOutcome:
    from dreambench.commands.subject_args import device_from_args
    from dreambench.dataset.prompts import load_prompt_set
    from dreambench.executors import executor_class
    from dreambench.presets import get_run_preset
    from dreambench.runner import RunSpec, execute_run, make_run_config

    if request.pres_samples < 1:
        raise BenchError(f"--pres-samples {request.pres_samples} must be at least 1")
    device = device_from_args(request.device, runs_here=request.executor == "local")
    executor_cls = executor_class(request.executor)
    preset = get_run_preset(request.preset)
    scorer = _scorer(request, device, renders=True)
    subjects, dataset_info = _subjects(request)
    prompt_set = load_prompt_set(request.prompts, dataset=request.dataset, data=request.data)
    method, method_preset, method_args = build_method(request, preset.method_preset)
    config = make_run_config(
        method=method,
        method_args=method_args,
        preset=preset.name,
        method_preset=method_preset,
        metric_preset=scorer.preset.name,
        clip_t_keep_identifier=scorer.preset.clip_t_keep_identifier,
        scoring=scorer.identity(),
        prompt_set=prompt_set,
        images_per_prompt=request.images_per_prompt,
        base_seed=request.seed,
        dataset_info=dataset_info,
    )
    spec = RunSpec(
        config=config,
        method_args=method_args,
        prompt_set=prompt_set,
        run_dir=Path(request.out) / config.run_name,
        device=device,
        keep_weights=request.keep_weights,
        embedder_backend=request.embedder_backend,
        optional_metrics=scorer.extra_metrics,
        pres_samples=request.pres_samples,
    )
    executor = executor_cls(address=request.address) if request.executor != "local" else None
    return execute_run(
        spec=spec,
        subjects=subjects,
        method=method,
        scorer=scorer,
        executor=executor,
        force=request.force,
        progress_enabled=request.progress,
    )


def _score_images(request: RunRequest) -> RunOutcome:
    from dreambench.commands.subject_args import device_from_args
    from dreambench.dataset.prompts import load_prompt_set
    from dreambench.external import ExternalImages, import_external, scan_external
    from dreambench.method import MethodHandle
    from dreambench.presets import get_run_preset
    from dreambench.run_lock import run_lock
    from dreambench.runner import RunSpec, execute_run, make_run_config
    from dreambench.store import RunDir

    device = device_from_args(request.device)
    images_dir = Path(request.images_dir)  # type: ignore[arg-type]
    layout_words = "layout: <subject>/<prompt_idx>-<sample_idx>.png"
    if not images_dir.is_dir():
        raise BenchError(f"IMAGES_DIR {images_dir} is not a folder ({layout_words})")
    subjects_spec = request.subjects
    if subjects_spec is None and not request.subject_dir:
        present = sorted(p.name for p in images_dir.iterdir() if p.is_dir())
        if not present:
            raise BenchError(f"IMAGES_DIR {images_dir} has no subject folders ({layout_words})")
        subjects_spec = ",".join(present)
    preset = get_run_preset(request.preset)
    scorer = _scorer(request, device, renders=False)
    subjects, dataset_info = _subjects(request, subjects_spec)
    prompt_set = load_prompt_set(request.prompts, dataset=request.dataset, data=request.data)
    layout = scan_external(images_dir, subjects, prompt_set, request.images_per_prompt)
    for path in layout.unexpected:
        sys.stderr.write(f"warning: ignoring {path}: not <prompt_idx>-<sample_idx>.png within the prompt set\n")
    name = request.name or images_dir.resolve().name
    method = MethodHandle(ExternalImages(f"external:{name}", request.identifier))
    config = make_run_config(
        method=method,
        method_args={"identifier": request.identifier},
        preset=preset.name,
        method_preset="none",
        metric_preset=scorer.preset.name,
        clip_t_keep_identifier=scorer.preset.clip_t_keep_identifier,
        scoring=scorer.identity(),
        prompt_set=prompt_set,
        images_per_prompt=request.images_per_prompt,
        base_seed=0,
        dataset_info=dataset_info,
    )
    rd = RunDir(Path(request.out) / config.run_name)
    spec = RunSpec(
        config=config,
        method_args={},
        prompt_set=prompt_set,
        run_dir=rd.root,
        device=device,
        optional_metrics=scorer.extra_metrics,
    )
    # The import writes into the run directory too: hold its lock from here (execute_run re-enters it).
    with run_lock(rd.root):
        for subject in subjects:
            import_external(layout, rd, subject, prompt_set, request.identifier, request.images_per_prompt)
        return execute_run(spec=spec, subjects=subjects, method=method, scorer=scorer, progress_enabled=request.progress)

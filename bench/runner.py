"""The runner loop: for each subject, prepare the method, render the missing images, score, and
write results. Resumable at image granularity; knows nothing about diffusion.

Per subject (see bench/store.py for the files):

1. Images: every (prompt_idx, sample_idx) whose PNG or index line is missing is rendered with the
   seed ``image_seed(base_seed, subject, prompt_idx, sample_idx)``; the index is rewritten after
   each chunk, so a kill loses at most the chunk in flight.
2. Scores: recomputed only when scores.jsonl does not cover exactly the current images (by sha256);
   the embedding cache makes that cheap when most images are unchanged.
3. Summary: the per-subject figures (metrics/aggregate.py).

A subject that raises is recorded in ``failures`` (with its traceback in error.txt) and the
others go on. results.json covers every subject finished in the run directory. Subjects are
handed to an executor (bench/executors/): in-process by default, or one Ray task per subject.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.atomic import atomic_write_bytes
from dreambench.config import RunConfig
from dreambench.cost import measure_stage, summarize_costs
from dreambench.dataset.prompts import PromptSet
from dreambench.dataset.subject import Subject
from dreambench.disk_space import check_disk_space
from dreambench.errors import BenchError
from dreambench.metrics.aggregate import (
    add_optional_metrics,
    summarize_overall,
    summarize_real_pairs,
    summarize_subject_images,
)
from dreambench.metrics.scorer import ImageRef, Scorer
from dreambench.progress import RunProgress
from dreambench.seeds import image_seed
from dreambench.stamp import make_stamp
from dreambench.store import RunDir, image_name

if TYPE_CHECKING:
    from dreambench.executors.local import Executor

SCHEMA_VERSION = 1
RENDER_CHUNK = 50
# "a {class}" samples rendered per subject for PRES (prompt index -1 in the seed scheme).
PRES_SAMPLES = 8
PRES_PROMPT_IDX = -1


@dataclass
class RunOutcome:
    run_dir: RunDir
    results: dict[str, Any]
    failures: dict[str, str] = field(default_factory=dict)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _real_refs(subject: Subject) -> list[ImageRef]:
    return [ImageRef(path=p, sha256=s) for p, s in zip(subject.image_paths, subject.image_sha256)]


def _missing_images(
    rd: RunDir, subject: Subject, prompt_set: PromptSet, config: RunConfig
) -> tuple[dict, list, list]:
    """(index of existing images by (prompt_idx, sample_idx), expected keys, missing keys)."""
    n_prompts = len(prompt_set.templates(subject.kind))
    expected = [(p, s) for p in range(n_prompts) for s in range(config.images_per_prompt)]
    wanted = set(expected)
    index = {(r["prompt_idx"], r["sample_idx"]): r for r in rd.read_images_index(subject.name)}
    index = {k: r for k, r in index.items() if k in wanted}
    missing = [k for k in expected if k not in index or not rd.image_path(subject.name, *k).exists()]
    return index, expected, missing


def _render(
    rd: RunDir,
    method: Any,
    subject: Subject,
    prompts: list[str],
    identifier: str,
    index: dict,
    missing: list,
    config: RunConfig,
    progress: RunProgress,
) -> None:
    """Render the missing images in chunks; the index is rewritten after each chunk."""
    for start in range(0, len(missing), RENDER_CHUNK):
        chunk = missing[start : start + RENDER_CHUNK]
        seeds = [image_seed(config.base_seed, subject.name, p, s) for p, s in chunk]
        images = method.generate([prompts[p] for p, _ in chunk], seeds)
        if len(images) != len(chunk):
            raise BenchError(
                f"method {config.method!r} returned {len(images)} images for {len(chunk)} prompts"
            )
        for (p, s), seed, image in zip(chunk, seeds, images):
            data = _png_bytes(image.convert("RGB"))
            atomic_write_bytes(rd.image_path(subject.name, p, s), data)
            index[(p, s)] = {
                "file": image_name(p, s),
                "prompt_idx": p,
                "sample_idx": s,
                "prompt": prompts[p],
                "identifier": identifier,
                "seed": seed,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        rd.write_images_index(subject.name, list(index.values()))
        progress.advance_images(len(chunk))


def _score_images(
    rd: RunDir, scorer: Scorer, subject: Subject, images: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Score every image and write scores.jsonl."""
    identifiers = {r["identifier"] for r in images}
    if len(identifiers) != 1:
        raise BenchError(
            f"{rd.subject_dir(subject.name)}/images.jsonl mixes identifiers {sorted(identifiers)}; rerun with --force"
        )
    refs = [ImageRef(path=rd.images_dir(subject.name) / r["file"], sha256=r["sha256"]) for r in images]
    scores = scorer.score_generated(
        _real_refs(subject), refs, [r["prompt"] for r in images], identifiers.pop()
    )
    rows = [
        {
            "file": r["file"],
            "sha256": r["sha256"],
            "prompt_idx": r["prompt_idx"],
            "sample_idx": r["sample_idx"],
            **s,
        }
        for r, s in zip(images, scores)
    ]
    rd.write_scores(subject.name, rows)
    return rows


def _pres_index(rd: RunDir, subject: Subject, n: int) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """(index of existing PRES samples by sample index, missing sample indices)."""
    rows = {r["sample_idx"]: r for r in rd.read_jsonl(rd.subject_dir(subject.name) / "pres.jsonl")}
    rows = {k: r for k, r in rows.items() if k < n}
    missing = [
        k for k in range(n) if k not in rows or not (rd.pres_dir(subject.name) / rows[k]["file"]).exists()
    ]
    return rows, missing


def _render_pres(
    rd: RunDir, method: Any, subject: Subject, rows: dict, missing: list[int], config: RunConfig
) -> None:
    """Render the missing "a {class}" samples of the fine-tuned model (for PRES): no identifier."""
    prompt = f"a {subject.class_noun}"
    seeds = [image_seed(config.base_seed, subject.name, PRES_PROMPT_IDX, k) for k in missing]
    for k, seed, image in zip(missing, seeds, method.generate([prompt] * len(missing), seeds)):
        data = _png_bytes(image.convert("RGB"))
        atomic_write_bytes(rd.pres_dir(subject.name) / f"{k}.png", data)
        rows[k] = {
            "file": f"{k}.png",
            "sample_idx": k,
            "prompt": prompt,
            "seed": seed,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    rd.write_jsonl(rd.subject_dir(subject.name) / "pres.jsonl", [rows[k] for k in sorted(rows)])


def _optional_scores(
    rd: RunDir, scorer: Scorer, subject: Subject, images: list[dict[str, Any]], pres_rows: dict, spec: RunSpec
) -> dict[str, Any]:
    """PRES and DIV of one subject, reusing optional_scores.json while its inputs are unchanged."""
    path = rd.subject_dir(subject.name) / "optional_scores.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    before = json.dumps(stored, sort_keys=True)
    out: dict[str, Any] = {}
    if "pres" in spec.optional_metrics:
        shas = [pres_rows[k]["sha256"] for k in sorted(pres_rows)]
        if stored.get("pres", {}).get("sha256") != shas:
            refs = [
                ImageRef(rd.pres_dir(subject.name) / pres_rows[k]["file"], pres_rows[k]["sha256"])
                for k in sorted(pres_rows)
            ]
            stored["pres"] = {"value": scorer.score_preservation(_real_refs(subject), refs), "sha256": shas}
        out["pres"] = (stored["pres"]["value"], len(shas))
    if "div" in spec.optional_metrics:
        shas = [r["sha256"] for r in images]
        if stored.get("div", {}).get("sha256") != shas:
            by_prompt: dict[int, list[ImageRef]] = {}
            for r in images:
                by_prompt.setdefault(r["prompt_idx"], []).append(
                    ImageRef(rd.images_dir(subject.name) / r["file"], r["sha256"])
                )
            stored["div"] = {**scorer.score_diversity(by_prompt), "sha256": shas}
        out["div"] = {"div": stored["div"]["div"], "per_prompt": stored["div"]["per_prompt"]}
    if json.dumps(stored, sort_keys=True) != before:
        rd.write_json(path, stored)
    return out


def run_subject(
    rd: RunDir, method: Any, scorer: Scorer, subject: Subject, spec: RunSpec, progress: RunProgress
) -> dict[str, Any]:
    """Do (or resume) one subject and return its summary for results.json."""
    config, prompt_set, device = spec.config, spec.prompt_set, spec.device
    name = subject.name
    rd.sweep_temp_files(name)
    meta = {"kind": subject.kind, "class_noun": subject.class_noun, "n_real": len(subject.image_paths)}
    if getattr(method, "scores_real_pairs", False):
        progress.start_subject(name, "score real pairs", 0)
        rows = rd.read_scores(name)
        shas = sorted(subject.image_sha256)
        if not (len(rows) == 1 and rows[0].get("real_sha256") == shas):
            method.prepare(subject, rd.prepare_dir(name))
            with measure_stage(device) as cost:
                scores = scorer.score_real_pairs(_real_refs(subject))
            rows = [{"kind": "real_pairs", "real_sha256": shas, **scores}]
            rd.write_scores(name, rows)
            rd.record_cost(name, score=cost)
        summary = summarize_real_pairs(rows[0], len(subject.image_paths))
        return {**meta, **summary, "cost": rd.read_cost(name)}

    index, expected, missing = _missing_images(rd, subject, prompt_set, config)
    n_pres = spec.pres_samples if "pres" in spec.optional_metrics else 0
    pres_rows, pres_missing = _pres_index(rd, subject, n_pres)
    progress.start_subject(name, "prepare", len(expected) + n_pres)
    progress.advance_images(len(expected) - len(missing) + n_pres - len(pres_missing))
    if missing or pres_missing:
        with measure_stage(device) as prepare_cost:
            method.prepare(subject, rd.prepare_dir(name))
        identifier = method.identifier(subject)
        prompts = prompt_set.render(subject.kind, identifier, subject.class_noun)
        progress.stage(name, "render")
        with measure_stage(device) as render_cost:
            _render(rd, method, subject, prompts, identifier, index, missing, config, progress)
            if pres_missing:
                _render_pres(rd, method, subject, pres_rows, pres_missing, config)
                progress.advance_images(len(pres_missing))
        method.release()
        rd.record_cost(name, prepare=prepare_cost, render=render_cost)
    images = [index[k] for k in expected]
    progress.stage(name, "score")
    rows = rd.read_scores(name)
    if [(r.get("file"), r.get("sha256")) for r in rows] != [(r["file"], r["sha256"]) for r in images]:
        with measure_stage(device) as score_cost:
            rows = _score_images(rd, scorer, subject, images)
        rd.record_cost(name, score=score_cost)
    summary = summarize_subject_images(rows, len(subject.image_paths))
    if spec.optional_metrics:
        optional = _optional_scores(rd, scorer, subject, images, pres_rows, spec)
        add_optional_metrics(
            summary, len(subject.image_paths), images_per_prompt=config.images_per_prompt, **optional
        )
    return {
        **meta,
        "identifier": images[0]["identifier"],
        "n_generated": len(rows),
        **summary,
        "cost": rd.read_cost(name),
    }


def _method_config(method: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    config = getattr(method, "config", None)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return dict(overrides)


def _previous_results(rd: RunDir) -> dict[str, Any]:
    """The run directory's last results.json, or {} (also when unreadable: it is rebuilt)."""
    try:
        previous = json.loads(rd.results_path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return previous if previous.get("schema_version") == SCHEMA_VERSION else {}


def _attach_intervals(results: dict[str, Any], seed: int) -> None:
    """Bootstrap 95% intervals for every figure: top-level ``ci`` and each section's ``ci``."""
    from dreambench.metrics.statistics import intervals_for_results

    ci = intervals_for_results(results, seed=seed)
    results["ci"] = ci
    for scope in ("overall", "overall_live", "overall_object"):
        results[scope]["ci"] = ci[scope]
    for name, subject in results["subjects"].items():
        subject["ci"] = ci["subjects"].get(name, {})


def make_run_config(
    *,
    method: Any,
    method_name: str,
    method_args: dict[str, Any],
    preset: str,
    method_preset: str,
    metric_preset: str,
    prompt_set: PromptSet,
    images_per_prompt: int,
    base_seed: int,
    dataset_info: dict[str, Any],
) -> RunConfig:
    """The frozen config of a run; its hash names the run directory."""
    return RunConfig(
        method=method_name,
        method_preset=method_preset,
        method_config=_method_config(method, method_args),
        preset=preset,
        metric_preset=metric_preset,
        prompt_set={"name": prompt_set.name, "version": prompt_set.version, "sha256": prompt_set.sha256},
        images_per_prompt=images_per_prompt,
        base_seed=base_seed,
        dataset=dataset_info,
    )


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker process needs to rebuild the method and the scorer (picklable)."""

    config: RunConfig
    method_args: dict[str, Any]
    prompt_set: PromptSet
    run_dir: Path
    device: str
    keep_weights: bool = False
    embedder_backend: str | None = None
    optional_metrics: tuple[str, ...] = ()
    pres_samples: int = PRES_SAMPLES


class SubjectWorker:
    """Runs subjects of one run; builds the method and the scorer once, on first use.

    The local executor passes ready instances (so `bench eval` can use its own method); a remote
    executor sends the picklable ``spec`` and each worker process builds its own.
    """

    def __init__(self, spec: RunSpec, method: Any = None, scorer: Scorer | None = None) -> None:
        self.spec = spec
        self._method = method
        self._scorer = scorer

    @property
    def method(self) -> Any:
        if self._method is None:
            from dreambench.registry import create_method

            c = self.spec.config
            self._method = create_method(
                c.method,
                c.method_preset,
                self.spec.method_args,
                device=self.spec.device,
                seed=c.base_seed,
                keep_weights=self.spec.keep_weights,
            )
        return self._method

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = Scorer(
                self.spec.config.metric_preset, device=self.spec.device, backend=self.spec.embedder_backend
            )
        return self._scorer

    def __call__(self, subject: Subject, progress: RunProgress) -> dict[str, Any]:
        rd = RunDir(self.spec.run_dir)
        return run_subject(rd, self.method, self.scorer, subject, self.spec, progress)


def _failure_text(exc: BaseException) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"


def execute_run(
    *,
    spec: RunSpec,
    subjects: Sequence[Subject],
    method: Any = None,
    scorer: Scorer | None = None,
    executor: Executor | None = None,
    force: bool = False,
    progress_enabled: bool = True,
) -> RunOutcome:
    """Run (or resume) the benchmark for ``subjects`` and write results.json."""
    config = spec.config
    rd = RunDir(spec.run_dir)
    rd.check_config(config.to_dict())
    worker = SubjectWorker(spec, method, scorer)
    # Resolve the embedders' and the method's weights now: a missing-weights error comes before
    # anything is written.
    metrics_info = worker.scorer.metrics_info()
    if hasattr(worker.method, "check_ready"):
        worker.method.check_ready()
    if spec.optional_metrics and not getattr(worker.method, "scores_real_pairs", False):
        metrics_info.update(worker.scorer.optional_metrics_info(spec.optional_metrics))
    if not getattr(worker.method, "scores_real_pairs", False):
        todo = [s for s in subjects if force or _missing_images(rd, s, spec.prompt_set, config)[2]]
        n_images = len(spec.prompt_set.object) * config.images_per_prompt
        check_disk_space(worker.method, todo, n_images, rd.root, spec.keep_weights)
    rd.sweep_temp_files()
    rd.write_json(rd.config_path, config.to_dict())
    stamp = make_stamp(spec.device)
    rd.write_json(rd.stamp_path, stamp)

    # results.json covers every subject finished in this run directory: subjects done by earlier
    # invocations (same config, so still valid) are kept beside the ones selected now.
    previous = _previous_results(rd)
    selected = {s.name for s in subjects}
    summaries = {k: v for k, v in previous.get("subjects", {}).items() if k not in selected}
    failures = {k: v for k, v in previous.get("failures", {}).items() if k not in selected}
    errors: list[BaseException] = []
    for subject in subjects:
        if force and rd.subject_dir(subject.name).exists():
            shutil.rmtree(rd.subject_dir(subject.name))
        (rd.subject_dir(subject.name) / "error.txt").unlink(missing_ok=True)

    def on_result(name: str, summary: dict[str, Any] | None, exc: BaseException | None, trace: str) -> None:
        if exc is None:
            summaries[name] = summary
            return
        errors.append(exc)
        failures[name] = _failure_text(exc)
        rd.subject_dir(name).mkdir(parents=True, exist_ok=True)
        (rd.subject_dir(name) / "error.txt").write_text(trace)
        progress.log(f"[red]{name} failed:[/red] {failures[name]}")

    from dreambench.executors.local import LocalExecutor

    with RunProgress(len(subjects), enabled=progress_enabled) as progress:
        (executor or LocalExecutor()).run(worker, list(subjects), progress, on_result)
    if errors and len(errors) == len(subjects) and all(isinstance(e, BenchError) for e in errors):
        if (
            len({str(e) for e in errors}) == 1
        ):  # the same configuration problem for every subject: say it once
            raise errors[0]

    reasons = []
    if not worker.scorer.calibrated:
        reasons.append(f"metric preset {config.metric_preset!r} uses seeded random-weight embedders")
    if not getattr(worker.method, "calibrated", True):
        reasons.append(
            f"method {config.method!r} ran on random-weight models ({config.method_preset} preset)"
        )
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "method": config.method,
            "method_preset": config.method_preset,
            "method_config": config.method_config,
            "preset": config.preset,
            "metric_preset": config.metric_preset,
            "config_hash": config.hash,
            "run_dir": str(rd.root),
        },
        "calibrated": not reasons,
        "uncalibrated_reasons": reasons,
        "dataset": config.dataset,
        "prompt_set": config.prompt_set,
        "protocol": {
            "images_per_prompt": config.images_per_prompt,
            "base_seed": config.base_seed,
            "pairing": "all (generated, real) pairs; real-images: distinct real-real pairs",
            "clip_t_text": metrics_info["clip_t"]["text"],
            "aggregation": "mean over subjects (pooled all-pairs mean as *_all_pairs)",
            **(
                {"pres_samples": spec.pres_samples, "pres_prompt": "a {class_noun}"}
                if "pres" in metrics_info
                else {}
            ),
        },
        "metrics": metrics_info,
        "subjects": dict(sorted(summaries.items())),
        "overall": summarize_overall(summaries),
        "overall_live": summarize_overall({k: v for k, v in summaries.items() if v["kind"] == "live"}),
        "overall_object": summarize_overall({k: v for k, v in summaries.items() if v["kind"] == "object"}),
        "failures": dict(sorted(failures.items())),
        "cost": summarize_costs({k: v.get("cost", {}) for k, v in summaries.items()}),
        "stamp": stamp,
    }
    _attach_intervals(results, config.base_seed)
    rd.write_json(rd.results_path, results)
    return RunOutcome(run_dir=rd, results=results, failures=failures)

"""The runner loop: for each subject, prepare the method, render the missing images, score, and
write results. Resumable at image granularity; knows nothing about diffusion.

Per subject (see bench/store.py for the files):

1. Images: every (prompt_idx, sample_idx) whose PNG or index line is missing, or whose PNG does
   not hash to the sha256 its index line records, is rendered with the seed
   ``image_seed(base_seed, subject, prompt_idx, sample_idx)``; the index is rewritten after each
   chunk, so a kill loses at most the chunk in flight.
2. Scores: recomputed only when scores.jsonl does not cover exactly the current images (by sha256)
   with their figures; the embedding cache makes that cheap when most images are unchanged. A
   damaged derived file is recomputed, never a failure; a damaged cost.json keeps its good records
   and marks the other stages' cost unknown until they do work again (a time is never guessed).
3. Summary: the per-subject figures (metrics/aggregate.py), written to summary.json.

A subject that raises is recorded in its error.txt (the failure's line, then the traceback) and
the others go on. results.json is built from the subject folders on disk (summary.json: a row,
error.txt: a failure), so it does not depend on the order or the invocations that made them.
Subjects are handed to an executor (bench/executors/): in-process by default, or one Ray task
per subject.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.atomic import atomic_write_bytes, atomic_write_text, reclaimed_bytes
from dreambench.config import RunConfig
from dreambench.cost import measure_stage, summarize_costs, valid_stage_costs
from dreambench.dataset.images import file_sha256
from dreambench.dataset.prompts import PromptSet
from dreambench.dataset.subject import Subject
from dreambench.disk_space import check_disk_space
from dreambench.errors import BenchError
from dreambench.leaderboard.results import SCHEMA_VERSION
from dreambench.method import MethodHandle, RunContext
from dreambench.metrics.aggregate import (
    add_optional_metrics,
    summarize_overall,
    summarize_real_pairs,
    summarize_subject_images,
)
from dreambench.metrics.embedder import DEFAULT_PRECISION
from dreambench.metrics.metric_registry import CORE_METRICS, get_metric
from dreambench.metrics.metric_spec import SubjectImages, SubjectScore
from dreambench.metrics.presets import PAIRINGS
from dreambench.metrics.scorer import ImageRef, Scorer
from dreambench.metrics.subject_groups import (
    GROUP_SCORING,
    group_image_rows,
    overall_group_min,
    summarize_group,
)
from dreambench.progress import RunProgress
from dreambench.run_lock import run_lock
from dreambench.seeds import image_seed
from dreambench.stamp import make_stamp
from dreambench.store import RunDir, image_name

if TYPE_CHECKING:
    from dreambench.executors.local import Executor

RENDER_CHUNK = 50
# A subject's markers: summary.json when it finished (its row in results.json), error.txt when it
# failed (first line: the failure results.json lists; then the traceback).
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.txt"
# "a {class}" samples rendered per subject for PRES (prompt index -1 in the seed scheme).
PRES_SAMPLES = 8
PRES_PROMPT_IDX = -1


@dataclass
class RunOutcome:
    run_dir: RunDir
    results: dict[str, Any]
    failures: dict[str, str] = field(default_factory=dict)


def _png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _real_refs(subject: Subject) -> list[ImageRef]:
    return [ImageRef(path=p, sha256=s) for p, s in zip(subject.image_paths, subject.image_sha256)]


def _missing_images(
    rd: RunDir, subject: Subject, prompt_set: PromptSet, config: RunConfig
) -> tuple[dict, list, list]:
    """(index of the images that can be reused by (prompt_idx, sample_idx), expected keys, missing keys).

    An image is reused only when its file's sha256 is the one its index line records: a 0-byte,
    truncated or replaced PNG (or a damaged index line) is rendered again, never scored as is.
    """
    n_prompts = len(prompt_set.templates(subject.kind, subject.name))
    expected = [(p, s) for p in range(n_prompts) for s in range(config.images_per_prompt)]
    wanted = set(expected)
    index = {
        (r["prompt_idx"], r["sample_idx"]): r
        for r in rd.read_images_index(subject.name)
        if _INDEX_KEYS <= r.keys() and (r["prompt_idx"], r["sample_idx"]) in wanted
    }
    index = {k: r for k, r in index.items() if _file_matches(rd.image_path(subject.name, *k), r["sha256"])}
    missing = [k for k in expected if k not in index]
    return index, expected, missing


_INDEX_KEYS = frozenset({"file", "prompt_idx", "sample_idx", "prompt", "identifier", "seed", "sha256"})


def _file_matches(path: Path, sha256: Any) -> bool:
    """Whether ``path`` exists and its bytes hash to ``sha256``."""
    try:
        return file_sha256(path) == sha256
    except OSError:
        return False


def _render(
    rd: RunDir,
    method: MethodHandle,
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
        images = method.generate(subject, rd.prepare_dir(subject.name), [prompts[p] for p, _ in chunk], seeds)
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
    identifier = identifiers.pop()

    def score_against(real: Subject) -> list[dict[str, Any]]:
        return scorer.score_generated(
            _real_refs(real),
            refs,
            [r["prompt"] for r in images],
            identifier,
            positions=[(int(r["prompt_idx"]), int(r["sample_idx"])) for r in images],
        )

    # A subject group: each image against each of its subjects, then the group's mean and minimum.
    scores = (
        group_image_rows({m.name: score_against(m) for m in subject.members})
        if subject.members
        else score_against(subject)
    )
    rows = [
        {
            "file": r["file"],
            "sha256": r["sha256"],
            "prompt_idx": r["prompt_idx"],
            "sample_idx": r["sample_idx"],
            **s,
            # The scoring identity (embedders, weights sha256, precision, ...): reuse is keyed by it.
            "scoring": scorer.identity_key(),
        }
        for r, s in zip(images, scores)
    ]
    rd.write_scores(subject.name, rows)
    return rows


def _has_figures(row: dict[str, Any], keys: Sequence[str]) -> bool:
    """Whether ``row`` holds every key, each a number or None ("does not apply")."""
    return all(k in row and (row[k] is None or isinstance(row[k], (int, float))) for k in keys)


def _scores_match(
    rows: list[dict[str, Any]], images: list[dict[str, Any]], scoring: str, members: Sequence[str] = ()
) -> bool:
    """Whether scores.jsonl covers exactly these images (by file and sha256), each with its figures,
    all scored under the identity ``scoring`` (Scorer.identity_key).

    Anything else (a damaged or hand-edited file, scores of older images, scores made with other
    embedders, weights or precision) is recomputed, never relabelled.
    """
    covered = [(r.get("file"), r.get("sha256")) for r in rows] == [(r["file"], r["sha256"]) for r in images]
    return covered and all(
        _has_figures(r, CORE_METRICS)
        and isinstance(r.get("prompt_idx"), int)
        and r.get("scoring") == scoring
        # A group's rows hold each of its subjects' figures (metrics/subject_groups.py).
        and (not members or (isinstance(r.get("members"), dict) and list(r["members"]) == list(members)))
        for r in rows
    )


def _read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file the runner can rebuild, or {} when it is absent or damaged."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _stored_for(stored: dict[str, Any], key: str, shas: list[str]) -> bool:
    """Whether optional_scores.json's ``key`` entry was computed from exactly these images."""
    entry = stored.get(key)
    return isinstance(entry, dict) and entry.get("sha256") == shas


def _pres_index(rd: RunDir, subject: Subject, n: int) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """(index of the PRES samples that can be reused by sample index, missing sample indices);
    reused only when the file's sha256 is the one pres.jsonl records, like the images."""
    rows = {
        r["sample_idx"]: r
        for r in rd.read_jsonl(rd.subject_dir(subject.name) / "pres.jsonl")
        if _PRES_KEYS <= r.keys() and isinstance(r["sample_idx"], int) and 0 <= r["sample_idx"] < n
    }
    folder = rd.pres_dir(subject.name)
    rows = {k: r for k, r in rows.items() if _file_matches(folder / f"{k}.png", r["sha256"])}
    missing = [k for k in range(n) if k not in rows]
    return rows, missing


_PRES_KEYS = frozenset({"file", "sample_idx", "prompt", "seed", "sha256"})


def _render_pres(
    rd: RunDir, method: MethodHandle, subject: Subject, rows: dict, missing: list[int], config: RunConfig
) -> None:
    """Render the missing "a {class}" samples of the fine-tuned model (for PRES): no identifier."""
    prompt = f"a {subject.class_noun}"
    seeds = [image_seed(config.base_seed, subject.name, PRES_PROMPT_IDX, k) for k in missing]
    for k, seed, image in zip(missing, seeds, method.generate(subject, rd.prepare_dir(subject.name), [prompt] * len(missing), seeds)):
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


def _class_sample_metrics(names: Sequence[str]) -> list[str]:
    """The optional metrics among `names` that need the method's "a {class}" samples (PRES)."""
    return [n for n in names if get_metric(n).pairing == "class-samples"]


def _optional_scores(
    rd: RunDir, scorer: Scorer, subject: Subject, images: list[dict[str, Any]], pres_rows: dict, spec: RunSpec
) -> dict[str, SubjectScore]:
    """The requested optional metrics of one subject (PRES, DIV, outside ones), each by its declared
    computation, reusing optional_scores.json while its inputs, version and scoring identity are
    unchanged."""
    path = rd.subject_dir(subject.name) / "optional_scores.json"
    stored = _read_json_object(path)
    before = json.dumps(stored, sort_keys=True)
    inputs = SubjectImages(
        real=tuple(_real_refs(subject)),
        generated=tuple(ImageRef(rd.images_dir(subject.name) / r["file"], r["sha256"]) for r in images),
        prompt_idx=tuple(int(r["prompt_idx"]) for r in images),
        class_samples=tuple(
            ImageRef(rd.pres_dir(subject.name) / pres_rows[k]["file"], pres_rows[k]["sha256"])
            for k in sorted(pres_rows)
        ),
        images_per_prompt=spec.config.images_per_prompt,
    )
    out: dict[str, SubjectScore] = {}
    for name in spec.optional_metrics:
        metric = get_metric(name)
        shas = inputs.inputs(metric.pairing)
        entry = stored.get(name)
        reusable = (
            _stored_for(stored, name, shas)
            and entry.get("version") == metric.version
            and entry.get("scoring") == scorer.identity_key()
            and _has_figures(entry, ("value",))
            and isinstance(entry.get("weight"), int)
            and isinstance(entry.get("per_prompt"), (dict, type(None)))
            and isinstance(entry.get("per_image"), (dict, type(None)))
        )
        if not reusable:
            score = scorer.score_optional(name, inputs)
            stored[name] = {
                "value": score.value,
                "per_prompt": score.per_prompt,
                "weight": score.weight,
                **({"per_image": score.per_image} if score.per_image is not None else {}),
                "sha256": shas,
                "version": metric.version,
                "scoring": scorer.identity_key(),
            }
        entry = stored[name]
        out[name] = SubjectScore(entry["value"], entry["weight"], entry["per_prompt"], entry.get("per_image"))
    if json.dumps(stored, sort_keys=True) != before:
        rd.write_json(path, stored)
    return out


def run_subject(
    rd: RunDir, method: MethodHandle, scorer: Scorer, subject: Subject, spec: RunSpec, progress: RunProgress
) -> dict[str, Any]:
    """Do (or resume) one subject and return its summary for results.json."""
    config, prompt_set, device = spec.config, spec.prompt_set, spec.device
    name = subject.name
    rd.sweep_temp_files(name)
    cost_problem = rd.repair_cost(name, ("score",) if method.scores_real_pairs else COST_STAGES)
    meta = {"kind": subject.kind, "class_noun": subject.class_noun, "n_real": len(subject.image_paths)}
    if subject.category is not None:
        meta["category"] = subject.category
    consumed = method.consumed_images(subject)
    meta["images_consumed"] = None if consumed is None else [Path(p).name for p in consumed]
    meta["images_scored_against"] = [Path(p).name for p in subject.image_paths]
    if method.scores_real_pairs:
        progress.start_subject(name, "score real pairs", 0)
        rows = rd.read_scores(name)
        shas = sorted(subject.image_sha256)
        reusable = (
            len(rows) == 1
            and rows[0].get("real_sha256") == shas
            and rows[0].get("scoring") == scorer.identity_key()
        )
        if not (reusable and _has_figures(rows[0], [m for m in CORE_METRICS if get_metric(m).pairing == "real"])):
            method.prepare(subject, rd.prepare_dir(name))
            with measure_stage(device) as cost:
                scores = scorer.score_real_pairs(_real_refs(subject))
            rows = [{"kind": "real_pairs", "real_sha256": shas, **scores, "scoring": scorer.identity_key()}]
            rd.write_scores(name, rows)
            rd.record_cost(name, score=cost)
        summary = summarize_real_pairs(rows[0], len(subject.image_paths))
        return {**meta, **summary, "scoring": scorer.identity_key(), "cost": _subject_cost(rd, name, cost_problem)}

    index, expected, missing = _missing_images(rd, subject, prompt_set, config)
    n_pres = spec.pres_samples if _class_sample_metrics(spec.optional_metrics) else 0
    pres_rows, pres_missing = _pres_index(rd, subject, n_pres)
    progress.start_subject(name, "prepare", len(expected) + n_pres)
    progress.advance_images(len(expected) - len(missing) + n_pres - len(pres_missing))
    if missing or pres_missing:
        # release() runs whatever happens to prepare/generate: device memory and per-subject
        # weights must not outlive a failed subject.
        try:
            with measure_stage(device) as prepare_cost:
                method.prepare(subject, rd.prepare_dir(name))
            work = method.prepare_work
            if work:
                prepare_cost["parts"] = work
            identifier = method.identifier(subject)
            prompts = prompt_set.render(subject.kind, identifier, subject.class_noun, subject.name)
            progress.stage(name, "render")
            with measure_stage(device) as render_cost:
                _render(rd, method, subject, prompts, identifier, index, missing, config, progress)
                if pres_missing:
                    _render_pres(rd, method, subject, pres_rows, pres_missing, config)
                    progress.advance_images(len(pres_missing))
            render_cost["images"] = len(missing) + len(pres_missing)
        finally:
            method.release()
        rd.record_cost(name, prepare=prepare_cost, render=render_cost)
    images = [index[k] for k in expected]
    progress.stage(name, "score")
    rows = rd.read_scores(name)
    members = [m.name for m in subject.members]
    if not _scores_match(rows, images, scorer.identity_key(), members):
        loaded_before = scorer.load_seconds
        with measure_stage(device) as score_cost:
            rows = _score_images(rd, scorer, subject, images)
        score_cost["load_s"] = round(scorer.load_seconds - loaded_before, 3)
        # The images this stage embedded (through the cache): the generated ones and the real ones.
        score_cost["images"] = len(images) + len(subject.image_paths)
        rd.record_cost(name, score=score_cost)
    # One pair per generated image under a one-pair pairing (dreambench-plus, uno), n_real otherwise;
    # a group's image is paired with each of its subjects.
    pairs_per_image = sum(
        scorer.preset.pairs_per_image(len(s.image_paths)) for s in (subject.members or (subject,))
    )
    summary = summarize_subject_images(rows, pairs_per_image)
    if subject.members:
        summary.update(summarize_group(rows, [m for m in summary["pair_counts"]]))
    if spec.optional_metrics:
        optional = _optional_scores(rd, scorer, subject, images, pres_rows, spec)
        add_optional_metrics(summary, optional)
    return {
        **meta,
        "identifier": images[0]["identifier"],
        "n_generated": len(rows),
        "scoring": scorer.identity_key(),
        **summary,
        "cost": _subject_cost(rd, name, cost_problem),
    }


#: The stages whose cost a rendering subject records (bench/cost.py).
COST_STAGES = ("prepare", "render", "score")


def _subject_cost(rd: RunDir, name: str, problem: str | None) -> dict[str, Any]:
    """The subject's cost.json; when a damaged one left stages unknown (they had nothing to redo,
    and a stage's time cannot be recomputed without redoing it), say so in one line."""
    cost = rd.read_cost(name)
    unknown = [stage for stage, record in cost.items() if record is None]
    if unknown:
        print(
            f"warning: {rd.subject_dir(name) / 'cost.json'} {problem or 'was damaged earlier'}; "
            f"{name}'s cost of {', '.join(unknown)} is unknown (results.json cost.unknown)",
            file=sys.stderr,
        )
    return cost


def _method_config(method: MethodHandle, overrides: dict[str, Any]) -> dict[str, Any]:
    config = method.config_dict()
    return config if config is not None else dict(overrides)


def _identifier_candidates(method: MethodHandle) -> dict[str, Any] | None:
    """The rare-token candidate list's identity when the method declares that it picks its
    identifier from it (``identifier_scheme == "rare"``): a new list can give a subject another
    identifier, hence other images."""
    from dreambench.reference_impl.identifier import RARE_SCHEME, candidate_list_identity

    return candidate_list_identity() if method.identifier_scheme == RARE_SCHEME else None


_SUMMARY_KEYS = frozenset({"kind", *CORE_METRICS, "pair_counts"})


def _finished_subjects(rd: RunDir) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[str]]:
    """(summaries, failures, damaged) of every subject folder now in the run directory, by name.

    results.json is a function of what is on disk, not of the history that put it there: a
    subject's row comes from its summary.json (written when it finished), a failure from its
    error.txt, and a deleted folder leaves no row behind. A summary.json that does not parse is
    listed in ``damaged`` (rerunning the subject rebuilds it from the files it derives from).
    """
    summaries: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    damaged: list[str] = []
    root = rd.root / "subjects"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        error = folder / ERROR_FILE
        if error.is_file():
            lines = error.read_text(errors="replace").splitlines()
            failures[folder.name] = lines[0] if lines else "failed (error.txt is empty)"
            continue
        if not (folder / SUMMARY_FILE).exists():
            continue
        summary = _read_json_object(folder / SUMMARY_FILE)
        if _SUMMARY_KEYS <= summary.keys() and summary["kind"] in ("live", "object"):
            summaries[folder.name] = summary
        else:
            damaged.append(folder.name)
    return summaries, failures, damaged


def _group_sections(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``overall_group_min`` (mean over the groups of each group's minimum) and the rule that scored
    the groups, when the run's subjects are groups; nothing otherwise."""
    metrics = sorted({m for s in summaries.values() for m in s.get("group_min", {})})
    group_min = overall_group_min(summaries, metrics)
    return {} if group_min is None else {"overall_group_min": group_min, "group_scoring": GROUP_SCORING}


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
    method: MethodHandle,
    method_args: dict[str, Any],
    preset: str,
    method_preset: str,
    metric_preset: str,
    prompt_set: PromptSet,
    images_per_prompt: int,
    base_seed: int,
    dataset_info: dict[str, Any],
    clip_t_keep_identifier: bool = False,
    scoring: dict[str, Any] | None = None,
) -> RunConfig:
    """The frozen config of a run; its hash names the run directory.

    ``clip_t_keep_identifier``: the scorer's effective CLIP-T text rule (the preset's, or the
    ``--clip-t-keep-identifier`` override). ``scoring``: the scorer's ``identity()`` (embedder
    backends, weights ids and sha256, precision, metric versions).
    """
    from dreambench.code_identity import code_identity
    from dreambench.presets import render_record

    method_config = _method_config(method, method_args)
    return RunConfig(
        method=method.name,
        method_class=method.source()["class"],
        code=code_identity(method),
        render_protocol=render_record(preset, images_per_prompt, method),
        method_preset=method_preset,
        method_config=method_config,
        identifier_candidates=_identifier_candidates(method),
        clip_t_keep_identifier=clip_t_keep_identifier,
        scoring=scoring,
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


def run_context(spec: RunSpec) -> RunContext:
    """The run-level settings a method's ``setup`` receives."""
    c = spec.config
    return RunContext(
        device=spec.device,
        seed=c.base_seed,
        keep_weights=spec.keep_weights,
        method_preset=c.method_preset,
        run_preset=c.preset,
    )


def _check_code(method: MethodHandle, config: RunConfig) -> None:
    """Refuse a method rebuilt in another process (a Ray worker) from other code than the run's:
    its images would be filed under the run's code identity."""
    from dreambench.code_identity import code_identity

    if config.code is not None and code_identity(method) != config.code:
        raise BenchError(
            f"method {method.name!r}: the code loaded here ({code_identity(method)}) differs from the run's "
            f"({config.code}); install the same version of {config.method_class} on every worker"
        )


class SubjectWorker:
    """Runs subjects of one run; builds the method and the scorer once, on first use.

    The local executor passes ready instances (so `bench eval` can use its own method); a remote
    executor sends the picklable ``spec`` and each worker process builds its own.
    """

    def __init__(
        self, spec: RunSpec, method: MethodHandle | None = None, scorer: Scorer | None = None
    ) -> None:
        self.spec = spec
        self._method = method
        self._scorer = scorer
        self._set_up = False

    @property
    def method(self) -> MethodHandle:
        if self._method is None:
            from dreambench.registry import create_method

            # Built from the class path, not the name: a `module:Class` plugin has no registry entry.
            method = create_method(
                self.spec.config.method_class, self.spec.config.method_preset, self.spec.method_args
            )
            _check_code(method, self.spec.config)
            self._method = method
        return self._method

    def ready_method(self) -> MethodHandle:
        """The method, set up for the run (``setup(context)``) in the process that runs subjects:
        a Ray driver that only checks and records never loads the method's models."""
        method = self.method
        if not self._set_up:
            method.setup(run_context(self.spec))
            self._set_up = True
        return method

    def close(self) -> None:
        """The method's run-level teardown (once per worker that set it up, also after failures)."""
        if self._set_up and self._method is not None:
            self._set_up = False
            self._method.teardown()

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = Scorer(
                self.spec.config.metric_preset,
                device=self.spec.device,
                backend=self.spec.embedder_backend,
                clip_t_keep_identifier=self.spec.config.clip_t_keep_identifier,
                precision=(self.spec.config.scoring or {}).get("precision", DEFAULT_PRECISION),
                # The optional metrics whose versions the run's scoring identity holds.
                extra_metrics=[
                    m
                    for m in self.spec.optional_metrics
                    if m in (self.spec.config.scoring or {}).get("metric_versions", {})
                ],
            )
        return self._scorer

    def _check_scoring(self) -> None:
        """Refuse to score under another identity than the run's (e.g. a worker that resolved other
        weights files): its figures would be filed under the run's embedder ids."""
        expected = self.spec.config.scoring
        if expected is None:
            return
        actual = self.scorer.identity()
        if actual != expected:
            field = next(k for k in sorted(set(actual) | set(expected)) if actual.get(k) != expected.get(k))
            raise BenchError(
                f"this worker would score with {field}={actual.get(field)!r} but the run "
                f"{self.spec.run_dir} was configured with {expected.get(field)!r}; make the same "
                "weights and options available to every worker"
            )

    def __call__(self, subject: Subject, progress: RunProgress) -> dict[str, Any]:
        rd = RunDir(self.spec.run_dir)
        self._check_scoring()
        return run_subject(rd, self.ready_method(), self.scorer, subject, self.spec, progress)


def _format_bytes(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _failure_text(exc: BaseException) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"


def execute_run(
    *,
    spec: RunSpec,
    subjects: Sequence[Subject],
    method: MethodHandle | None = None,
    scorer: Scorer | None = None,
    executor: Executor | None = None,
    force: bool = False,
    progress_enabled: bool = True,
) -> RunOutcome:
    """Run (or resume) the benchmark for ``subjects`` and write results.json.

    The method's run-level ``teardown`` runs at the end, also when the run fails. The run
    directory's lock (bench/run_lock.py) is held throughout: a second process on the same run
    directory is refused at once (BenchError naming the holder's pid and host).
    """
    worker = SubjectWorker(spec, method, scorer)
    swept_before = reclaimed_bytes()
    with run_lock(spec.run_dir) as lock:
        if lock.took_over is not None and progress_enabled:
            print(f"took over the stale lock of {lock.took_over.describe()}", file=sys.stderr)
        try:
            outcome = _execute(spec, subjects, worker, executor, force, progress_enabled)
        finally:
            worker.close()
    reclaimed = reclaimed_bytes() - swept_before
    if reclaimed and progress_enabled:
        print(
            f"swept temp files a killed run left: {_format_bytes(reclaimed)} reclaimed", file=sys.stderr
        )
    return outcome


def _execute(
    spec: RunSpec,
    subjects: Sequence[Subject],
    worker: SubjectWorker,
    executor: Executor | None,
    force: bool,
    progress_enabled: bool,
) -> RunOutcome:
    rd = RunDir(spec.run_dir)
    metrics_info = _check_before_writing(rd, spec, subjects, worker, force)
    note = resolution_note(spec.config, worker.method)
    if note:
        print(note, file=sys.stderr)
    stamp = _write_run_files(rd, spec)
    _clear_selected(rd, subjects, force)
    _run_subjects(rd, subjects, worker, executor, progress_enabled)
    summaries, failures = _collect_finished(rd, worker.scorer.identity_key())
    results = _build_results(rd, spec, worker, metrics_info, summaries, failures, stamp)
    _attach_intervals(results, spec.config.base_seed)
    rd.write_json(rd.results_path, results)
    return RunOutcome(run_dir=rd, results=results, failures=failures)


def _check_before_writing(
    rd: RunDir, spec: RunSpec, subjects: Sequence[Subject], worker: SubjectWorker, force: bool
) -> dict[str, Any]:
    """Everything that can refuse the run, before anything is written: the run directory's config,
    the embedders' and the method's weights, disk space. Returns the metrics' description."""
    config = spec.config
    groups = [s.name for s in subjects if s.members]
    if groups and not worker.method.subject_groups:
        raise BenchError(
            f"method {worker.method.name!r} cannot personalize on subject groups, and {groups[0]!r} "
            f"is a group ({config.dataset.get('name', 'this dataset')} has {len(groups)}); use a method that "
            "declares subject_groups = True (e.g. base-model) or a single-subject dataset"
        )
    rd.check_config(config.to_dict())
    metrics_info = worker.scorer.metrics_info()
    worker.method.check_ready()
    if spec.optional_metrics and not worker.method.scores_real_pairs:
        metrics_info.update(worker.scorer.optional_metrics_info(spec.optional_metrics))
    if not worker.method.scores_real_pairs:
        todo = [s for s in subjects if force or _missing_images(rd, s, spec.prompt_set, config)[2]]
        n_images = len(spec.prompt_set.object) * config.images_per_prompt
        check_disk_space(worker.method, todo, n_images, rd.root, spec.keep_weights)
    return metrics_info


def _write_run_files(rd: RunDir, spec: RunSpec) -> dict[str, Any]:
    """Sweep what killed runs left, then write config.json and stamp.json; returns the stamp."""
    rd.sweep_all_temp_files()
    rd.write_json(rd.config_path, spec.config.to_dict())
    stamp = make_stamp(spec.device)
    rd.write_json(rd.stamp_path, stamp)
    return stamp


def _clear_selected(rd: RunDir, subjects: Sequence[Subject], force: bool) -> None:
    """A selected subject is done (or verified and reused) again now: until it finishes it has no
    row, so a kill cannot leave a row that no longer matches its files."""
    for subject in subjects:
        if force and rd.subject_dir(subject.name).exists():
            shutil.rmtree(rd.subject_dir(subject.name))
        (rd.subject_dir(subject.name) / ERROR_FILE).unlink(missing_ok=True)
        (rd.subject_dir(subject.name) / SUMMARY_FILE).unlink(missing_ok=True)


def _run_subjects(
    rd: RunDir,
    subjects: Sequence[Subject],
    worker: SubjectWorker,
    executor: Executor | None,
    progress_enabled: bool,
) -> None:
    """Hand the subjects to the executor; each outcome is written as it comes (summary.json or
    error.txt). The same configuration problem for every subject is raised once instead."""
    from dreambench.executors.local import LocalExecutor

    errors: list[BaseException] = []

    def on_result(name: str, summary: dict[str, Any] | None, exc: BaseException | None, trace: str) -> None:
        if exc is None:
            rd.write_json(rd.subject_dir(name) / SUMMARY_FILE, summary)
            return
        errors.append(exc)
        failure = _failure_text(exc)
        rd.subject_dir(name).mkdir(parents=True, exist_ok=True)
        # First line: the one-line failure results.json lists; then the traceback.
        atomic_write_text(rd.subject_dir(name) / ERROR_FILE, f"{failure}\n\n{trace}")
        progress.log(f"[red]{name} failed:[/red] {failure}")

    with RunProgress(len(subjects), enabled=progress_enabled) as progress:
        (executor or LocalExecutor()).run(worker, list(subjects), progress, on_result)
    if errors and len(errors) == len(subjects) and all(isinstance(e, BenchError) for e in errors):
        if len({str(e) for e in errors}) == 1:
            for subject in subjects:
                (rd.subject_dir(subject.name) / ERROR_FILE).unlink(missing_ok=True)
            raise errors[0]


def _collect_finished(rd: RunDir, scoring_key: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(summaries, failures) of the subject folders on disk, scored under this run's identity."""
    summaries, failures, damaged = _finished_subjects(rd)
    # A subject scored under another identity (embedders, weights, precision) is left out, never
    # relabelled with this run's ids; selecting it again rescores it.
    for name in [n for n, s in summaries.items() if s.get("scoring") != scoring_key]:
        del summaries[name]
        print(
            f"warning: subject {name} in {rd.root} was scored with other embedders, weights or "
            f"precision; left out of results.json (rerun with --subjects {name} to rescore it)",
            file=sys.stderr,
        )
    for name in damaged:
        print(
            f"warning: {rd.subject_dir(name) / SUMMARY_FILE} is damaged; "
            f"rerun with --subjects {name} to rebuild it from the subject's files",
            file=sys.stderr,
        )
    return summaries, failures


def rendered_resolution(config: RunConfig) -> int | None:
    """The resolution the run renders at: the protocol's, or the method's declared deviation's."""
    record = config.render_protocol
    if not record:
        return None
    effective = (record.get("deviation") or {}).get("effective") or record["protocol"]
    return int(effective["sampler"]["resolution"])


def resolution_note(config: RunConfig, method: MethodHandle) -> str | None:
    """One line when the method's model is native at another size than the run renders at (a
    512-px SD 1.5 under the smoke protocol's 32 px); None when they agree or either is unknown."""
    native, rendered = method.native_resolution, rendered_resolution(config)
    if native is None or rendered is None or native == rendered:
        return None
    return (
        f"note: {method.base_model or method.name} is native at {native} px; preset {config.preset!r} "
        f"renders at {rendered} px (recorded in results.json run.native_resolution)"
    )


def _uncalibrated_reasons(config: RunConfig, worker: SubjectWorker) -> list[str]:
    reasons = []
    if not worker.scorer.calibrated:
        reasons.append(
            f"metric preset {config.metric_preset!r} scores with smoke embedders (seeded or self-trained "
            "weights), not the protocol's networks"
        )
    if not worker.method.calibrated:
        base = worker.method.base_model
        where = f"base_model={base}" if base else f"{config.method_preset} preset"
        reasons.append(f"method {config.method!r} ran on a random-weight or self-trained model ({where})")
    return reasons


def _build_results(
    rd: RunDir,
    spec: RunSpec,
    worker: SubjectWorker,
    metrics_info: dict[str, Any],
    summaries: dict[str, dict[str, Any]],
    failures: dict[str, str],
    stamp: dict[str, Any],
) -> dict[str, Any]:
    """results.json (docs/RESULTS.md), before the bootstrap intervals are attached."""
    config = spec.config
    reasons = _uncalibrated_reasons(config, worker)
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "method": config.method,
            "method_kind": worker.method.kind,
            "method_source": worker.method.source(),
            "method_preset": config.method_preset,
            "method_config": config.method_config,
            "base_model": worker.method.base_model,
            # Informational (bench.method): the model's own size; the protocol says what was rendered.
            "native_resolution": worker.method.native_resolution,
            "code": config.code,
            "preset": config.preset,
            "metric_preset": config.metric_preset,
            "config_hash": config.hash,
            "run_dir": str(rd.root),
        },
        "calibrated": not reasons,
        "uncalibrated_reasons": reasons,
        "dataset": config.dataset,
        "prompt_set": config.prompt_set,
        "render_protocol": config.render_protocol,
        "identifier_candidates": config.identifier_candidates,
        "protocol": {
            "images_per_prompt": config.images_per_prompt,
            "base_seed": config.base_seed,
            "pairing": PAIRINGS[worker.scorer.preset.pairing],
            # The metric preset's conventions (metrics/presets.py): the leaderboard refuses to mix
            # protocols; the source cites where the preset's choices come from.
            "metric_protocol": worker.scorer.preset.protocol,
            "metric_source": worker.scorer.preset.source,
            "clip_t_text": metrics_info["clip_t"]["text"],
            "aggregation": "mean over subjects (pooled all-pairs mean as *_all_pairs)",
            **(
                {"pres_samples": spec.pres_samples, "pres_prompt": "a {class_noun}"}
                if _class_sample_metrics([m for m in spec.optional_metrics if m in metrics_info])
                else {}
            ),
        },
        "metrics": metrics_info,
        # fp32 is the protocol; "bf16" rows are marked in every leaderboard table and `bench
        # compare` refuses to compare across precisions. identity_key: on every scores.jsonl row.
        "scoring": {
            "precision": worker.scorer.precision,
            # What was asked for: "auto" resolves to the precision above, by what the device runs natively.
            "requested_precision": worker.scorer.requested_precision,
            "identity_key": worker.scorer.identity_key(),
            "batch_size": worker.scorer.batch_size,
        },
        "subjects": summaries,
        "overall": summarize_overall(summaries),
        "overall_live": summarize_overall({k: v for k, v in summaries.items() if v["kind"] == "live"}),
        "overall_object": summarize_overall({k: v for k, v in summaries.items() if v["kind"] == "object"}),
        "failures": dict(sorted(failures.items())),
        **_group_sections(summaries),
        "cost": summarize_costs({k: valid_stage_costs(v.get("cost")) for k, v in summaries.items()}),
        "stamp": stamp,
    }
    return results

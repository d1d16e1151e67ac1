"""Prompt sets as versioned data files.

A prompt set holds two template lists, one for objects and one for live subjects (the paper's
split: animals get outfits and accessories, objects get surfaces and materials). A template is
rendered with ``template.format(identifier, class_noun)``: ``{0}`` is the learned identifier
(e.g. "sks"), ``{1}`` the class noun; both appear, bare (no format spec, no other field), which is
checked when the set is loaded. Results record the set's name, version and sha256, and the
leaderboard refuses to compare runs whose prompt sets differ.

Shipped sets live in dataset/prompts/<name>.json, and each dataset declares its own (a run
without --prompts uses its dataset's default set); any JSON or YAML file of the same shape works
too: {"name": str, "version": str, "object": [str, ...], "live": [str, ...]}.

Datasets whose prompts are written per subject (CustomConcept101's prompt files, DreamBench++'s
captions) add ``"subjects": {subject name: [template, ...]}``: a subject listed there uses its own
list instead of its kind's (the kind lists may then be empty). A per-subject template may use
``{0}`` and ``{1}`` or neither (a published prompt that does not name the subject), never one
alone. ``"source"`` says where the text comes from and under which licence; it is documentation,
not part of the set's hash. A set without "subjects" hashes exactly as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreambench.dataset.location import DEFAULT_DATASET
from dreambench.dataset.manifest import canonical_json_bytes
from dreambench.dataset.subject import KINDS
from dreambench.errors import BenchError, did_you_mean

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
# Shipped prompt sets: name -> file in dataset/prompts/.
PROMPT_SETS: dict[str, str] = {"dreambench": "dreambench.json"}
_KEYS: tuple[str, ...] = ("name", "version", "object", "live", "subjects", "source")


def available_prompt_sets() -> list[str]:
    """Names accepted by `load_prompt_set` besides file paths."""
    return sorted(PROMPT_SETS)


@dataclass(frozen=True)
class PromptSet:
    """A named, versioned pair of template lists (see the module docstring for the format)."""

    name: str
    version: str
    object: tuple[str, ...]
    live: tuple[str, ...]
    # Subject name -> its own templates (datasets that write prompts per subject); empty for most sets.
    subjects: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no spaces) of name, version, object, live
        (and subjects, when the set has per-subject templates)."""
        payload: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "object": list(self.object),
            "live": list(self.live),
        }
        if self.subjects:
            payload["subjects"] = {name: list(t) for name, t in self.subjects.items()}
        return hashlib.sha256(canonical_json_bytes(payload)).hexdigest()

    def templates(self, kind: str, subject: str | None = None) -> tuple[str, ...]:
        """The template list of `subject` when the set has its own for it, else its kind's
        ("object" or "live"); BenchError when that list is empty."""
        if subject is not None and subject in self.subjects:
            return self.subjects[subject]
        if kind == "object":
            templates = self.object
        elif kind == "live":
            templates = self.live
        else:
            raise BenchError(f"unknown subject kind {kind!r}; valid: {', '.join(KINDS)}")
        if not templates:
            raise BenchError(
                f"prompt set {self.name!r} has no prompts for subject {subject!r} (kind {kind}); "
                f"it has its own for {len(self.subjects)} subjects: {', '.join(sorted(self.subjects)[:5])}..."
            )
        return templates

    def render(self, kind: str, identifier: str, class_noun: str, subject: str | None = None) -> list[str]:
        """``template.format(identifier, class_noun)`` for each template, whitespace runs collapsed.

        Collapsing makes an empty identifier read naturally: "a {0} {1} in the jungle" with ("", "dog")
        gives "a dog in the jungle" (the class-prompt / zero-shot form).
        """
        return [" ".join(t.format(identifier, class_noun).split()) for t in self.templates(kind, subject)]


def _template_problem(template: Any, *, per_subject: bool = False) -> str | None:
    """Why `template` cannot be rendered for every subject, or None.

    Checked when the set is loaded, so a bad template fails before any work: only the bare fields
    ``{0}`` and ``{1}`` (a format spec such as ``{0:d}`` or a nested ``{0:{2}}`` would fail, or
    change the text, only for some identifiers), each of them at least once; a `per_subject`
    template may also use neither.
    """
    if not isinstance(template, str) or not template.strip():
        return f"{template!r} is not a non-empty string"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"{template!r} is not a valid format string ({exc})"
    fields = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in ("0", "1"):
            return (
                f"{template!r} has the field {{{field}}}; valid: {{0}} (identifier) and {{1}} (class noun)"
            )
        if spec or conversion:
            shown = f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            return f"{template!r} has {shown}: a format spec or conversion; use the bare {{{field}}}"
        fields.add(field)
    if fields != {"0", "1"} and not (per_subject and not fields):
        return f"{template!r} must use both fields {{0}} (identifier) and {{1}} (class noun)"
    return None


def prompt_set_from_dict(data: Any, source: str, default_name: str) -> PromptSet:
    """Validate a parsed prompt-set document; BenchError names `source` and the first problem."""
    if not isinstance(data, dict):
        raise BenchError(f"prompt set {source} must be a mapping with keys {', '.join(_KEYS)}")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise BenchError(
            f"prompt set {source} has unknown key(s) {', '.join(unknown)}; valid: {', '.join(_KEYS)}"
        )
    subjects = data.get("subjects", {})
    if not isinstance(subjects, dict) or not all(isinstance(k, str) for k in subjects):
        raise BenchError(f"prompt set {source}: 'subjects' must map subject names to lists of templates")
    per_subject: dict[str, tuple[str, ...]] = {}
    for subject, templates in subjects.items():
        if not isinstance(templates, list) or not templates:
            raise BenchError(f"prompt set {source} needs a non-empty list of templates for subject {subject!r}")
        for i, template in enumerate(templates):
            problem = _template_problem(template, per_subject=True)
            if problem:
                raise BenchError(f"prompt set {source}: subjects[{subject!r}][{i}] {problem}")
        per_subject[subject] = tuple(templates)
    lists: dict[str, tuple[str, ...]] = {}
    for kind in ("object", "live"):
        templates = data.get(kind)
        # The kind lists may be empty only when the set writes its prompts per subject.
        if not isinstance(templates, list) or (not templates and not per_subject):
            raise BenchError(f"prompt set {source} needs a non-empty list {kind!r} of templates")
        for i, template in enumerate(templates):
            problem = _template_problem(template)
            if problem:
                raise BenchError(f"prompt set {source}: {kind}[{i}] {problem}")
        lists[kind] = tuple(templates)
    name = data.get("name", default_name)
    version = data.get("version", "custom")
    for key, value in (("name", name), ("version", version)):
        if not isinstance(value, str) or not value.strip():
            raise BenchError(f"prompt set {source}: {key!r} must be a non-empty string, got {value!r}")
    return PromptSet(
        name=name, version=version, object=lists["object"], live=lists["live"], subjects=per_subject
    )


def _read_file(path: Path) -> PromptSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read prompt set {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # only needed for YAML prompt sets

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BenchError(f"prompt set {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BenchError(f"prompt set {path} is not valid JSON: {exc}") from None
    return prompt_set_from_dict(data, str(path), default_name=path.stem)


def load_prompt_set(
    name_or_path: str | Path | None = None, *, dataset: str = DEFAULT_DATASET, data: str | Path | None = None
) -> PromptSet:
    """A prompt set by name or a JSON/YAML file by path; None: the dataset's default prompt set.

    Names are the prompt sets `dataset` declares (dataset/registry.py) and the shipped ones
    (`available_prompt_sets`). A declared set may be read from the dataset's copy (DreamBench++'s
    captions): `data` locates it (--data, else the dataset's environment variable, else the cache).
    """
    from dreambench.dataset.registry import get_dataset

    declared = get_dataset(dataset)

    def declared_set(key: str) -> PromptSet:
        entry = declared.prompt_sets[key]
        return _read_file(entry) if isinstance(entry, Path) else entry(declared.data_dir(data))

    if name_or_path is None:
        return declared_set(declared.default_prompt_set)
    name = str(name_or_path)
    if name in declared.prompt_sets:
        return declared_set(name)
    if name in PROMPT_SETS:
        return _read_file(PROMPTS_DIR / PROMPT_SETS[name])
    path = Path(name).expanduser()
    looks_like_path = path.suffix.lower() in (".json", ".yaml", ".yml") or "/" in name
    if looks_like_path or path.is_file():
        if not path.is_file():
            raise BenchError(f"prompt set file {path} not found")
        return _read_file(path)
    raise did_you_mean(name, sorted({*declared.prompt_sets, *PROMPT_SETS}), "prompt set")

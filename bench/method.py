"""The Method contract: every member the harness uses, required or optional, in one place.

A personalization method is a class. The harness builds one instance per run (per worker process
with ``--executor ray``), hands it the run-level settings once, then works subject by subject.

Required members
----------------
``name: str``
    The canonical name. A run is identified by it, however the method was spelled on the command
    line (``my-method`` or ``my_pkg.mod:MyMethod`` give the same run).
``prepare(subject, workdir) -> None``
    Train or encode for one subject. Idempotent: if its outputs already exist in ``workdir`` it
    returns at once. Zero-shot methods make it cheap (or a no-op).
``identifier(subject) -> str``
    The token string that stands for the subject in prompts ("sks", a rare token, or "" for
    methods that prompt with the class noun only). The harness formats each prompt template with
    it: ``template.format(identifier, class_noun)``.
``generate(subject, workdir, prompts, seeds) -> list[PIL.Image.Image]``
    One ``PIL.Image.Image`` in mode ``"RGB"`` per (prompt, seed), in order, for ``subject`` (bound
    explicitly: no hidden "last prepared subject"); ``workdir`` is the folder ``prepare`` filled.
    Anything else (numpy arrays, tensors, another count, another mode) is refused where it leaves
    the method, with a one-line error naming the method. Randomness comes only from ``seed``:
    draw each image's noise from a fresh CPU ``torch.Generator`` seeded with it, so an image does
    not depend on batch composition or run order.
``release() -> None``
    Per subject, after its images (also when ``generate`` raised): free device memory and delete
    large per-subject files that are not needed any more (fine-tuned weights, unless kept).

Optional members (the harness uses the default when a method does not define one)
-------------------------------------------------------------------------------
``kind: "finetune" | "encoder" | "none"`` (default ``"finetune"``)
    Fine-tuned per subject, an encoder conditioned on the subject's images at generation time
    (loads one model for all subjects), or no subject information at all (baselines). Shown in
    every leaderboard table.
``setup(context: RunContext) -> None`` / ``teardown() -> None`` (default: nothing)
    Run level: called once before the first subject, in each process that runs subjects and
    after ``check_ready`` (load a shared model, open an API client), and once at the end, also
    when a subject or the run failed. A Ray driver that only checks and records never sets up.
``check_ready() -> None`` (default: nothing)
    Raise a one-line ``BenchError`` when the method cannot run at all (e.g. its base model is not
    downloaded); called before anything is written.
``estimated_disk_bytes(subject, n_images) -> int`` (default 0)
    Bytes ``prepare`` writes for one subject; feeds the disk-space check.
``consumed_images(subject) -> list[Path]`` (default: all of the subject's images, none for kind
"none")
    The real images the method learned from or conditioned on; recorded per subject in
    results.json beside the images it is scored against.
``calibrated: bool`` (default True)
    False when the method runs on random-weight or self-trained models; its rows are labelled uncalibrated.
``version: str`` (default ``""``)
    The method's own version. Part of its code identity (below), so raising it makes new images;
    a plugin without a distribution is told apart by the digest of its source anyway.
``identifier_scheme: str | None`` (default None)
    ``"rare"`` when ``identifier`` draws from the shipped rare-token candidate list
    (reference_impl/identifier.py): the list's identity then enters the run's identity (another
    list can give a subject another identifier). None for a fixed identifier ("sks", "").
``base_model: str | None`` (default None)
    What the method renders with (a hub id, a local folder, "tiny"); recorded in results.json and
    shown by the leaderboard. Informational: the method's config carries what changes images.
``scores_real_pairs: bool`` (default False)
    True only for the real-images ceiling: the harness scores real-real pairs and never calls
    ``generate``.
``subject_groups: bool`` (default False)
    True when the method can personalize on several subjects at once. On a pair dataset
    (``--dataset dreambooth-pairs``) each subject it gets is then a group: ``subject.members``
    lists the subjects (names, class nouns, real images), ``subject.image_paths`` holds all their
    images, and the prompts are the group's own. A method without it is refused for such a
    dataset in one line, before anything is written.
``render_deviation: dict | None`` (attribute, default None)
    The render protocol belongs to the run preset and is the same for every method. A method whose
    rendering intrinsically differs (a distilled model's steps, images made elsewhere) declares
    ``{"reason": "...", <sampler fields it changes>...}``; it is recorded in results.json and
    flagged in every table. When the deviation follows from the method's config (its base model's
    native resolution), the constructor sets it as an instance attribute; the harness reads the
    instance.
``sampler`` (default: not exposed)
    The sampler settings the method renders with, when it exposes them; the harness refuses a run
    whose method renders with anything but the recorded protocol.
``native_resolution: int | None`` (default None: not known)
    The size in pixels the method's model generates at natively (SD 1.5: 512, the embedded tiny
    models: their own). Recorded in results.json (``run.native_resolution``); where it differs
    from the resolution the run renders at, ``bench run`` says so in one line. Informational: the
    render protocol, not this, is part of the run's identity.
``prepare_work: dict[str, dict[str, float]]`` (default: nothing reported)
    What the last ``prepare`` did, part by part: ``{part: {"wall_s": seconds, and any of "images",
    "steps", "compile_s"}}`` (dreambooth: ``class_priors`` with the class images it rendered,
    ``train`` with its optimizer steps). Read right after ``prepare`` and stored with the prepare
    stage's cost (bench/cost.py), where ``bench cost`` turns it into rates; empty when ``prepare``
    had nothing to do. A malformed report is ignored, never a failure.

Construction
------------
A method with hyperparameters declares ``Config`` (a frozen dataclass: one typed field per
hyperparameter) and ``PRESETS: dict[str, Config]`` (both or neither: one without the other is a
one-line error naming the class); the harness builds it as ``cls(config)`` with the preset's
values and the user's ``--method-args`` converted to the declared types. A method without
``Config`` is built as ``cls(**method_args)``, checked against its signature. Device, seed and the
other run-level settings arrive through ``setup(context)``, never through the constructor.

Code identity
-------------
A method's code is part of every run's identity (``RunConfig.code``, hence the run directory's
name): a built-in by dreambench's version and the sha256 of its subpackage's sources, a plugin by
its installed distribution's name and version (plus a source digest when installed editable), else
by the sha256 of its module file (or of every ``.py`` file of its top-level package), and always
its declared ``version``. Edited code therefore renders into a new run directory and never reuses
images the old code made (dreambench.code_identity).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from dreambench.errors import BenchError
from dreambench.lazy_registry import target_of

if TYPE_CHECKING:
    from PIL import Image

    from dreambench.dataset.subject import Subject

MethodKind = Literal["finetune", "encoder", "none", "external"]
# "external" is the harness's own kind for `bench eval` (images made elsewhere, method unknown).
METHOD_KINDS: tuple[str, ...] = ("finetune", "encoder", "none", "external")

REQUIRED_MEMBERS: tuple[str, ...] = ("name", "prepare", "identifier", "generate", "release")


@dataclass(frozen=True)
class RunContext:
    """Run-level settings handed to ``setup``: the same for every subject of a run."""

    device: str  # resolved: "cpu", "cuda", "cuda:1", ...
    seed: int = 0  # the run's base seed (images get their own seeds through ``generate``)
    keep_weights: bool = False  # keep fine-tuned weights after rendering
    method_preset: str = ""  # the hyperparameter preset the method was built from
    run_preset: str = "dreambooth"  # the run preset (metric preset, method preset, render protocol)


@runtime_checkable
class Method(Protocol):
    """The required members (see the module docstring for the optional ones and their defaults)."""

    name: str

    def prepare(self, subject: Subject, workdir: Path) -> None: ...

    def identifier(self, subject: Subject) -> str: ...

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]: ...

    def release(self) -> None: ...


def check_method_class(cls: Any, shown_as: str) -> None:
    """Refuse a class that misses a required member or declares an unknown kind (one line)."""
    if not isinstance(cls, type):
        raise BenchError(f"method {shown_as!r} is {type(cls).__name__}, not a class")
    missing = [m for m in REQUIRED_MEMBERS if not hasattr(cls, m)]
    if missing:
        raise BenchError(
            f"method {shown_as!r} ({cls.__module__}.{cls.__qualname__}) lacks required member(s) "
            f"{', '.join(missing)}; see dreambench.method for the contract"
        )
    if not isinstance(cls.name, str) or not cls.name:
        raise BenchError(f"method {shown_as!r}: `name` must be a non-empty string, not {cls.name!r}")
    kind = getattr(cls, "kind", "finetune")
    if kind not in METHOD_KINDS:
        raise BenchError(f"method {shown_as!r}: kind {kind!r} is not one of {', '.join(METHOD_KINDS)}")
    for member in ("prepare", "identifier", "generate", "release"):
        if not callable(getattr(cls, member)):
            raise BenchError(f"method {shown_as!r}: `{member}` must be a method")
    has_config, has_presets = hasattr(cls, "Config"), hasattr(cls, "PRESETS")
    if has_config != has_presets:
        present, missing = ("Config", "PRESETS") if has_config else ("PRESETS", "Config")
        raise BenchError(
            f"method {shown_as!r} ({cls.__module__}.{cls.__qualname__}) declares {present} but not {missing}; "
            "declare both (Config: a dataclass of hyperparameters, PRESETS: dict[str, Config]) or neither"
        )
    if has_presets and (not isinstance(cls.PRESETS, dict) or not cls.PRESETS):
        raise BenchError(
            f"method {shown_as!r} ({cls.__module__}.{cls.__qualname__}): PRESETS must be a non-empty "
            f"dict[str, Config], not {cls.PRESETS!r}"
        )


def _distribution(module: str) -> dict[str, str] | None:
    """The installed distribution that provides ``module`` (name and version), if any."""
    top = module.partition(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    for name in names:
        try:
            return {"name": name, "version": importlib.metadata.version(name)}
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


class MethodHandle:
    """A method instance as the runner sees it: every optional member resolved to its default.

    The runner reads nothing of a method except through this class, so the contract above is the
    whole of what it relies on.
    """

    def __init__(self, method: Any) -> None:
        check_method_class(type(method), type(method).__name__)
        self.method = method

    # -- identity -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.method.name)

    @property
    def kind(self) -> str:
        return str(getattr(self.method, "kind", "finetune"))

    @property
    def calibrated(self) -> bool:
        return bool(getattr(self.method, "calibrated", True))

    @property
    def version(self) -> str:
        return self._declared_str("version") or ""

    @property
    def identifier_scheme(self) -> str | None:
        return self._declared_str("identifier_scheme")

    @property
    def base_model(self) -> str | None:
        return self._declared_str("base_model")

    def _declared_str(self, member: str) -> str | None:
        value = getattr(self.method, member, None)
        if value is not None and not isinstance(value, str):
            raise BenchError(f"method {self.name!r}: `{member}` must be a string or None, not {value!r}")
        return value

    @property
    def scores_real_pairs(self) -> bool:
        return bool(getattr(self.method, "scores_real_pairs", False))

    @property
    def subject_groups(self) -> bool:
        return bool(getattr(self.method, "subject_groups", False))

    @property
    def render_deviation(self) -> Any:
        # The instance's (set from its config) or else the class attribute.
        return getattr(self.method, "render_deviation", None)

    @property
    def sampler(self) -> Any:
        return getattr(self.method, "sampler", None)

    @property
    def native_resolution(self) -> int | None:
        value = getattr(self.method, "native_resolution", None)
        return value if type(value) is int and value > 0 else None

    @property
    def prepare_work(self) -> dict[str, dict[str, float]]:
        """The last ``prepare``'s parts, only the well-formed ones (bookkeeping never fails a subject)."""
        reported = getattr(self.method, "prepare_work", None)
        if not isinstance(reported, dict):
            return {}
        fields = ("wall_s", "images", "steps", "compile_s", "load_s")

        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and v != float("inf")

        return {
            str(name): {k: part[k] for k in fields if k in part}
            for name, part in reported.items()
            if isinstance(name, str)
            and isinstance(part, dict)
            and number(part.get("wall_s"))
            and all(k in fields and number(v) for k, v in part.items())
        }

    def config_dict(self) -> dict[str, Any] | None:
        """The resolved hyperparameters when the method keeps a ``config`` dataclass, else None."""
        config = getattr(self.method, "config", None)
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            return dataclasses.asdict(config)
        return None

    def source(self) -> dict[str, Any]:
        """Where the method's code comes from: class path, distribution and version, kind."""
        cls = type(self.method)
        module = cls.__module__
        return {
            "class": target_of(cls),
            "distribution": _distribution(module) if module in sys.modules else None,
            "kind": self.kind,
        }

    # -- run level ----------------------------------------------------------------------------

    def setup(self, context: RunContext) -> None:
        hook = getattr(self.method, "setup", None)
        if hook is not None:
            hook(context)

    def teardown(self) -> None:
        hook = getattr(self.method, "teardown", None)
        if hook is not None:
            hook()

    def check_ready(self) -> None:
        hook = getattr(self.method, "check_ready", None)
        if hook is not None:
            hook()

    def estimated_disk_bytes(self, subject: Subject, n_images: int) -> int:
        hook = getattr(self.method, "estimated_disk_bytes", None)
        return int(hook(subject, n_images)) if hook is not None else 0

    # -- per subject --------------------------------------------------------------------------

    def consumed_images(self, subject: Subject) -> list[Path] | None:
        """The real images the method used (None: not known, e.g. images made elsewhere)."""
        hook = getattr(self.method, "consumed_images", None)
        if hook is not None:
            used = hook(subject)
            return None if used is None else [Path(p) for p in used]
        return [] if self.kind == "none" else list(subject.image_paths)

    def prepare(self, subject: Subject, workdir: Path) -> None:
        self.method.prepare(subject, workdir)

    def identifier(self, subject: Subject) -> str:
        identifier = self.method.identifier(subject)
        if not isinstance(identifier, str):
            raise BenchError(
                f"method {self.name!r}: identifier() returned {type(identifier).__name__}, not str"
            )
        return identifier

    def generate(
        self, subject: Subject, workdir: Path, prompts: list[str], seeds: list[int]
    ) -> list[Image.Image]:
        from PIL import Image

        images = self.method.generate(subject, workdir, prompts, seeds)
        what = f"method {self.name!r}: generate() returned"
        if not isinstance(images, (list, tuple)):
            raise BenchError(f"{what} {type(images).__name__}; expected a list of PIL images, one per prompt")
        if len(images) != len(prompts):
            raise BenchError(f"{what} {len(images)} images for {len(prompts)} prompts")
        for i, image in enumerate(images):
            if not isinstance(image, Image.Image):
                kind = f"{type(image).__module__}.{type(image).__qualname__}"
                raise BenchError(f"{what} a {kind} at position {i}; expected PIL.Image.Image (mode RGB)")
            if image.mode != "RGB":
                raise BenchError(
                    f"{what} an image in mode {image.mode!r} at position {i}; expected mode 'RGB' "
                    "(image.convert('RGB') when that is what the method means)"
                )
        return list(images)

    def release(self) -> None:
        self.method.release()

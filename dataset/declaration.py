"""A dataset declared once: its subjects, prompt sets, pin, location, fetch and verify.

Everything `bench run`, `bench eval`, `bench dataset` and the report know about a dataset comes
from its `DatasetDeclaration`; a new dataset is one module that builds one, plus one line in
`dreambench.dataset.registry.DATASETS` (or an entry point in the group ``dreambench.datasets``).

The pin is part of every result's identity: results.json and the run's config hash record
``{"name", "repo", "commit", "manifest_sha256"}`` (`record`), where ``repo`` is the source the
bytes come from (a git repository, a hub dataset id, a URL), ``commit`` the pinned revision and
``manifest_sha256`` the sha256 of the committed manifest's canonical JSON, which pins every file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreambench.dataset.location import DEFAULT_DATASET, DataLocation
from dreambench.dataset.subject import KINDS, Kind, Subject
from dreambench.errors import BenchError

if TYPE_CHECKING:
    from dreambench.dataset.prompts import PromptSet

__all__ = ["DEFAULT_DATASET", "DatasetDeclaration", "check_declaration"]


@dataclass(frozen=True)
class DatasetDeclaration:
    """One dataset, as the harness iterates it.

    location: its name, title and source, and where its copy lives (--data, an environment
        variable, the cache; dataset/location.py).
    revision: the pinned revision of `location.source` (a commit).
    manifest: the committed JSON file that pins every file of that revision (sha256 per file).
    load: the located folder -> every subject, sorted by name; files are not read (`check_files`
        checks the selected ones).
    verify: the located folder -> one line per problem (missing, changed or unexpected file); an
        empty list means byte-identical to the pin.
    fetch: (destination, progress) -> the located folder of a verified copy installed there; None
        when the dataset cannot be downloaded by dreambench (its hint then says how to get it).
    prompt_sets: name -> JSON/YAML file of each prompt set the dataset ships, or a function that
        reads the set from the located copy (a dataset whose prompts ship with its images).
    default_prompt_set: the one a run uses when no --prompts is given (a key of `prompt_sets`).
    categories: the dataset's own subject categories -> the prompt-template kind each uses
        ("live" or "object"); empty when its categories are exactly live/object.
    build_manifest: for a dataset whose manifest records its file sha256s from a copy (published
        where dreambench could not hash it): the located copy's folder -> the manifest with them
        (`bench dataset verify --record` writes it to the user's cache); None when the manifest
        is complete as committed.
    """

    location: DataLocation
    revision: str
    manifest: Path
    load: Callable[[Path], list[Subject]]
    verify: Callable[[Path], list[str]]
    prompt_sets: Mapping[str, Path | Callable[[Path], PromptSet]]
    default_prompt_set: str
    fetch: Callable[[Path, bool], Path] | None = None
    categories: Mapping[str, Kind] = field(default_factory=dict)
    build_manifest: Callable[[Path], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.default_prompt_set not in self.prompt_sets:
            raise BenchError(
                f"dataset {self.name!r}: default prompt set {self.default_prompt_set!r} is not one of its "
                f"prompt sets ({', '.join(self.prompt_sets) or 'none'})"
            )
        for category, kind in self.categories.items():
            if kind not in KINDS:
                raise BenchError(
                    f"dataset {self.name!r}: category {category!r} maps to {kind!r}; valid kinds: {', '.join(KINDS)}"
                )

    @property
    def name(self) -> str:
        """The registry name (`--dataset NAME`), recorded as the dataset's "name"."""
        return self.location.name

    @property
    def title(self) -> str:
        return self.location.title

    @property
    def pinned(self) -> str:
        """`source@revision` (short), for messages."""
        return f"{self.location.source}@{self.revision[:7]}"

    def record(self) -> dict[str, str]:
        """The dataset part of a result's identity: name and pin (results.json "dataset")."""
        from dreambench.dataset.manifest import manifest_sha256

        return {
            "name": self.name,
            "repo": self.location.source,
            "commit": self.revision,
            "manifest_sha256": manifest_sha256(self.manifest),
        }

    def command_hint(self, action: str) -> str:
        """E.g. "`bench dataset verify --dataset toy`" (no --dataset for the default dataset)."""
        return f"`bench dataset {action}{self.location.dataset_option()}`"

    def data_dir(self, data: str | Path | None = None) -> Path:
        """The located folder of this dataset's copy (see DataLocation.resolve)."""
        return self.location.resolve(data, fetchable=self.fetch is not None)

    def subjects(self, data: str | Path | None = None, *, check_files: bool = True) -> list[Subject]:
        """Every subject of the copy at `data` (--data, the environment variable, the cache).

        With `check_files` every image is checked by `check_files`; without, the caller checks the
        subjects it uses, so a file missing from one subject does not block runs of the others.
        """
        subjects = self.load(self.data_dir(data))
        for subject in subjects:
            self._check_category(subject)
        if check_files:
            self.check_files(subjects)
        return subjects

    def _check_category(self, subject: Subject) -> None:
        """A loader's subject must use a declared category and the kind that category maps to."""
        if subject.category is None:
            return
        kind = self.categories.get(subject.category)
        if kind is None:
            raise BenchError(
                f"dataset {self.name!r}: subject {subject.name!r} has category {subject.category!r}; "
                f"declared: {', '.join(self.categories) or 'none'}"
            )
        if subject.kind != kind:
            raise BenchError(
                f"dataset {self.name!r}: subject {subject.name!r} of category {subject.category!r} has kind "
                f"{subject.kind!r}; the declaration maps it to {kind!r}"
            )

    def check_files(self, subjects: list[Subject]) -> None:
        """Raise BenchError naming the first missing folder or image of `subjects`, or the first
        image whose bytes do not hash to its pinned sha256.

        The bytes are hashed on every run (~100 MB for DreamBooth's 30 subjects: a fraction of a
        second): the sha256 is the embedding-cache key, so a modified copy scored under the pinned
        hash would report the genuine image's cached figures, or poison the cache for it.
        """
        from dreambench.dataset.images import file_sha256

        fix = (
            f"run {self.command_hint('verify')} to list every problem, or "
            f"{self.command_hint('fetch')} into a fresh folder"
        )
        for subject in subjects:
            folder = subject.image_paths[0].parent if subject.image_paths else None
            if folder is not None and not folder.is_dir():
                raise BenchError(f"subject folder {folder} is missing; {fix}")
            for path, expected in zip(subject.image_paths, subject.image_sha256):
                if not path.is_file():
                    raise BenchError(f"image {path} of subject {subject.name!r} is missing; {fix}")
                actual = file_sha256(path)
                if actual != expected:
                    raise BenchError(
                        f"image {path} differs from {self.pinned} "
                        f"(sha256 {actual[:12]}..., expected {expected[:12]}...); {fix}"
                    )

    def fetch_into(self, dest: Path, progress: bool = True) -> Path:
        """Install a verified copy at `dest` (a no-op when one is there); its located folder."""
        if self.fetch is None:
            raise BenchError(
                f"dataset {self.name!r} cannot be downloaded by dreambench; put a copy of "
                f"{self.location.source} at {dest} or point --data at one"
            )
        return self.fetch(dest, progress)


def check_declaration(obj: object, shown_as: str) -> None:
    """A registry entry must load to a DatasetDeclaration whose name is the one it is registered
    under (the name is recorded in results.json)."""
    if not isinstance(obj, DatasetDeclaration):
        raise BenchError(f"dataset {shown_as!r} is a {type(obj).__name__}, not a DatasetDeclaration")
    if obj.name != shown_as:
        raise BenchError(f"dataset {shown_as!r} declares the name {obj.name!r}; register it under that name")

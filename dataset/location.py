"""Where a dataset lives: --data DIR, else its environment variable, else the dreambench cache.

`DataLocation` is the rule for any dataset (a declaration holds one); the module-level functions
are the official DreamBooth dataset's. Both shapes of a google/dreambooth checkout are accepted:
the clone root (which holds dataset/) and the dataset/ folder itself. Everything downstream gets
the folder that directly holds the subject folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dreambench.cache_root import cache_root
from dreambench.errors import BenchError

ENV_VAR = "DREAMBENCH_DATA"
# The dataset `--dataset` defaults to: hints name no `--dataset` for it.
DEFAULT_DATASET = "dreambooth"
_SUBJECTS_HINT = ("prompts_and_classes.txt", "dog", "backpack")


@dataclass(frozen=True)
class DataLocation:
    """How one dataset's folder is found.

    name: the dataset's registry name (its cache folder, and `--dataset NAME` in hints);
    title: how messages name it ("DreamBooth"); source: what a copy is a copy of (shown in hints);
    env_var: the environment variable that points at a copy (None: --data or the cache only);
    locate: path -> the folder under it that directly holds the subject folders, or None.
    """

    name: str
    title: str
    source: str
    env_var: str | None
    locate: Callable[[Path], Path | None]

    def dataset_option(self) -> str:
        """The `--dataset NAME` option commands in hints need (empty for the default dataset)."""
        return "" if self.name == DEFAULT_DATASET else f" --dataset {self.name}"

    def default_dir(self) -> Path:
        """Where `bench dataset fetch` installs the dataset when no location is given."""
        return cache_root() / self.name

    def requested(self, data: str | Path | None) -> tuple[Path, str]:
        """The location asked for (not checked) and where the request came from, for messages."""
        if data is not None and str(data) != "":
            return Path(data).expanduser(), "--data"
        env = os.environ.get(self.env_var) if self.env_var else None
        if env:
            return Path(env).expanduser(), str(self.env_var)
        return self.default_dir(), "default location"

    def resolve(self, data: str | Path | None = None, *, fetchable: bool = True) -> Path:
        """The folder that directly holds the subject folders; BenchError when there is none.

        `fetchable`: whether `bench dataset fetch` can download the dataset (its declaration has a
        fetch); the message suggests it only then, and otherwise says where to put a copy.
        """
        path, source = self.requested(data)
        root = self.locate(path)
        if root is None:
            where = f"--data / {self.env_var}" if self.env_var else "--data"
            if fetchable:
                how = f"run `bench dataset fetch{self.dataset_option()}` or point {where} at a copy of {self.source}"
            else:
                how = (
                    f"dreambench cannot download it: get a copy of {self.source} and point {where} at it "
                    f"(or put it at {self.default_dir()})"
                )
            raise BenchError(f"{self.title} dataset not found at {path} ({source}); {how}")
        return root


def subject_root(path: Path) -> Path | None:
    """The folder under `path` that directly holds DreamBooth's subject folders, or None."""
    path = Path(path)
    if (path / "dataset").is_dir():
        return path / "dataset"
    if any((path / hint).exists() for hint in _SUBJECTS_HINT):
        return path
    return None


DREAMBOOTH_LOCATION = DataLocation(
    name="dreambooth",
    title="DreamBooth",
    source="google/dreambooth",
    env_var=ENV_VAR,
    locate=subject_root,
)


def default_data_dir() -> Path:
    """Where `bench dataset fetch` installs the DreamBooth dataset when no location is given."""
    return DREAMBOOTH_LOCATION.default_dir()


def requested_data_dir(data: str | Path | None) -> tuple[Path, str]:
    """The DreamBooth location asked for (not checked) and where the request came from."""
    return DREAMBOOTH_LOCATION.requested(data)


def resolve_data_dir(data: str | Path | None = None) -> Path:
    """The folder that directly holds the DreamBooth subject folders (e.g. <clone>/dataset).

    Order: `data` (the --data flag), else $DREAMBENCH_DATA, else `cache_root() / "dreambooth"`.
    Raises BenchError when none of the accepted shapes is found there.
    """
    return DREAMBOOTH_LOCATION.resolve(data)

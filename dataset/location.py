"""Where the official dataset lives: --data DIR, else $DREAMBENCH_DATA, else the dreambench cache.

Both shapes of a google/dreambooth checkout are accepted: the clone root (which holds dataset/)
and the dataset/ folder itself. Everything downstream gets the folder that directly holds the
subject folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from dreambench.cache_root import cache_root
from dreambench.errors import BenchError

ENV_VAR = "DREAMBENCH_DATA"
_SUBJECTS_HINT = ("prompts_and_classes.txt", "dog", "backpack")


def default_data_dir() -> Path:
    """Where `bench dataset fetch` installs the dataset when no location is given."""
    return cache_root() / "dreambooth"


def requested_data_dir(data: str | Path | None) -> tuple[Path, str]:
    """The location asked for (not checked) and where the request came from, for messages."""
    if data is not None and str(data) != "":
        return Path(data).expanduser(), "--data"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser(), ENV_VAR
    return default_data_dir(), "default location"


def subject_root(path: Path) -> Path | None:
    """The folder under `path` that directly holds the subject folders, or None if there is none."""
    path = Path(path)
    if (path / "dataset").is_dir():
        return path / "dataset"
    if any((path / hint).exists() for hint in _SUBJECTS_HINT):
        return path
    return None


def resolve_data_dir(data: str | Path | None = None) -> Path:
    """The folder that directly holds the subject folders (e.g. <clone>/dataset).

    Order: `data` (the --data flag), else $DREAMBENCH_DATA, else `cache_root() / "dreambooth"`.
    Raises BenchError when none of the accepted shapes is found there.
    """
    path, source = requested_data_dir(data)
    root = subject_root(path)
    if root is None:
        raise BenchError(
            f"DreamBooth dataset not found at {path} ({source}); run `bench dataset fetch` or point "
            f"--data / {ENV_VAR} at a google/dreambooth clone"
        )
    return root

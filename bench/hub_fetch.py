"""Offline-first fetch of pinned Hugging Face hub files: the one place weights come from the hub.

A `HubFiles` names a repository at a pinned revision and the files a caller needs from it. `fetch`
turns it into the local snapshot folder that holds them:

1. the local Hugging Face cache (``snapshot_download(..., local_files_only=True)``), when the
   snapshot there holds every required file and one of the alternatives;
2. else, unless ``HF_HUB_OFFLINE`` is set, a download of those files at the pinned revision;
3. else one line (`BenchError`) naming the repository, the revision, the ``hf download`` command
   that fetches what is missing, and what the user can do instead.

``hf_hub_download`` returns ``<cache>/snapshots/<commit>/<file>``: the returned folder's name is
the commit the revision resolved to (provenance for a revision such as "main").

huggingface_hub is imported only when a fetch runs: importing this module costs nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from dreambench.errors import BenchError

# "owner/name", as the hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(ref: str) -> bool:
    """True when ``ref`` is shaped like a hub repository id (``owner/name``)."""
    return bool(_HUB_ID.match(ref))


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` forbids downloads.

    Read at call time: huggingface_hub reads the variable once at import, tests and users set it later.
    """
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class HubFiles:
    """What to fetch from one hub repository at one pinned revision, and how to name it to the user.

    - ``files``: patterns (globs allowed) fetched when the repository has them, nothing checked;
    - ``required``: file paths the snapshot must hold;
    - ``one_of``: alternative file paths (e.g. safetensors, then .bin); the snapshot must hold one.
      A download fetches only the first one the repository has.
    - ``what``: the noun phrase the messages start with ("base model", "IP-Adapter", ...);
    - ``instead``: what the user can do rather than download ("use --preset smoke (...)").
    """

    what: str
    repo_id: str
    revision: str
    files: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    instead: tuple[str, ...] = ()

    def missing(self, folder: Path) -> str | None:
        """The first thing ``folder`` lacks (a path, or the alternatives joined by "or"); None if complete."""
        for name in self.required:
            if not (folder / name).is_file():
                return name
        if self.one_of and not any((folder / name).is_file() for name in self.one_of):
            return " or ".join(self.one_of)
        return None

    def download_command(self) -> str:
        """The ``hf download`` command that fetches the snapshot: the files themselves when they are an
        exact list (required files only), else the whole repository."""
        exact = bool(self.required) and not self.files and not self.one_of
        names = "".join(f" {name}" for name in self.required) if exact else ""
        return f"hf download {self.repo_id}{names} --revision {self.revision}"

    def hint(self) -> str:
        """What to do about missing files: the download command, then the ``instead`` choices."""
        choices = "".join(f", or {alt}" for alt in self.instead)
        return f"download it first ({self.download_command()}){choices}"

    @property
    def label(self) -> str:
        """``<what> <repo>@<revision>``, as every message names the request."""
        return f"{self.what} {self.repo_id}@{self.revision}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def cached(request: HubFiles) -> Path | None:
    """The snapshot folder in the local Hugging Face cache when it holds what ``request`` needs; else None.

    Never touches the network.
    """
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(
                request.repo_id,
                revision=request.revision,
                # The alternatives are checked here, not by huggingface_hub: a snapshot holds one of them.
                allow_patterns=[*request.files, *request.required],
                local_files_only=True,
            )
        )
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError, an incomplete snapshot...: not cached
        return None
    return folder if request.missing(folder) is None else None


def _download(request: HubFiles) -> Path:
    from huggingface_hub import HfApi, snapshot_download

    wanted = [*request.files, *request.required]
    if request.one_of:
        present = set(HfApi().list_repo_files(request.repo_id, revision=request.revision))
        wanted.append(next((name for name in request.one_of if name in present), request.one_of[0]))
    return Path(snapshot_download(request.repo_id, revision=request.revision, allow_patterns=wanted))


def fetch(request: HubFiles) -> Path:
    """The local snapshot folder holding ``request``'s files: cache first, then a download unless
    ``HF_HUB_OFFLINE`` is set. Raises a one-line BenchError naming what to download."""
    folder = cached(request)
    if folder is not None:
        return folder
    if hub_offline():
        raise BenchError(
            f"{request.label} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {request.hint()}"
        )
    try:
        folder = _download(request)
    except Exception as exc:  # noqa: BLE001 - network/auth/404 errors all become one actionable line
        raise BenchError(
            f"{request.label} could not be downloaded ({_first_line(exc)}); {request.hint()}"
        ) from None
    missing = request.missing(folder)
    if missing is not None:
        instead = f"; instead {', or '.join(request.instead)}" if request.instead else ""
        raise BenchError(f"{request.label} has no {missing}{instead}")
    return folder

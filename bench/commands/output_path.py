"""Where a command may write: refuse an output path that cannot be created, before any work.

`bench run --out`, `bench eval --out`, `bench leaderboard -o` and `bench report -o` check their
path first, so a path below a regular file is one line and exit 2, not a traceback after the
work is done.
"""

from __future__ import annotations

from pathlib import Path

from dreambench.errors import BenchError


def check_output_path(path: Path, option: str, *, folder: bool) -> None:
    """Raise BenchError when ``path`` cannot be written as a folder (``folder``) or as a file.

    Every existing ancestor must be a folder; ``path`` itself, when it exists, must be a folder
    for ``folder=True`` and must not be one otherwise.
    """
    path = Path(path)
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise BenchError(f"{option} {path}: {parent} is a file, not a folder; give a path under a folder")
    if not path.exists():
        return
    if folder and not path.is_dir():
        raise BenchError(f"{option} {path} is a file; give a folder")
    if not folder and path.is_dir():
        raise BenchError(f"{option} {path} is a folder; give a file name inside it")

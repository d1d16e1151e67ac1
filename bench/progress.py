"""Progress display for runs: subjects and images, with rich; silent with --quiet or --json."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RunProgress:
    """Two bars: subjects done, and images of the current subject. Writes to stderr."""

    def __init__(self, n_subjects: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True, file=sys.stderr)
        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._subjects = self._progress.add_task("subjects", total=n_subjects)
        self._images = self._progress.add_task("images", total=0, visible=False)

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def start_subject(self, name: str, stage: str, n_images: int) -> None:
        self._progress.update(
            self._images, description=f"{name}: {stage}", total=n_images, completed=0, visible=True
        )

    def stage(self, name: str, stage: str) -> None:
        self._progress.update(self._images, description=f"{name}: {stage}")

    def advance_images(self, n: int) -> None:
        self._progress.advance(self._images, n)

    def finish_subject(self) -> None:
        self._progress.advance(self._subjects, 1)

    def log(self, message: str) -> None:
        if self.enabled:
            self._progress.console.print(message)

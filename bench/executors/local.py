"""The default executor: subjects one after another in this process."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dreambench.dataset.subject import Subject
    from dreambench.progress import RunProgress
    from dreambench.runner import SubjectWorker

# on_result(subject name, summary or None, exception or None, formatted traceback)
OnResult = Callable[[str, "dict[str, Any] | None", "BaseException | None", str], None]


class Executor(Protocol):
    """Runs ``worker(subject, progress)`` for every subject and reports each outcome as it comes.

    A subject's exception is reported through ``on_result``, never raised: the others go on.
    KeyboardInterrupt (SIGINT/SIGTERM) propagates; finished subjects are already on disk.
    """

    def run(
        self, worker: SubjectWorker, subjects: Sequence[Subject], progress: RunProgress, on_result: OnResult
    ) -> None: ...


class LocalExecutor:
    def run(
        self, worker: SubjectWorker, subjects: Sequence[Subject], progress: RunProgress, on_result: OnResult
    ) -> None:
        for subject in subjects:
            try:
                summary = worker(subject, progress)
            except Exception as exc:  # noqa: BLE001 - one subject's failure must not stop the others
                on_result(subject.name, None, exc, traceback.format_exc())
            else:
                on_result(subject.name, summary, None, "")
            finally:
                progress.finish_subject()

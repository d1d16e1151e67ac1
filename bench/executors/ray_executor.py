"""The Ray executor: one Ray task per subject, on a local Ray instance or an existing cluster.

Each task runs ``SubjectWorker(spec)(subject, <disabled progress>)`` in a Ray worker process and
writes the subject's files into the same run directory as the local executor would; the driver
collects each outcome as it finishes and hands it to ``on_result`` (results.json is written by the
driver, as for the local executor). So the run directory, the seeds and the figures do not depend
on the executor (images are seeded per (subject, prompt, sample), never by run order).

Requirements and choices (see docs/RAY.md):

* Every worker must see the driver's filesystem at the same paths: ``--out``, the dataset and the
  dreambench cache (``DREAMBENCH_CACHE``). On a multi-node cluster they must be on a shared
  filesystem. ``DREAMBENCH_CACHE``, ``DREAMBENCH_DATA`` and ``HF_HUB_OFFLINE`` are passed to the
  workers through the task's ``runtime_env``.
* Failures: a task whose worker process dies (killed, OOM-killed, node lost) is retried up to
  ``max_retries`` times by Ray; an exception raised by the subject (bad input, NaN loss) is caught
  inside the task and reported through ``on_result`` at once, never retried (it would fail again).
* Concurrency: the driver holds the run directory's lock (bench/run_lock.py) and each task holds
  its subject's ``subject.lock`` while it runs, so a retry never writes beside a still-running
  attempt of the same subject: it waits for it, then resumes.
* GPUs: on a ``cuda`` run each task asks Ray for one GPU (``task_options``); Ray points the task's
  ``CUDA_VISIBLE_DEVICES`` at the GPU it reserved, so N GPUs run N subjects at once. A ``cpu`` run
  asks for none.
* A worker process caches its ``SubjectWorker`` for the spec it last served, so the method and the
  embedders load once per process, not once per subject. CPU workers are reused across tasks; GPU
  tasks keep Ray's default of one task per worker process (``max_calls=1``), which frees GPU
  memory between subjects and keeps each process on the GPU Ray assigned to it.
* A Ray instance this executor started is shut down when the run ends; a cluster it connected to
  (``address``, ``RAY_ADDRESS``) is only disconnected from, and a Ray session the caller had
  already initialised is left as it is.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dreambench.dataset.subject import Subject
    from dreambench.executors.local import OnResult
    from dreambench.progress import RunProgress
    from dreambench.runner import RunSpec, SubjectWorker

# Environment the workers need to find the same data, weights and embedding caches as the driver.
FORWARDED_ENV = ("DREAMBENCH_CACHE", "DREAMBENCH_DATA", "HF_HUB_OFFLINE")

# Tasks carry only specs, subjects and summaries (kilobytes): a small object store is plenty and
# leaves the memory to the models.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2

# (spec, worker) of the run this worker process served last; see _worker_for.
_cached: tuple[RunSpec, SubjectWorker] | None = None


def _worker_for(spec: RunSpec) -> SubjectWorker:
    """This process's SubjectWorker for ``spec``: built once, reused by the next task of the run."""
    global _cached
    from dreambench.runner import SubjectWorker

    if _cached is None or _cached[0] != spec:
        # One run at a time per process: drop the previous run's models (the method's run-level
        # teardown) before loading new ones.
        previous, _cached = _cached, None
        if previous is not None:
            previous[1].close()
        _cached = (spec, SubjectWorker(spec))
    return _cached[1]


@atexit.register
def _close_cached() -> None:
    """The method's run-level teardown when a Ray worker process exits normally."""
    if _cached is not None:
        _cached[1].close()


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` itself when it survives pickling (so the driver sees its type), else a RuntimeError
    that keeps its type name and message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any pickling failure means "send a plain copy"
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def run_subject_task(
    spec: RunSpec, subject: Subject
) -> tuple[dict[str, Any] | None, BaseException | None, str]:
    """Body of one Ray task: (summary, None, "") or (None, exception, traceback text).

    The subject's exception is returned, not raised, so that Ray never retries it: retries are for
    a dead worker process only.
    """
    from dreambench.progress import RunProgress
    from dreambench.run_lock import subject_lock
    from dreambench.store import RunDir

    try:
        # A retry whose first attempt still runs (a lost node that was not dead) waits for it here,
        # then resumes from what it left on disk instead of writing the same files beside it.
        with subject_lock(RunDir(spec.run_dir).subject_dir(subject.name)):
            summary = _worker_for(spec)(subject, RunProgress(1, enabled=False))
    except Exception as exc:  # noqa: BLE001 - reported to the driver like the local executor does
        return None, _picklable(exc), traceback.format_exc()
    return summary, None, ""


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class RayExecutor:
    """Runs each subject as a Ray task (see the module docstring).

    address: a Ray cluster address (``auto``, ``host:6379``, ``ray://host:10001``); None starts a
        local Ray instance on this machine's available CPUs (or connects to ``RAY_ADDRESS`` if set).
    max_retries: how often Ray reruns a task whose worker process died.
    num_cpus_per_task: CPUs reserved per subject.
    num_gpus_per_task: GPUs reserved per subject; None means 1 for a ``cuda`` run, 0 for a ``cpu``
        run (``task_options``).
    """

    def __init__(
        self,
        address: str | None = None,
        max_retries: int = 2,
        num_cpus_per_task: float = 1,
        num_gpus_per_task: float | None = None,
    ) -> None:
        from dreambench.errors import BenchError

        if max_retries < 0:
            raise BenchError(f"max_retries {max_retries} must be 0 or more")
        if num_cpus_per_task < 0 or (num_gpus_per_task is not None and num_gpus_per_task < 0):
            raise BenchError("num_cpus_per_task and num_gpus_per_task must be 0 or more")
        self.address = address
        self.max_retries = max_retries
        self.num_cpus_per_task = num_cpus_per_task
        self.num_gpus_per_task = num_gpus_per_task

    def _connect(self, ray: Any) -> bool:
        """Initialise Ray unless the caller already did; True when this call initialised it."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {
            "address": self.address,
            "include_dashboard": False,
            # Subjects' failures come back with their tracebacks (error.txt); worker output would
            # only interleave with the progress bars. It stays in the Ray session's log folder.
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if self.address in (None, "local") and not os.environ.get("RAY_ADDRESS"):
            options["num_cpus"] = _available_cpus()
            options["object_store_memory"] = LOCAL_OBJECT_STORE_BYTES
        # Ray's core worker installs C-level handlers for SIGTERM (log and abort) in the driver;
        # put back the Python handler bench installed, so SIGTERM stops the run cleanly (in-flight
        # tasks cancelled, a local instance shut down) like Ctrl-C.
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None
        ray.init(**options)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        return True

    def task_options(self, device: str, cluster_gpus: float) -> dict[str, Any]:
        """What each subject task asks Ray for on a run whose device is ``device``: resources,
        retries, the forwarded environment (the ``.options()`` of every task).

        A ``cuda`` run asks for one whole GPU per task (``num_gpus=1``): Ray sets the task's
        ``CUDA_VISIBLE_DEVICES`` to the GPU it reserved, so ``cuda`` inside the task is that GPU and
        a node with N GPUs trains N subjects at once. A ``cpu`` run asks for none.
        ``num_gpus_per_task`` overrides both (e.g. 0.5 to put two subjects on one large GPU). A cuda
        run whose tasks would get no GPU, or that names one GPU (``cuda:N``: each task sees only
        the GPU Ray gave it), is a BenchError.
        """
        from dreambench.errors import BenchError

        if device.startswith("cuda:"):
            raise BenchError(
                f"--device {device} with --executor ray: each task sees only the GPU Ray assigned "
                "to it; use --device cuda (or cpu)"
            )
        on_cuda = device == "cuda"
        if self.num_gpus_per_task is not None:
            num_gpus = self.num_gpus_per_task
        else:
            num_gpus = 1 if on_cuda else 0
        if on_cuda and (num_gpus == 0 or (self.num_gpus_per_task is None and cluster_gpus < 1)):
            raise BenchError(
                f"--device {device} but the Ray tasks get no GPU (cluster GPUs: {cluster_gpus:g}, "
                f"per task: {num_gpus:g}); use --device cpu or a cluster with GPUs"
            )
        return {
            "num_cpus": self.num_cpus_per_task,
            "num_gpus": num_gpus,
            "max_retries": self.max_retries,
            "retry_exceptions": False,
            "runtime_env": {"env_vars": {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}},
        }

    def run(
        self, worker: SubjectWorker, subjects: Sequence[Subject], progress: RunProgress, on_result: OnResult
    ) -> None:
        from dreambench.errors import BenchError

        try:
            import ray
        except ImportError:
            raise BenchError(
                "--executor ray needs Ray: pip install 'dreambench[ray]' (or pip install ray); "
                "valid executors without it: local"
            ) from None

        initialised_here = self._connect(ray)
        pending: dict[Any, str] = {}
        try:
            resources = ray.cluster_resources()
            device = worker.spec.device
            options = self.task_options(device, resources.get("GPU", 0))
            num_gpus = options["num_gpus"]
            if device == "cpu" and resources.get("GPU", 0) >= 1:
                progress.log(
                    "ray: the cluster has GPUs but the run's device is cpu (auto resolves on the "
                    "driver's machine); pass --device cuda to give each subject a GPU"
                )
            progress.log(
                f"ray: {len(subjects)} subject task(s) on {resources.get('CPU', 0):g} CPU(s), "
                f"{resources.get('GPU', 0):g} GPU(s); {self.num_cpus_per_task:g} CPU(s), "
                f"{num_gpus:g} GPU(s) per task"
            )
            # max_calls is fixed when the remote function is made: keep Ray's GPU default of one task
            # per process (frees GPU memory, right device); reuse CPU workers (models load once).
            task = ray.remote(max_calls=1 if num_gpus > 0 else 0)(run_subject_task)
            spec_ref = ray.put(worker.spec)
            for subject in subjects:
                ref = task.options(name=f"dreambench:{subject.name}", **options).remote(spec_ref, subject)
                pending[ref] = subject.name
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    name = pending.pop(ref)
                    try:
                        summary, exc, trace = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        # The worker died more than max_retries times, the node was lost, or the
                        # outcome could not be sent back: a failure of this subject only.
                        summary, exc, trace = None, err, traceback.format_exc()
                    try:
                        on_result(name, summary, exc, trace)
                    finally:
                        progress.finish_subject()
        except BaseException:
            # Interrupted (Ctrl-C) or the driver failed: stop the subjects still in flight; the
            # finished ones are already on disk and a rerun resumes the rest.
            for ref in pending:
                with contextlib.suppress(Exception):  # already finished or its worker is gone
                    ray.cancel(ref, force=True)
            raise
        finally:
            if initialised_here:
                ray.shutdown()

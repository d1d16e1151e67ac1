"""The Ray executor on GPUs: one GPU per subject task on a cuda run, each task pinned to its own GPU,
and images that do not depend on which worker ran which subject.

No GPU is needed: the resource request is read from the executor's real ``run`` through a recording
stand-in for Ray, and a real Ray instance started with two *logical* GPUs shows how Ray places the
tasks (it assigns GPU ids and sets CUDA_VISIBLE_DEVICES whether or not the hardware exists).
Ray is an optional extra (`dreambench[ray]`): without it these tests fail, they never skip.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.executors.ray_executor import RayExecutor

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


class RecordingRay:
    """Just enough of the ``ray`` module for ``RayExecutor.run``: records every task's decoration
    and options, and returns a summary per task."""

    class exceptions:  # noqa: N801 - mirrors ray.exceptions
        RayError = RuntimeError

    def __init__(self, gpus: float) -> None:
        self.gpus = gpus
        self.submitted: list[dict[str, Any]] = []

    def is_initialized(self) -> bool:
        return True  # a caller's session: the executor neither starts nor stops it

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 16.0, "GPU": self.gpus}

    def put(self, value: Any) -> Any:
        return value

    def remote(self, **decoration: Any) -> Any:
        def wrap(fn: Any) -> Any:
            ray = self

            class Task:
                def options(self, **options: Any) -> Any:
                    record = {"function": fn.__name__, "decoration": decoration, "options": options}
                    return SimpleNamespace(remote=lambda spec, subject: ray._submit(record, subject))

            return Task()

        return wrap

    def _submit(self, record: dict[str, Any], subject: Any) -> str:
        self.submitted.append(record)
        return subject.name

    def wait(self, refs: list[str], num_returns: int) -> tuple[list[str], list[str]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: str) -> tuple[dict[str, Any], None, str]:
        return {"subject": ref}, None, ""


def _run_with(ray: RecordingRay, executor: RayExecutor, device: str, names: list[str]) -> list[str]:
    done: list[str] = []
    progress = SimpleNamespace(log=lambda text: None, finish_subject=lambda: None)
    worker = SimpleNamespace(spec=SimpleNamespace(device=device))
    subjects = [SimpleNamespace(name=name) for name in names]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(__import__("sys").modules, "ray", ray)
        executor.run(worker, subjects, progress, lambda name, *rest: done.append(name))  # type: ignore[arg-type]
    return done


def test_cuda_run_asks_ray_for_one_gpu_per_subject_task() -> None:
    ray = RecordingRay(gpus=4)
    assert _run_with(ray, RayExecutor(), "cuda", ["dog", "cat2", "can"]) == ["dog", "cat2", "can"]
    assert [r["options"]["name"] for r in ray.submitted] == [
        "dreambench:dog",
        "dreambench:cat2",
        "dreambench:can",
    ]
    for record in ray.submitted:
        assert record["function"] == "run_subject_task"
        assert record["options"]["num_gpus"] == 1 and record["options"]["num_cpus"] == 1
        # One subject per worker process: its GPU memory is freed when the subject ends.
        assert record["decoration"] == {"max_calls": 1}
        assert record["options"]["retry_exceptions"] is False
        assert (
            record["options"]["runtime_env"]["env_vars"]["DREAMBENCH_CACHE"] == os.environ["DREAMBENCH_CACHE"]
        )


def test_cpu_run_asks_for_no_gpu_even_on_a_gpu_cluster() -> None:
    ray = RecordingRay(gpus=4)
    _run_with(ray, RayExecutor(), "cpu", ["dog"])
    assert ray.submitted[0]["options"]["num_gpus"] == 0
    assert ray.submitted[0]["decoration"] == {"max_calls": 0}  # CPU workers serve many subjects


def test_gpu_share_per_task_can_be_set() -> None:
    ray = RecordingRay(gpus=1)
    _run_with(ray, RayExecutor(num_gpus_per_task=0.5), "cuda", ["dog", "cat2"])
    assert [r["options"]["num_gpus"] for r in ray.submitted] == [0.5, 0.5]


@pytest.mark.parametrize(
    ("device", "gpus", "executor", "message"),
    [
        ("cuda", 0, RayExecutor(), "--device cuda but the Ray tasks get no GPU"),
        ("cuda", 2, RayExecutor(num_gpus_per_task=0), "--device cuda but the Ray tasks get no GPU"),
        ("cuda:1", 2, RayExecutor(), "use --device cuda"),
    ],
)
def test_cuda_runs_that_cannot_get_a_gpu_are_refused(
    device: str, gpus: float, executor: RayExecutor, message: str
) -> None:
    ray = RecordingRay(gpus=gpus)
    with pytest.raises(BenchError, match=message):
        _run_with(ray, executor, device, ["dog"])
    assert ray.submitted == []  # refused before any task was submitted


@pytest.fixture(scope="module")
def ray_with_two_gpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A local Ray instance with 2 CPUs and 2 logical GPUs; its workers import tests/ modules."""
    try:
        import ray
    except ImportError:
        pytest.fail("Ray is not installed: pip install 'dreambench[ray]' (the Ray executor tests need it)")
    with pytest.MonkeyPatch.context() as mp:
        path = os.pathsep.join(p for p in (str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        mp.setenv("PYTHONPATH", path)
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.delenv("RAY_ADDRESS", raising=False)
        # One torch thread per worker and in the driver alike (Ray would set it per task otherwise).
        mp.setenv("OMP_NUM_THREADS", "1")
        ray.init(
            num_cpus=2,
            num_gpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=100 * 1024**2,
        )
    try:
        yield
    finally:
        ray.shutdown()


def test_each_cuda_task_runs_on_its_own_gpu(ray_with_two_gpus: None, tmp_path: Path) -> None:
    import ray
    from ray_seed_method import gpu_probe

    options = RayExecutor().task_options("cuda", ray.cluster_resources().get("GPU", 0))
    options.pop("runtime_env")
    probe = ray.remote(max_calls=1)(gpu_probe)
    outcomes = ray.get([probe.options(**options).remote(str(tmp_path), 2) for _ in range(2)])
    assert len(list(tmp_path.iterdir())) == 2  # both probes were running at once
    for gpu_ids, visible, pid in outcomes:
        assert len(gpu_ids) == 1 and visible == gpu_ids[0], (gpu_ids, visible)
        assert pid != os.getpid()
    assert {ids[0] for ids, _, _ in outcomes} == {"0", "1"}  # two subjects, two different GPUs


def _small_prompt_set(tmp_path: Path) -> str:
    path = tmp_path / "prompts.json"
    templates = ["a {0} {1} in the snow", "a {0} {1} on the beach"]
    path.write_text(
        json.dumps({"name": "ray-gpu-test", "version": "1", "object": templates, "live": templates})
    )
    return str(path)


def _images(out: Path, subject: str) -> tuple[list[tuple[Any, ...]], int]:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    folder = run_dir / "subjects" / subject
    rows = [json.loads(line) for line in (folder / "images.jsonl").read_text().splitlines()]
    pid = int((folder / "prepare" / "pid.txt").read_text())
    return sorted((r["prompt"], r["seed"], r["sha256"]) for r in rows), pid


def test_images_do_not_depend_on_which_worker_ran_which_subject(
    ray_with_two_gpus: None, dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dreambench.executors

    monkeypatch.syspath_prepend(str(TESTS))
    prompts = _small_prompt_set(tmp_path)

    def run(out: str, subjects: str, *extra: str) -> None:
        args = ["run", "--method", "ray_seed_method:SeededNoise", "--subjects", subjects, "--preset", "smoke"]
        args += ["--data", str(dreambench_data), "--out", str(tmp_path / out), "--quiet", "--device", "cpu"]
        assert main([*args, "--images-per-prompt", "2", "--prompts", prompts, *extra]) == 0

    run("local", "dog,cat2")  # in this process, dog then cat2
    run("ray-parallel", "dog,cat2", "--executor", "ray")  # two tasks at once, one per worker process
    # One task at a time (each takes both CPUs), in the other order.
    monkeypatch.setattr(
        dreambench.executors,
        "executor_class",
        lambda name: functools.partial(RayExecutor, num_cpus_per_task=2),
    )
    run("ray-serial", "cat2,dog", "--executor", "ray")
    for subject in ("dog", "cat2"):
        local, local_pid = _images(tmp_path / "local", subject)
        parallel, parallel_pid = _images(tmp_path / "ray-parallel", subject)
        serial, serial_pid = _images(tmp_path / "ray-serial", subject)
        assert len(local) == 4 and len({seed for _, seed, _ in local}) == 4
        assert parallel == local and serial == local, subject
        assert local_pid == os.getpid() and os.getpid() not in (parallel_pid, serial_pid)

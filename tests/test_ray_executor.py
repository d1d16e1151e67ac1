"""The Ray executor: same results as the local executor, a killed worker is retried, a subject's
own exception is reported once (never retried).

The first test lets `bench run --executor ray` start (and shut down) its own local Ray instance; the
retry tests share one Ray instance started by the test, as a caller with a cluster would. Ray is an
optional extra (`dreambench[ray]`): without it these tests fail, they never skip.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dreambench.cli import main
from dreambench.errors import BenchError

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


@pytest.fixture(scope="module", autouse=True)
def _ray_installed() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.fail("Ray is not installed: pip install 'dreambench[ray]' (the Ray executor tests need it)")


@pytest.fixture
def ray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/ray_kill_method.py importable in this process; no cluster from the environment; Ray
    kept from phoning home."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A Ray instance started by the caller (the executor must use it and leave it running).

    Its processes start with tests/ on PYTHONPATH (so workers import ray_kill_method) and with
    DREAMBENCH_CACHE pointing at an empty decoy folder: workers find the real cache only if the
    executor forwards the driver's DREAMBENCH_CACHE. Yields the decoy folder.
    """
    import ray

    decoy = tmp_path_factory.mktemp("decoy-cache")
    with pytest.MonkeyPatch.context() as mp:
        path = os.pathsep.join(p for p in (str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        mp.setenv("PYTHONPATH", path)
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("DREAMBENCH_CACHE", str(decoy))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2)
    try:
        yield decoy
    finally:
        ray.shutdown()


def _run(out: Path, data: Path, method: str, subjects: str, *extra: str) -> int:
    return main(
        [
            "run",
            "--method",
            method,
            "--subjects",
            subjects,
            "--preset",
            "smoke",
            "--data",
            str(data),
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def _small_prompt_set(tmp_path: Path) -> str:
    """Two prompts per kind: the retry tests need a few generated images, not the full protocol."""
    path = tmp_path / "prompts.json"
    templates = ["a {0} {1} in the snow", "a {0} {1} on the beach"]
    path.write_text(json.dumps({"name": "ray-test", "version": "1", "object": templates, "live": templates}))
    return str(path)


def _results(out: Path) -> tuple[Path, dict[str, Any]]:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, json.loads((run_dir / "results.json").read_text())


def _figures(value: Any, path: str = "") -> dict[str, float]:
    """Every number under ``value`` by its key path, except measured costs (time, memory)."""
    if isinstance(value, dict):
        return {
            k: v
            for key, item in value.items()
            if key != "cost"
            for k, v in _figures(item, f"{path}/{key}").items()
        }
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _figures(item, f"{path}/{i}").items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {path: float(value)}
    return {}


def test_ray_results_equal_local_results(ray_env: None, dreambench_data: Path, tmp_path: Path) -> None:
    # Local first: it also builds the smoke embedders' weights in the test cache before Ray starts.
    assert _run(tmp_path / "local", dreambench_data, "real-images", "dog,cat,can") == 0
    assert _run(tmp_path / "ray", dreambench_data, "real-images", "dog,cat,can", "--executor", "ray") == 0
    local_dir, local = _results(tmp_path / "local")
    ray_dir, ray_results = _results(tmp_path / "ray")
    assert local_dir.name == ray_dir.name  # same config hash: the executor is not part of the config
    assert sorted(ray_results["subjects"]) == ["can", "cat", "dog"] and not ray_results["failures"]
    for name in ("dog", "cat", "can"):
        expected = _figures(local["subjects"][name])
        got = _figures(ray_results["subjects"][name])
        assert set(got) == set(expected) and {"/dino", "/clip_i"} <= set(got)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-9), f"{name}{key}"
        assert (ray_dir / "subjects" / name / "scores.jsonl").read_bytes() == (
            local_dir / "subjects" / name / "scores.jsonl"
        ).read_bytes()
    assert ray_results["overall"]["dino"] == pytest.approx(local["overall"]["dino"], abs=1e-9)
    import ray

    assert not ray.is_initialized()  # the local instance it started is shut down


@pytest.mark.slow
def test_killed_worker_is_retried_and_run_completes(
    ray_env: None, ray_session: Path, dreambench_data: Path, tmp_path: Path
) -> None:
    from ray_kill_method import KILL_MARKER

    out = tmp_path / "runs"
    args = ("--executor", "ray", "--images-per-prompt", "2", "--prompts", _small_prompt_set(tmp_path))
    assert _run(out, dreambench_data, "ray_kill_method:KillOnce", "dog,can", *args) == 0
    run_dir, results = _results(out)
    assert sorted(results["subjects"]) == ["can", "dog"] and results["failures"] == {}
    for name in ("dog", "can"):
        # The marker holds the pid of the process that killed itself; the retry ran elsewhere.
        marker = run_dir / "subjects" / name / "prepare" / KILL_MARKER
        assert int(marker.read_text()) != os.getpid()
        assert results["subjects"][name]["n_generated"] == 4
        assert len(list((run_dir / "subjects" / name / "images").glob("*.png"))) == 4
    import ray

    assert ray.is_initialized()  # the caller's Ray instance is left running
    assert not any(ray_session.iterdir())  # workers used the driver's cache, not their own env's


def test_worker_dying_more_than_max_retries_fails_only_that_subject(
    ray_env: None, ray_session: Path, dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dreambench.executors
    from dreambench.executors.ray_executor import RayExecutor

    monkeypatch.setattr(
        dreambench.executors, "executor_class", lambda name: functools.partial(RayExecutor, max_retries=0)
    )
    out = tmp_path / "runs"
    args = ("--executor", "ray", "--images-per-prompt", "2", "--prompts", _small_prompt_set(tmp_path))
    assert _run(out, dreambench_data, "ray_kill_method:KillOnce", "dog", *args) == 1
    run_dir, results = _results(out)
    assert results["subjects"] == {}
    assert results["failures"]["dog"].startswith("WorkerCrashedError: "), results["failures"]
    assert "WorkerCrashedError" in (run_dir / "subjects" / "dog" / "error.txt").read_text()


def test_subject_exception_is_reported_once_not_retried(
    ray_env: None, ray_session: Path, dreambench_data: Path, tmp_path: Path
) -> None:
    from ray_kill_method import ATTEMPTS_FILE

    out = tmp_path / "runs"
    args = ("--executor", "ray", "--images-per-prompt", "2", "--prompts", _small_prompt_set(tmp_path))
    assert _run(out, dreambench_data, "ray_kill_method:NanLoss", "dog,cat", *args) == 1
    run_dir, results = _results(out)
    assert results["failures"]["cat"] == "FloatingPointError: loss is NaN at step 3 for subject 'cat'"
    assert sorted(results["subjects"]) == ["dog"]
    attempts = (run_dir / "subjects" / "cat" / "prepare" / ATTEMPTS_FILE).read_text().splitlines()
    assert len(attempts) == 1  # max_retries is for dead workers, not for the subject's own errors
    assert int(attempts[0]) != os.getpid()  # it ran in a Ray worker
    trace = (run_dir / "subjects" / "cat" / "error.txt").read_text()
    assert "Traceback" in trace and "ray_kill_method.py" in trace and "FloatingPointError" in trace


def test_worker_process_reuses_its_subject_worker(tmp_path: Path) -> None:
    from dreambench.config import RunConfig
    from dreambench.dataset.prompts import load_prompt_set
    from dreambench.executors import ray_executor
    from dreambench.runner import RunSpec

    config = RunConfig(
        method="real-images",
        method_preset="default",
        method_config={},
        preset="smoke",
        metric_preset="smoke",
        prompt_set={"name": "x", "version": "1", "sha256": "0"},
        images_per_prompt=1,
        base_seed=0,
        dataset={},
    )
    spec = RunSpec(config, {}, load_prompt_set("dreambench"), tmp_path / "a", "cpu")
    first = ray_executor._worker_for(spec)
    assert ray_executor._worker_for(RunSpec(config, {}, spec.prompt_set, tmp_path / "a", "cpu")) is first
    other = ray_executor._worker_for(RunSpec(config, {}, spec.prompt_set, tmp_path / "b", "cpu"))
    assert other is not first and other.spec.run_dir == tmp_path / "b"


def test_cuda_run_on_tasks_without_gpus_is_refused(ray_session: Path) -> None:
    from dreambench.executors.ray_executor import RayExecutor

    worker = SimpleNamespace(spec=SimpleNamespace(device="cuda"))
    with pytest.raises(BenchError, match="--device cuda but the Ray tasks get no GPU"):
        RayExecutor(num_gpus_per_task=0).run(worker, [], SimpleNamespace(), lambda *a: None)  # type: ignore[arg-type]


def test_missing_ray_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dreambench.executors.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(BenchError, match=r"pip install 'dreambench\[ray\]'"):
        RayExecutor().run(None, [], None, lambda *a: None)  # type: ignore[arg-type]


def test_bad_settings_are_rejected() -> None:
    from dreambench.executors.ray_executor import RayExecutor

    with pytest.raises(BenchError, match="max_retries"):
        RayExecutor(max_retries=-1)

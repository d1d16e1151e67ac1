"""Fault tolerance through the CLI: an injected failing subject, SIGTERM, and kill -9 at several
points of a run, each followed by a rerun that must give results identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dreambench.cli import main

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PROMPTS = {
    "name": "three",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a red {0} {1}", "a {0} {1} on the beach"],
    "live": ["a {0} {1} in the snow", "a {0} {1} wearing a red hat", "a {0} {1} on the beach"],
}
SUBJECTS = "dog,can,vase"


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "three.json"
    path.write_text(json.dumps(PROMPTS))
    return path


def _argv(out: Path, data: Path, prompts: Path, method_args: str = "delay=0") -> list[str]:
    return [
        "run",
        "--method",
        "fault_methods:SlowNoise",
        "--method-args",
        method_args,
        "--subjects",
        SUBJECTS,
        "--prompts",
        str(prompts),
        "--images-per-prompt",
        "2",
        "--preset",
        "smoke",
        "--data",
        str(data),
        "--out",
        str(out),
        "--quiet",
    ]


def _figures(out: Path) -> dict:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    keep = ("dino", "clip_i", "clip_t", "per_prompt", "n_generated", "identifier")
    return {name: {k: s[k] for k in keep} for name, s in results["subjects"].items()} | {
        "overall": {k: results["overall"][k] for k in ("dino", "clip_i", "clip_t")}
    }


def _spawn(argv: list[str]) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dreambench.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the kill point: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("kill point never reached")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(dreambench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run, in-process."""
    tmp = tmp_path_factory.mktemp("reference")
    prompts = tmp / "three.json"
    prompts.write_text(json.dumps(PROMPTS))
    sys.path.insert(0, str(TESTS))
    try:
        assert main(_argv(tmp / "runs", dreambench_data, prompts)) == 0
    finally:
        sys.path.remove(str(TESTS))
    return _figures(tmp / "runs")


def _images(out: Path) -> list[Path]:
    return sorted(out.rglob("images/*.png"))


KILL_POINTS: dict[str, Callable[[Path], bool]] = {
    "after config": lambda out: any(out.rglob("config.json")),
    "mid render of the first subject": lambda out: len(_images(out)) >= 2,
    "mid second subject": lambda out: len(_images(out)) >= 8,
    "after the last image": lambda out: len(_images(out)) >= 18,
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_kill_9_loses_nothing(
    point: str, reference: dict, dreambench_data: Path, prompts_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    proc = _spawn(_argv(out, dreambench_data, prompts_file, "delay=0.15"))
    _wait_for(lambda: KILL_POINTS[point](out), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for png in _images(out):  # every image on disk is whole: PNGs are renamed into place
        assert png.read_bytes()[-8:] == b"IEND\xaeB`\x82", png
    rerun = _spawn(_argv(out, dreambench_data, prompts_file, "delay=0.15"))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert _figures(out) == reference
    assert not list(out.rglob("*.tmp")), "the rerun sweeps temp files a kill left behind"


def test_sigterm_stops_cleanly_and_resumes(
    reference: dict, dreambench_data: Path, prompts_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    proc = _spawn(_argv(out, dreambench_data, prompts_file, "delay=0.15"))
    _wait_for(lambda: len(_images(out)) >= 4, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not list(out.rglob("*.tmp")), "SIGTERM must not leave temp files"
    rerun = _spawn(_argv(out, dreambench_data, prompts_file, "delay=0.15"))
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert _figures(out) == reference


def test_failing_subject_is_recorded_and_rerun_does_only_it(
    dreambench_data: Path,
    prompts_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    reference: dict,
) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    fixed = tmp_path / "fixed"
    out = tmp_path / "runs"
    args = _argv(out, dreambench_data, prompts_file, f"fail_subject=can,fail_unless_file={fixed}")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 subject(s) failed: can" in err
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["failures"] == {"can": "FloatingPointError: loss is nan at step 3 for can"}
    assert sorted(results["subjects"]) == ["dog", "vase"]
    assert "FloatingPointError" in (run_dir / "subjects/can/error.txt").read_text()
    dog_scores = run_dir / "subjects/dog/scores.jsonl"
    stamp = dog_scores.stat().st_mtime_ns
    fixed.touch()
    assert main(args) == 0
    assert dog_scores.stat().st_mtime_ns == stamp, "the rerun must not redo finished subjects"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["failures"] == {} and sorted(results["subjects"]) == ["can", "dog", "vase"]
    assert not (run_dir / "subjects/can/error.txt").exists()


def test_kill_9_during_dreambooth_training(dreambench_data: Path, prompts_file: Path, tmp_path: Path) -> None:
    """The real trainer on the tiny model: killed while preparing (loading or training; 200 steps
    take >10 s here), the rerun trains again from scratch and reproduces the uninterrupted run
    exactly (training and rendering are seeded)."""
    argv = [
        "run",
        "--method",
        "dreambooth",
        "--method-args",
        "train_steps=200",
        "--subjects",
        "dog",
        "--prompts",
        str(prompts_file),
        "--images-per-prompt",
        "1",
        "--preset",
        "smoke",
        "--data",
        str(dreambench_data),
        "--quiet",
    ]
    assert main([*argv, "--out", str(tmp_path / "reference")]) == 0
    reference = _figures(tmp_path / "reference")
    out = tmp_path / "runs"
    out.mkdir()
    proc = _spawn([*argv, "--out", str(out)])
    _wait_for(lambda: any(out.glob("*/stamp.json")), proc)  # the subject loop starts right after
    time.sleep(3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not _images(out) and not list(out.rglob("done.json")), "the kill must land before training ends"
    rerun = _spawn([*argv, "--out", str(out)])
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert _figures(out) == reference

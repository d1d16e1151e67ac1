"""Fault tolerance through the CLI: an injected failing subject, SIGTERM, and kill -9 at several
points of a run, each followed by a rerun that must give results identical to an uninterrupted run.

Every kill point is an event the code reports (bench/hold_points.py: the process writes a marker
file and waits there), never a sleep: the tests do not depend on how fast or loaded the machine
is. Subprocess limits only catch a hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dreambench.atomic import is_temp_name
from dreambench.cli import main
from dreambench.hold_points import HOLD_ENV

# Minutes on a 2-vCPU CPU: out of the default run, run by CI with `-m slow` (README).
pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PROMPTS = {
    "name": "three",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a red {0} {1}", "a {0} {1} on the beach"],
    "live": ["a {0} {1} in the snow", "a {0} {1} wearing a red hat", "a {0} {1} on the beach"],
}
SUBJECTS = "dog,can,vase"
# Only catches a hang: a slow or loaded machine must never fail these tests.
HANG_S = 1800


@pytest.fixture()
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "three.json"
    path.write_text(json.dumps(PROMPTS))
    return path


def _argv(out: Path, data: Path, prompts: Path, method_args: str | None = None) -> list[str]:
    return [
        "run",
        "--method",
        "fault_methods:SlowNoise",
        *(["--method-args", method_args] if method_args else []),
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


def figures(out: Path) -> str:
    """results.json of the one run directory under ``out``, less what differs between any two runs
    (wall times, the stamp, the run directory's path), as canonical JSON."""
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("stamp", "cost"):
        results.pop(key)
    results["run"].pop("run_dir")
    for summary in results["subjects"].values():
        summary.pop("cost")
    return json.dumps(results, sort_keys=True)


def _env(hold: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop(HOLD_ENV, None)
    if hold is not None:
        env[HOLD_ENV] = hold
    return env


def _spawn(argv: list[str], hold: str | None = None, code: str | None = None) -> subprocess.Popen:
    """`bench ARGV` in a new process (through ``code`` if given), held at ``hold`` ("point=marker")."""
    command = ["-c", code, *argv] if code else ["-m", "dreambench.cli", *argv]
    return subprocess.Popen(
        [sys.executable, *command],
        env=_env(hold),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_held(argv: list[str], point: str, marker: Path, code: str | None = None) -> subprocess.Popen:
    """Start the run and return once it reports that it holds at ``point`` (it wrote ``marker``)."""
    proc = _spawn(argv, hold=f"{point}={marker}", code=code)
    deadline = time.monotonic() + HANG_S
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the hold point {point}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"hold point {point} never reached")
        time.sleep(0.05)  # polling for the event; not a guess at how long the work takes
    return proc


def _rerun(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dreambench.cli", *argv],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert proc.returncode == 0, proc.stderr


def _temp_entries(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if is_temp_name(p.name)]


@pytest.fixture(scope="module")
def reference(dreambench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The uninterrupted run, in-process."""
    tmp = tmp_path_factory.mktemp("reference")
    prompts = tmp / "three.json"
    prompts.write_text(json.dumps(PROMPTS))
    sys.path.insert(0, str(TESTS))
    try:
        assert main(_argv(tmp / "runs", dreambench_data, prompts)) == 0
    finally:
        sys.path.remove(str(TESTS))
    return figures(tmp / "runs")


def _images(out: Path) -> list[Path]:
    return sorted(out.rglob("images/*.png"))


# Where the run is held, then killed: points the code itself passes (subjects run dog, can, vase).
KILL_POINTS: dict[str, str] = {
    "after config, before the first subject": "atomic-write:stamp.json",
    "mid render of the first subject": "atomic-write:1-0.png",
    "while scoring the first subject": "atomic-write:scores.jsonl",
    "while rendering the second subject": "slow-noise-generate:can",
    "while writing results.json": "atomic-write:results.json",
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_kill_9_loses_nothing(
    point: str, reference: str, dreambench_data: Path, prompts_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    argv = _argv(out, dreambench_data, prompts_file)
    proc = _run_held(argv, KILL_POINTS[point], tmp_path / "held")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for png in _images(out):  # every image on disk is whole: PNGs are renamed into place
        assert png.read_bytes()[-8:] == b"IEND\xaeB`\x82", png
    _rerun(argv)
    assert figures(out) == reference
    assert not _temp_entries(out), "the rerun sweeps temp files a kill left behind"


def test_sigterm_stops_cleanly_and_resumes(
    reference: str, dreambench_data: Path, prompts_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    argv = _argv(out, dreambench_data, prompts_file)
    proc = _run_held(argv, "slow-noise-generate:can", tmp_path / "held")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not _temp_entries(out), "SIGTERM must not leave temp files"
    _rerun(argv)
    assert figures(out) == reference


def test_failing_subject_is_recorded_and_rerun_does_only_it(
    dreambench_data: Path,
    prompts_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    reference: str,
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


# Runs `bench` with a hold point after training step 10 of the real DreamBooth trainer (the
# trainer's ``after_step`` hook), so the kill lands mid-training whatever the machine's speed.
HOLD_IN_TRAINING = """
import sys
from dreambench.cli import main
from dreambench.hold_points import hold_point
from dreambench.reference_impl import dreambooth_trainer

train = dreambooth_trainer.train_dreambooth

def held_train(*args, after_step=None, **kwargs):
    def step_done(step):
        if after_step is not None:
            after_step(step)
        hold_point(f"train-step:{step}")
    return train(*args, after_step=step_done, **kwargs)

dreambooth_trainer.train_dreambooth = held_train
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_during_dreambooth_training(dreambench_data: Path, prompts_file: Path, tmp_path: Path) -> None:
    """The real trainer on the tiny model, killed after its 10th of 20 steps: the rerun trains
    again from scratch and reproduces the uninterrupted run exactly (training and rendering are
    seeded)."""
    argv = [
        "run",
        "--method",
        "dreambooth",
        "--method-args",
        "train_steps=20",
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
    reference = figures(tmp_path / "reference")
    out = tmp_path / "runs"
    out.mkdir()
    proc = _run_held([*argv, "--out", str(out)], "train-step:10", tmp_path / "held", code=HOLD_IN_TRAINING)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not _images(out) and not list(out.rglob("done.json")), "the kill landed mid-training"
    _rerun([*argv, "--out", str(out)])
    assert figures(out) == reference

"""Two processes, one run directory (bench/run_lock.py): the second `bench run` is refused at once
with the holder's pid and host; a lock left by kill -9 is taken over; a subject lock makes a second
holder wait. Driven by events the code reports (hold points, marker files), never by sleeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dreambench.atomic import this_host
from dreambench.errors import BenchError
from dreambench.hold_points import HOLD_ENV
from dreambench.run_lock import (
    RUN_LOCK_FILE,
    SUBJECT_LOCK_FILE,
    DirLock,
    read_holder,
    run_lock,
    subject_lock,
)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PROMPTS = {
    "name": "two",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a red {0} {1}"],
    "live": ["a {0} {1} in the snow", "a {0} {1} wearing a red hat"],
}
# Generous: only catches a hang, never races the machine's speed.
HANG_S = 600


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, **extra}
    if HOLD_ENV not in extra:
        env.pop(HOLD_ENV, None)
    return env


def _argv(out: Path, data: Path, prompts: Path) -> list[str]:
    return [
        sys.executable, "-m", "dreambench.cli", "run",
        "--method", "fault_methods:SlowNoise",
        "--subjects", "can",
        "--prompts", str(prompts),
        "--images-per-prompt", "1",
        "--preset", "smoke",
        "--data", str(data),
        "--out", str(out),
    ]  # fmt: skip


def _wait_for_file(path: Path, proc: subprocess.Popen) -> None:
    """Block until the held process reports it reached its hold point (it writes ``path``)."""
    deadline = time.monotonic() + HANG_S
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the first run ended before its hold point: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("hold point never reached")
        time.sleep(0.05)


@pytest.fixture()
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "two.json"
    path.write_text(json.dumps(PROMPTS))
    return path


def _held_first_run(out: Path, data: Path, prompts: Path, marker: Path) -> subprocess.Popen:
    # Held just before the run's first image is renamed into place: the run directory is locked.
    env = _env(**{HOLD_ENV: f"atomic-write:0-0.png={marker}"})
    proc = subprocess.Popen(
        [*_argv(out, data, prompts), "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_file(marker, proc)
    return proc


def test_second_run_is_refused_at_once_naming_the_holder(
    dreambench_data: Path, prompts: Path, tmp_path: Path
) -> None:
    out, marker = tmp_path / "runs", tmp_path / "held"
    first = _held_first_run(out, dreambench_data, prompts, marker)
    try:
        second = subprocess.run(
            _argv(out, dreambench_data, prompts), env=_env(), capture_output=True, text=True, timeout=HANG_S
        )
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"is in use by pid {first.pid} on host {this_host()}" in lines[0]
        (run_dir,) = out.iterdir()
        assert not (run_dir / "results.json").exists(), "the refused run must write nothing"
    finally:
        (tmp_path / "held.release").touch()
    _, stderr = first.communicate(timeout=HANG_S)
    assert first.returncode == 0, stderr
    assert (run_dir / "results.json").exists()
    assert not (run_dir / RUN_LOCK_FILE).exists(), "a finished run leaves no lock file"


def test_stale_lock_after_kill_9_is_taken_over(dreambench_data: Path, prompts: Path, tmp_path: Path) -> None:
    out, marker = tmp_path / "runs", tmp_path / "held"
    first = _held_first_run(out, dreambench_data, prompts, marker)
    first.send_signal(signal.SIGKILL)
    first.wait()
    (run_dir,) = out.iterdir()
    holder = read_holder(run_dir / RUN_LOCK_FILE)
    assert holder is not None and holder.pid == first.pid, "kill -9 leaves the lock file"
    rerun = subprocess.run(
        _argv(out, dreambench_data, prompts), env=_env(), capture_output=True, text=True, timeout=HANG_S
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"took over the stale lock of pid {first.pid} on host {this_host()}" in rerun.stderr
    assert "reclaimed" in rerun.stderr, "the killed run's temp image is swept and reported"
    assert not (run_dir / RUN_LOCK_FILE).exists()
    assert sorted(p.name for p in (run_dir / "subjects/can/images").iterdir()) == ["0-0.png", "1-0.png"]


def test_stale_lock_file_of_a_dead_pid_is_taken_over_in_process(tmp_path: Path) -> None:
    """A lock file naming a dead pid on this host (what kill -9 leaves) does not block."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RUN_LOCK_FILE).write_text(json.dumps({"pid": pid, "host": this_host(), "since": "earlier"}))
    with run_lock(run_dir) as lock:
        assert lock.took_over is not None and lock.took_over.pid == pid
        holder = read_holder(run_dir / RUN_LOCK_FILE)
        assert holder is not None and holder.pid == os.getpid()
    assert not (run_dir / RUN_LOCK_FILE).exists()


def test_lock_is_reentrant_in_process_and_removes_what_it_created(tmp_path: Path) -> None:
    run_dir = tmp_path / "out" / "run"
    with run_lock(run_dir):
        with run_lock(run_dir):
            assert (run_dir / RUN_LOCK_FILE).exists()
        assert (run_dir / RUN_LOCK_FILE).exists(), "the outer holder still holds it"
    assert not (tmp_path / "out").exists(), "a run that wrote nothing leaves no folders behind"


def test_lock_below_a_regular_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(BenchError, match="cannot create run directory"):
        run_lock(tmp_path / "file" / "run").acquire()


_HOLDER = """
import sys, time
from pathlib import Path
from dreambench.run_lock import subject_lock
folder, held, release, released = map(Path, sys.argv[1:])
with subject_lock(folder):
    held.touch()
    while not release.exists():
        time.sleep(0.05)
    released.touch()  # still holding: the waiter must see this file once it gets the lock
"""


def test_subject_lock_makes_a_second_worker_wait_for_the_first(tmp_path: Path) -> None:
    """A Ray retry of a subject whose first attempt still runs waits for it (never writes beside it)."""
    folder = tmp_path / "subjects" / "can"
    held, release, released = tmp_path / "held", tmp_path / "release", tmp_path / "released"
    first = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder), str(held), str(release), str(released)], env=_env()
    )
    _wait_for_file(held, first)
    with pytest.raises(BenchError, match=f"is in use by pid {first.pid}"):
        DirLock(folder, SUBJECT_LOCK_FILE, what="subject").acquire()  # the same lock, not waiting
    # The first holder sees `release` on its next poll and writes `released` before letting go; a
    # lock that did not wait would be granted at once, before that file exists.
    release.touch()
    with subject_lock(folder):
        assert released.exists(), "the lock was granted before the first holder let go"
    first.wait(timeout=HANG_S)
    assert first.returncode == 0

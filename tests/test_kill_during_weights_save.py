"""kill -9 while the fine-tuned weights folder is being written (the real DreamBooth trainer on the
tiny model): the rerun sweeps the temp folder, says how much it reclaimed, leaves no temp entry
under the run directory or the cache, and ends with a run directory equal to an uninterrupted one.

The kill point is an event the code reports (bench/hold_points.py), not a sleep."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dreambench.atomic import TEMP_PREFIX, is_temp_name
from dreambench.cache_root import cache_root
from dreambench.cli import main
from dreambench.hold_points import HOLD_ENV
from dreambench.reference_impl.dreambooth import WEIGHTS_DIR

# Minutes on a 2-vCPU CPU: out of the default run, run by CI with `-m slow` (README).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROMPTS = {
    "name": "two",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a red {0} {1}"],
    "live": ["a {0} {1} in the snow", "a {0} {1} wearing a red hat"],
}
# Generous: only catches a hang, never races the machine's speed.
HANG_S = 900
# Bookkeeping that differs between any two runs (wall times, memory, dates, where it ran), not results.
VOLATILE_KEYS = {"cost", "stamp", "run_dir", "train_seconds"}
VOLATILE_FILES = {"stamp.json", "cost.json"}


def _temp_entries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if is_temp_name(p.name)]


def _stable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def _snapshot(out: Path) -> dict[str, str]:
    """Every file of the run directory: sha256 of its bytes, or for JSON its content without the
    volatile bookkeeping."""
    (run_dir,) = out.iterdir()
    snapshot = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and p.name not in VOLATILE_FILES):
        name = str(path.relative_to(out))
        if path.suffix == ".json":
            snapshot[name] = json.dumps(_stable(json.loads(path.read_text())), sort_keys=True)
        else:
            snapshot[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return snapshot


def test_kill_9_while_saving_weights_leaves_no_temp_folder(dreambench_data: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "two.json"
    prompts.write_text(json.dumps(PROMPTS))
    argv = [
        "run", "--method", "dreambooth", "--method-args", "train_steps=2,num_class_images=1",
        "--subjects", "dog", "--prompts", str(prompts), "--images-per-prompt", "1",
        "--preset", "smoke", "--data", str(dreambench_data),
    ]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "reference"), "--quiet"]) == 0
    reference = _snapshot(tmp_path / "reference")

    out, marker = tmp_path / "runs", tmp_path / "saving"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        HOLD_ENV: f"atomic-directory:{WEIGHTS_DIR}={marker}",
    }
    cmd = [sys.executable, "-m", "dreambench.cli", *argv, "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG_S
    while not marker.exists():  # the process writes the marker when the weights folder is written
        assert proc.poll() is None, f"the run ended before saving its weights: {proc.communicate()}"
        assert time.monotonic() < deadline, "the weights save was never reached"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (left,) = _temp_entries(out)
    assert left.name.startswith(TEMP_PREFIX) and left.name.endswith(f"+{WEIGHTS_DIR}") and left.is_dir()
    assert any(p.is_file() for p in left.rglob("*")), "the kill landed with weights on disk"

    env.pop(HOLD_ENV)
    rerun = subprocess.run(
        [c for c in cmd if c != "--quiet"], env=env, capture_output=True, text=True, timeout=HANG_S
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "swept temp files a killed run left:" in rerun.stderr and "reclaimed" in rerun.stderr
    assert _temp_entries(out) == [] and _temp_entries(cache_root()) == []
    assert _snapshot(out) == reference

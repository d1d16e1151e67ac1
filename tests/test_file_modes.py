"""Files a run and a report write are readable by others as the umask allows (0644 under umask 022,
0664 under 002), not mkstemp's 0600: runs kept in a group folder, a report served by a web server."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dreambench.cli import main

TESTS = Path(__file__).resolve().parent
PROMPTS = {
    "name": "two",
    "version": "t1",
    "object": ["a {0} {1} in the snow", "a red {0} {1}"],
    "live": ["a {0} {1} in the snow", "a {0} {1} wearing a red hat"],
}


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_and_report_files_get_the_umask_mode(
    umask: int, dreambench_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    prompts = tmp_path / "two.json"
    prompts.write_text(json.dumps(PROMPTS))
    out = tmp_path / "runs"
    argv = [
        "run", "--method", "fault_methods:SlowNoise", "--subjects", "can", "--prompts", str(prompts),
        "--images-per-prompt", "1", "--preset", "smoke", "--data", str(dreambench_data),
        "--out", str(out), "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    (run_dir,) = out.iterdir()
    report = tmp_path / "report"
    assert main(["report", str(run_dir), "-o", str(report), "--data", str(dreambench_data)]) == 0

    file_mode, folder_mode = 0o666 & ~umask, 0o777 & ~umask
    written = [
        run_dir / "results.json",
        run_dir / "config.json",
        run_dir / "stamp.json",
        run_dir / "subjects/can/images/0-0.png",
        run_dir / "subjects/can/images.jsonl",
        run_dir / "subjects/can/scores.jsonl",
        report / "index.html",
    ]
    assert {str(p): _mode(p) for p in written} == {str(p): file_mode for p in written}
    assert _mode(run_dir / "subjects/can/images") == folder_mode

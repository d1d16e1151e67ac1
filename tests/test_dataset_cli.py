"""`bench dataset fetch | verify | info` through `dreambench.cli.main` and one real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.dataset.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fake_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest's file names filled with tiny images (so `info` decodes 158 files in no time).

    Image k of a subject is (10 + k) x 8; dog6/00.jpg carries EXIF orientation 6, so after
    decoding it is 8 x 10. Every hash differs from the manifest, so `verify` must fail.
    """
    root = tmp_path_factory.mktemp("fake") / "dreambooth"
    for name, entry in load_manifest()["subjects"].items():
        folder = root / "dataset" / name
        folder.mkdir(parents=True)
        for k, file in enumerate(sorted(entry["images"])):
            image = Image.new("RGB", (10 + k, 8), (k * 40, 0, 0))
            if (name, k) == ("dog6", 0):
                exif = Image.Exif()
                exif[0x0112] = 6
                image.save(folder / file, exif=exif)
            else:
                image.save(folder / file)
    return root


def test_verify_real_dataset(dreambench_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "verify", "--data", str(dreambench_data)]) == 0
    assert "ok: 30 subjects, 158 images" in capsys.readouterr().out


def test_verify_lists_problems_and_exits_1(fake_clone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "verify", "--data", str(fake_clone)]) == 1
    out = capsys.readouterr().out
    assert "dog6/00.jpg: sha256 mismatch" in out
    assert "prompts_and_classes.txt: missing" in out
    assert "160 problem(s)" in out


def test_missing_dataset_is_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in ("verify", "info"):
        assert main(["dataset", action, "--data", str(tmp_path / "nowhere")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: DreamBooth dataset not found") and "Traceback" not in err


def test_info_json(fake_clone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "info", "--data", str(fake_clone), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    subjects = {s["name"]: s for s in info["subjects"]}
    assert len(subjects) == 30 and sum(len(s["images"]) for s in subjects.values()) == 158
    assert info["data_dir"] == str(fake_clone / "dataset")
    assert (subjects["dog6"]["class_noun"], subjects["dog6"]["kind"]) == ("dog", "live")
    first, second = subjects["dog6"]["images"][:2]
    assert (first["file"], first["width"], first["height"]) == ("00.jpg", 8, 10)  # rotated by EXIF
    assert (second["width"], second["height"]) == (11, 8)
    assert first["sha256"] == load_manifest()["subjects"]["dog6"]["images"]["00.jpg"]


def test_info_table(
    fake_clone: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["dataset", "info", "--data", str(fake_clone)]) == 0
    out = capsys.readouterr().out
    assert "30 subjects (9 live), 158 images" in out
    dog6 = next(line for line in out.splitlines() if " dog6 " in line)
    assert "live" in dog6 and "8x10" in dog6 and "11x8" in dog6
    bear = next(line for line in out.splitlines() if " bear_plushie " in line)
    assert "stuffed animal" in bear and "object" in bear


def test_fetch_into_a_verified_clone_is_a_no_op(
    dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dataset", "fetch", "--data", str(dreambench_data), "--no-progress"]) == 0
    assert "dataset ready at" in capsys.readouterr().err


def test_fetch_download_failure_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 on 127.0.0.1 refuses connections; nothing leaves the machine.
    monkeypatch.setenv("DREAMBENCH_DATASET_URL", "http://127.0.0.1:9/archive.tar.gz")
    monkeypatch.setenv("DREAMBENCH_DATA", str(tmp_path / "dreambooth"))
    assert main(["dataset", "fetch", "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("error: download of http://127.0.0.1:9/archive.tar.gz failed")
    assert list(tmp_path.iterdir()) == []


def test_subprocess_info_json_is_clean_stdout(fake_clone: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "dreambench.cli", "dataset", "info", "--json", "--data", str(fake_clone)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1800,  # only catches a hang: a loaded machine must not fail it
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["subjects"]) == 30

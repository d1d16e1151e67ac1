"""The distribution as users install it: build the wheel, install it without dependencies into a
folder outside the repository, and use it from a working directory outside the repository (so
nothing resolves through the checkout or the editable install)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("bench", "dataset", "metrics", "reference_impl", "leaderboard")
TIMEOUT = 1800  # only catches a hang


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the folder it is installed into)."""
    root = tmp_path_factory.mktemp("wheel")
    # setuptools builds through build/ in the source tree: a module deleted since an earlier build
    # would still be packed from there.
    shutil.rmtree(REPO / "build", ignore_errors=True)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root), str(REPO)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = root.glob("dreambench-*.whl")
    target = root / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert install.returncode == 0, install.stderr
    return wheel, target


def _outside(target: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=TIMEOUT)


def test_the_only_top_level_name_is_dreambench(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"dreambench"}
    # Every data file of the source folders travels with its package.
    tracked = subprocess.run(
        ["git", "ls-files", *FOLDERS], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.split()
    data = [f for f in tracked if not f.endswith(".py")]
    assert data, "the packages ship data files (manifest, prompt sets)"
    for file in data:
        folder, _, rest = file.partition("/")
        inside = "dreambench/" + (rest if folder == "bench" else f"{folder}/{rest}")
        assert inside in names, f"{file} is missing from the wheel as {inside}"


def test_every_module_imports_from_the_installed_copy(installed: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, target = installed
    with zipfile.ZipFile(wheel) as zf:
        modules = sorted(
            n[: -len(".py")].replace("/", ".").removesuffix(".__init__")
            for n in zf.namelist()
            if n.startswith("dreambench/") and n.endswith(".py")
        )
    code = (
        "import importlib, sys\n"
        f"modules = {modules!r}\n"
        "for m in modules:\n"
        "    mod = importlib.import_module(m)\n"
        f"    assert mod.__file__.startswith({str(target)!r}), (m, mod.__file__)\n"
        "print(len(modules))\n"
    )
    result = _outside(target, [sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == len(modules) > 60


@pytest.mark.parametrize("script", ["bench", "dreambench"])
def test_console_scripts_run(installed: tuple[Path, Path], tmp_path: Path, script: str) -> None:
    _, target = installed
    result = _outside(target, [str(target / "bin" / script), "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dreambench" in result.stdout and "run" in result.stdout


def test_bench_eval_from_the_installed_copy(
    installed: tuple[Path, Path], tmp_path: Path, dreambench_data: Path
) -> None:
    _, target = installed
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps({"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}))
    images = tmp_path / "mine" / "dog"
    images.mkdir(parents=True)
    Image.new("RGB", (64, 64), (120, 90, 60)).save(images / "0-0.png")
    out = tmp_path / "runs"
    result = _outside(
        target,
        [
            str(target / "bin" / "bench"), "eval", str(tmp_path / "mine"), "--subjects", "dog",
            "--prompts", str(prompts), "--images-per-prompt", "1", "--preset", "smoke",
            "--data", str(dreambench_data), "--out", str(out), "--device", "cpu", "--json",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results["subjects"]["dog"]["n_generated"] == 1 and results["run"]["method_kind"] == "external"
    assert Path(results["run"]["run_dir"]).parent == out

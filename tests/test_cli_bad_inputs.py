"""Bad input through the CLI: one line on stderr, exit 2, no traceback, and nothing written.

Each case is checked before any work (a device this machine lacks, an output path below a regular
file, a prompt template that cannot render, a damaged outside image), also when the run directory
has nothing left to compute.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main

TESTS = Path(__file__).resolve().parent
ONE_PROMPT = {
    "name": "one",
    "version": "t1",
    "object": ["a {0} {1} in the snow"],
    "live": ["a {0} {1} asleep"],
}


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run `bench ARGV`; assert exit 2 with exactly one line on stderr; return that line."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(autouse=True)
def _test_methods_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "one.json"
    path.write_text(json.dumps(ONE_PROMPT))
    return path


def _run_argv(out: Path, data: Path, prompts: Path, *extra: str) -> list[str]:
    return [
        "run", "--method", "fault_methods:SlowNoise", "--subjects", "can", "--prompts", str(prompts),
        "--images-per-prompt", "1", "--preset", "smoke", "--data", str(data), "--out", str(out), "--quiet",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished(dreambench_data: Path, prompts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run (one subject, one image): nothing is left to compute when it is rerun."""
    out = tmp_path_factory.mktemp("finished") / "runs"
    sys.path.insert(0, str(TESTS))
    try:
        assert main(_run_argv(out, dreambench_data, prompts)) == 0
    finally:
        sys.path.remove(str(TESTS))
    return out


def _files(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("device", ["tpu0", "cuda:x", "cpu:1", "gpu", ""])
def test_unknown_device_is_refused_even_with_nothing_left_to_compute(
    device: str, finished: Path, dreambench_data: Path, prompts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _files(finished)
    line = one_line_error(capsys, _run_argv(finished, dreambench_data, prompts, "--device", device))
    assert f"--device {device!r}" in line and "valid: auto, cpu, cuda" in line
    assert _files(finished) == before


def test_cuda_without_cuda_is_one_line(
    dreambench_data: Path,
    prompts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "runs"
    for command in ("run", "eval"):
        argv = _run_argv(out, dreambench_data, prompts, "--device", "cuda")
        if command == "eval":
            argv = ["eval", str(tmp_path), *argv[3:]]
        line = one_line_error(capsys, argv)
        assert "CUDA is not available" in line and "--device cpu" in line
    assert not out.exists()


def test_output_below_a_regular_file_is_one_line(
    finished: Path, dreambench_data: Path, prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    (run_dir,) = finished.iterdir()
    cases = {
        "run": _run_argv(blocker / "runs", dreambench_data, prompts),
        "run onto the file": _run_argv(blocker, dreambench_data, prompts),
        "eval": ["eval", str(tmp_path), "--subjects", "can", "--out", str(blocker / "runs")],
        "leaderboard": ["leaderboard", str(run_dir), "-o", str(blocker / "board.md")],
        "leaderboard deeper": ["leaderboard", str(run_dir), "-o", str(blocker / "a" / "board.csv")],
        "report": ["report", str(run_dir), "-o", str(blocker / "report")],
    }
    for name, argv in cases.items():
        line = one_line_error(capsys, argv)
        assert str(blocker) in line, name
    assert blocker.read_text() == "a file, not a folder\n"


@pytest.mark.parametrize(
    "content",
    [
        '{"fail_subject": null}',
        '{"fail_subject": ["can"]}',
        "fail_subject: null\n",
        "fail_subject:\n  - can\n",
        '{"fail_subject": {"name": "can"}}',
    ],
)
def test_method_args_file_with_null_or_a_list_is_one_line(
    content: str, dreambench_data: Path, prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args_file = tmp_path / ("args.json" if content.startswith("{") else "args.yaml")
    args_file.write_text(content)
    out = tmp_path / "runs"
    line = one_line_error(capsys, _run_argv(out, dreambench_data, prompts, "--method-args", f"@{args_file}"))
    assert "fail_subject" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "template", ["a {0:d} {1}", "a {0:{2}} {1}", "a {0!r} {1}", "a {0} {1} {2}", "a {0} {1.upper}"]
)
def test_prompt_template_that_cannot_render_fails_when_loaded(
    template: str, dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**ONE_PROMPT, "object": ["a {0} {1} on a desk", template]}))
    out = tmp_path / "runs"
    line = one_line_error(capsys, _run_argv(out, dreambench_data, bad))
    assert "object[1]" in line and template in line
    assert not out.exists(), "the template is checked before any work"


def _external_images(root: Path, subject: str, n_prompts: int) -> Path:
    folder = root / subject
    folder.mkdir(parents=True)
    for p in range(n_prompts):
        Image.new("RGB", (32, 32), (10 * p, 80, 160)).save(folder / f"{p}-0.png")
    return folder


def test_eval_checks_every_input_before_copying(
    dreambench_data: Path, prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    folder = _external_images(images, "can", 1)
    damaged = folder / "0-0.png"
    damaged.write_bytes(damaged.read_bytes()[:40])
    out = tmp_path / "runs"
    argv = ["eval", str(images), "--subjects", "can", "--prompts", str(prompts), "--images-per-prompt", "1"]
    line = one_line_error(
        capsys, [*argv, "--preset", "smoke", "--data", str(dreambench_data), "--out", str(out)]
    )
    assert str(damaged) in line
    assert not out.exists(), "nothing is copied before every input is checked"


def test_eval_images_per_prompt_zero_is_one_line(
    dreambench_data: Path, prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    _external_images(images, "can", 1)
    out = tmp_path / "runs"
    argv = ["eval", str(images), "--subjects", "can", "--prompts", str(prompts), "--images-per-prompt", "0"]
    line = one_line_error(
        capsys, [*argv, "--preset", "smoke", "--data", str(dreambench_data), "--out", str(out)]
    )
    assert "--images-per-prompt 0" in line
    assert not out.exists()


def test_missing_dataset_image_blocks_only_its_subject(
    dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = dreambench_data / "dataset" if (dreambench_data / "dataset").is_dir() else dreambench_data
    data = tmp_path / "dataset"
    for path in sorted(source.rglob("*")):  # real folders, links to the real files
        target = data / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.symlink_to(path)
    missing = sorted((data / "cat").iterdir())[0]
    missing.unlink()
    out = tmp_path / "runs"
    argv = [
        "run",
        "--method",
        "real-images",
        "--preset",
        "smoke",
        "--data",
        str(data),
        "--out",
        str(out),
        "--quiet",
    ]
    assert main([*argv, "--subjects", "dog"]) == 0
    line = one_line_error(capsys, [*argv, "--subjects", "cat"])
    assert str(missing) in line and "bench dataset verify" in line
    assert main(["dataset", "verify", "--data", str(data)]) == 1
    assert f"cat/{missing.name}: missing" in capsys.readouterr().out


def test_device_for_other_machines_is_checked_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--executor ray --device cuda` from a driver without a GPU is valid (the workers have one);
    a name torch does not know is still refused."""
    import torch

    from dreambench.commands.subject_args import device_from_args
    from dreambench.errors import BenchError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_from_args("cuda:1", runs_here=False) == "cuda:1"
    with pytest.raises(BenchError, match="CUDA is not available"):
        device_from_args("cuda:1")
    with pytest.raises(BenchError, match="unknown --device 'tpu0'"):
        device_from_args("tpu0", runs_here=False)


def test_fetch_below_a_regular_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    line = one_line_error(
        capsys, ["dataset", "fetch", "--data", str(blocker / "dreambooth"), "--no-progress"]
    )
    assert str(blocker) in line and "is a file, not a folder" in line


def test_methods_with_an_unknown_method_preset_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, ["methods", "dreambooth", "--method-preset", "papr"])
    assert "'papr'" in line and "paper" in line and "smoke" in line


def test_run_with_an_unknown_method_preset_is_one_line_even_for_a_one_preset_method(
    tmp_path: Path, dreambench_data: Path, prompts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    line = one_line_error(capsys, _run_argv(out, dreambench_data, prompts, "--method-preset", "nope"))
    assert "'nope'" in line and "default" in line and not out.exists()


@pytest.mark.parametrize(
    ("size", "mode", "expected"),
    [
        ((1, 1), "RGB", "is 1x1 pixels; images must be at least 8x8"),
        ((10_000, 9_000), "1", "the limit is 89.5 MP"),
    ],
)
def test_eval_refuses_an_image_outside_the_size_limits_in_one_line(
    size: tuple[int, int],
    mode: str,
    expected: str,
    dreambench_data: Path,
    prompts: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The decoding policy (dataset/images.py) holds for outside images as for generated and real
    ones: refused before anything is copied, one line naming the file."""
    images = tmp_path / "images"
    folder = _external_images(images, "can", 1)
    bad = folder / "0-0.png"
    Image.new(mode, size).save(bad)
    out = tmp_path / "runs"
    argv = ["eval", str(images), "--subjects", "can", "--prompts", str(prompts), "--images-per-prompt", "1"]
    line = one_line_error(
        capsys, [*argv, "--preset", "smoke", "--data", str(dreambench_data), "--out", str(out)]
    )
    assert str(bad) in line and expected in line, line
    assert not out.exists()

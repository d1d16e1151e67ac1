"""reference_impl/flow_lora_benchmark.py through gpu_benchmark's CLI (``--lora flux|sd3``): the
script's DreamBooth-LoRA train step and ours, alternating, with medians, ranges, ratios and peak
memory per row. The CPU test runs the tiny models for a step or two and checks the shape and the
arithmetic of the output, never the timings. The GPU test (marker ``gpu``, off by default) runs
the full-size FLUX.1-dev / SD3 medium architectures on CUDA and fails, not skips, without CUDA."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from dreambench.reference_impl.flow_lora_benchmark import FLOW_ROWS
from dreambench.reference_impl.gpu_benchmark import LABEL, main


def run(args: list[str], out: Path) -> dict[str, Any]:
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def check(result: dict[str, Any], lora: str, size: str, device: str, repeats: int) -> None:
    assert (result["label"], result["lora"], result["size"], result["device"]) == (LABEL, lora, size, device)
    assert set(result["train"]) == set(FLOW_ROWS)
    for row, info in result["train"].items():
        values = info["step_ms_per_repeat"]
        assert len(values) == repeats and all(v > 0 for v in values), row
        assert info["step_ms"] == {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }
        assert info["peak_memory_mib"] > 0, row
        expected = result["train"]["script"]["step_ms"]["median"] / info["step_ms"]["median"]
        assert info["speedup_vs_script"] == pytest.approx(expected)


@pytest.mark.parametrize("lora", ["flux", "sd3"])
def test_tiny_cpu_lora_rows(
    lora: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps the table at the terminal's width
    args = [
        "--lora",
        lora,
        "--size",
        "tiny",
        "--device",
        "cpu",
        "--repeats",
        "3",
        "--steps",
        "1",
        "--warmup",
        "1",
    ]
    result = run(args, tmp_path / "bench.json")
    check(result, lora, "tiny", "cpu", repeats=3)
    assert result["resolution"] == 32 and result["memory_kind"].startswith("host")
    table = capsys.readouterr().out
    assert f"train_dreambooth_lora_{lora}.py" in table and "speed-up vs script" in table


def test_bad_lora_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):  # argparse: exit 2 with the choices
        main(["--lora", "sdxl", "--size", "tiny", "--device", "cpu"])
    assert "invalid choice: 'sdxl'" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("lora", ["sd3", "flux"])
def test_full_size_cuda_lora_rows(lora: str, tmp_path: Path) -> None:
    result = run(
        ["--lora", lora, "--device", "cuda", "--repeats", "3", "--steps", "3", "--warmup", "2"],
        tmp_path / "b.json",
    )
    check(result, lora, "full", "cuda", repeats=3)
    assert result["resolution"] == 512 and result["memory_kind"].startswith("device")

"""reference_impl/gpu_benchmark.py: both paths measured side by side, JSON figures and ratios.

The CPU test runs the whole script on the embedded tiny model with a handful of steps; it checks the
shape and sanity of the output, never the timings themselves. The GPU test (marker ``gpu``, off by
default) runs the SD 1.5-size architecture on CUDA and fails, not skips, where there is no CUDA.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from dreambench.reference_impl.gpu_benchmark import FIGURES, LABEL, build_sd15_components, main


def run_main(args: list[str], out: Path) -> dict[str, Any]:
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def check_result(result: dict[str, Any], size: str, device: str, steps: int, images: int) -> None:
    assert result["label"] == LABEL
    assert (result["size"], result["device"]) == (size, device)
    assert result["settings"]["steps"] == steps and result["settings"]["images"] == images
    assert set(result["paths"]) == {"optimized", "baseline"}
    for name, path in result["paths"].items():
        for figure in FIGURES:
            value = path[figure]
            assert math.isfinite(value) and value > 0, (name, figure, value)
        assert len(path["train_step_ms_all"]) == steps
        assert all(ms > 0 for ms in path["train_step_ms_all"])
    assert result["paths"]["baseline"]["render_batch"] == 1
    for figure in FIGURES:
        expected = result["paths"]["baseline"][figure] / result["paths"]["optimized"][figure]
        assert result["ratio"][figure] == pytest.approx(expected)
    assert {"torch", "diffusers", "transformers"} <= set(result["versions"])


def test_tiny_cpu_both_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--size", "tiny", "--device", "cpu", "--steps", "2", "--warmup", "1", "--images", "2"]
    result = run_main([*args, "--render-steps", "2"], tmp_path / "bench.json")
    check_result(result, "tiny", "cpu", steps=2, images=2)
    assert result["card"] == "cpu"
    assert result["memory_kind"].startswith("host")
    # Rendering batches are capped at the number of images (no padded throw-away images timed).
    assert result["paths"]["optimized"]["render_batch"] == 2
    assert result["paths"]["optimized"]["latent_precompute_s"] > 0
    table = capsys.readouterr().out
    assert "baseline / optimized" in table and LABEL in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "--steps=0 must be at least 1"),
        (["--render-batch", "0"], "--render-batch=0 must be at least 1"),
    ],
)
def test_bad_settings_are_one_line_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--size", "tiny", "--device", "cpu", *args, "--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_sd15_architecture_has_sd15_parameter_counts() -> None:
    """The sd15 size is Stable Diffusion 1.5's architecture: its published parameter counts
    (UNet 859,520,964; VAE 83,653,863; CLIP ViT-L/14 text encoder 123,060,480). Built on the meta
    device: shapes only, no memory, no weights."""
    model = build_sd15_components("meta")
    counts = [sum(p.numel() for p in m.parameters()) for m in (model.unet, model.vae, model.text_encoder)]
    assert counts == [859_520_964, 83_653_863, 123_060_480]
    assert model.tokenizer("sks").input_ids == [49406, 48136, 49407]  # the real CLIP BPE


@pytest.mark.gpu
def test_sd15_cuda_both_paths(tmp_path: Path) -> None:
    import torch

    assert torch.cuda.is_available(), "the gpu marker was selected but torch sees no CUDA device"
    args = ["--size", "sd15", "--device", "cuda", "--steps", "3", "--warmup", "2", "--images", "2"]
    result = run_main([*args, "--render-steps", "5"], tmp_path / "bench.json")
    check_result(result, "sd15", "cuda", steps=3, images=2)
    assert result["card"] == torch.cuda.get_device_name()
    assert result["memory_kind"].startswith("device")
    assert result["settings"]["resolution"] == 512

"""reference_impl/gpu_benchmark.py: every row measured, alternating, with medians, ranges and ratios.

The CPU test runs the whole script on the embedded tiny model with a handful of steps; it checks the
shape and the arithmetic of the output, never the timings themselves. The GPU test (marker ``gpu``,
off by default) runs the SD 1.5-size architecture on CUDA and fails, not skips, where there is no CUDA.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from dreambench.reference_impl.gpu_benchmark import (
    LABEL,
    RENDER_ROWS,
    TRAIN_ROWS,
    build_sd15_components,
    main,
)


def run_main(args: list[str], out: Path) -> dict[str, Any]:
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def check_summary(summary: dict[str, float], per_repeat: list[float], repeats: int) -> None:
    assert len(per_repeat) == repeats and all(math.isfinite(v) and v > 0 for v in per_repeat)
    assert summary == {
        "median": statistics.median(per_repeat),
        "min": min(per_repeat),
        "max": max(per_repeat),
    }


def check_result(result: dict[str, Any], size: str, device: str, repeats: int, steps: int) -> None:
    assert result["label"] == LABEL
    assert (result["size"], result["device"]) == (size, device)
    assert result["settings"]["repeats"] == repeats and result["settings"]["steps"] == steps
    # The rows alternate: train a, b, c, render a, c — then the same again, once per repeat.
    one_round = [["train", row] for row in TRAIN_ROWS] + [["render", row] for row in RENDER_ROWS]
    assert [phase[:2] for phase in result["schedule"]] == one_round * repeats
    assert [phase[2] for phase in result["schedule"]] == [r for r in range(repeats) for _ in one_round]
    assert set(result["train"]) == set(TRAIN_ROWS) and set(result["render"]) == set(RENDER_ROWS)
    for row, info in result["train"].items():
        check_summary(info["step_ms"], info["step_ms_per_repeat"], repeats)
        assert [len(durations) for durations in info["step_ms_all"]] == [steps] * repeats
        assert info["step_ms_per_repeat"] == [statistics.median(d) for d in info["step_ms_all"]]
        assert info["peak_memory_mib"] > 0, row
        expected = result["train"]["script"]["step_ms"]["median"] / info["step_ms"]["median"]
        assert info["speedup_vs_script"] == pytest.approx(expected)
    for row, info in result["render"].items():
        check_summary(info["images_per_s"], info["images_per_s_per_repeat"], repeats)
        assert info["peak_memory_mib"] > 0, row
        expected = info["images_per_s"]["median"] / result["render"]["script"]["images_per_s"]["median"]
        assert info["speedup_vs_script"] == pytest.approx(expected)
    assert result["train"]["script"]["speedup_vs_script"] == 1.0
    assert result["render"]["script"]["batch"] == 1
    assert {"torch", "diffusers", "transformers"} <= set(result["versions"])


def check_speedup_rows(result: dict[str, Any]) -> None:
    """The speed-up rows carry their options, compile time and drift against the eager row (c)."""
    from dreambench.reference_impl.gpu_benchmark import ROW_OPTIONS

    train, render = result["train"], result["render"]
    for row, options in ROW_OPTIONS.items():
        assert train[row]["options"] == options
    assert train["compiled"]["compile_s"] > 0 and render["compiled"]["compile_s"] > 0
    for row in ("ours-fp16", "ours", "bf16-weights", "compiled", "graphed"):
        drift = train[row]["drift"]
        assert drift["steps"] == result["settings"]["drift_steps"]
        assert set(drift["vs_eager"]) == {"loss_max_abs", "weights_max_abs", "update_rel_l2"}
    # (c) against itself is exact; on CPU (no autocast) so are (b) and fp32; the bf16 rows drift,
    # within the bounds tests/test_precision_policy.py states for the bf16-weights step.
    assert train["ours"]["drift"]["vs_eager"] == {
        "loss_max_abs": 0.0,
        "weights_max_abs": 0.0,
        "update_rel_l2": 0.0,
    }
    assert result["drift_fp32"]["train"]["loss_max_abs"] == 0.0
    for row in ("bf16-weights", "compiled", "graphed"):
        d = train[row]["drift"]["vs_eager"]
        assert 0 < d["loss_max_abs"] < 5e-3 and 0 < d["update_rel_l2"] < 0.15
    # Compiling (aot_eager) changes no number of the bf16-weights step or render.
    assert train["compiled"]["drift"]["vs_eager"] == train["bf16-weights"]["drift"]["vs_eager"]
    assert render["compiled"]["drift"]["vs_eager"] == render["bf16-weights"]["drift"]["vs_eager"]
    assert render["ours"]["drift"]["vs_eager"] == {"max_abs": 0.0, "rel_l2": 0.0}
    assert 0 < render["bf16-weights"]["drift"]["vs_eager"]["rel_l2"] < 0.05
    assert "script" not in result["drift_fp32"] and "drift" not in train["script"]


@pytest.mark.slow
def test_tiny_cpu_every_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps the table at the terminal's width
    args = ["--size", "tiny", "--device", "cpu", "--repeats", "3", "--steps", "1", "--warmup", "1"]
    args += ["--compile-backend", "aot_eager", "--drift-steps", "3"]  # dynamo capture without C++ builds
    result = run_main([*args, "--images", "2", "--render-steps", "1"], tmp_path / "bench.json")
    check_result(result, "tiny", "cpu", repeats=3, steps=1)
    check_speedup_rows(result)
    assert result["card"] == "cpu"
    assert result["memory_kind"].startswith("host")
    # Rendering batches are capped at the number of images (no padded throw-away images timed).
    assert result["render"]["ours"]["batch"] == 2
    assert result["train"]["ours"]["latent_precompute_s"]["median"] > 0
    assert len(result["train"]["script"]["grad_scaler_skipped_steps"]) == 3
    table = capsys.readouterr().out
    assert "speed-up vs script" in table and LABEL in table and "(b) ours, fp16 + scaler" in table
    assert "(d) bf16 weights + fp32 masters" in table and "drift vs (c)" in table
    assert "fp32 (yardstick)" in table and "compile" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "--steps=0 must be at least 1"),
        (["--render-batch", "0"], "--render-batch=0 must be at least 1"),
        (["--repeats", "2"], "--repeats=2 must be at least 3"),
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
def test_sd15_cuda_every_row(tmp_path: Path) -> None:
    import torch

    assert torch.cuda.is_available(), "the gpu marker was selected but torch sees no CUDA device"
    args = ["--size", "sd15", "--device", "cuda", "--repeats", "3", "--steps", "3", "--warmup", "2"]
    result = run_main([*args, "--images", "2", "--render-steps", "5"], tmp_path / "bench.json")
    check_result(result, "sd15", "cuda", repeats=3, steps=3)
    assert result["card"] == torch.cuda.get_device_name()
    assert result["memory_kind"].startswith("device")
    assert result["settings"]["resolution"] == 512
    assert result["train"]["ours"]["precision"].startswith("bf16")
    assert result["train"]["ours-fp16"]["precision"].startswith("fp16")

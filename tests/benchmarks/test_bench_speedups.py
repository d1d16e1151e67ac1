"""The GPU speed-up rows of gpu_benchmark side by side on the CPU (embedded tiny model).

    pytest tests/benchmarks/test_bench_speedups.py --benchmark-enable -s

Every row's code path (script, eager, bf16 weights + fp32 masters, compiled, CUDA-graph mode which
on CPU compiles as default; bf16 and compiled rendering) on the tiny model at the smoke size, with
``aot_eager`` as the compile backend (no C++ builds). Figures (median ms/step, images/s, drift
against the eager row) land in ``extra_info`` and are printed with -s; nothing about them is
asserted: on a CPU they say what the paths cost here, not what they gain on a GPU.
"""

from __future__ import annotations

from dreambench.reference_impl.gpu_benchmark import BenchmarkSettings, run_benchmark


def test_speedup_rows_side_by_side(benchmark) -> None:
    settings = BenchmarkSettings(
        size="tiny",
        device="cpu",
        repeats=3,
        steps=3,
        warmup=1,
        images=4,
        render_steps=8,
        render_batch=4,
        drift_steps=3,
        compile_backend="aot_eager",
    )
    result = benchmark.pedantic(run_benchmark, args=(settings,), rounds=1, iterations=1)
    figures: dict[str, float | None] = {}
    for row, info in result["train"].items():
        figures[f"train_{row}_ms"] = info["step_ms"]["median"]
        if "drift" in info:
            figures[f"train_{row}_update_drift"] = info["drift"]["vs_eager"]["update_rel_l2"]
    for row, info in result["render"].items():
        figures[f"render_{row}_img_s"] = info["images_per_s"]["median"]
        if "drift" in info:
            figures[f"render_{row}_latent_drift"] = info["drift"]["vs_eager"]["rel_l2"]
    benchmark.extra_info.update(figures)
    print("\n" + ", ".join(f"{k}={v:.4g}" for k, v in figures.items() if v is not None))
    assert set(result["train"]) >= {"bf16-weights", "compiled", "graphed"}

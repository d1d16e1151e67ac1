"""The README's main job, measured as a user runs it: the whole smoke benchmark from an empty cache.

    pytest tests/benchmarks/test_bench_smoke_run.py -s

`bench run --method dreambooth --subjects all --preset smoke` in a fresh process with an empty
``DREAMBENCH_CACHE``, so it also assembles the tiny-trained model and merges the trained smoke
embedders, samples the class priors, trains 30 subjects, renders 3,000 images and scores them.
Its budget is 15 minutes on 2 quiet cores (docs/PERFORMANCE.md); this measures the wall time, the
stage sums from the run's cost records and the peak memory of the child process, and never asserts
a timing. ``DREAMBENCH_BENCH_SMOKE_SUBJECTS`` (default ``all``) narrows it for a quick look.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SUBJECTS = os.environ.get("DREAMBENCH_BENCH_SMOKE_SUBJECTS", "all")


def _stage_sums(results: dict) -> dict[str, float]:
    """Wall seconds per stage summed over subjects, and the peak host memory, from results.json ``cost``."""
    stages = results["cost"]["stages"]
    sums = {f"{stage}_s": float(record["wall_s"]) for stage, record in stages.items()}
    peaks = [record.get("peak_host_mib") for record in stages.values()]
    return sums | {"peak_host_mib": max((p for p in peaks if p is not None), default=0.0)}


def test_fresh_smoke_run(benchmark, dreambench_data: Path, tmp_path: Path) -> None:
    env = dict(os.environ, DREAMBENCH_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    out = tmp_path / "runs"
    argv = [
        sys.executable, "-m", "dreambench.cli", "run", "--method", "dreambooth", "--subjects", SUBJECTS,
        "--preset", "smoke", "--data", str(dreambench_data), "--out", str(out), "--quiet",
    ]  # fmt: skip

    def run() -> float:
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    wall = benchmark.pedantic(run, rounds=1, iterations=1)
    (run_dir,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["overall"]["n_subjects"] == (30 if SUBJECTS == "all" else len(SUBJECTS.split(",")))
    figures = {
        "wall_s": wall,
        "peak_rss_mib_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    figures |= _stage_sums(results)
    figures["cpus"] = float(os.cpu_count() or 0)
    benchmark.extra_info.update({k: round(v, 3) for k, v in figures.items()})
    print("\n" + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    overall = results["overall"]
    print(run_dir.name, ", ".join(f"{m}={overall[m]:.4f}" for m in ("dino", "clip_i", "clip_t")))

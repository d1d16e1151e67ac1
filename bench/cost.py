"""What a stage cost: wall seconds, device seconds, peak device memory and peak host memory.

Measured around each stage of each subject (prepare, render, score) and stored in the subject's
cost.json, so a method's cost sits beside its score in results and the leaderboard.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _host_peak_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@contextmanager
def measure_stage(device: str) -> Iterator[dict[str, Any]]:
    """Yields a dict that is filled on exit: wall_s, device_s (GPU runs only), peak_device_mib, peak_host_mib.

    peak_host_mib is the process peak so far (the OS keeps no per-stage peak); peak_device_mib is
    the CUDA allocator's peak within the stage.
    """
    cuda = device.startswith("cuda") and "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized()
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    record: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        yield record
    finally:
        if cuda:
            import torch

            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
        record["wall_s"] = round(wall, 3)
        record["device_s"] = round(wall, 3) if device.startswith("cuda") else None
        record["peak_device_mib"] = (
            round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda else None
        )
        record["peak_host_mib"] = round(_host_peak_mib(), 1)

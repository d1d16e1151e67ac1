"""Provenance stamp written into every run: what code, libraries and device produced it, and when."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from dreambench import __version__

_LIBRARIES = (
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "timm",
    "open-clip-torch",
    "peft",
    "numpy",
    "pillow",
)


def _git_state(cwd: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    from dreambench.metrics.precision import cpu_model

    return f"{device} ({cpu_model()})"


def _device_bf16(device: str) -> dict[str, Any]:
    """Whether ``device`` runs bf16 natively, and why (metrics/precision.py): a bf16 run on a
    device that emulates it was slower than fp32 would have been, and says so here."""
    from dreambench.errors import BenchError
    from dreambench.metrics.precision import device_bf16_support

    try:
        return device_bf16_support(device).as_dict()
    except BenchError:  # a CUDA device only the workers see (Ray): unknown here
        return {"native": None, "reason": f"{device} is not visible to this process"}


def make_stamp(device: str) -> dict[str, Any]:
    """The provenance dict stored as stamp.json and inside results.json. ``device_bf16``:
    ``{"native": bool, "reason": str}`` for the device (absent from stamps written before it)."""
    return {
        "dreambench_version": __version__,
        "git": _git_state(Path(__file__).resolve().parent),
        "libraries": _library_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": _device_description(device),
        "device_bf16": _device_bf16(device),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }

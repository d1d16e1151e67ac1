"""Whether this machine runs bf16 natively, and what each scoring precision resolves to here.

bf16 scoring is only a fast mode where the hardware has bf16 arithmetic. On a CPU without it torch
emulates bf16 (convert, multiply in fp32, round back) and `--scoring-precision bf16` runs 3-4x
*slower* than fp32 (docs/PERFORMANCE.md). This module is the one place that knows which kind of
machine this is:

* **CPU, x86**: native when the CPU has AVX512-BF16 or AMX-BF16 units (``avx512_bf16`` /
  ``amx_bf16`` in /proc/cpuinfo's flags; elsewhere torch's own query) *and* oneDNN may use them:
  the networks' bf16 matmuls run in oneDNN, and ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``)
  capped below bf16 (``AVX2``, ``AVX512_CORE``, ...) makes oneDNN emulate bf16 whatever the CPU
  has (measured: bf16 scoring 0.2x fp32's speed, docs/PERFORMANCE.md). torch's own kernel level
  (``torch.backends.cpu.get_cpu_capability()``, capped by ``ATEN_CPU_CAPABILITY``) does not
  decide it: it covers the elementwise ops, which autocast keeps in fp32 or which cost little;
  with ``ATEN_CPU_CAPABILITY=avx2`` bf16 scoring stayed 1.4x faster than fp32 on an AVX512-BF16
  CPU, so it is recorded by the benchmark but not used here.
* **CPU, arm64**: native when the CPU has the BF16 extension (``bf16`` in /proc/cpuinfo's
  Features; elsewhere torch's oneDNN query).
* **CUDA**: as the card is: native when torch says the card computes in bf16 (Ampere and later),
  not when it would only emulate it.

`resolve_precision` turns a requested precision (``fp32``, ``bf16`` or ``auto``) into the one
that runs: ``auto`` is bf16 where bf16 is native, else fp32. It is resolved once, where the run is
configured, and only the resolved precision enters a result's identity (a Ray worker rebuilds its
Scorer from that), so ``auto`` and an explicit ``bf16`` on a native machine are the same result.
`precision_warning` is the line printed when bf16 is asked for on a machine that emulates it: the
run goes on (bf16 figures are valid, only slow), labelled bf16, with the stamp saying "emulated".
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dreambench.errors import BenchError
from dreambench.metrics.embedder import AUTO_PRECISION, PRECISION_CHOICES, check_precision

if TYPE_CHECKING:
    import torch

# CPU flags (Linux /proc/cpuinfo) that mean bf16 arithmetic units.
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ARM_BF16_FLAG = "bf16"
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below the first ISA with bf16 instructions (AVX512_CORE_BF16).
ONEDNN_CAPS_WITHOUT_BF16 = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
)
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Bf16Support:
    """Whether a device executes bf16 natively, and why (one short phrase, for the stamp and the
    warning), e.g. ``Bf16Support(True, "CPU flags avx512_bf16")``."""

    native: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"native": self.native, "reason": self.reason}


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 "flags", arm64 "Features"), or None where
    there is no such file (macOS, Windows)."""
    try:
        text = _CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC 9R14", ...), or the platform's processor string."""
    try:
        for line in _CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_reports_bf16_units(arch: str) -> bool:
    """torch's own query, where /proc/cpuinfo is not there to read."""
    import torch

    if arch in ("arm64", "aarch64"):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # cpuinfo's arm bf16 bit
    cpu = torch.cpu
    return any(
        bool(getattr(cpu, q, lambda: False)())
        for q in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def cpu_bf16_support(
    flags: frozenset[str] | None = None,
    arch: str | None = None,
    environ: dict[str, str] | None = None,
) -> Bf16Support:
    """Whether this process's torch runs bf16 natively on this CPU (module docstring for the rule).

    The arguments default to this machine (``cpu_flags()``, ``platform.machine()``,
    ``os.environ``); tests pass them to check both answers on any CPU.
    """
    arch = (arch or platform.machine()).lower()
    flags = cpu_flags() if flags is None else flags
    environ = dict(os.environ) if environ is None else environ
    if arch in ("x86_64", "amd64", "i386", "i686"):
        if flags is not None:
            units = [f for f in X86_BF16_FLAGS if f in flags]
        else:
            units = ["torch reports AVX512-BF16/AMX"] if _torch_reports_bf16_units(arch) else []
        if not units:
            return Bf16Support(False, "no AVX512-BF16 or AMX-BF16 units (bf16 is emulated)")
        what = "CPU flags " + ", ".join(units) if flags is not None else units[0]
        for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
            cap = environ.get(name, "").strip().upper()
            if cap in ONEDNN_CAPS_WITHOUT_BF16:
                return Bf16Support(
                    False, f"{what}, but {name}={cap} keeps oneDNN from them (bf16 is emulated)"
                )
        return Bf16Support(True, what)
    if arch in ("arm64", "aarch64"):
        has = ARM_BF16_FLAG in flags if flags is not None else _torch_reports_bf16_units(arch)
        source = "CPU flag bf16" if flags is not None else "torch reports arm bf16"
        return (
            Bf16Support(True, source)
            if has
            else Bf16Support(False, "no arm BF16 extension (bf16 is emulated)")
        )
    return Bf16Support(False, f"no known bf16 units on {arch} (bf16 is emulated)")


def cpu_bf16_native() -> bool:
    """True when this CPU, as torch uses it in this process, executes bf16 natively."""
    return cpu_bf16_support().native


def device_bf16_support(device: str | torch.device) -> Bf16Support:
    """`cpu_bf16_support()` for a CPU device; for a CUDA device, what the card computes in."""
    import torch

    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise BenchError(
                f"device {str(device)!r} is not visible here, so whether it runs bf16 natively is "
                "unknown; choose --scoring-precision fp32 or bf16"
            )
        name = torch.cuda.get_device_name(resolved)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Bf16Support(True, f"{name} computes in bf16")
        return Bf16Support(False, f"{name} has no bf16 arithmetic (bf16 is emulated)")
    if resolved.type == "cpu":
        return cpu_bf16_support()
    return Bf16Support(False, f"bf16 support of {resolved.type} devices is not known")


def torch_cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _device(device: str | torch.device) -> torch.device:
    import torch

    from dreambench.metrics.embedder import resolve_device

    if isinstance(device, str) and device == "auto":
        return resolve_device(device)
    try:
        return torch.device(device)
    except RuntimeError:
        raise BenchError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:<index>") from None


def resolve_precision(requested: str, device: str | torch.device) -> str:
    """The precision that runs on ``device`` for ``requested``: ``auto`` -> "bf16" where bf16 is
    native, else "fp32"; "fp32" and "bf16" as they are. Anything else is a one-line BenchError."""
    if requested != AUTO_PRECISION:
        if requested not in PRECISION_CHOICES:
            raise BenchError(
                f"unknown scoring precision {requested!r}; valid: {', '.join(PRECISION_CHOICES)}"
            )
        return check_precision(requested)
    return "bf16" if device_bf16_support(_device(device)).native else "fp32"


def precision_warning(requested: str, device: str | torch.device) -> str | None:
    """One line when ``requested`` is bf16 on a device that emulates it (it will be slower than
    fp32 here, and says which option is faster); None otherwise."""
    if requested != "bf16":
        return None
    resolved = _device(device)
    if resolved.type == "cuda" and not torch_cuda_available():
        return None  # a Ray driver without the workers' GPUs: each worker warns for its own card
    support = device_bf16_support(resolved)
    if support.native:
        return None
    where = cpu_model() if resolved.type == "cpu" else str(resolved)
    return (
        f"warning: --scoring-precision bf16 on {where}: {support.reason}, so scoring will be slower "
        "than fp32 here (3-4x on CPUs); --scoring-precision fp32 (or auto) is faster on this machine"
    )

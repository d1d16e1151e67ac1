"""The compiled denoiser of the train step: compiled once per process, its compile time reported apart.

``TrainSettings.compile`` runs the step's denoiser through ``torch.compile`` (static shapes,
``dynamic=False``) in ``TrainSettings.compile_mode``:

* ``"default"``: inductor kernels (fused elementwise ops, its own convolution layouts: the
  graph picks channels-last for convolutions *and* the norms around them, so there are no
  per-convolution NCHW<->NHWC transposes as in eager bf16 on cuDNN);
* ``"reduce-overhead"``: the same plus CUDA-graph capture of the forward and backward (cudagraph
  trees), which removes the launch-bound idle time of ~5,400 kernel launches per step; on a CPU
  device there is nothing to capture and it compiles as ``"default"`` (torch does so itself).

Paid once per process, not per subject: dynamo caches the compiled graph on the denoiser's
``forward`` code object, guarded on the class, the parameters' dtypes and shapes and the input
shapes -- not on the module object -- so the next subject's freshly loaded denoiser of the same
architecture reuses it (tests/test_step_graph.py checks this on the tiny model).
``CompileLedger`` keeps, per process, which step signatures have been compiled and how long their
first step took; the trainer puts that time in ``TrainResult.compile_seconds`` (0 when the
signature was already compiled in this process), apart from the per-step timings.

Numbers: inductor reorders and fuses floating-point work, so a compiled step's numbers drift from
the eager step's by rounding (gpu_benchmark prints the drift of its compiled rows).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dreambench.errors import BenchError

if TYPE_CHECKING:
    import torch

CompileMode = Literal["default", "reduce-overhead"]
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead")


def step_signature(
    module: torch.nn.Module, input_shapes: Sequence[Sequence[int]], mode: str, backend: str
) -> str:
    """What a compiled graph is specific to: class, config, parameter dtype, input shapes, mode, backend."""
    config = getattr(module, "config", None)
    dtypes = sorted({str(p.dtype) for p in module.parameters()})
    payload = {
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
        "config": dict(config) if config is not None else None,
        "dtypes": dtypes,
        "shapes": [list(s) for s in input_shapes],
        "mode": mode,
        "backend": backend,
        "training": module.training,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class CompileLedger:
    """Per process: step signature -> seconds of the first (compiling) step."""

    seconds: dict[str, float] = field(default_factory=dict)

    def is_compiled(self, signature: str) -> bool:
        return signature in self.seconds

    def record(self, signature: str, seconds: float) -> None:
        self.seconds.setdefault(signature, seconds)


LEDGER = CompileLedger()

# torch.compile backend of the train step. "inductor" is what runs; tests on CPU set "aot_eager"
# (the same graph capture and autograd split, eager kernels) to exercise the path in seconds.
BACKEND = "inductor"


def compile_denoiser(module: torch.nn.Module, mode: str, backend: str | None = None) -> Any:
    """``torch.compile(module)`` for a static-shape train step in ``mode`` (one of COMPILE_MODES).

    ``backend`` (default ``BACKEND``) other than inductor compiles without a mode.
    """
    backend = backend or BACKEND
    import torch

    if mode not in COMPILE_MODES:
        raise BenchError(f"compile_mode={mode!r} is not one of {', '.join(COMPILE_MODES)}")
    if backend != "inductor":
        return torch.compile(module, backend=backend, dynamic=False)
    on_cuda = next(module.parameters()).device.type == "cuda"
    return torch.compile(module, mode=mode if on_cuda else "default", dynamic=False)

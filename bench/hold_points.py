"""Named points where a test can hold the process, so it can kill it exactly there.

Fault tests must not race the clock (a sleep, a short timeout): the code itself reports when it
reaches a point. With ``DREAMBENCH_HOLD_AT=<point>=<marker path>`` in the environment, the process
that reaches ``<point>`` writes its pid to ``<marker path>`` and waits until ``<marker path>.release``
exists (or forever, until the test kills it). Without the variable a hold point costs one
dictionary lookup.

Points in the package (bench/atomic.py), each after the temp entry is written and before it is
renamed into place: ``atomic-write:<final file name>`` (e.g. ``atomic-write:0-0.png``, a run's first
image, with the run directory locked) and ``atomic-directory:<final folder name>`` (e.g.
``atomic-directory:weights``, the fine-tuned weights). Test code adds its own, e.g.
``slow-noise-generate:<subject>`` (tests/fault_methods.py) and ``train-step:<n>`` (a trainer
``after_step`` hook in tests/test_fault_tolerance.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HOLD_ENV = "DREAMBENCH_HOLD_AT"
# The polling interval while held; the wait ends on an event (a file appearing), not on a timer.
_POLL_S = 0.05


def hold_point(point: str) -> None:
    """Hold here if ``$DREAMBENCH_HOLD_AT`` names ``point`` (see the module docstring)."""
    spec = os.environ.get(HOLD_ENV)
    if not spec:
        return
    name, sep, marker = spec.partition("=")
    if not sep or name != point:
        return
    marker_path = Path(marker)
    marker_path.write_text(f"{os.getpid()}\n")
    release = marker_path.with_name(marker_path.name + ".release")
    while not release.exists():
        time.sleep(_POLL_S)

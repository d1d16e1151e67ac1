"""One call from Python: run a method on the benchmark, or score images made elsewhere.

Like lm-evaluation-harness's ``simple_evaluate``: the same work as ``bench run`` / ``bench eval``
(same defaults, same validation, same run directory and results.json), returned as a dict.

    import dreambench
    results = dreambench.evaluate(method="dreambooth", subjects="dog,cat2", preset="smoke")
    results["overall"]["dino"]

    results = dreambench.evaluate(images_dir="my_images/", subjects="dog", preset="smoke")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def evaluate(
    method: Any = None,
    *,
    images_dir: str | Path | None = None,
    subjects: str | None = None,
    preset: str = "dreambooth",
    method_args: str | dict[str, Any] | None = None,
    out: str | Path = "runs",
    data: str | Path | None = None,
    device: str = "auto",
    **options: Any,
) -> dict[str, Any]:
    """Run ``method`` (``bench run``) or score ``images_dir`` (``bench eval``); return results.json.

    ``method`` is a registry name, ``module:Class``, ``path/to/file.py:Class``, a Method class, or
    an instance (run as it is; it must keep its settings in a ``config`` dataclass so that they
    enter the run's identity). ``method_args`` is a ``k=v,...`` string, a ``@file`` or a dict. Any
    other ``bench run`` / ``bench eval`` option is a keyword argument with dashes as underscores
    (``images_per_prompt=2``, ``force=True``, ``subject_dir=[...]``); see
    `dreambench.request.RunRequest`. Raises ``BenchError`` on bad input, like the CLI's exit
    code 2. A subject that fails is listed in ``results["failures"]``; the others' figures stand.
    """
    from dreambench.request import RunRequest, execute_request

    given: dict[str, Any] = {
        "method": method,
        "images_dir": images_dir,
        "subjects": subjects,
        "preset": preset,
        "out": out,
        "data": data,
        "device": device,
        "progress": False,
        **options,
    }
    if method_args is not None:
        given["method_args"] = method_args
    outcome = execute_request(RunRequest.from_options(given))
    # Exactly what results.json holds (JSON types: lists, not tuples).
    return json.loads(json.dumps(outcome.results))

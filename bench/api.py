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

from dreambench.errors import BenchError


def evaluate(
    method: str | None = None,
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

    ``method`` is a registry name or ``module:Class``; ``method_args`` a ``k=v,...`` string, a
    ``@file`` or a dict. Any other ``bench run`` / ``bench eval`` option is a keyword argument
    with dashes as underscores (``images_per_prompt=2``, ``force=True``). Raises ``BenchError``
    on bad input, like the CLI's exit code 2. A subject that fails is listed in
    ``results["failures"]``; the others' figures stand.
    """
    from dreambench.cli import build_parser

    if (method is None) == (images_dir is None):
        raise BenchError("evaluate() takes exactly one of method= (run a method) or images_dir= (score images)")
    argv = ["run", "--method", method] if method is not None else ["eval", str(images_dir)]
    args = build_parser().parse_args(argv)
    given = {
        "subjects": subjects,
        "preset": preset,
        "out": str(out),
        "data": None if data is None else str(data),
        "device": device,
        "quiet": True,
        **options,
    }
    if method is not None:
        given["method_args"] = method_args
    elif method_args is not None:
        raise BenchError("evaluate(images_dir=...) takes no method_args")
    for key, value in given.items():
        if not hasattr(args, key):
            valid = sorted(k for k in vars(args) if k not in ("func", "command", "json", "quiet"))
            raise BenchError(f"evaluate() got an unknown option {key!r}; valid: {', '.join(valid)}")
        setattr(args, key, value)
    module = "run" if method is not None else "eval"
    import importlib

    outcome = importlib.import_module(f"dreambench.commands.{module}").execute(args)
    # Exactly what results.json holds (JSON types: lists, not tuples).
    return json.loads(json.dumps(outcome.results))

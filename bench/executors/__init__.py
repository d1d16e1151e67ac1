"""Executors: who runs the subjects of a run. Lazy "module:Attr" strings, like methods."""

from __future__ import annotations

import importlib

from dreambench.errors import did_you_mean

EXECUTORS: dict[str, str] = {
    "local": "dreambench.executors.local:LocalExecutor",
    "ray": "dreambench.executors.ray_executor:RayExecutor",
}


def executor_class(name: str) -> type:
    if name not in EXECUTORS:
        raise did_you_mean(name, EXECUTORS, "executor")
    module_name, _, attr = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)

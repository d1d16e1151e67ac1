"""Executors: who runs the subjects of a run. Lazy "module:Attr" strings, like methods."""

from __future__ import annotations

from dreambench.lazy_registry import resolve

EXECUTORS: dict[str, str] = {
    "local": "dreambench.executors.local:LocalExecutor",
    "ray": "dreambench.executors.ray_executor:RayExecutor",
}


def executor_class(name: str) -> type:
    """The executor class registered as ``name`` (one-line did-you-mean error when there is none)."""
    return resolve(name, EXECUTORS, "executor")

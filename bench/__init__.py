"""dreambench: the DreamBooth subject-driven benchmark, whole loop (train, render, score, tabulate).

One import package. bench/ in the repository is its root (the harness: CLI, run configs,
registries, the runner loop, the run directory); dataset/, metrics/, reference_impl/ and
leaderboard/ install as its subpackages. Importing ``dreambench`` imports no torch: the public
names below load on first use.

Public API::

    from dreambench import Method, Subject, PromptSet, BenchError, evaluate, load_results
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module:attribute", imported on first access (PEP 562)
_PUBLIC: dict[str, str] = {
    "BenchError": "dreambench.errors:BenchError",
    "Method": "dreambench.method:Method",
    "Subject": "dreambench.dataset.subject:Subject",
    "PromptSet": "dreambench.dataset.prompts:PromptSet",
    "load_prompt_set": "dreambench.dataset.prompts:load_prompt_set",
    "load_subjects": "dreambench.dataset.dreambooth:load_subjects",
    "load_results": "dreambench.leaderboard.results:load_results",
    "evaluate": "dreambench.api:evaluate",
}

__all__ = [
    "__version__",
    "BenchError",
    "Method",
    "Subject",
    "PromptSet",
    "load_prompt_set",
    "load_subjects",
    "load_results",
    "evaluate",
]

if TYPE_CHECKING:
    from dreambench.api import evaluate
    from dreambench.dataset.dreambooth import load_subjects
    from dreambench.dataset.prompts import PromptSet, load_prompt_set
    from dreambench.dataset.subject import Subject
    from dreambench.errors import BenchError
    from dreambench.leaderboard.results import load_results
    from dreambench.method import Method


def __getattr__(name: str) -> Any:
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'dreambench' has no attribute {name!r}")
    from dreambench.lazy_registry import load_attr

    value = load_attr(target, f"dreambench.{name}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

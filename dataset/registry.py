"""Dataset registry: names -> lazy "module:Attr" strings of `DatasetDeclaration`s.

A dataset is named by a key of `DATASETS`, by an entry point in the group ``dreambench.datasets``
of any installed distribution, or by a declaration registered in this process with
`register_dataset` (a test's toy dataset, a notebook's own). Nothing is imported until a dataset
is asked for; each declaration is checked when it loads (its type, and that its name is the one it
is registered under, since the name is recorded in results.json).
"""

from __future__ import annotations

import warnings

from dreambench.dataset.declaration import DEFAULT_DATASET, DatasetDeclaration, check_declaration
from dreambench.errors import BenchError, did_you_mean
from dreambench.lazy_registry import entry_point_targets, load_attr

DATASETS: dict[str, str] = {
    "dreambooth": "dreambench.dataset.dreambooth:DREAMBOOTH",
    "dreambench-plus": "dreambench.dataset.dreambench_plus:DREAMBENCH_PLUS",
    "customconcept101": "dreambench.dataset.customconcept101:CUSTOMCONCEPT101",
    "dreambooth-pairs": "dreambench.dataset.dreambooth_pairs:DREAMBOOTH_PAIRS",
    "customconcept101-pairs": "dreambench.dataset.customconcept101_pairs:CUSTOMCONCEPT101_PAIRS",
}

ENTRY_POINT_GROUP = "dreambench.datasets"

# Declarations registered in this process (`register_dataset`); they win over entry points.
_REGISTERED: dict[str, DatasetDeclaration] = {}

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "ENTRY_POINT_GROUP",
    "available_datasets",
    "get_dataset",
    "register_dataset",
    "unregister_dataset",
]


def available_datasets() -> list[str]:
    """Every dataset name: built-ins, installed plugins and registered declarations, sorted.

    A plugin or registration under a built-in's name is shadowed by the built-in; a warning
    names both.
    """
    names = set(DATASETS)
    for name, target in entry_point_targets(ENTRY_POINT_GROUP).items():
        if name in DATASETS and target != DATASETS[name]:
            warnings.warn(
                f"dataset plugin {name!r} ({target}) is shadowed by the built-in {name!r} ({DATASETS[name]})",
                stacklevel=2,
            )
        names.add(name)
    return sorted(names | set(_REGISTERED))


def get_dataset(name: str = DEFAULT_DATASET) -> DatasetDeclaration:
    """The declaration registered as `name`; an unknown name is a one-line did-you-mean error."""
    if name in DATASETS:
        return _load(DATASETS[name], name)
    if name in _REGISTERED:
        return _REGISTERED[name]
    plugins = entry_point_targets(ENTRY_POINT_GROUP)
    if name in plugins:
        return _load(plugins[name], name)
    raise did_you_mean(name, available_datasets(), "dataset")


def _load(target: str, name: str) -> DatasetDeclaration:
    declaration: DatasetDeclaration = load_attr(
        target, f"dataset {name!r}", lambda obj: check_declaration(obj, name)
    )
    return declaration


def register_dataset(declaration: DatasetDeclaration) -> DatasetDeclaration:
    """Make `declaration` available as `--dataset NAME` in this process; returns it.

    A built-in name cannot be taken; registering the same name again replaces the earlier one.
    """
    check_declaration(declaration, getattr(declaration, "name", repr(declaration)))
    if declaration.name in DATASETS:
        raise BenchError(f"dataset {declaration.name!r} is built in; register yours under another name")
    _REGISTERED[declaration.name] = declaration
    return declaration


def unregister_dataset(name: str) -> None:
    """Forget a dataset `register_dataset` made available (a no-op for an unknown name)."""
    _REGISTERED.pop(name, None)

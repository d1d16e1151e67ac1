"""Lazy registries: names mapped to ``"module:Attr"`` strings, imported only when one is asked for.

Every extension point of the harness (methods, executors, table formats, ...) is a plain dict of
such strings plus, for outside packages, an entry-point group. This module is the one place that
turns a string into the object it names:

``load_attr(target, what, check=None)``
    ``"pkg.module:Attr"`` (imported), or ``"path/to/file.py:Attr"`` (the file is loaded as a
    module of its own; see `load_file_module`). ``check(obj)`` runs on the loaded object and may
    raise a one-line `BenchError`.
``resolve(name, registry, what, targets=False, check=None)``
    A registry key -> its loaded object; with ``targets=True`` a ``module:Attr`` / ``file.py:Attr``
    that is not a key is loaded directly. An unknown name is a did-you-mean `BenchError`.
``entry_point_targets(group)`` / ``entry_point_objects(group, what)``
    An entry-point group's name -> target strings (nothing imported) / its loaded objects.
``target_of(obj)``
    The target string that loads ``obj`` again in another process (a class loaded from a file
    gives its absolute file path).

All errors are one-line `BenchError`s naming ``what`` ("method 'x'", "executor 'ray'", ...), the
bad input and, where there is a list, the valid choices. Root utility: imports only
dreambench.errors.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dreambench.errors import BenchError, did_you_mean

# Module names given to files loaded by path -> the file they came from.
_FILE_MODULES: dict[str, Path] = {}


def split_target(target: str, what: str) -> tuple[str, str]:
    """``"module:Attr"`` -> (module, attr); the last ``:`` splits, so a Windows drive letter stays."""
    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr:
        raise BenchError(f"{what}: {target!r} is not module:Attr or path/to/file.py:Attr")
    return module, attr


def is_file_target(module: str) -> bool:
    """True when the module part of a target names a file (``x.py``, or a path with a separator)."""
    return module.endswith(".py") or "/" in module or os.sep in module


def load_file_module(path: Path, what: str) -> Any:
    """Load a Python file as a module of its own (not on ``sys.path``).

    The module's name holds the file's content digest, so an edited file loads as a new module
    (its new code) while an unchanged one is loaded once per process. It is registered in
    ``sys.modules`` (classes defined in it pickle and introspect normally).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise BenchError(f"{what}: file {str(path)!r} does not exist")
    path = path.resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c == "_" else "_" for c in path.stem)
    name = f"dreambench_file_{stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BenchError(f"{what}: cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _FILE_MODULES[name] = path
    return module


def file_of_module(module_name: str) -> Path | None:
    """The file a module was loaded from by `load_file_module` (None for ordinary modules)."""
    return _FILE_MODULES.get(module_name)


def load_attr(target: str, what: str, check: Callable[[Any], None] | None = None) -> Any:
    """The object a ``"module:Attr"`` or ``"path/to/file.py:Attr"`` string names (see module doc)."""
    module_name, attr = split_target(target, what)
    if is_file_target(module_name):
        module = load_file_module(Path(module_name), what)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            hint = "; a file is named path/to/file.py:Attr" if exc.name == module_name.partition(".")[0] else ""
            raise BenchError(f"{what}: cannot import module {module_name!r} ({exc}){hint}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BenchError(f"{what}: module {module_name!r} has no attribute {attr!r}") from None
    if check is not None:
        check(obj)
    return obj


def target_of(obj: Any) -> str:
    """The target that loads ``obj`` (a class or function) again: ``module:Qualname``, or
    ``/abs/path/file.py:Qualname`` for one defined in a file loaded by path."""
    module = obj.__module__
    path = file_of_module(module)
    return f"{path if path is not None else module}:{obj.__qualname__}"


def entry_point_targets(group: str) -> dict[str, str]:
    """Entry-point name -> ``"module:Attr"`` for every installed distribution (nothing imported)."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=group)}


def entry_point_objects(group: str, what: str) -> list[Any]:
    """The loaded objects of an entry-point group; one that fails to load is a one-line error."""
    return [load_attr(target, f"{what} {name!r} (entry point)") for name, target in entry_point_targets(group).items()]


def resolve(
    name: str,
    registry: Mapping[str, str],
    what: str,
    *,
    targets: bool = False,
    check: Callable[[Any], None] | None = None,
) -> Any:
    """The object registered as ``name`` (or, with ``targets``, named by a target string).

    An unknown name is a did-you-mean error listing the registry's keys.
    """
    if name in registry:
        return load_attr(registry[name], f"{what} {name!r}", check)
    if targets and ":" in name:
        return load_attr(name, f"{what} {name!r}", check)
    raise did_you_mean(name, registry, what)

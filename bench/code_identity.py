"""A method's code identity: which code made a run's images (``RunConfig.code``).

The record is part of the config hash that names the run directory, so a run of edited code lands
in a new run directory and never reuses (or mixes with) images the old code made; the old
directory stays as it was. results.json records it under ``run.code``.

* Built-in methods (modules under ``dreambench.``): dreambench's version and the sha256 of the
  sources of the subpackage the class lives in (``dreambench.reference_impl``: a built-in method's
  code spans its trainer, renderer, base-model loader, ...).
* Plugins from an installed distribution: its name and version; an editable install (whose
  files change under the same version) also gets the sha256 of its sources.
* Other plugins (a ``path/to/file.py:Class``, a module on ``PYTHONPATH``): the sha256 of the module
  file, or of every ``.py`` file of its top-level package when it is a package.
* Always the method's declared ``version`` (dreambench.method).

The digest is over the sorted (relative path, file sha256) pairs, so moving a checkout keeps it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from dreambench.errors import BenchError
from dreambench.lazy_registry import file_of_module
from dreambench.method import MethodHandle

BUILTIN_PACKAGE = "dreambench"


def code_identity(method: MethodHandle) -> dict[str, Any]:
    """``{"version", "package", "sources", "sha256"}`` of the method's code (see module doc)."""
    cls = type(method.method)
    module_name = cls.__module__
    top = module_name.partition(".")[0]
    from_file = file_of_module(module_name) is not None
    package: dict[str, str] | None = None
    if top == BUILTIN_PACKAGE and not from_file:
        from dreambench import __version__

        package = {"name": BUILTIN_PACKAGE, "version": __version__}
        files_of = _builtin_sources(module_name)
    else:
        installed = None if from_file else _distribution(top)
        if installed is not None:
            package, editable = installed
            if not editable:
                return {"version": method.version, "package": package, "sources": None, "sha256": None}
        files_of = _plugin_sources(module_name)
    if files_of is None:
        return {"version": method.version, "package": package, **_class_source(cls, method.name)}
    label, root, files = files_of
    return {"version": method.version, "package": package, "sources": label, "sha256": _digest(root, files)}


def _digest(root: Path, files: list[Path]) -> str:
    entries = sorted((f.relative_to(root).as_posix(), hashlib.sha256(f.read_bytes()).hexdigest()) for f in files)
    return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()


def _py_files(folders: list[Path]) -> list[Path]:
    return sorted(f for folder in folders for f in folder.rglob("*.py") if "__pycache__" not in f.parts)


def _builtin_sources(module_name: str) -> tuple[str, Path, list[Path]] | None:
    """``dreambench.<sub>``'s sources when ``<sub>`` is a subpackage, else the module's own file."""
    parts = module_name.split(".")
    sub = sys.modules.get(".".join(parts[:2])) if len(parts) > 1 else None
    if sub is not None and hasattr(sub, "__path__") and sub.__file__:
        root = Path(sub.__file__).parent
        return sub.__name__, root, _py_files([root])
    return _module_file(module_name)


def _plugin_sources(module_name: str) -> tuple[str, Path, list[Path]] | None:
    """The loaded file, or the top-level package's ``.py`` files, or the module's file."""
    loaded = file_of_module(module_name)
    if loaded is not None:
        return loaded.name, loaded.parent, [loaded]
    top = sys.modules.get(module_name.partition(".")[0])
    paths = [Path(p) for p in getattr(top, "__path__", [])]
    if top is not None and paths:
        return top.__name__, paths[0].parent, _py_files(paths)
    return _module_file(module_name)


def _module_file(module_name: str) -> tuple[str, Path, list[Path]] | None:
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not file or not Path(file).is_file():
        return None
    path = Path(file)
    return path.name, path.parent, [path]


def _class_source(cls: type, name: str) -> dict[str, Any]:
    """A class without a module file (defined in a notebook): the digest of its own source text."""
    try:
        text = inspect.getsource(cls)
    except (OSError, TypeError):
        raise BenchError(
            f"method {name!r}: the source of {cls.__module__}.{cls.__qualname__} cannot be found, so its "
            "code cannot enter the run's identity; define it in a .py file (--method path/to/file.py:Class)"
        ) from None
    return {"sources": f"class {cls.__qualname__}", "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _distribution(top: str) -> tuple[dict[str, str], bool] | None:
    """The installed distribution providing the top-level module ``top`` (name and version) and
    whether it is an editable install (PEP 610 ``direct_url.json``)."""
    for name in importlib.metadata.packages_distributions().get(top, []):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        direct = dist.read_text("direct_url.json")
        editable = bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))
        return {"name": dist.metadata["Name"] or name, "version": dist.version}, editable
    return None

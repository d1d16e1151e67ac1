"""Method hyperparameters: typed dataclasses, named presets, validated overrides.

A method class declares ``Config`` (a frozen dataclass whose fields are its hyperparameters, each
with a type hint) and ``PRESETS: dict[str, Config]``. ``resolve_config`` starts from a preset and
applies user overrides (from ``--method-args k=v,...`` strings or a YAML/JSON file), converting
strings to the field's type. Unknown keys and unconvertible values are one-line errors that list
the valid keys.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from dreambench.errors import BenchError, did_you_mean

C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(value: Any, hint: Any, key: str, method: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null"}):
            return None
        hint = args[0] if len(args) == 1 else str
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise BenchError(f"method {method}: {key}={value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if not isinstance(value, str):
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if hint is bool:
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError(value)
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
    except ValueError:
        raise BenchError(f"method {method}: {key}={value!r} is not a valid {hint.__name__}") from None
    return value


def config_fields(config_cls: type) -> dict[str, Any]:
    """Field name -> type hint of a hyperparameter dataclass."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def resolve_config(
    config_cls: type[C], presets: Mapping[str, C], preset: str, overrides: Mapping[str, Any], method: str
) -> C:
    """The preset's config with ``overrides`` applied and type-checked."""
    if preset not in presets:
        raise did_you_mean(preset, presets, f"preset for method {method!r}")
    fields = config_fields(config_cls)
    converted: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise BenchError(
                f"unknown argument {key!r} for method {method!r}; valid: {', '.join(sorted(fields)) or '(none)'}"
            )
        converted[key] = _convert(value, fields[key], key, method)
    return dataclasses.replace(presets[preset], **converted)  # type: ignore[type-var]


def parse_method_args(text: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """``k=v,k2=v2`` or ``@file.yaml`` / ``@file.json`` (or a path ending in .yaml/.yml/.json); a
    mapping (from ``dreambench.evaluate``) is taken as is, like a parsed file."""
    if isinstance(text, Mapping):
        return dict(text)
    if not text:
        return {}
    path_text = text[1:] if text.startswith("@") else text
    if text.startswith("@") or path_text.endswith((".yaml", ".yml", ".json")):
        path = Path(path_text)
        if not path.is_file():
            raise BenchError(f"--method-args file {path} not found")
        try:
            if path.suffix == ".json":
                data = json.loads(path.read_text())
            else:
                import yaml

                data = yaml.safe_load(path.read_text())
        except Exception as exc:  # noqa: BLE001 - any parse error becomes one line
            raise BenchError(
                f"--method-args file {path} is not valid {path.suffix[1:]}: {str(exc).splitlines()[0]}"
            ) from None
        if not isinstance(data, dict):
            raise BenchError(f"--method-args file {path} must hold a mapping of argument names to values")
        return data
    out: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(
                f"--method-args item {item!r} is not key=value (e.g. --method-args steps=400,lr=5e-6)"
            )
        out[key.strip()] = value.strip()
    return out

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
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from dreambench.errors import BenchError, did_you_mean

C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"none", "null", "~"}


class _Invalid(Exception):
    """A value that does not fit its field's type; turned into one BenchError line."""


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is tuple:
        return "a list"
    if hint is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", Path: "a path"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _to_number(value: Any, hint: type) -> int | float:
    if isinstance(value, bool):
        raise _Invalid
    if hint is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if not value.is_integer():
                raise _Invalid
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                number = float(value)  # "1e3" is an integer written as a float
                if not number.is_integer():
                    raise _Invalid from None
                return int(number)
        raise _Invalid
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        number = float(value)
    else:
        raise _Invalid
    # Counts, rates and weights are finite: NaN or inf would train garbage (or nothing) silently.
    if not math.isfinite(number):
        raise _Invalid
    return number


def _convert_value(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None or (isinstance(value, str) and value.lower() in _NONE):
            if type(None) in args:
                return None
            raise _Invalid
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert_value(value, arg)
            except (_Invalid, ValueError):
                continue
        raise _Invalid
    if value is None:
        raise _Invalid
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value in choices:
            return value
        for choice in choices:  # "1" on the command line for Literal[1, 2]
            if isinstance(value, str) and not isinstance(choice, str) and value == str(choice):
                return choice
        raise _Invalid
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(";") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise _Invalid
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(value if item is Any else (_convert_value(v, item) for v in value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise _Invalid
    if hint in (int, float):
        return _to_number(value, hint)
    if hint is str:
        if not isinstance(value, str):
            raise _Invalid
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise _Invalid
        return Path(value)
    if hint is Any:
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _Invalid
    return value


def convert_argument(value: Any, hint: Any, key: str, method: str) -> Any:
    """``value`` (a command-line string, or a JSON/YAML scalar or list) as ``hint``'s type.

    Supports int, float (finite only), bool, str, Path, Literal, tuple[...] (a list, or
    ``a;b;c`` on the command line) and Optional (``none``/``null``); anything else is one line.
    """
    try:
        return _convert_value(value, hint)
    except (_Invalid, ValueError):
        raise BenchError(
            f"method {method}: {key}={value!r} is not valid; expected {_describe(hint)}"
        ) from None


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
        converted[key] = convert_argument(value, fields[key], key, method)
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

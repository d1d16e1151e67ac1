"""Hyperparameter dataclasses that check every field's type and range when they are built.

A field declares its valid range in its metadata (``field(default=..., metadata=at_least(1))``);
``CheckedSettings.__post_init__`` checks each field against its type hint (int is an integer and
not a bool, float a finite-or-ranged number, bool a bool, str a str, Literal one of its choices)
and then against its range. A bad value is a one-line BenchError naming the field and what is
valid, raised when the config is built — before a run directory is written — whether the value
came from ``--method-args``, a JSON/YAML file or Python.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from typing import Any

from dreambench.errors import BenchError

RANGE_KEY = "valid"


def _range(check: Callable[[Any], bool], text: str) -> dict[str, tuple[Callable[[Any], bool], str]]:
    return {RANGE_KEY: (check, text)}


def at_least(n: int) -> dict[str, Any]:
    """An integer field's range: ``>= n``."""
    return _range(lambda v: v >= n, f"an integer >= {n}")


def positive() -> dict[str, Any]:
    """A float field's range: finite and > 0."""
    return _range(lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative() -> dict[str, Any]:
    """A float field's range: finite and >= 0."""
    return _range(lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def positive_or_inf() -> dict[str, Any]:
    """A float field's range: > 0, where inf means "no limit" (gradient clipping off)."""
    return _range(lambda v: not math.isnan(v) and v > 0, "a number > 0 (inf: no clipping)")


def unit_interval() -> dict[str, Any]:
    """A float field's range: [0, 1) (Adam's betas)."""
    return _range(lambda v: math.isfinite(v) and 0 <= v < 1, "a number in [0, 1)")


def non_empty() -> dict[str, Any]:
    """A string field's range: not blank."""
    return _range(lambda v: bool(v.strip()), "a non-empty string")


def _type_ok(value: Any, hint: Any) -> tuple[bool, str]:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        return value in choices, "one of " + ", ".join(map(str, choices))
    if hint is bool:
        return isinstance(value, bool), "true or false"
    if hint is int:
        return type(value) is int, "an integer"
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    if hint is str:
        return isinstance(value, str), "a string"
    return True, ""


def check_fields(settings: Any) -> None:
    """Check every field of the dataclass instance ``settings`` (see the module docstring)."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        ok, expected = _type_ok(value, hints.get(f.name, Any))
        if not ok:
            raise BenchError(f"{f.name}={value!r} is not valid; expected {expected}")
        valid = f.metadata.get(RANGE_KEY)
        if valid is not None and not valid[0](value):
            raise BenchError(f"{f.name}={value!r} is out of range; expected {valid[1]}")


@dataclasses.dataclass(frozen=True)
class CheckedSettings:
    """Base of the reference methods' Config dataclasses: every field is checked when built."""

    def __post_init__(self) -> None:
        check_fields(self)
        self.check_combination()

    def check_combination(self) -> None:
        """Checks across fields (e.g. prior preservation needs class images); override and extend."""

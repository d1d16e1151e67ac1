"""Method registry: plain dict of lazy "module:Attr" strings, plus outside methods.

A method is named by a registry key (`dreambooth`), by `module:Class` on the command line, or by
an entry point in the group ``dreambench.methods`` of any installed distribution. Nothing is
imported until a method is asked for.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Mapping
from typing import Any

from dreambench.errors import BenchError, did_you_mean
from dreambench.hyperparams import config_fields, resolve_config

METHODS: dict[str, str] = {
    "real-images": "dreambench.reference_impl.real_images:RealImages",
    "base-model": "dreambench.reference_impl.base_method:BaseModel",
    "dreambooth": "dreambench.reference_impl.dreambooth:DreamBooth",
    "dreambooth-lora": "dreambench.reference_impl.lora:DreamBoothLoRA",
    "textual-inversion": "dreambench.reference_impl.textual_inversion:TextualInversion",
}

ENTRY_POINT_GROUP = "dreambench.methods"


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_methods() -> dict[str, str]:
    """Every method name -> "module:Attr": built-ins first, then installed plugins."""
    return {**_entry_points(), **METHODS}


def _import(target: str, shown_as: str) -> type:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise BenchError(f"method {shown_as!r} must be a registered name or module:Class")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise BenchError(f"method {shown_as!r}: cannot import module {module_name!r} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BenchError(f"method {shown_as!r}: module {module_name!r} has no attribute {attr!r}") from None


def resolve_method_class(name: str) -> type:
    """The class behind a registry name, an entry point name or a `module:Class` string."""
    methods = available_methods()
    if name in methods:
        return _import(methods[name], name)
    if ":" in name:
        return _import(name, name)
    raise did_you_mean(name, methods, "method")


def method_hyperparameters(cls: type, preset: str) -> dict[str, Any]:
    """Hyperparameter name -> default value (for `bench methods`)."""
    if hasattr(cls, "Config") and hasattr(cls, "PRESETS"):
        presets = cls.PRESETS
        config = presets.get(preset) or next(iter(presets.values()))
        return {name: getattr(config, name) for name in config_fields(cls.Config)}
    params = inspect.signature(cls).parameters
    return {n: p.default for n, p in params.items() if n not in ("self", "device", "seed", "keep_weights")}


def create_method(
    name: str, preset: str, overrides: Mapping[str, Any], device: str, seed: int, keep_weights: bool
) -> Any:
    """Build a method instance from its name, a preset and user overrides (validated).

    Methods with ``Config``/``PRESETS`` get ``cls(config, device=, seed=, keep_weights=)``. Plain
    classes get the overrides as keyword arguments, checked against their signature first.
    """
    cls = resolve_method_class(name)
    if hasattr(cls, "Config") and hasattr(cls, "PRESETS"):
        presets = cls.PRESETS
        # A method with a single preset (zero-shot baselines, simple plugins) uses it for every run.
        chosen = next(iter(presets)) if len(presets) == 1 else preset
        config = resolve_config(cls.Config, presets, chosen, overrides, name)
        return cls(config, device=device, seed=seed, keep_weights=keep_weights)
    params = inspect.signature(cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = [n for n in params if n not in ("self", "device", "seed", "keep_weights")]
    unknown = [k for k in overrides if k not in valid]
    if unknown and not accepts_any:
        raise BenchError(
            f"unknown argument {unknown[0]!r} for method {name!r}; valid: {', '.join(valid) or '(none)'}"
        )
    extra = {
        k: v for k, v in (("device", device), ("seed", seed), ("keep_weights", keep_weights)) if k in params
    }
    return cls(**overrides, **extra)

"""Method registry: plain dict of lazy "module:Attr" strings, plus outside methods.

A method is named by a registry key (`dreambooth`), by `module:Class` or `path/to/file.py:Class`
on the command line, or by an entry point in the group ``dreambench.methods`` of any installed
distribution. Nothing is imported until a method is asked for (dreambench.lazy_registry).
"""

from __future__ import annotations

import inspect
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from dreambench.errors import BenchError, did_you_mean
from dreambench.hyperparams import config_fields, convert_argument, resolve_config
from dreambench.lazy_registry import entry_point_targets, resolve
from dreambench.method import MethodHandle, RunContext, check_method_class

METHODS: dict[str, str] = {
    "real-images": "dreambench.reference_impl.real_images:RealImages",
    "base-model": "dreambench.reference_impl.base_method:BaseModel",
    "dreambooth": "dreambench.reference_impl.dreambooth:DreamBooth",
    "dreambooth-lora": "dreambench.reference_impl.lora:DreamBoothLoRA",
    "textual-inversion": "dreambench.reference_impl.textual_inversion:TextualInversion",
    "ip-adapter": "dreambench.reference_impl.ip_adapter:IPAdapter",
}

ENTRY_POINT_GROUP = "dreambench.methods"


def available_methods() -> dict[str, str]:
    """Every method name -> "module:Attr": installed plugins, then the built-ins (which win).

    A plugin registered under a built-in's name is shadowed by it; a warning names both.
    """
    plugins = entry_point_targets(ENTRY_POINT_GROUP)
    for name in sorted(set(plugins) & set(METHODS)):
        if plugins[name] != METHODS[name]:
            warnings.warn(
                f"method plugin {name!r} ({plugins[name]}) is shadowed by the built-in {name!r} "
                f"({METHODS[name]}); run the plugin as --method {plugins[name]}",
                stacklevel=2,
            )
    return {**plugins, **METHODS}


def resolve_method_class(name: str | type) -> type:
    """The class behind a registry name, an entry point name, a `module:Class` string or a
    `path/to/file.py:Class` string (or a class given as is), checked against the Method contract
    (a missing required member is a one-line error)."""
    if isinstance(name, type):
        check_method_class(name, name.__name__)
        return name
    return resolve(
        name, available_methods(), "method", targets=True, check=lambda cls: check_method_class(cls, name)
    )


def _has_config(cls: type) -> bool:
    return hasattr(cls, "Config") and hasattr(cls, "PRESETS")


def _plain_parameters(cls: type) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(cls).parameters)
    params.pop("self", None)
    return params


def method_hyperparameters(cls: type, preset: str) -> dict[str, Any]:
    """Hyperparameter name -> default value (for `bench methods`)."""
    if _has_config(cls):
        presets = cls.PRESETS
        config = presets.get(preset) or next(iter(presets.values()))
        return {name: getattr(config, name) for name in config_fields(cls.Config)}
    return {
        n: p.default
        for n, p in _plain_parameters(cls).items()
        if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }


def method_preset_for(cls: type, preset: str, explicit: bool = False) -> str:
    """The preset a method is built from: the run preset's method preset, except that a method
    with a single preset (zero-shot baselines, simple plugins) uses it for every run; one without
    ``Config`` has the preset "none". A preset the user named (``explicit``) must exist."""
    if not _has_config(cls):
        if explicit:
            raise BenchError(f"--method-preset {preset!r}: method {cls.name!r} has no presets (no Config)")
        return "none"
    presets = cls.PRESETS
    if explicit and preset not in presets:
        raise did_you_mean(preset, presets, f"preset for method {cls.name!r}")
    if len(presets) == 1:
        return next(iter(presets))
    return preset


def _construct(name: str, build: Callable[[], Any]) -> Any:
    """Run a method's constructor; its own validation errors (ValueError/TypeError) become one line."""
    try:
        return build()
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BenchError(f"method {name!r}: {first}") from None


def create_method(
    name: str | type, preset: str, overrides: Mapping[str, Any], context: RunContext | None = None
) -> MethodHandle:
    """Build a method from its name, a preset and user overrides (validated).

    Methods with ``Config``/``PRESETS`` are built as ``cls(config)``; plain classes get the
    overrides as keyword arguments, checked against their signature first. With ``context`` the
    run-level ``setup(context)`` hook runs too (dreambench.method); the runner instead sets a
    method up where its subjects run, after ``check_ready``.
    """
    cls = resolve_method_class(name)
    name = name if isinstance(name, str) else cls.name
    if _has_config(cls):
        config = resolve_config(cls.Config, cls.PRESETS, method_preset_for(cls, preset), overrides, name)
        instance = _construct(name, lambda: cls(config))
    else:
        params = _plain_parameters(cls)
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in overrides if k not in params]
        if unknown and not accepts_any:
            raise BenchError(
                f"unknown argument {unknown[0]!r} for method {name!r}; valid: {', '.join(params) or '(none)'}"
            )
        hints = typing.get_type_hints(cls.__init__)
        converted = {k: convert_argument(v, hints[k], k, name) if k in hints else v for k, v in overrides.items()}
        instance = _construct(name, lambda: cls(**converted))
    handle = MethodHandle(instance)
    if context is not None:
        handle.setup(context)
    return handle

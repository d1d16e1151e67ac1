"""Run presets: one name that picks the metric preset, the methods' hyperparameter preset and the
render protocol.

`dreambooth` is the paper's protocol with real weights. `smoke` runs offline anywhere: smoke
embedders (the real architectures, self-trained weights) and the embedded tiny-trained diffusion model; every number it gives is labelled
uncalibrated. `diffusers` keeps the paper's metrics but trains and samples with the diffusers
README's recipe.

The render protocol (sampler and its config, steps, guidance, resolution, negative prompt, images
per prompt, seeding) belongs to the run preset and is the same for every method of it; the
values are defined beside the renderer (reference_impl/render_protocol.py), which the methods
import. A method may only deviate where the deviation is intrinsic to it (``render_deviation``);
``render_record`` says what a run records.

Why this harness module imports reference_impl: the protocol's sampler is ``SamplerSettings``,
checked against the renderer's scheduler names, and the built-in methods resolve their sampler
from it in ``setup`` (``render_protocol.method_sampler``). The harness is the top layer, so the
import points down; what it reads of a *method* still goes through ``MethodHandle``
(``render_deviation``, ``sampler``). Moving the protocol into the harness would mean handing it to
methods as plain data through ``RunContext`` and moving the sampler type with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dreambench.errors import BenchError, did_you_mean
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.render_protocol import (
    RenderProtocol,
    deviation_fields,
    render_protocol_for,
)

if TYPE_CHECKING:
    from dreambench.method import MethodHandle


@dataclass(frozen=True)
class RunPreset:
    name: str
    metric_preset: str
    method_preset: str
    description: str
    render_protocol: RenderProtocol = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # Every run preset has a render protocol; a preset without one fails at import.
        object.__setattr__(self, "render_protocol", render_protocol_for(self.name))


RUN_PRESETS: dict[str, RunPreset] = {
    p.name: p
    for p in (
        RunPreset(
            "dreambooth", "dreambooth", "paper", "the DreamBooth paper's protocol, real weights (default)"
        ),
        RunPreset(
            "diffusers",
            "dreambooth",
            "diffusers",
            "paper metrics; methods trained with the diffusers README recipe",
        ),
        RunPreset(
            "smoke",
            "smoke",
            "smoke",
            "offline anywhere: self-trained smoke embedders and tiny-trained model; uncalibrated",
        ),
    )
}


def get_run_preset(name: str) -> RunPreset:
    if name not in RUN_PRESETS:
        raise did_you_mean(name, RUN_PRESETS, "preset")
    return RUN_PRESETS[name]


def render_record(preset: str, images_per_prompt: int, method: MethodHandle) -> dict[str, Any] | None:
    """What a run records about rendering (results.json ``render_protocol``, part of RunConfig).

    ``{"protocol": <the preset's protocol with this run's images per prompt, plus sha256>,
    "deviation": None | {"reason", "fields", "effective": <protocol actually used, plus sha256>}}``,
    or None for a method that renders nothing (``scores_real_pairs``: the real-images ceiling).
    The method may declare ``render_deviation`` (dreambench.method; reference_impl/render_protocol.py).
    """
    if method.scores_real_pairs:
        return None
    protocol = get_run_preset(preset).render_protocol.with_images_per_prompt(images_per_prompt)
    name = method.name
    declared = method.render_deviation
    effective = protocol.with_deviation(declared, name)
    deviation = None
    if declared:
        fields = deviation_fields(declared, name)
        deviation = {"reason": str(declared["reason"]), "fields": fields, "effective": effective.record()}
    # A method that exposes its sampler (the built-ins do) must render with what is recorded.
    actual = method.sampler
    if isinstance(actual, SamplerSettings) and actual != effective.sampler:
        raise BenchError(
            f"method {name}: renders with {actual.as_dict()} but preset {preset!r} records "
            f"{effective.sampler.as_dict()}; a method's sampler comes from the run preset (setup)"
        )
    return {"protocol": protocol.record(), "deviation": deviation}

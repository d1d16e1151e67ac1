"""Run presets: one name that picks the metric preset and the methods' hyperparameter preset.

`dreambooth` is the paper's protocol with real weights. `smoke` runs offline anywhere: seeded
random-weight embedders and the embedded tiny diffusion model; every number it gives is labelled
uncalibrated. `diffusers` keeps the paper's metrics but trains with the diffusers README's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreambench.errors import did_you_mean


@dataclass(frozen=True)
class RunPreset:
    name: str
    metric_preset: str
    method_preset: str
    description: str


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
            "offline anywhere: random-weight embedders and tiny model; uncalibrated",
        ),
    )
}


def get_run_preset(name: str) -> RunPreset:
    if name not in RUN_PRESETS:
        raise did_you_mean(name, RUN_PRESETS, "preset")
    return RUN_PRESETS[name]

"""The render protocol: how a run's images are made, the same for every method of a run preset.

Two rows of a table are comparable only if both rendered the prompt set the same way. The render
protocol holds everything about rendering that is not the method itself: the sampler
(``SamplerSettings``: scheduler and its config, steps, guidance, resolution, negative prompt),
the images per prompt and the seeding scheme. It belongs to the run preset (``bench run
--preset``; bench/presets.py shows it as ``RunPreset.render_protocol``). The values live here,
beside the renderer, because the methods that render with them are a lower layer than the harness.

Every run records its protocol in results.json with a sha256 and carries it in its identity
(``RunConfig.render_protocol``, so it is part of the hash that names the run directory);
``bench leaderboard`` and ``bench compare`` refuse rows whose protocols differ.

A method may declare a deviation only where it is intrinsic to it (a distilled model that samples
in 4 steps without guidance, say), as a class attribute::

    render_deviation = {"reason": "LCM-distilled: 4 steps, no guidance", "steps": 4, "guidance": 1.0}

whose other keys are ``SamplerSettings`` fields. It is applied on top of the preset's protocol,
recorded beside it and flagged in every table. A deviation that depends on the method's config
is an instance attribute set when the method is built: ``dreambooth-lora`` on an SDXL base
declares SDXL's native resolution (reference_impl/sdxl.py); on SD 1.x it declares none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dreambench.errors import BenchError, did_you_mean
from dreambench.reference_impl.render import SamplerSettings

# The embedded tiny model's native size (tiny_model.TINY_RESOLUTION, which imports torch; the harness
# reads this module at start-up, so the number is repeated here and a test checks the two agree).
SMOKE_RESOLUTION = 32

SEEDING_SCHEMES: dict[str, str] = {
    # bench/seeds.py image_seed + reference_impl/render.py initial_latents.
    "image-seed-v1": (
        "seed = first 8 bytes of sha256('{base_seed}/{subject}/{prompt_idx}/{sample_idx}') & (2**63 - 1); "
        "each image's initial latent and any sampler noise come from a fresh CPU torch.Generator seeded with it"
    ),
}
SEEDING = "image-seed-v1"


@dataclass(frozen=True)
class RenderProtocol:
    """A run preset's rendering: sampler, images per prompt, seeding scheme (a key of SEEDING_SCHEMES)."""

    sampler: SamplerSettings
    images_per_prompt: int = 4
    seeding: str = SEEDING

    def __post_init__(self) -> None:
        if type(self.images_per_prompt) is not int or self.images_per_prompt < 1:
            raise BenchError(
                f"images_per_prompt={self.images_per_prompt!r} is not valid; expected an integer >= 1"
            )
        if self.seeding not in SEEDING_SCHEMES:
            raise did_you_mean(self.seeding, SEEDING_SCHEMES, "seeding scheme")

    def as_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler.as_dict(),
            "images_per_prompt": self.images_per_prompt,
            "seeding": self.seeding,
            "seeding_rule": SEEDING_SCHEMES[self.seeding],
        }

    @property
    def sha256(self) -> str:
        """sha256 of the canonical JSON of ``as_dict()``: equal protocols, equal hashes."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """What results.json and the run config hold: ``as_dict()`` plus ``sha256``."""
        return {**self.as_dict(), "sha256": self.sha256}

    def with_images_per_prompt(self, n: int) -> RenderProtocol:
        return dataclasses.replace(self, images_per_prompt=n)

    def with_deviation(self, deviation: Mapping[str, Any] | None, method: str) -> RenderProtocol:
        """This protocol with a method's declared deviation applied (see the module docstring)."""
        fields = deviation_fields(deviation, method)
        if not fields:
            return self
        return dataclasses.replace(self, sampler=dataclasses.replace(self.sampler, **fields))


# The run presets' protocols. Each sampler's source is in docs/DREAMBOOTH.md ("Render protocol").
RENDER_PROTOCOLS: dict[str, RenderProtocol] = {
    # The DreamBooth paper evaluates Stable Diffusion samples; its setting as render.py documents:
    # DDIM, 50 steps, CFG 7.5, 512 px, empty negative prompt; 4 images per prompt (paper, Sec. 4.1).
    "dreambooth": RenderProtocol(SamplerSettings()),
    # diffusers' README inference: the pipeline's defaults (PNDM for SD 1.5, 50 steps, CFG 7.5).
    "diffusers": RenderProtocol(SamplerSettings(scheduler="pndm")),
    # The embedded tiny model on CPU (uncalibrated): DDIM, 8 steps, its native resolution.
    "smoke": RenderProtocol(SamplerSettings(steps=8, resolution=SMOKE_RESOLUTION)),
}


def render_protocol_for(run_preset: str) -> RenderProtocol:
    """The render protocol of run preset ``run_preset`` (one-line error listing the presets)."""
    if run_preset not in RENDER_PROTOCOLS:
        raise did_you_mean(run_preset, RENDER_PROTOCOLS, "preset")
    return RENDER_PROTOCOLS[run_preset]


def deviation_fields(deviation: Mapping[str, Any] | None, method: str) -> dict[str, Any]:
    """The SamplerSettings fields a method's ``render_deviation`` overrides ({} for none).

    A deviation must give a non-empty ``reason``; its other keys must be SamplerSettings fields
    (images per prompt and seeding are the harness's, never a method's).
    """
    if not deviation:
        return {}
    if not isinstance(deviation, Mapping):
        raise BenchError(f"method {method}: render_deviation must be a mapping, not {type(deviation).__name__}")
    reason = deviation.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BenchError(f"method {method}: render_deviation needs a non-empty 'reason' (why it is intrinsic)")
    valid = [f.name for f in dataclasses.fields(SamplerSettings)]
    fields = {k: v for k, v in deviation.items() if k != "reason"}
    for key in fields:
        if key not in valid:
            raise BenchError(
                f"method {method}: render_deviation key {key!r} is not a sampler field; valid: {', '.join(valid)}"
            )
    return fields


def method_sampler(context: Any, method: Any) -> SamplerSettings:
    """The sampler a built-in method renders with in a run: the run preset's protocol
    (``context.run_preset``, from the run-level ``setup(context)``) with the method's declared
    ``render_deviation`` applied. ``method`` is the method class, or the instance when the
    deviation depends on its config (dreambooth-lora on an SDXL base). The one place a method
    resolves its protocol."""
    protocol = render_protocol_for(context.run_preset)
    return protocol.with_deviation(getattr(method, "render_deviation", None), method.name).sampler

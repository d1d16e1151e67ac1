"""One render protocol per run preset: every method of a preset renders with it, it is recorded with
a hash and is part of the run's identity, a method's intrinsic deviation is recorded and flagged,
and the leaderboard refuses rows whose protocols differ."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from test_leaderboard import make_results

from dreambench.config import RunConfig
from dreambench.errors import BenchError
from dreambench.leaderboard.compatibility import check_comparable
from dreambench.leaderboard.results import RunResults
from dreambench.leaderboard.table import DOUBLE_DAGGER, build_leaderboard
from dreambench.method import MethodHandle, RunContext
from dreambench.presets import RUN_PRESETS, get_run_preset, render_record
from dreambench.reference_impl.base_method import BaseModel
from dreambench.reference_impl.dreambooth import DreamBooth
from dreambench.reference_impl.lora import DreamBoothLoRA
from dreambench.reference_impl.real_images import RealImages
from dreambench.reference_impl.render import SamplerSettings
from dreambench.reference_impl.render_protocol import SMOKE_RESOLUTION, RenderProtocol, render_protocol_for
from dreambench.reference_impl.textual_inversion import TextualInversion
from dreambench.reference_impl.tiny_model import TINY_RESOLUTION

RENDERING_METHODS = (DreamBooth, DreamBoothLoRA, TextualInversion, BaseModel)


def context(preset: str) -> RunContext:
    return RunContext(
        device="cpu", seed=0, keep_weights=False, method_preset=get_run_preset(preset).method_preset, run_preset=preset
    )


def built(cls: type, preset: str) -> Any:
    """A method as the harness builds it for run preset ``preset``: its method preset, then setup."""
    method = cls(cls.PRESETS[get_run_preset(preset).method_preset])
    method.setup(context(preset))
    return method


@pytest.mark.parametrize("preset", sorted(RUN_PRESETS))
def test_every_method_of_a_preset_renders_with_the_presets_sampler(preset: str) -> None:
    protocol = get_run_preset(preset).render_protocol
    samplers = {cls.name: built(cls, preset).sampler for cls in RENDERING_METHODS}
    assert set(samplers.values()) == {protocol.sampler}, samplers


def test_the_presets_protocols_are_the_documented_ones() -> None:
    assert render_protocol_for("dreambooth").sampler == SamplerSettings("ddim", 50, 7.5, 512, "")
    assert render_protocol_for("diffusers").sampler == SamplerSettings("pndm", 50, 7.5, 512, "")
    assert render_protocol_for("smoke").sampler == SamplerSettings("ddim", 8, 7.5, TINY_RESOLUTION, "")
    assert SMOKE_RESOLUTION == TINY_RESOLUTION
    assert {p.render_protocol.images_per_prompt for p in RUN_PRESETS.values()} == {4}
    with pytest.raises(BenchError, match="valid: diffusers, dreambooth, smoke"):
        render_protocol_for("dreambooh")


def test_lora_under_the_paper_preset_prompts_like_dreambooth() -> None:
    lora, dreambooth = DreamBoothLoRA.PRESETS["paper"], DreamBooth.PRESETS["paper"]
    fields = ("identifier", "instance_prompt", "class_prompt", "num_class_images", "prior_loss_weight")
    assert [getattr(lora, f) for f in fields] == [getattr(dreambooth, f) for f in fields]
    assert (lora.train_steps, lora.learning_rate, lora.lora_rank) == (500, 1e-4, 4)


def test_no_sampler_field_is_left_in_a_method_config() -> None:
    sampler_fields = {"scheduler", "sampling_steps", "guidance_scale", "resolution", "negative_prompt"}
    for cls in RENDERING_METHODS:
        assert not sampler_fields & {f.name for f in dataclasses.fields(cls.Config)}, cls.name


def test_render_record_hashes_the_protocol_and_enters_the_run_identity() -> None:
    method = built(DreamBooth, "smoke")
    record = render_record("smoke", 1, MethodHandle(method))
    protocol = render_protocol_for("smoke").with_images_per_prompt(1)
    assert record == {"protocol": protocol.record(), "deviation": None}
    assert record["protocol"]["sha256"] == protocol.sha256 != render_protocol_for("smoke").sha256
    assert record["protocol"]["sampler"]["scheduler"] == "ddim"

    base = RunConfig(
        method="dreambooth", method_preset="smoke", method_config={}, preset="smoke", metric_preset="smoke",
        prompt_set={}, images_per_prompt=1, base_seed=0, dataset={}, render_protocol=record,
    )
    other = dataclasses.replace(base, render_protocol=render_record("diffusers", 1, MethodHandle(built(DreamBooth, "diffusers"))))
    assert base.hash != other.hash
    # The real-images ceiling renders nothing: no protocol to record.
    assert render_record("smoke", 1, MethodHandle(RealImages(RealImages.PRESETS["default"]))) is None


def test_a_method_sampler_that_disagrees_with_the_preset_is_refused() -> None:
    method = built(DreamBooth, "smoke")
    method.sampler = SamplerSettings(scheduler="pndm", steps=8, resolution=TINY_RESOLUTION)
    with pytest.raises(BenchError, match="renders with .*pndm.* but preset 'smoke' records"):
        render_record("smoke", 4, MethodHandle(method))


class Distilled(BaseModel):
    """A method whose sampler deviates intrinsically (a 4-step distilled model)."""

    name = "distilled"
    render_deviation = {"reason": "distilled model: 4 steps, no guidance", "steps": 4, "guidance": 1.0}


def test_a_declared_deviation_is_applied_recorded_and_flagged() -> None:
    method = built(Distilled, "smoke")
    assert (method.sampler.steps, method.sampler.guidance, method.sampler.scheduler) == (4, 1.0, "ddim")
    record = render_record("smoke", 4, MethodHandle(method))
    assert record["protocol"] == render_protocol_for("smoke").record()  # the preset's, unchanged
    assert record["deviation"]["fields"] == {"steps": 4, "guidance": 1.0}
    assert record["deviation"]["effective"]["sampler"]["steps"] == 4

    results = with_render(make_results(method="distilled"), record)
    plain = with_render(make_results(method="dreambooth", config_hash="aaaa0000"), render_record("smoke", 4, MethodHandle(built(DreamBooth, "smoke"))))
    board = build_leaderboard([RunResults(path_for(results), results), RunResults(path_for(plain), plain)])
    labels = {e.run.method: e.marked_label for e in board.entries}
    assert labels["distilled"].endswith(DOUBLE_DAGGER) and not labels["dreambooth"].endswith(DOUBLE_DAGGER)
    assert any("distilled deviates" in note and "steps=4" in note for note in board.footnotes)


def test_a_bad_deviation_is_one_line() -> None:
    protocol = render_protocol_for("smoke")
    with pytest.raises(BenchError, match="needs a non-empty 'reason'"):
        protocol.with_deviation({"steps": 4}, "m")
    with pytest.raises(BenchError, match="key 'images_per_prompt' is not a sampler field; valid: scheduler"):
        protocol.with_deviation({"reason": "x", "images_per_prompt": 1}, "m")


def path_for(results: dict[str, Any]) -> Any:
    from pathlib import Path

    return Path(results["run"]["run_dir"]) / "results.json"


def with_render(results: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(results)
    out["render_protocol"] = record
    return out


def test_leaderboard_refuses_rows_with_different_render_protocols() -> None:
    smoke = render_record("smoke", 4, MethodHandle(built(DreamBooth, "smoke")))
    a = with_render(make_results(method="dreambooth"), smoke)
    b = with_render(make_results(method="dreambooth-lora", config_hash="bbbb0000"), smoke)
    check_comparable([RunResults(path_for(a), a), RunResults(path_for(b), b)])  # same protocol: fine

    pndm = RenderProtocol(dataclasses.replace(render_protocol_for("smoke").sampler, scheduler="pndm"))
    c = with_render(b, {"protocol": pndm.record(), "deviation": None})
    with pytest.raises(BenchError, match=r"render_protocol \(sampler.scheduler 'ddim' vs 'pndm'\) differs"):
        check_comparable([RunResults(path_for(a), a), RunResults(path_for(c), c)])
    fewer = with_render(b, render_record("smoke", 1, MethodHandle(built(DreamBooth, "smoke"))))
    with pytest.raises(BenchError, match=r"render_protocol \(images_per_prompt 4 vs 1\)"):
        check_comparable([RunResults(path_for(a), a), RunResults(path_for(fewer), fewer)])
    # The real-images ceiling renders nothing and sits beside any protocol.
    ceiling = with_render(make_results(method="real-images", clip_t=False, config_hash="cccc0000"), None)
    check_comparable([RunResults(path_for(a), a), RunResults(path_for(ceiling), ceiling)])

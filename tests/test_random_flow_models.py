"""Full-size random FLUX.1-dev and SD3 medium (reference_impl/random_model.py): the specs parse, and
their modules, built on the ``meta`` device (shapes only, nothing allocated), have the published
parameter counts and fit the project's loader conventions. Never built for real here (tens of GB)."""

from __future__ import annotations

from dreambench.reference_impl.base_model import is_calibrated
from dreambench.reference_impl.random_model import (
    RandomSpec,
    build_flux_modules,
    build_sd3_modules,
    parse_random_spec,
    random_model_folder,
)


def _counts(modules: dict[str, object]) -> dict[str, int]:
    return {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()}


def test_flow_specs_parse_into_their_own_folders() -> None:
    assert parse_random_spec("random:flux") == RandomSpec("flux", 0)
    assert parse_random_spec("random:sd3:seed=3") == RandomSpec("sd3", 3)
    assert random_model_folder(RandomSpec("flux")).name.startswith("random-flux-")
    assert random_model_folder(RandomSpec("sd3", 3)) != random_model_folder(RandomSpec("sd3", 0))
    assert not is_calibrated("random:flux") and not is_calibrated("random:sd3")


def test_random_flux_has_flux1_devs_architecture() -> None:
    modules = build_flux_modules("meta", seed=0)
    # FLUX.1-dev: 11.9B transformer, T5 v1.1 XXL encoder 4.76B, CLIP L/14 text 123M.
    assert _counts(modules) == {
        "transformer": 11_901_408_320,
        "vae": 83_819_683,
        "text_encoder": 123_060_480,
        "text_encoder_2": 4_762_310_656,
    }
    transformer = modules["transformer"]
    assert transformer.config.guidance_embeds and transformer.config.in_channels == 4 * 16
    assert modules["vae"].config.latent_channels == 16


def test_random_sd3_has_sd3_mediums_architecture() -> None:
    modules = build_sd3_modules("meta", seed=0)
    # SD3 medium: 2.03B transformer, CLIP L/14 and bigG/14 with projection, T5 v1.1 XXL.
    assert _counts(modules) == {
        "transformer": 2_028_328_000,
        "vae": 83_819_683,
        "text_encoder": 123_650_304,
        "text_encoder_2": 694_659_840,
        "text_encoder_3": 4_762_310_656,
    }
    # pooled_projections = both CLIP projections; the context = T5's width.
    config = modules["transformer"].config
    te, te2 = modules["text_encoder"].config, modules["text_encoder_2"].config
    assert config.pooled_projection_dim == te.projection_dim + te2.projection_dim
    assert config.joint_attention_dim == modules["text_encoder_3"].config.d_model

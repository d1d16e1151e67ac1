"""Rendering: one image per (prompt, seed), independent of batch composition, byte-identical on CPU.

Byte-identity is between renders on one machine (same CPU kernels and thread count), which is what
rebuilding a deleted image needs; no stored bytes from another machine are compared. The ancestral
sampler's check is within one 8-bit level instead: with torch's AVX2 kernels one pixel of the last
image of a batch comes out one level off its render alone (AVX-512 kernels give the same bytes),
while an image drawn from another generator is ~45 levels off on average.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import Components, load_base_model
from dreambench.reference_impl.render import SamplerSettings, initial_latents, render
from dreambench.reference_impl.tiny_model import TINY_RESOLUTION

SAMPLER = SamplerSettings(scheduler="ddim", steps=3, guidance=7.5, resolution=TINY_RESOLUTION)
PROMPTS = [
    "a sks dog",
    "a sks dog in the jungle",
    "a sks dog on the beach",
    "a red sks dog",
    "a sks dog in a bucket",
]
SEEDS = [11, 22, 33, 44, 55]


def png_sha(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return hashlib.sha256(buffer.getvalue()).hexdigest()


@pytest.fixture(scope="module")
def base() -> Components:
    return load_base_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def batch_images(base: Components) -> list[Image.Image]:
    return render(base.pipeline(), PROMPTS, SEEDS, SAMPLER, "cpu", batch_size=4)


def test_one_image_per_prompt_seed_pair(batch_images: list[Image.Image]) -> None:
    assert len(batch_images) == len(PROMPTS)
    assert all(im.mode == "RGB" and im.size == (TINY_RESOLUTION, TINY_RESOLUTION) for im in batch_images)
    # Different seeds give different images (the noise really comes from the seed).
    assert len({png_sha(im) for im in batch_images}) == len(PROMPTS)


@pytest.mark.parametrize("index", [0, 3, 4])
def test_single_image_rebuild_is_byte_identical(
    base: Components, batch_images: list[Image.Image], index: int
) -> None:
    """An image rendered alone equals the same (prompt, seed) inside a batch (first, last full chunk, padded chunk)."""
    alone = render(base.pipeline(), [PROMPTS[index]], [SEEDS[index]], SAMPLER, "cpu", batch_size=4)[0]
    assert png_sha(alone) == png_sha(batch_images[index])


def test_batch_order_and_composition_do_not_matter(base: Components, batch_images: list[Image.Image]) -> None:
    order = [4, 2, 0, 3, 1]
    shuffled = render(
        base.pipeline(), [PROMPTS[i] for i in order], [SEEDS[i] for i in order], SAMPLER, "cpu", batch_size=4
    )
    assert [png_sha(im) for im in shuffled] == [png_sha(batch_images[i]) for i in order]


def test_stochastic_sampler_draws_from_each_images_own_generator(base: Components) -> None:
    sampler = SamplerSettings(scheduler="euler-a", steps=3, guidance=7.5, resolution=TINY_RESOLUTION)
    together = render(base.pipeline(), PROMPTS[:3], SEEDS[:3], sampler, "cpu", batch_size=3)
    alone = render(base.pipeline(), [PROMPTS[2]], [SEEDS[2]], sampler, "cpu", batch_size=3)[0]
    # Its own generator's noise: the same picture up to CPU rounding (see the module docstring).
    diff = np.abs(np.asarray(alone, dtype=np.int16) - np.asarray(together[2], dtype=np.int16))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.001 * diff.size, (diff.max(), np.count_nonzero(diff))


def test_matches_stock_pipeline_with_a_seeded_cpu_generator(base: Components) -> None:
    """The contract's noise convention is diffusers' own: pipe(prompt, generator=Generator().manual_seed(seed))."""
    from diffusers import DDIMScheduler

    ours = render(base.pipeline(), [PROMPTS[1]], [SEEDS[1]], SAMPLER, "cpu", batch_size=1)[0]
    pipe = base.pipeline()
    pipe.scheduler = DDIMScheduler.from_config(base.scheduler_config)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe(
        PROMPTS[1],
        num_inference_steps=SAMPLER.steps,
        guidance_scale=SAMPLER.guidance,
        height=TINY_RESOLUTION,
        width=TINY_RESOLUTION,
        generator=torch.Generator().manual_seed(SEEDS[1]),
    ).images[0]
    assert png_sha(ours) == png_sha(stock)


def test_initial_latents_come_from_fresh_cpu_generators() -> None:
    latents, _ = initial_latents([7, 8], (4, 8, 8))
    expected = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(8))
    assert torch.equal(latents[1:2], expected)


def test_mismatched_lengths_are_an_error(base: Components) -> None:
    with pytest.raises(BenchError, match="one seed per prompt"):
        render(base.pipeline(), PROMPTS[:2], SEEDS[:1], SAMPLER, "cpu")


def test_bad_sampler_settings_are_refused_when_built() -> None:
    with pytest.raises(BenchError, match="did you mean 'ddim'"):
        SamplerSettings(scheduler="ddin", steps=2, resolution=TINY_RESOLUTION)
    with pytest.raises(BenchError, match="resolution=30 is not valid; expected a positive multiple of 8"):
        SamplerSettings(steps=2, resolution=30)
    with pytest.raises(BenchError, match="steps=0 is not valid"):
        SamplerSettings(steps=0)
    with pytest.raises(BenchError, match="guidance=nan is not valid"):
        SamplerSettings(guidance=float("nan"))


def test_scheduler_config_overrides_reach_the_sampler(base: Components) -> None:
    from dreambench.reference_impl.render import make_scheduler

    plain = make_scheduler("ddim", dict(base.scheduler_config))
    trailing = make_scheduler("ddim", dict(base.scheduler_config), (("timestep_spacing", "trailing"),))
    assert trailing.config.timestep_spacing == "trailing" != plain.config.timestep_spacing
    sampler = SamplerSettings(steps=2, resolution=TINY_RESOLUTION, scheduler_config=(("timestep_spacing", "trailing"),))
    assert sampler.as_dict()["scheduler_config"] == {"timestep_spacing": "trailing"}
    a = render(base.pipeline(), PROMPTS[:1], SEEDS[:1], SAMPLER, "cpu", batch_size=1)[0]
    b = render(base.pipeline(), PROMPTS[:1], SEEDS[:1], dataclasses.replace(SAMPLER, scheduler_config=sampler.scheduler_config), "cpu", batch_size=1)[0]
    assert a.tobytes() != b.tobytes()

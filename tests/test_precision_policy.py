"""precision_policy=bf16-weights (reference_impl/precision_policy.py) on the tiny model, on CPU.

bf16 working weights exist on CPU, so the whole policy runs here: the train step against the fp32
eager step from the same weights and seeds (stated tolerance: per-step loss within 5e-3, the
weight update within 15% relative L2 after 8 steps; measured 1.4e-3 and 6%), the clip folded into
fused AdamW against clip_grad_norm_ + AdamW, the refusals, and the option through ``bench run``
into the run's identity.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from dreambench.cache_root import cache_root
from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import load_base_model
from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainSettings, train_dreambooth
from dreambench.reference_impl.gpu_benchmark import CLASS_PROMPT, INSTANCE_PROMPT, random_images
from dreambench.reference_impl.latent_cache import encode_images
from dreambench.reference_impl.numeric_drift import series_drift, snapshot, weight_drift
from dreambench.reference_impl.precision_policy import MasterWeights
from dreambench.reference_impl.tiny_model import TINY_MODEL_ID, TINY_RESOLUTION

LOSS_TOLERANCE = 5e-3
UPDATE_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def tiny() -> tuple:
    base = load_base_model(TINY_MODEL_ID, device="cpu")
    images = random_images(2, TINY_RESOLUTION, 0)
    data = TrainingData(
        instance=encode_images(base.vae, images[:1], TINY_RESOLUTION, "cpu"),
        instance_prompt=INSTANCE_PROMPT,
        classes=encode_images(base.vae, images[1:], TINY_RESOLUTION, "cpu"),
        class_prompt=CLASS_PROMPT,
    )
    return base, data, snapshot(base.unet)


def _train(tiny: tuple, **options: object) -> tuple[list[float], dict[str, torch.Tensor]]:
    base, data, init = tiny
    with torch.no_grad():
        for name, p in base.unet.named_parameters():
            p.copy_(init[name])
    settings = TrainSettings(train_steps=8, learning_rate=1e-4, **options)  # type: ignore[arg-type]
    result = train_dreambooth(base, data, settings, "cpu", 0, "dog")
    assert {p.dtype for p in result.unet.parameters()} == {torch.float32}  # the fp32 masters come back
    return result.losses, snapshot(result.unet)


def test_bf16_weights_step_tracks_the_fp32_eager_step(tiny: tuple) -> None:
    losses, weights = _train(tiny, mixed_precision="no")
    bf16_losses, bf16_weights = _train(tiny, mixed_precision="bf16", precision_policy="bf16-weights")
    drift = weight_drift(bf16_weights, weights, tiny[2])
    loss_drift = series_drift(bf16_losses, losses)
    assert loss_drift is not None and loss_drift < LOSS_TOLERANCE
    assert drift["update_rel_l2"] is not None and drift["update_rel_l2"] < UPDATE_TOLERANCE
    # It did run in bf16 (the numbers moved), and it trained (the weights moved).
    assert drift["max_abs"] is not None and drift["max_abs"] > 0
    assert max(float((bf16_weights[k] - tiny[2][k]).abs().max()) for k in weights) > 0


@pytest.mark.parametrize("max_norm", [1e-3, float("inf")])
def test_clip_folded_into_fused_adamw_equals_clip_grad_norm(max_norm: float) -> None:
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 7, generator=gen), torch.randn(11, generator=gen)]
    grads = [torch.randn(5, 7, generator=gen), torch.randn(11, generator=gen)]

    plain = [torch.nn.Parameter(t.clone()) for t in start]
    for p, g in zip(plain, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(plain, max_norm)
    torch.optim.AdamW(plain, lr=0.1, fused=True).step()

    working = [torch.nn.Parameter(t.clone()) for t in start]
    master = MasterWeights(working, dtype=torch.float32)  # fp32 "working" copies: only the clip differs
    for p, g in zip(working, grads):
        p.grad = g.clone()
    master.grads_to_masters()
    optimizer = torch.optim.AdamW(master.masters, lr=0.1, fused=True)
    master.clip_and_step(optimizer, max_norm)
    master.masters_to_working()
    for a, b in zip(working, plain):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-6)
    assert getattr(optimizer, "grad_scale", None) is None  # not left set for a later step


def test_bf16_weights_refuses_what_it_does_not_cover(tiny: tuple) -> None:
    base, data, _ = tiny
    with pytest.raises(BenchError, match="needs mixed_precision=bf16"):
        train_dreambooth(
            base,
            data,
            TrainSettings(train_steps=1, precision_policy="bf16-weights", mixed_precision="no"),
            "cpu",
            0,
            "dog",
        )
    policy = TrainSettings(train_steps=1, precision_policy="bf16-weights", mixed_precision="bf16")
    with pytest.raises(BenchError, match="full fine-tuning"):
        train_dreambooth(base, data, policy, "cpu", 0, "dog", trainable=list(base.unet.conv_out.parameters()))
    assert {p.dtype for p in base.unet.parameters()} == {torch.float32}  # refused before any cast


@pytest.mark.slow
def test_policy_enters_the_run_identity(dreambench_data: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "one.json"
    prompts.write_text(
        json.dumps({"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]})
    )
    fast = "train_steps=2,num_class_images=1,render_batch_size=1,mixed_precision=bf16"
    names = []
    for policy in ("autocast", "bf16-weights"):  # bf16-weights also renders (and makes priors) in bf16
        out = tmp_path / policy
        args = [
            "run",
            "--method",
            "dreambooth",
            "--subjects",
            "dog",
            "--preset",
            "smoke",
            "--prompts",
            str(prompts),
        ]
        args += [
            "--images-per-prompt",
            "1",
            "--method-args",
            f"{fast},precision_policy={policy},render_precision={policy}",
        ]
        assert main([*args, "--data", str(dreambench_data), "--out", str(out), "--quiet"]) == 0
        (run_dir,) = [p for p in out.iterdir() if (p / "results.json").exists()]
        results = json.loads((run_dir / "results.json").read_text())
        assert results["run"]["method_config"]["precision_policy"] == policy
        assert results["run"]["method_config"]["render_precision"] == policy
        names.append(run_dir.name)
    assert names[0] != names[1]
    # The class priors of the bf16 run are their own cache entry; an fp32 entry's key is unchanged
    # (no "weights" field), so existing caches stay valid.
    specs = [json.loads(p.read_text()) for p in (cache_root() / "priors").glob("*/spec.json")]
    assert {spec.get("weights", "fp32") for spec in specs} == {"fp32", "bf16"}


def test_unknown_policy_is_a_one_line_error(
    dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--method", "dreambooth", "--subjects", "dog", "--preset", "smoke"]
    args += ["--method-args", "precision_policy=fp8", "--data", str(dreambench_data), "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "precision_policy" in err and "bf16-weights" in err and "Traceback" not in err


def test_bf16_render_is_close_to_fp32_and_refuses_a_mismatched_pipeline(tiny: tuple) -> None:
    import numpy as np

    from dreambench.reference_impl.class_priors import PriorSpec, ensure_class_images
    from dreambench.reference_impl.precision_policy import inference_components
    from dreambench.reference_impl.render import SamplerSettings, render

    base = tiny[0]
    sampler = SamplerSettings(steps=2, resolution=TINY_RESOLUTION)
    fast = inference_components(base)
    assert {p.dtype for p in fast.unet.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in base.unet.parameters()} == {torch.float32}  # the original is untouched
    (fp32,) = render(base.pipeline(), ["a photo of a dog"], [3], sampler, "cpu", batch_size=1)
    (bf16,) = render(fast.pipeline(), ["a photo of a dog"], [3], sampler, "cpu", batch_size=1)
    diff = np.abs(np.asarray(fp32, dtype=np.int16) - np.asarray(bf16, dtype=np.int16))
    assert 0 < diff.mean() < 8  # stated tolerance: mean pixel difference under 8 of 255 (tiny model, 2 steps)
    spec = PriorSpec.create(
        "tiny", "dog", "a dog", sampler, 0, device="cpu", batch_size=1, autocast_dtype=None, weights="bf16"
    )
    assert (
        spec.as_dict()["weights"] == "bf16"
        and "weights" not in dataclasses.replace(spec, weights="fp32").as_dict()
    )
    with pytest.raises(BenchError, match="spec for bf16 weights got a pipeline in torch.float32"):
        ensure_class_images(spec, 1, base.pipeline(), "cpu")


def test_a_stopped_bf16_weights_run_leaves_the_model_fp32(tiny: tuple) -> None:
    base, data, _ = tiny

    def stop(step: int) -> None:
        raise RuntimeError("stopped")

    settings = TrainSettings(train_steps=2, precision_policy="bf16-weights", mixed_precision="bf16")
    with pytest.raises(RuntimeError, match="stopped"):
        train_dreambooth(base, data, settings, "cpu", 0, "dog", after_step=stop)
    assert {p.dtype for p in base.unet.parameters()} == {torch.float32}

"""The compiled train step (reference_impl/step_graph.py) on the tiny model, on CPU.

Compiled with the ``aot_eager`` backend (the same dynamo capture and autograd split as inductor,
eager kernels) so the test takes seconds: the step is compiled once per process -- a second
subject's freshly loaded UNet reuses the graph, and its compile time is 0 -- and the compiled step
gives the eager step's losses (tolerance 1e-5: the same kernels, only the graph around them).
CUDA-graph capture (compile_mode=reduce-overhead) needs CUDA; gpu_benchmark's "graphed" row runs it.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

import dreambench.reference_impl.step_graph as step_graph
from dreambench.errors import BenchError
from dreambench.reference_impl.base_model import load_base_model
from dreambench.reference_impl.dreambooth_trainer import TrainingData, TrainSettings, train_dreambooth
from dreambench.reference_impl.gpu_benchmark import CLASS_PROMPT, INSTANCE_PROMPT, random_images
from dreambench.reference_impl.latent_cache import encode_images
from dreambench.reference_impl.tiny_model import TINY_MODEL_ID, TINY_RESOLUTION


def _subject_run(settings: TrainSettings) -> tuple[list[float], float]:
    base = load_base_model(TINY_MODEL_ID, device="cpu")  # a fresh UNet, as for each subject
    images = random_images(2, TINY_RESOLUTION, 0)
    data = TrainingData(
        instance=encode_images(base.vae, images[:1], TINY_RESOLUTION, "cpu"),
        instance_prompt=INSTANCE_PROMPT,
        classes=encode_images(base.vae, images[1:], TINY_RESOLUTION, "cpu"),
        class_prompt=CLASS_PROMPT,
    )
    result = train_dreambooth(base, data, settings, "cpu", 0, "dog")
    return result.losses, result.compile_seconds


@pytest.mark.slow  # ~35 s of dynamo tracing on 2 cores
def test_compiled_once_per_process_and_equal_to_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step_graph, "BACKEND", "aot_eager")
    monkeypatch.setattr(step_graph, "LEDGER", step_graph.CompileLedger())
    eager, _ = _subject_run(TrainSettings(train_steps=3, learning_rate=1e-4, mixed_precision="no"))
    compiled = TrainSettings(train_steps=3, learning_rate=1e-4, mixed_precision="no", compile=True)
    graphs_before = counters["stats"]["unique_graphs"]
    first, first_compile = _subject_run(compiled)
    graphs_after_first = counters["stats"]["unique_graphs"]
    second, second_compile = _subject_run(compiled)
    assert first_compile > 0 and second_compile == 0.0
    assert graphs_after_first > graphs_before
    assert counters["stats"]["unique_graphs"] == graphs_after_first  # the second subject compiled nothing
    assert first == pytest.approx(eager, abs=1e-5) and second == pytest.approx(eager, abs=1e-5)
    assert len(step_graph.LEDGER.seconds) == 1


def test_unknown_compile_mode_is_refused() -> None:
    with pytest.raises(BenchError, match="compile_mode='max' is not one of default, reduce-overhead"):
        step_graph.compile_denoiser(torch.nn.Linear(2, 2), "max")

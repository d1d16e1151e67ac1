"""Speed and memory of the DreamBooth smoke path on the CPU (embedded tiny model).

    pytest tests/benchmarks/test_bench_train.py --benchmark-enable -s

The smoke benchmark (30 subjects, 100 images each) must finish in ~15 minutes on a 2-core CPU
including scoring, so one subject end to end (train + render 100 images) has a budget of ~12 s and
one class's priors ~5 s. These benchmarks measure those figures (and the train-step time, the
sampling time per image and the peak resident memory); they never assert timings. Figures land in
``extra_info`` (see --benchmark-json) and are printed with -s. With the project's default
``--benchmark-disable`` each runs once, as a plain test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import resource
from pathlib import Path

import pytest

import dreambench.reference_impl.class_priors as class_priors
from dreambench.dataset.subject import Subject
from dreambench.reference_impl.base_model import load_base_model
from dreambench.reference_impl.dreambooth import DreamBooth, build_training_data
from dreambench.reference_impl.dreambooth_trainer import train_dreambooth
from dreambench.reference_impl.render import render
from dreambench.reference_impl.render_protocol import render_protocol_for

SMOKE = DreamBooth.PRESETS["smoke"]
SAMPLER = render_protocol_for("smoke").sampler
PROMPTS = [f"a {{}} dog, prompt {i}" for i in range(25)]  # 25 prompts x 4 samples, like the benchmark


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def dog(dreambench_data: Path) -> Subject:
    folder = dreambench_data / "dataset" if (dreambench_data / "dataset").is_dir() else dreambench_data
    paths = tuple(sorted((folder / "dog").glob("*.jpg")))
    return Subject(
        "dog", "dog", "live", paths, tuple(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths)
    )


@pytest.fixture(scope="module", autouse=True)
def own_priors(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bench-priors")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(class_priors, "cache_root", lambda: root)
        yield root


def report(benchmark, **figures: float) -> None:
    import torch

    figures["torch_threads"] = torch.get_num_threads()  # set by the caller (OMP_NUM_THREADS), not here
    benchmark.extra_info.update({k: round(v, 4) for k, v in figures.items()})
    print("\n" + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()))


def test_train_step(benchmark, dog: Subject) -> None:
    """Seconds per DreamBooth step (1 instance + 1 class latent), smoke preset, and peak RSS."""
    steps = 20
    data = build_training_data(load_base_model("tiny", device="cpu"), dog, "sks", SMOKE, SAMPLER, "cpu", seed=0)
    settings = dataclasses.replace(SMOKE, train_steps=steps)

    def setup():
        return (load_base_model("tiny", device="cpu"), data, settings, "cpu", 0, "dog"), {}

    result = benchmark.pedantic(train_dreambooth, setup=setup, rounds=3, iterations=1, warmup_rounds=1)
    assert len(result.losses) == steps
    report(benchmark, s_per_step=result.seconds / steps, peak_rss_mib=peak_rss_mib())


def test_sampling_time_per_image(benchmark) -> None:
    """Seconds per rendered image with the smoke sampler (DDIM 8 steps, CFG, 32 px, batches of 50)."""
    pipe = load_base_model("tiny", device="cpu").pipeline()
    sampler = SAMPLER
    n = SMOKE.render_batch_size
    prompts = [p.format("sks") for p in PROMPTS] * 2

    def run():
        return render(pipe, prompts[:n], list(range(n)), sampler, "cpu", batch_size=SMOKE.render_batch_size)

    images = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert len(images) == n
    if benchmark.stats is not None:
        report(benchmark, s_per_image=benchmark.stats.stats.mean / n, peak_rss_mib=peak_rss_mib())


def test_class_priors_one_class(
    benchmark, dog: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seconds to generate (and encode) one class's prior images with the smoke preset."""
    counter = itertools.count()

    def setup():
        root = tmp_path / f"round{next(counter)}"  # an empty cache each round
        monkeypatch.setattr(class_priors, "cache_root", lambda: root)
        return (load_base_model("tiny", device="cpu"), dog, "sks", SMOKE, SAMPLER, "cpu", 0), {}

    data = benchmark.pedantic(build_training_data, setup=setup, rounds=3, iterations=1)
    assert data.classes is not None and len(data.classes) == SMOKE.num_class_images
    if benchmark.stats is not None:
        report(benchmark, s_per_class=benchmark.stats.stats.mean, n_class_images=SMOKE.num_class_images)


def test_one_subject_end_to_end(benchmark, dog: Subject, tmp_path: Path) -> None:
    """prepare (train, class priors already cached) + 100 images, as the runner drives a subject."""
    method = DreamBooth(SMOKE, device="cpu", sampler=SAMPLER)
    method.prepare(dog, tmp_path / "warm")  # fills the class-prior cache; imports and first calls
    method.release()
    counter = itertools.count()
    prompts = [p.format(method.identifier(dog)) for p in PROMPTS]

    def one_subject() -> int:
        workdir = tmp_path / f"round{next(counter)}"
        method.prepare(dog, workdir)
        n = 0
        for chunk in range(2):  # the runner renders in chunks of 50
            n += len(method.generate(dog, workdir, prompts * 2, list(range(chunk * 50, chunk * 50 + 50))))
        method.release()
        return n

    assert benchmark.pedantic(one_subject, rounds=2, iterations=1) == 100
    if benchmark.stats is not None:
        report(benchmark, s_per_subject=benchmark.stats.stats.mean, peak_rss_mib=peak_rss_mib())

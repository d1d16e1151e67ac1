"""The embedded tiny-trained base model: shipped weights checked and loaded; smoke methods learn on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.dataset.dreambooth import load_subjects
from dreambench.dataset.images import load_image
from dreambench.errors import BenchError
from dreambench.reference_impl import tiny_trained
from dreambench.reference_impl.base_model import load_base_model
from dreambench.reference_impl.latent_cache import preprocess
from dreambench.reference_impl.tiny_model import TINY_RESOLUTION


def _reconstruction_error(ref: str, images: list[Image.Image]) -> np.ndarray:
    import torch

    vae = load_base_model(ref, device="cpu").vae
    x = torch.stack([preprocess(im, TINY_RESOLUTION) for im in images])
    with torch.no_grad():
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample
    return ((rec - x) ** 2).mean(dim=(1, 2, 3)).numpy()


def test_shipped_weights_load_and_the_vae_reconstructs_photos(dreambench_data: Path) -> None:
    """The trained VAE reconstructs every photo of a few subjects better than the random `tiny` VAE,
    and better than the photo's own mean colour would (what a VAE that learnt nothing reaches)."""
    base = load_base_model("tiny-trained", device="cpu")
    assert base.description["source"] == "tiny" and base.description["calibrated"] is False
    assert (
        base.description["id"] == "tiny-trained"
        and tiny_trained.weights_digest()[:12] in base.description["key"]
    )
    subjects = {s.name: s for s in load_subjects(dreambench_data)}
    photos = [load_image(p) for name in ("dog", "cat2", "can") for p in subjects[name].image_paths]
    trained = _reconstruction_error("tiny-trained", photos)
    random = _reconstruction_error("tiny", photos)
    flat = np.array([float(preprocess(im, TINY_RESOLUTION).var(dim=(1, 2)).mean()) for im in photos])
    assert (trained < random).all() and (trained < flat).all()


def test_tampered_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "weights"
    shutil.copytree(tiny_trained.WEIGHTS_DIR, copy)
    data = bytearray((copy / "unet.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "unet.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(tiny_trained, "WEIGHTS_DIR", copy)
    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BenchError, match="unet.safetensors has sha256"):
        tiny_trained.ensure_tiny_trained()
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


def _small(image: Image.Image) -> np.ndarray:
    """Centre square, 8x8 box-averaged colour: where a 32-px render can resemble a photo."""
    a = preprocess(image, TINY_RESOLUTION).permute(1, 2, 0).numpy()
    return a.reshape(8, 4, 8, 4, 3).mean(axis=(1, 3))


def _distances(run: Path, subjects: dict) -> dict[tuple[str, int, int], float]:
    """Per generated image: mean RMS distance to its subject's photos."""
    out = {}
    for folder in sorted((run / "subjects").iterdir()):
        refs = [_small(load_image(p)) for p in subjects[folder.name].image_paths]
        for line in (folder / "images.jsonl").read_text().splitlines():
            record = json.loads(line)
            generated = _small(Image.open(folder / "images" / record["file"]))
            key = (folder.name, record["prompt_idx"], record["sample_idx"])
            out[key] = float(np.mean([np.sqrt(((generated - r) ** 2).mean()) for r in refs]))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dreambooth", "dreambooth-lora"])
def test_smoke_methods_move_renders_towards_the_subject(
    method: str, tmp_path: Path, dreambench_data: Path
) -> None:
    """Paired per image (same subject, prompt and seed): the method's renders are closer to the
    subject's photos than the base model's, one-sided Wilcoxon signed-rank p < 0.01 over 4 subjects."""
    from scipy.stats import wilcoxon

    names = "dog,cat2,can,berry_bowl"
    runs = {}
    for name in ("base-model", method):
        argv = ["run", "--method", name, "--preset", "smoke", "--subjects", names, "--images-per-prompt", "1"]
        assert main([*argv, "--out", str(tmp_path / name), "--quiet"]) == 0
        (runs[name],) = [p for p in (tmp_path / name).iterdir() if (p / "results.json").is_file()]
    subjects = {s.name: s for s in load_subjects(dreambench_data)}
    base, tuned = _distances(runs["base-model"], subjects), _distances(runs[method], subjects)
    assert base.keys() == tuned.keys() and len(base) == 100
    keys = sorted(base)
    p = wilcoxon([base[k] for k in keys], [tuned[k] for k in keys], alternative="greater").pvalue
    assert p < 0.01

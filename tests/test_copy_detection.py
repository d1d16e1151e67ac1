"""copy_rate (metrics/copy_detection.py) through `bench run --extra-metrics copy_rate`: a method that
returns the subject's reference photos (resized and re-encoded) scores >= 0.9, flat colour and the
base model ~0; results.json, the leaderboard, the report's gallery and `bench compare` show it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from method_files import write_method_file
from test_plugins_and_eval import TWO_PROMPTS

from dreambench.cli import main
from dreambench.metrics.copy_detection import PIXEL_LIMIT, decide, embedding_ceiling, pixel_limit
from dreambench.metrics.metric_registry import get_metric
from dreambench.metrics.scorer import Scorer

# The reference photo (prompt index + sample index) modulo their number, squashed or centre-cropped
# to 128 px, re-encoded as JPEG: a copy that is neither exact nor the photo's size.
COPYING = """
import io
from PIL import Image
images = []
for p, seed in zip(prompts, seeds):
    k = (len(images) + seed) % len(subject.image_paths)
    photo = Image.open(subject.image_paths[k]).convert("RGB")
    if k % 2:
        side = min(photo.size)
        photo = photo.crop(((photo.width - side) // 2, (photo.height - side) // 2,
                            (photo.width + side) // 2, (photo.height + side) // 2))
    buf = io.BytesIO()
    photo.resize((128, 128)).save(buf, "JPEG", quality=70)
    images.append(Image.open(buf).convert("RGB"))
return images
"""
FLAT = """
return [Image.new("RGB", (128, 128), (seed % 200, 90, 160)) for seed in seeds]
"""


def _run(method: str, tmp_path: Path, data: Path, extra: str = "copy_rate") -> dict:
    prompts = tmp_path / "two.json"
    prompts.write_text(json.dumps(TWO_PROMPTS))
    out = tmp_path / "runs"
    args = ["run", "--method", method, "--subjects", "dog,can", "--images-per-prompt", "2", "--preset", "smoke"]
    args += ["--prompts", str(prompts), "--data", str(data), "--out", str(out), "--quiet"]
    assert main([*args, "--extra-metrics", extra] if extra else args) == 0
    found = [p / "results.json" for p in out.iterdir() if (p / "results.json").exists()]
    return json.loads(max(found, key=lambda p: p.stat().st_mtime_ns).read_text())


def test_copy_rate_separates_copies_from_flat_colour_and_the_base_model(
    dreambench_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copier = write_method_file(tmp_path / "copier.py", "Copier", "copier", COPYING)
    flat = write_method_file(tmp_path / "flat.py", "Flat", "flat", FLAT)
    copies = _run(f"{copier}:Copier", tmp_path, dreambench_data)
    flats = _run(f"{flat}:Flat", tmp_path, dreambench_data)
    base = _run("base-model", tmp_path, dreambench_data)

    assert copies["overall"]["copy_rate"] >= 0.9
    assert all(copies["subjects"][s]["copy_rate"] >= 0.9 for s in ("dog", "can"))
    assert flats["overall"]["copy_rate"] == 0.0 and base["overall"]["copy_rate"] <= 0.1
    assert copies["overall"]["copy_rate_n_subjects"] == 2
    assert copies["metrics"]["copy_rate"]["higher_is_better"] is False
    assert set(copies["metrics"]["copy_rate"]["embedders"]) == {"dino", "clip"}
    # Copying lifts DINO above the flat method's: the case copy_rate exists to name.
    assert copies["overall"]["dino"] > flats["overall"]["dino"]

    # Per-image decisions, kept beside the subject's figure.
    copy_dir = Path(copies["run"]["run_dir"])
    stored = json.loads((copy_dir / "subjects/dog/optional_scores.json").read_text())["copy_rate"]
    assert len(stored["per_image"]) == 4 and all(r["value"] == 1.0 for r in stored["per_image"].values())
    assert all("pixels" in r["by"] and r["nearest"].endswith(".jpg") for r in stored["per_image"].values())

    # The leaderboard has a column, `bench compare` gates it (lower is better: the copier fails).
    flat_dir = Path(flats["run"]["run_dir"])
    capsys.readouterr()
    assert main(["leaderboard", str(copy_dir), str(flat_dir), "--format", "md"]) == 0
    assert "Copy ↓" in capsys.readouterr().out
    assert main(["compare", str(flat_dir), str(copy_dir)]) == 1
    assert "copy_rate" in capsys.readouterr().out.lower()

    # The report's gallery marks the copied images, and only those.
    assert main(["report", str(copy_dir), str(flat_dir), "--output", str(tmp_path / "report")]) == 0
    pages = {p.name: p.read_text() for p in (tmp_path / "report" / "runs").glob("*.html")}
    copy_page = next(t for n, t in pages.items() if n.startswith(copy_dir.name))
    flat_page = next(t for n, t in pages.items() if n.startswith(flat_dir.name))
    assert copy_page.count('class="flag"') == 8 and 'class="flag"' not in flat_page


def test_copy_rate_enters_the_identity_and_keeps_old_ones() -> None:
    plain, with_copy = Scorer("smoke"), Scorer("smoke", extra_metrics=("copy_rate",))
    assert with_copy.identity()["metric_versions"]["copy_rate"] == 1
    assert "copy_rate" not in plain.identity()["metric_versions"]
    assert plain.identity_key() != with_copy.identity_key()
    assert get_metric("copy_rate").availability == "optional"


def test_the_rule_on_vectors() -> None:
    # Three reference photos whose closest pair has cosine 0.8 (the embedding ceiling).
    real = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    assert embedding_ceiling(real) == pytest.approx(0.8)
    assert embedding_ceiling(real[:1]) is None
    near = np.array([[0.95, np.sqrt(1 - 0.95**2), 0.0]])  # cos 0.95 with photo 0: above 0.8
    far = np.array([[0.6, 0.0, 0.8]])  # at most 0.8: not above the ceiling
    far_pixels = np.array([[0.2, 0.3, 0.25]])
    emb = {"dino": real, "clip": real}
    # Both embedders must agree; pixels decide alone.
    assert decide(far_pixels, 0.015, {"dino": near, "clip": near}, emb)[0][:2] == (True, ["dino", "clip"])
    assert decide(far_pixels, 0.015, {"dino": near, "clip": far}, emb)[0][:2] == (False, ["dino"])
    assert decide(np.array([[0.3, 0.001, 0.2]]), 0.015, {"dino": far, "clip": far}, emb)[0] == (
        True,
        ["pixels"],
        1,
    )
    # One reference photo: no embedding test, only pixels.
    one = {"dino": real[:1], "clip": real[:1]}
    assert decide(far_pixels[:, :1], 0.015, {"dino": near, "clip": near}, one)[0][0] is False
    # Two near-identical reference photos (a burst) halve the pixel limit.
    a = np.zeros((32, 32, 3))
    assert pixel_limit([(a,), (a + 0.01,)]) == pytest.approx(0.005)
    assert pixel_limit([(a,), (a + 0.5,)]) == PIXEL_LIMIT

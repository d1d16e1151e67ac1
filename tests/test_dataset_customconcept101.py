"""CustomConcept101 declared as a dataset: a synthetic copy in the published layout
(customconcept101/benchmark_dataset/<concept>/*.jpg, no third-party image) loads, verifies
honestly (no image is pinned yet) and runs end to end through the CLI with its own prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.dataset.customconcept101 import MANIFEST_PATH, build_manifest
from dreambench.dataset.manifest import load_manifest
from dreambench.dataset.prompts import load_prompt_set
from dreambench.dataset.registry import get_dataset


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone's customconcept101/ folder with benchmark_dataset/ unzipped into it: 3 tiny JPEGs
    per concept of dataset.json."""
    root = tmp_path_factory.mktemp("cc101") / "customconcept101"
    for i, name in enumerate(sorted(load_manifest(MANIFEST_PATH)["subjects"])):
        folder = root / "benchmark_dataset" / name
        folder.mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (32, 32), (2 * i, 80 * k, 100)).save(folder / f"{k}.jpg")
    return root


def test_concepts_categories_and_prompts(copy: Path) -> None:
    declaration = get_dataset("customconcept101")
    subjects = {s.name: s for s in declaration.subjects(copy)}
    assert len(subjects) == 101
    cat = subjects["pet_cat1"]
    assert (cat.class_noun, cat.kind, cat.category, len(cat.image_paths)) == ("cat", "live", "pet", 3)
    cow = subjects["plushie_cow"]
    assert (cow.class_noun, cow.kind, cow.category) == ("cow plushie", "object", "plushie")
    assert subjects["person_2"].kind == "live"
    prompts = load_prompt_set(None, dataset="customconcept101")
    assert len(prompts.templates("object", "scene_barn")) == 20
    # dataset.json's `{}` is "<new1> barn": the identifier and the class noun.
    assert prompts.render("object", "<new1>", "barn", "scene_barn")[1] == "<new1> barn in snowy ice."
    assert prompts.render("object", "", "shoes", "wearable_shoes1")[15] == "A pair of shoes carved from ice."
    # Concepts whose prompt files could not be read are refused with a message, not given other prompts.
    with pytest.raises(Exception, match="no prompts for subject 'furniture_chair1'"):
        prompts.templates("object", "furniture_chair1")


def test_verify_says_nothing_is_pinned_yet(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dataset", "verify", "--dataset", "customconcept101", "--data", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "pet_cat1/0.jpg: not pinned" in out and "match" not in out
    assert main(["dataset", "fetch", "--dataset", "customconcept101", "--data", str(copy / "x")]) == 2
    assert "cannot be downloaded by dreambench" in capsys.readouterr().err


def test_a_recorded_manifest_checks_every_byte(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = build_manifest(copy.parent)  # the clone root works too
    assert manifest["images_pinned"] and len(manifest["subjects"]["pet_cat1"]["images"]) == 3
    pinned = tmp_path / "manifest.json"
    pinned.write_text(json.dumps(manifest))
    import dreambench.dataset.customconcept101 as module

    monkeypatch.setattr(module, "MANIFEST_PATH", pinned)
    assert module.verify(copy / "benchmark_dataset") == []
    (copy / "benchmark_dataset" / "pet_cat1" / "extra.jpg").write_bytes(b"x")
    try:
        assert module.verify(copy / "benchmark_dataset") == [
            "pet_cat1/extra.jpg: unexpected image (not in the manifest)"
        ]
    finally:
        (copy / "benchmark_dataset" / "pet_cat1" / "extra.jpg").unlink()


def test_run_end_to_end(copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    run = ["run", "--dataset", "customconcept101", "--data", str(copy), "--subjects", "pet_cat1"]
    run += [
        "--method",
        "base-model",
        "--preset",
        "smoke",
        "--images-per-prompt",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(run) == 0
    (results_path,) = out.glob("*/results.json")
    results = json.loads(results_path.read_text())
    assert results["dataset"] == get_dataset("customconcept101").record()
    assert results["dataset"]["name"] == "customconcept101"
    assert results["prompt_set"]["name"] == "customconcept101"
    assert results["prompt_set"]["sha256"] == load_prompt_set(None, dataset="customconcept101").sha256
    assert (results["subjects"]["pet_cat1"]["kind"], results["subjects"]["pet_cat1"]["category"]) == (
        "live",
        "pet",
    )
    rows = [
        json.loads(line)
        for line in (results_path.parent / "subjects/pet_cat1/images.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 20 and any("cat is wearing headphones" in r["prompt"] for r in rows)
    board = tmp_path / "board.md"
    assert main(["leaderboard", str(out), "-o", str(board)]) == 0
    assert "base-model" in board.read_text()

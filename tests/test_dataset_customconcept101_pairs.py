"""customconcept101-pairs: CustomConcept101's two-concept compositions through the subject-group
contract. A synthetic copy of the clone's customconcept101/ folder in the published layout
(dataset_multiconcept.json entries [concept, concept, {prompt_filename_compose}], prompts/<a>_<b>.txt
with {0}/{1}, benchmark_dataset/<concept>/ with tiny generated JPEGs; no third-party image) loads as
groups with the composition prompts and runs end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.dataset.prompts import load_prompt_set
from dreambench.dataset.registry import get_dataset
from dreambench.errors import BenchError


def _concept(k: int, folder: str, noun: str, prompts: str) -> dict[str, str]:
    return {
        "instance_prompt": f"photo of a <new{k}> {noun}",
        "class_prompt": noun,
        "instance_data_dir": f"./benchmark_dataset/{folder}",
        "class_data_dir": f"./regularization/{folder}",
        "prompt_filename": f"prompts/{prompts}.txt",
    }


ENTRIES = [
    [
        _concept(1, "pet_cat1", "cat", "cat"),
        _concept(2, "pet_dog2", "dog", "dog"),
        {"prompt_filename_compose": "prompts/pet_pet.txt"},
    ],
    [
        _concept(1, "pet_dog2", "dog", "dog"),
        _concept(2, "furniture_sofa1", "sofa", "sofa"),
        {"prompt_filename_compose": "prompts/pet_furniture.txt"},
    ],
]
PET_PET = "A photo of the {0} and {1}.\n{1} and {0} side by side on a mountaintop. \n{0} playing with {1}.\n"
PET_FURNITURE = "the {0} sitting on the {1}.\nA watercolor painting of {0} on {1}.\n"


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cc101pairs") / "custom-diffusion"
    folder = root / "customconcept101"
    (folder / "prompts").mkdir(parents=True)
    (folder / "dataset_multiconcept.json").write_text(json.dumps(ENTRIES, indent=4))
    (folder / "prompts" / "pet_pet.txt").write_text(PET_PET)
    (folder / "prompts" / "pet_furniture.txt").write_text(PET_FURNITURE)
    for i, name in enumerate(("pet_cat1", "pet_dog2", "furniture_sofa1")):
        images = folder / "benchmark_dataset" / name
        images.mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (32, 32), (90 * i, 70 * k, 120)).save(images / f"{k}.jpg")
    return root


def test_compositions_load_as_groups_with_their_prompts(copy: Path) -> None:
    groups = {s.name: s for s in get_dataset("customconcept101-pairs").subjects(copy)}
    assert sorted(groups) == ["pet_cat1+pet_dog2", "pet_dog2+furniture_sofa1"]
    pets = groups["pet_cat1+pet_dog2"]
    assert [m.name for m in pets.members] == ["pet_cat1", "pet_dog2"] and pets.kind == "live"
    assert [m.category for m in pets.members] == ["pet", "pet"] and len(pets.image_paths) == 4
    prompts = load_prompt_set(None, dataset="customconcept101-pairs", data=copy)
    assert prompts.render("live", "sks", "cat and dog", "pet_cat1+pet_dog2") == [
        "A photo of the cat and dog.",
        "dog and cat side by side on a mountaintop.",
        "cat playing with dog.",
    ]
    assert prompts.render("live", "", "", "pet_dog2+furniture_sofa1")[0] == "the dog sitting on the sofa."


def test_a_missing_composition_file_is_refused_in_one_line(copy: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "customconcept101"
    shutil.copytree(copy / "customconcept101", broken)
    (broken / "prompts" / "pet_furniture.txt").unlink()
    with pytest.raises(BenchError, match="cannot read composition prompts .*pet_furniture.txt"):
        get_dataset("customconcept101-pairs").subjects(broken)


def test_run_end_to_end(copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    run = [
        "run",
        "--dataset",
        "customconcept101-pairs",
        "--data",
        str(copy),
        "--subjects",
        "pet_cat1+pet_dog2",
    ]
    run += ["--preset", "smoke", "--images-per-prompt", "1", "--out", str(out), "--quiet"]
    assert main([*run, "--method", "textual-inversion"]) == 2
    assert "cannot personalize on subject groups" in capsys.readouterr().err
    assert main([*run, "--method", "base-model"]) == 0
    (results_path,) = out.glob("*/results.json")
    results = json.loads(results_path.read_text())
    assert results["dataset"]["name"] == "customconcept101-pairs"
    group = results["subjects"]["pet_cat1+pet_dog2"]
    assert list(group["members"]) == ["pet_cat1", "pet_dog2"] and group["n_generated"] == 3
    lines = (results_path.parent / "subjects" / "pet_cat1+pet_dog2" / "images.jsonl").read_text().splitlines()
    assert json.loads(lines[2])["prompt"] == "cat playing with dog."
    board = tmp_path / "board.md"
    assert main(["leaderboard", str(out), "-o", str(board)]) == 0
    text = board.read_text()
    assert "| customconcept101-pairs |" in text and "| pet_cat1+pet_dog2 | pet_dog2 |" in text

"""DreamBench++ declared as a dataset: a synthetic copy in the published layout (data/images/<category>/
<NN>.jpg beside data/captions/<category>/<NN>.txt; no third-party image) loads under the
repository loader's names, its prompts are read from the captions, verify is honest about the
missing pin, and `bench run` runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.dataset.dreambench_plus import build_manifest
from dreambench.dataset.prompts import load_prompt_set
from dreambench.dataset.registry import get_dataset
from dreambench.errors import BenchError

SUBJECTS = {
    ("animal", "00"): "kitten",
    ("human", "00"): "old man",
    ("object", "00"): "backpack",
    ("style", "00"): "ink sketch",
}


def _captions(subject: str) -> str:
    prompts = [f"A {subject} {place}" for place in ("on a beach", "in a forest", "in the snow", "on a table")]
    prompts += [f"A {subject} in the style of {artist}" for artist in ("Monet", "Picasso", "Hokusai")]
    prompts += [f"A giant {subject} on the moon", f"A {subject} made of glass {{braces}}"]
    return "\n".join([subject, *prompts]) + "\n"


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone with the data archive unpacked as data/."""
    clone = tmp_path_factory.mktemp("dbp") / "dreambench_plus"
    for i, ((category, index), subject) in enumerate(sorted(SUBJECTS.items())):
        image = clone / "data" / "images" / category / f"{index}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 48), (60 * i, 90, 140)).save(image)
        caption = clone / "data" / "captions" / category / f"{index}.txt"
        caption.parent.mkdir(parents=True, exist_ok=True)
        caption.write_text(_captions(subject))
    return clone


def test_subjects_and_prompts_from_the_copy(copy: Path) -> None:
    subjects = {s.name: s for s in get_dataset("dreambench-plus").subjects(copy)}
    assert sorted(subjects) == [
        "live_subject_animal_00_kitten",
        "live_subject_human_00_old_man",
        "object_00_backpack",
        "style_00_ink_sketch",
    ]
    man = subjects["live_subject_human_00_old_man"]
    assert (man.class_noun, man.kind, man.category, len(man.image_paths)) == ("old man", "live", "human", 1)
    assert subjects["style_00_ink_sketch"].kind == "object"
    prompts = load_prompt_set(None, dataset="dreambench-plus", data=copy / "data")
    kitten = prompts.render("live", "", "kitten", "live_subject_animal_00_kitten")
    assert (
        len(kitten) == 9
        and kitten[0] == "A kitten on a beach"
        and kitten[8] == "A kitten made of glass {braces}"
    )
    assert (
        prompts.render("live", "sks", "kitten", "live_subject_animal_00_kitten")[7]
        == "A giant sks kitten on the moon"
    )


def test_a_prompt_that_does_not_name_its_subject_is_refused(copy: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "data"
    shutil.copytree(copy / "data", broken)
    (broken / "captions" / "object" / "00.txt").write_text("backpack\n" + "A red bag\n" * 9)
    with pytest.raises(BenchError, match="does not name the subject 'backpack'"):
        load_prompt_set(None, dataset="dreambench-plus", data=broken)


def test_verify_is_honest_and_a_recorded_manifest_pins_bytes(
    copy: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["dataset", "verify", "--dataset", "dreambench-plus", "--data", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "images/animal/00.jpg: not pinned" in out and "captions/animal/00.txt: not pinned" in out
    import dreambench.dataset.dreambench_plus as module

    pinned = tmp_path / "manifest.json"
    pinned.write_text(json.dumps(build_manifest(copy)))
    monkeypatch.setattr(module, "MANIFEST_PATH", pinned)
    assert module.verify(copy / "data") == []


def test_run_end_to_end(copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    run = ["run", "--dataset", "dreambench-plus", "--data", str(copy), "--subjects", "animal"]
    run += ["--method", "base-model", "--preset", "smoke", "--images-per-prompt", "1"]
    assert main([*run, "--out", str(out), "--quiet"]) == 0
    (results_path,) = out.glob("*/results.json")
    results = json.loads(results_path.read_text())
    assert results["dataset"] == get_dataset("dreambench-plus").record()
    assert results["prompt_set"]["name"] == "dreambench-plus"
    prompts = load_prompt_set(None, dataset="dreambench-plus", data=copy)
    assert results["prompt_set"]["sha256"] == prompts.sha256
    (name,) = results["subjects"]
    assert name == "live_subject_animal_00_kitten" and results["subjects"][name]["category"] == "animal"
    lines = (results_path.parent / "subjects" / name / "images.jsonl").read_text().splitlines()
    assert len(lines) == 9 and json.loads(lines[1])["prompt"].endswith("kitten in a forest")
    board = tmp_path / "board.md"
    assert main(["leaderboard", str(out), "-o", str(board)]) == 0
    assert "base-model" in board.read_text()

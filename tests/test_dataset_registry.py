"""Datasets declared once: a toy dataset declared in this module runs end to end through the CLI
(`bench dataset fetch | verify | info`, `bench run`, `bench leaderboard`, `bench report`), its name
and pin are part of the run identity, and every registered dataset meets the declaration contract."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from dreambench.cli import main
from dreambench.dataset.declaration import DatasetDeclaration
from dreambench.dataset.location import DataLocation
from dreambench.dataset.prompts import load_prompt_set
from dreambench.dataset.registry import (
    DATASETS,
    available_datasets,
    get_dataset,
    register_dataset,
    unregister_dataset,
)
from dreambench.dataset.subject import KINDS, Subject
from dreambench.errors import BenchError

# Two subjects in the toy dataset's own categories (mapped to the prompt-template kinds).
TOY_SUBJECTS = {"newt": ("salamander", "critter"), "pebble": ("stone", "thing")}
TOY_CATEGORIES = {"critter": "live", "thing": "object"}
TOY_PROMPTS = {
    "name": "toy",
    "version": "t1",
    "object": ["a {0} {1} on a table"],
    "live": ["a {0} {1} in the grass"],
}
ENV_VAR = "DREAMBENCH_TOY_DATA"


def _toy_locate(path: Path) -> Path | None:
    return path if all((path / name).is_dir() for name in TOY_SUBJECTS) else None


def _toy_declaration(source: Path, manifest: Path, prompts: Path, revision: str) -> DatasetDeclaration:
    """A complete declaration: the files of `source` pinned by `manifest`, fetched by copying."""

    def load(root: Path) -> list[Subject]:
        entries = json.loads(manifest.read_text())["subjects"]
        return [
            Subject(
                name=name,
                class_noun=entry["class_noun"],
                kind=TOY_CATEGORIES[entry["category"]],  # type: ignore[arg-type]
                image_paths=tuple(root / name / f for f in sorted(entry["images"])),
                image_sha256=tuple(entry["images"][f] for f in sorted(entry["images"])),
                category=entry["category"],
            )
            for name, entry in sorted(entries.items())
        ]

    def verify(root: Path) -> list[str]:
        problems = []
        for subject in load(root):
            for path, sha in zip(subject.image_paths, subject.image_sha256):
                if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                    problems.append(f"{subject.name}/{path.name}: missing or changed")
        return problems

    def fetch(dest: Path, progress: bool) -> Path:
        if not dest.exists():
            shutil.copytree(source, dest)
        return dest

    return DatasetDeclaration(
        location=DataLocation("toy", "Toy", "example/toy", ENV_VAR, _toy_locate),
        revision=revision,
        manifest=manifest,
        load=load,
        verify=verify,
        fetch=fetch,
        prompt_sets={"toy": prompts},
        default_prompt_set="toy",
        categories=TOY_CATEGORIES,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(source copy, manifest, prompt set file): two 32 px PNGs per subject."""
    root = tmp_path_factory.mktemp("toy")
    source = root / "source"
    subjects = {}
    for i, (name, (noun, category)) in enumerate(sorted(TOY_SUBJECTS.items())):
        images = {}
        for k in range(2):
            path = source / name / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 32), (90 * i + 40, 60 * k + 30, 120)).save(path)
            images[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        subjects[name] = {"class_noun": noun, "category": category, "images": images}
    manifest = root / "toy_manifest.json"
    manifest.write_text(json.dumps({"subjects": subjects}, indent=2))
    prompts = root / "toy_prompts.json"
    prompts.write_text(json.dumps(TOY_PROMPTS))
    return source, manifest, prompts


@pytest.fixture()
def toy(toy_files: tuple[Path, Path, Path]) -> Iterator[DatasetDeclaration]:
    declaration = register_dataset(_toy_declaration(*toy_files, revision="r1"))
    yield declaration
    unregister_dataset("toy")


def _results(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*/results.json"))]


def test_toy_dataset_end_to_end(
    toy: DatasetDeclaration,
    toy_files: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "toy-copy"
    assert main(["dataset", "fetch", "--dataset", "toy", "--data", str(data), "--no-progress"]) == 0
    assert main(["dataset", "verify", "--dataset", "toy", "--data", str(data)]) == 0
    verified = capsys.readouterr().out
    assert "ok: 2 subjects, 4 images" in verified and "match example/toy@r1" in verified
    assert main(["dataset", "info", "--dataset", "toy", "--data", str(data), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {k: info[k] for k in ("name", "repo", "commit", "manifest_sha256")} == toy.record()
    assert info["default_prompt_set"] == "toy" and info["categories"] == TOY_CATEGORIES
    newt = next(s for s in info["subjects"] if s["name"] == "newt")
    assert (newt["class_noun"], newt["kind"], newt["category"]) == ("salamander", "live", "critter")
    assert [(im["width"], im["height"]) for im in newt["images"]] == [(32, 32), (32, 32)]

    out = tmp_path / "runs"
    _, _, prompts = toy_files
    run = ["run", "--dataset", "toy", "--data", str(data), "--method", "base-model", "--preset", "smoke"]
    # No --prompts: the dataset's own default prompt set.
    run += ["--images-per-prompt", "1", "--out", str(out), "--quiet"]
    assert main(run) == 0
    (results,) = _results(out)
    assert (
        results["dataset"]
        == toy.record()
        == {
            "name": "toy",
            "repo": "example/toy",
            "commit": "r1",
            "manifest_sha256": toy.record()["manifest_sha256"],
        }
    )
    assert results["prompt_set"]["name"] == "toy"
    subjects = results["subjects"]
    assert sorted(subjects) == ["newt", "pebble"]
    assert (subjects["newt"]["kind"], subjects["newt"]["class_noun"]) == ("live", "salamander")
    assert subjects["newt"]["category"] == "critter"
    assert (subjects["pebble"]["kind"], subjects["pebble"]["class_noun"]) == ("object", "stone")
    rows = (out / results["run"]["run_dir"].split("/")[-1] / "subjects/newt/images.jsonl").read_text()
    assert "salamander in the grass" in rows

    board = tmp_path / "board.md"
    assert main(["leaderboard", str(out), "-o", str(board)]) == 0
    assert "base-model" in board.read_text()
    report = tmp_path / "report"
    assert main(["report", str(out), "-o", str(report), "--data", str(data)]) == 0
    page = (report / "index.html").read_text()
    # Metadata from results.json, real images located through the toy declaration.
    assert "live · critter · salamander" in page and "object · thing · stone" in page
    assert "real images are not shown" not in page
    assert page.count('alt="newt real ') == 2 and page.count('alt="pebble real ') == 2


def test_dataset_pin_is_part_of_the_run_identity(
    toy: DatasetDeclaration,
    toy_files: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, manifest, prompts = toy_files
    monkeypatch.setenv(ENV_VAR, str(source))  # located through the declaration's environment variable
    out = tmp_path / "runs"
    run = ["run", "--dataset", "toy", "--subjects", "pebble", "--method", "real-images", "--preset", "smoke"]
    run += ["--prompts", str(prompts), "--out", str(out), "--quiet"]
    assert main(run) == 0
    register_dataset(_toy_declaration(source, manifest, prompts, revision="r2"))
    assert main(run) == 0
    first, second = sorted(_results(out), key=lambda r: r["dataset"]["commit"])
    assert (first["dataset"]["commit"], second["dataset"]["commit"]) == ("r1", "r2")
    assert first["run"]["config_hash"] != second["run"]["config_hash"]


def test_unknown_dataset_is_one_line_with_suggestions(
    toy: DatasetDeclaration, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["dataset", "info", "--dataset", "ty"],
        ["run", "--dataset", "dreambooht", "--method", "real-images", "--preset", "smoke"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: unknown dataset") and "did you mean" in err and err.count("\n") == 1
        assert "valid: customconcept101, customconcept101-pairs, dreambench-plus, dreambooth, dreambooth-pairs, toy" in err


def test_a_toy_copy_that_is_missing_names_the_dataset_and_its_variable(
    toy: DatasetDeclaration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(BenchError, match=rf"Toy dataset not found .*{ENV_VAR}.*--dataset toy"):
        toy.subjects()


def test_a_subject_outside_the_declared_categories_is_refused(
    toy_files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    source, manifest, prompts = toy_files
    declaration = _toy_declaration(source, manifest, prompts, revision="r1")
    no_critters = replace(declaration, categories={"thing": "object"})
    with pytest.raises(BenchError, match="subject 'newt' has category 'critter'; declared: thing"):
        no_critters.subjects(source)
    swapped = replace(declaration, categories={"critter": "object", "thing": "object"})
    with pytest.raises(BenchError, match="the declaration maps it to 'object'"):
        swapped.subjects(source)


def test_register_refuses_a_built_in_name_and_a_wrong_type(toy_files: tuple[Path, Path, Path]) -> None:
    declaration = _toy_declaration(*toy_files, revision="r1")
    taken = replace(declaration, location=replace(declaration.location, name="dreambooth"))
    with pytest.raises(BenchError, match="built in"):
        register_dataset(taken)
    with pytest.raises(BenchError, match="not a DatasetDeclaration"):
        register_dataset("toy")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_declaration_contract(name: str) -> None:
    """Every built-in dataset: loads lazily under its own name, pins its bytes, ships a default
    prompt set that loads, maps its own categories onto the prompt-template kinds."""
    declaration = get_dataset(name)
    assert declaration.name == name and name in available_datasets()
    record = declaration.record()
    assert list(record) == ["name", "repo", "commit", "manifest_sha256"]
    assert record["name"] == name and len(record["manifest_sha256"]) == 64 and record["commit"]
    assert declaration.manifest.is_file()
    assert set(declaration.categories.values()) <= set(KINDS)
    if name != "dreambooth":
        # Their prompts and subjects come from a copy in the published layout, which only their own
        # tests build (tests/test_dataset_dreambench_plus.py, tests/test_dataset_customconcept101.py).
        return
    assert load_prompt_set(None, dataset=name).name == declaration.default_prompt_set
    for prompt_set in declaration.prompt_sets:
        assert load_prompt_set(prompt_set, dataset=name).sha256
    # Its subjects, from the copy the tests use (DREAMBENCH_DATA): sorted, unique, each with a kind,
    # a class noun and one pinned sha256 per image.
    subjects = declaration.subjects(check_files=False)
    names = [s.name for s in subjects]
    assert names == sorted(set(names)) and names
    for subject in subjects:
        assert subject.kind in KINDS and subject.class_noun and subject.image_paths
        assert len(subject.image_paths) == len(subject.image_sha256)
        assert all(len(sha) == 64 for sha in subject.image_sha256)


def test_dreambooth_record_is_unchanged() -> None:
    """Existing run directories keep their names: the DreamBooth record is the one runs always wrote."""
    from dreambench.dataset.manifest import DREAMBOOTH_COMMIT, DREAMBOOTH_REPO, manifest_sha256

    assert get_dataset("dreambooth").record() == {
        "name": "dreambooth",
        "repo": DREAMBOOTH_REPO,
        "commit": DREAMBOOTH_COMMIT,
        "manifest_sha256": manifest_sha256(),
    }
    assert manifest_sha256() == "a24beaa8d56087ca86a3e5b6aee7c1fff1ea7bc6c9473d822971115e649c0891"


def test_the_toy_default_prompt_set_and_categories(
    toy: DatasetDeclaration, toy_files: tuple[Path, Path, Path]
) -> None:
    assert load_prompt_set(None, dataset="toy").name == "toy"
    assert load_prompt_set("toy", dataset="toy").live == tuple(TOY_PROMPTS["live"])
    with pytest.raises(BenchError, match="unknown prompt set 'toy'"):
        load_prompt_set("toy")  # a dataset's own prompt sets are named within that dataset
    from dreambench.dataset.selection import resolve_subjects

    subjects, record = resolve_subjects(dataset="toy", subjects="critter", data=toy_files[0])
    assert [s.name for s in subjects] == ["newt"] and record == toy.record()

"""dreambooth-pairs: UNO's subject pairs on DreamBench as a dataset of subject groups. A synthetic
copy of UNO's datasets/ folder (dreambench_multiip.json in its published entry shape; the images
are google/dreambooth's, from DREAMBENCH_DATA or the datasets/dreambooth submodule) loads as
groups, verify is honest about the missing pin, a method declaring subject_groups runs end to end
with each image scored against each subject of its pair, and a method that cannot is refused in
one line with nothing written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dreambench.cli import main
from dreambench.dataset.dreambooth_pairs import build_manifest
from dreambench.dataset.prompts import load_prompt_set
from dreambench.dataset.registry import get_dataset
from dreambench.errors import BenchError

PAIRS = [("backpack_dog", "02.jpg", "bear_plushie", "03.jpg"), ("cat", "04.jpg", "dog", "00.jpg")]
PLACES = ("in the jungle", "on the beach", "in the snow")


def _entries() -> list[dict[str, object]]:
    return [
        {
            "prompt": f"a {a.split('_')[0]} and a {b.split('_')[0]} {place}",
            "image_tgt_path": f"./dreambooth/dataset/{a}/{fa}",
            "image_paths": [f"./dreambooth/dataset/{a}/{fa}", f"./dreambooth/dataset/{b}/{fb}"],
        }
        for a, fa, b, fb in PAIRS
        for place in PLACES
    ]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A UNO clone without its dreambooth submodule: the images come from DREAMBENCH_DATA."""
    clone = tmp_path_factory.mktemp("uno") / "UNO"
    (clone / "datasets").mkdir(parents=True)
    (clone / "datasets" / "dreambench_multiip.json").write_text(json.dumps(_entries(), indent=2))
    return clone


def test_pairs_load_as_groups_with_their_prompts(copy: Path, dreambench_data: Path, tmp_path: Path) -> None:
    groups = {s.name: s for s in get_dataset("dreambooth-pairs").subjects(copy)}
    assert sorted(groups) == ["backpack_dog+bear_plushie", "cat+dog"]
    pair = groups["cat+dog"]
    assert [m.name for m in pair.members] == ["cat", "dog"] and pair.kind == "live"
    assert pair.class_noun == "cat and dog"
    assert pair.image_paths == pair.members[0].image_paths + pair.members[1].image_paths
    assert groups["backpack_dog+bear_plushie"].kind == "object"
    prompts = load_prompt_set(None, dataset="dreambooth-pairs", data=copy)
    assert prompts.render("live", "sks", "cat and dog", "cat+dog") == [
        f"a cat and a dog {place}" for place in PLACES
    ]
    # UNO's layout with its submodule checked out: the images come from there.
    submodule = tmp_path / "datasets"
    submodule.mkdir()
    (submodule / "dreambench_multiip.json").write_text(json.dumps(_entries()))
    (submodule / "dreambooth").symlink_to(dreambench_data, target_is_directory=True)
    (with_submodule,) = [
        s for s in get_dataset("dreambooth-pairs").subjects(submodule) if s.name == "cat+dog"
    ]
    assert with_submodule.image_paths[0].is_relative_to(submodule / "dreambooth")


def test_a_malformed_entry_is_refused_in_one_line(tmp_path: Path) -> None:
    entries = _entries()
    entries[4]["image_paths"] = ["./dreambooth/dataset/cat/99.jpg", "./dreambooth/dataset/dog/00.jpg"]
    (tmp_path / "dreambench_multiip.json").write_text(json.dumps(entries))
    with pytest.raises(BenchError, match=r"entry 4: cat/99.jpg is not an image of google/dreambooth"):
        get_dataset("dreambooth-pairs").subjects(tmp_path)


def test_verify_is_honest_and_a_recorded_data_file_pins_the_pairs(
    copy: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["dataset", "verify", "--dataset", "dreambooth-pairs", "--data", str(copy)]) == 1
    assert "dreambench_multiip.json: not pinned" in capsys.readouterr().out
    import dreambench.dataset.dreambooth_pairs as module

    recorded = build_manifest(copy)
    assert [p["subjects"] for p in recorded["pairs"]] == [["backpack_dog", "bear_plushie"], ["cat", "dog"]]
    assert recorded["pairs"][1]["references"][0] == ["04.jpg", "00.jpg"]
    pinned = tmp_path / "pairs.json"
    pinned.write_text(json.dumps(recorded))
    monkeypatch.setattr(module, "DATA_PATH", pinned)
    assert module.verify(copy / "datasets") == []
    (copy / "datasets" / "dreambench_multiip.json").write_text(json.dumps(_entries()[:3]))
    try:
        assert "sha256 mismatch" in module.verify(copy / "datasets")[0]
        # Recorded pairs no longer depend on the copy's file.
        assert len(module.load(copy / "datasets")) == 2
    finally:
        (copy / "datasets" / "dreambench_multiip.json").write_text(json.dumps(_entries(), indent=2))


def test_run_scores_each_image_against_each_subject_of_its_pair(copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    run = ["run", "--dataset", "dreambooth-pairs", "--data", str(copy), "--subjects", "cat+dog"]
    run += ["--method", "base-model", "--preset", "smoke", "--images-per-prompt", "1", "--out", str(out)]
    assert main([*run, "--quiet"]) == 0
    (results_path,) = out.glob("*/results.json")
    results = json.loads(results_path.read_text())
    assert results["dataset"]["name"] == "dreambooth-pairs"
    assert "group mean and per-image minimum" in results["dataset"]["subject_groups"]
    group = results["subjects"]["cat+dog"]
    assert list(group["members"]) == ["cat", "dog"]
    for metric in ("dino", "clip_i", "clip_t"):
        cat, dog = group["members"]["cat"][metric], group["members"]["dog"][metric]
        assert math.isclose(group[metric], (cat + dog) / 2, rel_tol=1e-9, abs_tol=1e-12)
        assert group["group_min"][metric] <= min(cat, dog) + 1e-12
    assert group["members"]["cat"]["dino"] != group["members"]["dog"]["dino"]
    assert results["overall_group_min"]["dino"] == group["group_min"]["dino"]
    rows = [
        json.loads(line) for line in (results_path.parent / "subjects" / "cat+dog" / "scores.jsonl").open()
    ]
    assert len(rows) == 3 and all(
        row["group_min"]["dino"] == min(row["members"]["cat"]["dino"], row["members"]["dog"]["dino"])
        for row in rows
    )
    # A rerun reuses every image and score.
    before = {p: p.stat().st_mtime_ns for p in (results_path.parent / "subjects").rglob("*.png")}
    assert main([*run, "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (results_path.parent / "subjects").rglob("*.png")} == before

    # The leaderboard names the dataset and shows each group's subjects, mean and minimum.
    board = tmp_path / "board"
    for suffix in ("md", "csv", "json"):
        assert main(["leaderboard", str(out), "-o", str(board.with_suffix(f".{suffix}"))]) == 0
    md = board.with_suffix(".md").read_text()
    assert "| Run | Dataset |" in md and "| dreambooth-pairs |" in md
    cat_min = f"{group['group_min']['dino']:.3f}"
    assert f"| base-model† | cat+dog | min | {cat_min} |" in md
    assert f"| base-model† | cat+dog | dog | {group['members']['dog']['dino']:.3f} |" in md
    csv_text = board.with_suffix(".csv").read_text()
    assert ",group:cat+dog:cat," in csv_text and csv_text.splitlines()[1].endswith(",dreambooth-pairs")
    (entry,) = json.loads(board.with_suffix(".json").read_text())["runs"]
    assert entry["dataset"] == "dreambooth-pairs"
    assert entry["groups"]["cat+dog"]["min"]["dino"] == group["group_min"]["dino"]

    # bench eval scores images made elsewhere per pair too, to the same figures.
    import shutil

    outside = tmp_path / "outside" / "cat+dog"
    shutil.copytree(results_path.parent / "subjects" / "cat+dog" / "images", outside)
    evaluate = ["eval", str(outside.parent), "--dataset", "dreambooth-pairs", "--data", str(copy)]
    evaluate += ["--preset", "smoke", "--images-per-prompt", "1", "--out", str(tmp_path / "eval"), "--quiet"]
    assert main(evaluate) == 0
    (eval_results,) = (tmp_path / "eval").glob("*/results.json")
    scored = json.loads(eval_results.read_text())["subjects"]["cat+dog"]
    assert (scored["members"], scored["group_min"]) == (group["members"], group["group_min"])


def test_the_leaderboard_refuses_to_rank_runs_of_different_datasets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older results file without a dataset name reads as DreamBooth's, and does not share a
    ranking with a run on another dataset."""
    from results_factory import results_document

    subjects = {"dog": {"kind": "live", "dino": 0.6, "clip_i": 0.8, "clip_t": 0.3}}
    old = results_document(subjects, method="base-model", config_hash="00000001")
    del old["dataset"]
    pairs = results_document(subjects, method="uno", config_hash="00000002")
    pairs["dataset"]["name"] = "dreambooth-pairs"
    for doc in (old, pairs):
        run_dir = tmp_path / "runs" / Path(doc["run"]["run_dir"]).name
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(doc))
    old_dir, pairs_dir = (tmp_path / "runs" / Path(d["run"]["run_dir"]).name for d in (old, pairs))
    assert main(["leaderboard", str(old_dir), "-o", str(tmp_path / "old.md")]) == 0
    row = next(
        line for line in (tmp_path / "old.md").read_text().splitlines() if line.startswith("| base-model |")
    )
    assert row.endswith(" | dreambooth |")
    capsys.readouterr()
    assert main(["leaderboard", str(old_dir), str(pairs_dir), "-o", str(tmp_path / "both.md")]) == 2
    err = capsys.readouterr().err
    assert "dataset.name differs ('dreambooth' vs 'dreambooth-pairs')" in err and err.count("\n") == 1
    assert not (tmp_path / "both.md").exists()


def test_a_method_that_cannot_personalize_on_groups_is_refused(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    run = ["run", "--dataset", "dreambooth-pairs", "--data", str(copy), "--method", "dreambooth"]
    assert main([*run, "--preset", "smoke", "--images-per-prompt", "1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot personalize on subject groups" in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_verify_record_writes_the_manifest_of_a_copy_to_the_cache(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path / "cache"))
    verify = ["dataset", "verify", "--dataset", "dreambooth-pairs", "--data", str(copy)]
    assert main([*verify, "--record"]) == 0
    recorded = tmp_path / "cache" / "manifests" / "dreambooth-pairs.json"
    assert f"in {recorded}" in capsys.readouterr().out
    manifest = json.loads(recorded.read_text())
    assert len(manifest["pairs"]) == 2 and manifest["json_sha256"] is not None
    # The recorded file pins the copy once it stands in for the committed one.
    import dreambench.dataset.dreambooth_pairs as module

    monkeypatch.setattr(module, "DATA_PATH", recorded)
    assert main(verify) == 0
    # A dataset pinned file by file has nothing to record; one line naming those that do.
    assert main(["dataset", "verify", "--record", "--manifest-out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert (
        "--record applies to datasets whose sha256s are recorded from a copy" in err
        and "dreambench-plus" in err
    )
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    "name",
    ["dreambooth", "dreambench-plus", "customconcept101", "dreambooth-pairs", "customconcept101-pairs"],
)
def test_the_not_found_hint_suggests_fetch_only_where_the_dataset_can_be_fetched(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dataset", "info", "--dataset", name, "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "not found at" in err
    fetchable = get_dataset(name).fetch is not None
    assert ("bench dataset fetch" in err) == fetchable
    assert ("dreambench cannot download it" in err) == (not fetchable)

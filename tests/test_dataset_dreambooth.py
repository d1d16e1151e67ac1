"""The pinned manifest and the official dataset: counts, loading, and verification."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dreambench.dataset.dreambooth import load_subjects, verify_dataset
from dreambench.dataset.manifest import (
    DREAMBOOTH_COMMIT,
    DREAMBOOTH_REPO,
    MANIFEST_PATH,
    build_manifest,
    load_manifest,
    manifest_sha256,
    parse_classes,
)
from dreambench.errors import BenchError


def _root(dreambench_data: Path) -> Path:
    return dreambench_data / "dataset" if (dreambench_data / "dataset").is_dir() else dreambench_data


@pytest.fixture
def linked_copy(dreambench_data: Path, tmp_path: Path) -> Path:
    """A writable stand-in for the dataset: real folders, symlinks to the real files (cheap)."""
    source = _root(dreambench_data)
    copy = tmp_path / "dataset"
    for path in sorted(source.rglob("*")):
        target = copy / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    return copy


def test_manifest_constants_and_counts() -> None:
    manifest = load_manifest()
    assert (DREAMBOOTH_REPO, DREAMBOOTH_COMMIT) == (
        "google/dreambooth",
        "4f887af7970a06fc0cd3adaa1d0b368547d6a1d0",
    )
    assert (manifest["repo"], manifest["commit"]) == (DREAMBOOTH_REPO, DREAMBOOTH_COMMIT)
    subjects = manifest["subjects"]
    assert len(subjects) == 30
    assert sum(len(s["images"]) for s in subjects.values()) == 158
    assert all(4 <= len(s["images"]) <= 6 for s in subjects.values())
    live = sorted(n for n, s in subjects.items() if s["kind"] == "live")
    assert live == ["cat", "cat2", "dog", "dog2", "dog3", "dog5", "dog6", "dog7", "dog8"]
    assert {s["kind"] for s in subjects.values()} == {"live", "object"}
    assert len({s["class_noun"] for s in subjects.values()}) == 15


def test_committed_manifest_matches_the_real_files(dreambench_data: Path) -> None:
    assert build_manifest(dreambench_data) == load_manifest()
    assert build_manifest(_root(dreambench_data)) == load_manifest()


def test_class_nouns_come_from_the_official_text(dreambench_data: Path) -> None:
    text = (_root(dreambench_data) / "prompts_and_classes.txt").read_text(encoding="utf-8")
    classes = parse_classes(text)
    assert classes == {name: s["class_noun"] for name, s in load_manifest()["subjects"].items()}
    assert classes["bear_plushie"] == "stuffed animal" and classes["pink_sunglasses"] == "glasses"


def test_manifest_sha256_is_canonical() -> None:
    canonical = json.dumps(json.loads(MANIFEST_PATH.read_text()), sort_keys=True, separators=(",", ":"))
    assert manifest_sha256() == hashlib.sha256(canonical.encode()).hexdigest()
    load_manifest()["subjects"].clear()  # callers get a fresh copy, the cache is not poisoned
    assert len(load_manifest()["subjects"]) == 30


def test_load_subjects_from_the_real_clone(dreambench_data: Path) -> None:
    subjects = load_subjects(dreambench_data)
    assert [s.name for s in subjects] == sorted(load_manifest()["subjects"])
    assert sum(len(s.image_paths) for s in subjects) == 158
    assert sum(s.kind == "live" for s in subjects) == 9
    dog6 = next(s for s in subjects if s.name == "dog6")
    assert (dog6.class_noun, dog6.kind) == ("dog", "live")
    assert list(dog6.image_paths) == sorted(dog6.image_paths)
    assert all(p.parent == _root(dreambench_data) / "dog6" for p in dog6.image_paths)
    assert dog6.image_sha256[0] == hashlib.sha256(dog6.image_paths[0].read_bytes()).hexdigest()


def test_load_subjects_uses_the_env_var(dreambench_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DREAMBENCH_DATA", str(_root(dreambench_data)))
    assert len(load_subjects()) == 30


def test_real_dataset_verifies_clean(dreambench_data: Path) -> None:
    assert verify_dataset(dreambench_data) == []


def test_missing_subject_or_image_names_it(linked_copy: Path) -> None:
    (linked_copy / "teapot" / "01.jpg").unlink()
    with pytest.raises(BenchError, match=r"teapot/01\.jpg.*bench dataset verify"):
        load_subjects(linked_copy)
    for path in (linked_copy / "candle").iterdir():
        path.unlink()
    (linked_copy / "candle").rmdir()
    with pytest.raises(BenchError, match=r"candle is missing.*bench dataset verify"):
        load_subjects(linked_copy)


def test_verify_reports_each_problem(linked_copy: Path) -> None:
    assert verify_dataset(linked_copy) == []
    tampered = linked_copy / "dog6" / "02.jpg"
    data = bytearray(tampered.read_bytes())
    data[-3] ^= 0xFF
    tampered.unlink()
    tampered.write_bytes(bytes(data))
    (linked_copy / "vase" / "00.jpg").unlink()
    (linked_copy / "clock" / "99.png").write_bytes(b"extra")
    (linked_copy / "dog4").mkdir()
    (linked_copy / "prompts_and_classes.txt").unlink()
    problems = verify_dataset(linked_copy.parent)  # the clone root works too
    assert len(problems) == 5, problems
    text = "\n".join(problems)
    assert "dog6/02.jpg: sha256 mismatch" in text
    assert "vase/00.jpg: missing" in text
    assert "clock/99.png: unexpected image" in text
    assert "dog4/: unexpected folder" in text
    assert "prompts_and_classes.txt: missing" in text


def test_verify_of_a_folder_without_the_dataset(tmp_path: Path) -> None:
    assert verify_dataset(tmp_path) == [f"{tmp_path}: no google/dreambooth dataset here"]

"""Subject selection specs: all | live | objects | a,b,c | @file.txt."""

from __future__ import annotations

from pathlib import Path

import pytest

from dreambench.dataset.dreambooth import load_subjects
from dreambench.dataset.selection import select_subjects
from dreambench.dataset.subject import Subject
from dreambench.errors import BenchError


@pytest.fixture(scope="module")
def subjects(dreambench_data: Path) -> list[Subject]:
    return load_subjects(dreambench_data)


def names(chosen: list[Subject]) -> list[str]:
    return [s.name for s in chosen]


def test_groups(subjects: list[Subject]) -> None:
    assert names(select_subjects("all", subjects)) == names(subjects)
    live = select_subjects("live", subjects)
    objects = select_subjects("objects", subjects)
    assert names(live) == ["cat", "cat2", "dog", "dog2", "dog3", "dog5", "dog6", "dog7", "dog8"]
    assert len(objects) == 21 and all(s.kind == "object" for s in objects)
    assert set(names(live)) | set(names(objects)) == set(names(subjects))


def test_list_keeps_requested_order_and_drops_repeats(subjects: list[Subject]) -> None:
    chosen = select_subjects(" teapot, dog6 ,backpack,dog6,", subjects)
    assert names(chosen) == ["teapot", "dog6", "backpack"]


def test_file_with_comments(subjects: list[Subject], tmp_path: Path) -> None:
    spec = tmp_path / "subjects.txt"
    spec.write_text("# my picks\nvase\n\ncat2  # the grey one\nvase\n")
    assert names(select_subjects(f"@{spec}", subjects)) == ["vase", "cat2"]


def test_unknown_name_suggests_close_matches(subjects: list[Subject]) -> None:
    with pytest.raises(BenchError, match=r"unknown subject 'dgo6'.*did you mean.*'dog6'"):
        select_subjects("teapot,dgo6", subjects)


def test_missing_file_and_empty_spec(subjects: list[Subject], tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="absent.txt"):
        select_subjects(f"@{tmp_path / 'absent.txt'}", subjects)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(BenchError, match="no subjects"):
        select_subjects(f"@{empty}", subjects)

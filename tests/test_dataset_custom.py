"""Custom subjects from a folder of photos."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from dreambench.dataset.custom import custom_subject
from dreambench.errors import BenchError


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my_mug"
    folder.mkdir()
    for name in ("b.png", "a.jpg", "c.JPEG", "d.webp"):
        Image.new("RGB", (8, 8), (len(name), 0, 0)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    return folder


def test_custom_subject_lists_sorted_images_with_hashes(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    subject = custom_subject(folder, "mug")
    assert subject.name == "my_mug" and subject.class_noun == "mug" and subject.kind == "object"
    assert [p.name for p in subject.image_paths] == ["a.jpg", "b.png", "c.JPEG", "d.webp"]
    assert subject.image_sha256 == tuple(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in subject.image_paths
    )


def test_custom_subject_name_and_kind(tmp_path: Path) -> None:
    subject = custom_subject(_folder(tmp_path), "dog", kind="live", name="rex")
    assert (subject.name, subject.kind) == ("rex", "live")


def test_bad_kind_empty_folder_and_missing_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(BenchError, match=r"unknown subject kind 'animal'; valid: live, object"):
        custom_subject(folder, "dog", kind="animal")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(BenchError, match="no images in .*empty"):
        custom_subject(empty, "mug")
    with pytest.raises(BenchError, match="not found"):
        custom_subject(tmp_path / "absent", "mug")
    with pytest.raises(BenchError, match="class noun"):
        custom_subject(folder, "  ")

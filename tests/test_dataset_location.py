"""Where the dataset is found: --data, then $DREAMBENCH_DATA, then the cache; clone root or dataset/."""

from __future__ import annotations

from pathlib import Path

import pytest

from dreambench.dataset.location import ENV_VAR, default_data_dir, resolve_data_dir
from dreambench.errors import BenchError


def _clone(root: Path) -> Path:
    (root / "dataset" / "dog").mkdir(parents=True)
    return root


def test_clone_root_and_dataset_folder_resolve_to_the_same_folder(tmp_path: Path) -> None:
    clone = _clone(tmp_path / "dreambooth")
    assert resolve_data_dir(clone) == clone / "dataset"
    assert resolve_data_dir(clone / "dataset") == clone / "dataset"
    assert resolve_data_dir(str(clone)) == clone / "dataset"


def test_real_clone_resolves(dreambench_data: Path) -> None:
    root = resolve_data_dir(dreambench_data)
    assert (root / "prompts_and_classes.txt").is_file() and (root / "dog6").is_dir()


def test_explicit_beats_env_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = _clone(tmp_path / "explicit")
    from_env = _clone(tmp_path / "env")
    monkeypatch.setenv(ENV_VAR, str(from_env))
    assert resolve_data_dir(explicit) == explicit / "dataset"
    assert resolve_data_dir(None) == from_env / "dataset"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("DREAMBENCH_CACHE", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "dreambooth"
    cached = _clone(default_data_dir())
    assert resolve_data_dir(None) == cached / "dataset"


def test_missing_dataset_is_one_actionable_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(BenchError) as info:
        resolve_data_dir(missing)
    message = str(info.value)
    assert "\n" not in message
    assert str(missing) in message and "bench dataset fetch" in message and ENV_VAR in message
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match=ENV_VAR):
        resolve_data_dir(None)

"""Shared test fixtures. Tests are CPU-only and offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point the dreambench cache (weights, embeddings, priors) at one temp folder per session,
    unless the caller set DREAMBENCH_TEST_CACHE to reuse one across sessions."""
    root = os.environ.get("DREAMBENCH_TEST_CACHE")
    path = Path(root) if root else tmp_path_factory.mktemp("dreambench-cache")
    os.environ["DREAMBENCH_CACHE"] = str(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return path


@pytest.fixture(scope="session")
def dreambench_data() -> Path:
    """The official google/dreambooth clone (DREAMBENCH_DATA, default ../shared/dreambooth).

    Fails loudly, never skips: a test that needs the real dataset must not pass silently without it.
    """
    path = Path(os.environ.get("DREAMBENCH_DATA", REPO.parent / "shared" / "dreambooth"))
    if not (path / "dataset").is_dir() and not (path / "dog").is_dir():
        pytest.fail(f"DREAMBENCH_DATA={path} does not hold the google/dreambooth dataset")
    return path


@pytest.fixture
def empty_embedding_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache root with no embeddings that shares the session's weights (smoke weights are not rebuilt)."""
    from dreambench.cache_root import cache_root

    weights = cache_root() / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "empty-cache"
    root.mkdir()
    (root / "weights").symlink_to(weights, target_is_directory=True)
    monkeypatch.setenv("DREAMBENCH_CACHE", str(root))
    return root

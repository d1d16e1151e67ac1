"""Shared test fixtures. Tests are CPU-only and offline.

The environment is the one the README's tests section states and nothing more: DREAMBENCH_DATA
defaults to ../shared/dreambooth (beside the repository) for every test, CLI calls and subprocesses
included, and the Hugging Face hub is offline.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "DREAMBENCH_DATA"
DEFAULT_DATA = REPO.parent / "shared" / "dreambooth"
README_DATA_NOTE = (
    f"{DATA_ENV} defaults to ../shared/dreambooth (a google/dreambooth clone beside the repository); "
    "see the README's test section"
)
_SESSION_DATA = pytest.StashKey[Path]()


def _holds_dataset(path: Path) -> bool:
    return (path / "dataset").is_dir() or (path / "dog").is_dir()


def pytest_configure(config: pytest.Config) -> None:
    """Set the README's defaults before anything is imported or collected.

    Set here rather than in a fixture: huggingface_hub reads HF_HUB_OFFLINE when it is imported,
    which test modules do at collection, and the CLI reads DREAMBENCH_DATA itself.
    """
    os.environ.setdefault(DATA_ENV, str(DEFAULT_DATA))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config.stash[_SESSION_DATA] = Path(os.environ[DATA_ENV])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failure in a session without the dataset says where the dataset was looked for."""
    report = yield
    data = item.config.stash[_SESSION_DATA]
    if report.failed and not _holds_dataset(data) and README_DATA_NOTE not in str(report.longrepr):
        report.sections.append(
            ("dreambench dataset", f"{DATA_ENV}={data} holds no dataset: {README_DATA_NOTE}")
        )
    return report


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point the dreambench cache (weights, embeddings, priors) at one temp folder per session,
    unless the caller set DREAMBENCH_TEST_CACHE to reuse one across sessions."""
    root = os.environ.get("DREAMBENCH_TEST_CACHE")
    path = Path(root) if root else tmp_path_factory.mktemp("dreambench-cache")
    os.environ["DREAMBENCH_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def dreambench_data() -> Path:
    """The official google/dreambooth clone (DREAMBENCH_DATA, default ../shared/dreambooth).

    Fails loudly, never skips: a test that needs the real dataset must not pass silently without it.
    """
    path = Path(os.environ.get(DATA_ENV, DEFAULT_DATA))
    if not _holds_dataset(path):
        pytest.fail(f"{DATA_ENV}={path} does not hold the google/dreambooth dataset; {README_DATA_NOTE}")
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

"""dreambench.hub_fetch, the one offline-first fetch of pinned hub files: a cache hit works offline
(the revision recorded as the commit it resolved to); missing files offline are one line naming
repo, revision and the download command; a download fetches only what is asked (one of the
alternative weight files) and reports a failure in one line; ``bench run`` on a hub base model goes
through it. huggingface_hub's network calls are replaced by a fake repository; nothing is downloaded."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest

from dreambench.cli import main
from dreambench.errors import BenchError
from dreambench.hub_fetch import HubFiles, fetch, is_hub_id
from dreambench.reference_impl.base_model import locate_base_model
from dreambench.reference_impl.tiny_model import ensure_tiny_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "someone/weights"
ONE_PROMPT = {"name": "one", "version": "t1", "object": ["a {0} {1}"], "live": ["a {0} {1}"]}


def offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache under ``tmp_path``, offline (HF_HUB_OFFLINE=1)."""
    hub = tmp_path / "hf-hub"
    hub.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub


def hub_snapshot(
    cache: Path, repo_id: str, files: Mapping[str, bytes | Path], ref: str = "main", commit: str = COMMIT
) -> Path:
    """A Hugging Face cache entry laid out as `hf download` leaves it (file contents given, or copied
    from a path), with the ref `ref` pointing at `commit`."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for name, content in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, snapshot / name)
        else:
            (snapshot / name).write_bytes(content)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot


class FakeHub:
    """A remote repository (file -> bytes) that `snapshot_download` downloads from into the cache."""

    def __init__(self, cache: Path, files: dict[str, bytes], error: Exception | None = None) -> None:
        self.cache, self.files, self.error = cache, files, error
        self.downloads: list[list[str]] = []
        self._real = huggingface_hub.snapshot_download

    def list_repo_files(self, repo_id: str, revision: str | None = None) -> list[str]:
        if self.error is not None:
            raise self.error
        return sorted(self.files)

    def snapshot_download(
        self, repo_id: str, *, revision: str, allow_patterns: list[str], **kw: object
    ) -> str:
        if kw.get("local_files_only"):
            return self._real(repo_id, revision=revision, allow_patterns=allow_patterns, **kw)
        if self.error is not None:
            raise self.error
        self.downloads.append(list(allow_patterns))
        wanted = {n: d for n, d in self.files.items() if any(fnmatch.fnmatch(n, p) for p in allow_patterns)}
        return str(hub_snapshot(self.cache, repo_id, wanted, ref=revision))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return offline_hub_cache(tmp_path, monkeypatch)


def _online(monkeypatch: pytest.MonkeyPatch, hub: FakeHub) -> FakeHub:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "list_repo_files",
        lambda _api, repo_id, revision=None: hub.list_repo_files(repo_id, revision),
    )
    return hub


WEIGHTS = HubFiles(
    what="DINO checkpoint (timm)",
    repo_id=REPO,
    revision="main",
    files=("vocab.json",),
    required=("config.json",),
    one_of=("model.safetensors", "pytorch_model.bin"),
    instead=("set DREAMBENCH_DINO_WEIGHTS to a local weights file or folder", "use --preset smoke"),
)


def test_a_cache_hit_works_offline_and_names_the_commit(cache: Path) -> None:
    # Only the second alternative is cached: that is enough.
    snapshot = hub_snapshot(cache, REPO, {"config.json": b"{}", "pytorch_model.bin": b"w"})
    folder = fetch(WEIGHTS)
    assert folder == snapshot and folder.name == COMMIT


@pytest.mark.parametrize(
    "cached",
    [{}, {"config.json": b"{}"}, {"model.safetensors": b"w"}],
    ids=["empty", "no-weights", "no-config"],
)
def test_missing_offline_is_one_line_naming_repo_revision_and_what_to_download(
    cache: Path, cached: dict[str, bytes]
) -> None:
    if cached:
        hub_snapshot(cache, REPO, cached)
    with pytest.raises(BenchError) as err:
        fetch(WEIGHTS)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"DINO checkpoint (timm) {REPO}@main is not in the local Hugging Face cache")
    assert f"(hf download {REPO} --revision main)" in message
    assert "set DREAMBENCH_DINO_WEIGHTS" in message and message.endswith(", or use --preset smoke")


def test_an_exact_file_list_is_named_in_the_download_command(cache: Path) -> None:
    request = HubFiles(
        "IP-Adapter", "h94/IP-Adapter", "abc123", required=("models/a.safetensors", "models/b.json")
    )
    with pytest.raises(
        BenchError,
        match=r"\(hf download h94/IP-Adapter models/a.safetensors models/b.json --revision abc123\)",
    ):
        fetch(request)


def test_a_download_fetches_the_first_alternative_the_repo_has(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = {"config.json": b"{}", "pytorch_model.bin": b"w", "vocab.json": b"v", "flax_model.msgpack": b"f"}
    hub = _online(monkeypatch, FakeHub(cache, remote))
    folder = fetch(WEIGHTS)
    assert hub.downloads == [["vocab.json", "config.json", "pytorch_model.bin"]]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "pytorch_model.bin", "vocab.json"]
    # Now cached: a second fetch downloads nothing, also offline.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch(WEIGHTS) == folder and len(hub.downloads) == 1


def test_a_partial_cache_online_is_completed_by_a_download(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_snapshot(cache, REPO, {"config.json": b"{}"})
    hub = _online(monkeypatch, FakeHub(cache, {"config.json": b"{}", "model.safetensors": b"w"}))
    assert (fetch(WEIGHTS) / "model.safetensors").read_bytes() == b"w"
    assert hub.downloads == [["vocab.json", "config.json", "model.safetensors"]]


def test_a_failed_download_is_one_line(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _online(monkeypatch, FakeHub(cache, {}, error=OSError("name resolution failed\nsecond line")))
    with pytest.raises(BenchError) as err:
        fetch(WEIGHTS)
    message = str(err.value)
    assert "\n" not in message
    assert f"{REPO}@main could not be downloaded (name resolution failed); download it first" in message


def test_a_repo_without_the_files_is_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _online(monkeypatch, FakeHub(cache, {"config.json": b"{}", "tf_model.h5": b"w"}))
    with pytest.raises(
        BenchError, match=f"{REPO}@main has no model.safetensors or pytorch_model.bin; instead set"
    ):
        fetch(WEIGHTS)


def test_hub_ids() -> None:
    assert is_hub_id("h94/IP-Adapter") and is_hub_id("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert not any(map(is_hub_id, ["tiny", "no/such/thing", "not a model", "/abs/path"]))


def test_importing_it_imports_neither_huggingface_hub_nor_torch() -> None:
    code = (
        "import sys, dreambench.hub_fetch\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'huggingface_hub'))\n"
        "sys.exit(', '.join(bad) or None)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_bench_run_on_a_hub_base_model_offline(
    cache: Path, tmp_path: Path, dreambench_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "one.json"
    prompts.write_text(json.dumps(ONE_PROMPT))
    out = tmp_path / "runs"
    args = [
        "run", "--method", "base-model", "--subjects", "dog", "--preset", "smoke",
        "--method-args", "base_model=someone/tiny-sd", "--prompts", str(prompts), "--images-per-prompt", "1",
        "--data", str(dreambench_data), "--out", str(out), "--device", "cpu", "--quiet",
    ]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "base model someone/tiny-sd@main is not in the local Hugging Face cache" in err
    assert "(hf download someone/tiny-sd --revision main)" in err and not out.exists()

    # The embedded tiny model standing in for the hub's: once cached, it resolves offline.
    snapshot = cache / "models--someone--tiny-sd" / "snapshots" / COMMIT
    shutil.copytree(ensure_tiny_model(), snapshot)
    (cache / "models--someone--tiny-sd" / "refs").mkdir()
    (cache / "models--someone--tiny-sd" / "refs" / "main").write_text(COMMIT)
    folder, description = locate_base_model("someone/tiny-sd")
    assert folder == snapshot
    assert (description["source"], description["key"]) == ("hub", "someone/tiny-sd@main")

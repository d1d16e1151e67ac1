"""`fetch_dataset` against a local HTTP server (offline): install, idempotence, refusals.

Archives mirror GitHub's layout (`dreambooth-<commit>/dataset/...`) and are built once per session
from the real clone. gzip level 0 (stored) keeps building them well under a second; the format is
still the tar.gz that GitHub serves.
"""

from __future__ import annotations

import functools
import io
import os
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dreambench.dataset.dreambooth import load_subjects, verify_dataset
from dreambench.dataset.fetch import ARCHIVE_URL, URL_ENV_VAR, fetch_dataset
from dreambench.dataset.manifest import DREAMBOOTH_COMMIT
from dreambench.errors import BenchError

TOP = f"dreambooth-{DREAMBOOTH_COMMIT}"
TAMPERED, DROPPED = "dataset/dog6/02.jpg", "dataset/vase/00.jpg"


def _build_archive(clone: Path, out: Path, tamper: bool) -> None:
    with tarfile.open(out, "w:gz", compresslevel=0) as tar:
        tar.add(clone, arcname=TOP, recursive=False)
        for path in sorted(clone.rglob("*")):
            rel = path.relative_to(clone).as_posix()
            if rel.startswith(".git"):
                continue
            if tamper and rel == DROPPED:
                continue
            if tamper and rel == TAMPERED:
                data = bytearray(path.read_bytes())
                data[-3] ^= 0xFF
                info = tar.gettarinfo(path, arcname=f"{TOP}/{rel}")
                tar.addfile(info, io.BytesIO(bytes(data)))
                continue
            tar.add(path, arcname=f"{TOP}/{rel}", recursive=False)


def _tiny_archive(out: Path, bad: tarfile.TarInfo) -> None:
    """One harmless file plus one bad member."""
    with tarfile.open(out, "w:gz") as tar:
        payload = b"harmless"
        ok = tarfile.TarInfo(f"{TOP}/dataset/dog/00.jpg")
        ok.size = len(payload)
        tar.addfile(ok, io.BytesIO(payload))
        tar.addfile(bad, io.BytesIO(b"evil") if bad.isreg() else None)


def _bad_members() -> dict[str, tarfile.TarInfo]:
    dotdot = tarfile.TarInfo("../evil")
    dotdot.size = 4
    inner_dotdot = tarfile.TarInfo(f"{TOP}/dataset/../../evil")
    inner_dotdot.size = 4
    absolute = tarfile.TarInfo("/tmp/dreambench-evil")
    absolute.size = 4
    symlink = tarfile.TarInfo(f"{TOP}/dataset/dog/01.jpg")
    symlink.type, symlink.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hardlink = tarfile.TarInfo(f"{TOP}/dataset/dog/02.jpg")
    hardlink.type, hardlink.linkname = tarfile.LNKTYPE, "/etc/passwd"
    device = tarfile.TarInfo(f"{TOP}/dataset/dog/03.jpg")
    device.type = tarfile.CHRTYPE
    return {
        "dotdot": dotdot,
        "inner-dotdot": inner_dotdot,
        "absolute": absolute,
        "symlink": symlink,
        "hardlink": hardlink,
        "device": device,
    }


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass


@pytest.fixture(scope="session")
def archive_server(dreambench_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a 127.0.0.1 server holding good.tar.gz, tampered.tar.gz and <bad>.tar.gz."""
    folder = tmp_path_factory.mktemp("archives")
    _build_archive(dreambench_data, folder / "good.tar.gz", tamper=False)
    _build_archive(dreambench_data, folder / "tampered.tar.gz", tamper=True)
    for name, member in _bad_members().items():
        _tiny_archive(folder / f"{name}.tar.gz", member)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def installed(archive_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real install through the default URL, redirected by the env override."""
    dest = tmp_path_factory.mktemp("install") / "dreambooth"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(URL_ENV_VAR, f"{archive_server}/good.tar.gz")
        root = fetch_dataset(dest, progress=True)
    assert root == dest / "dataset"
    return dest


def test_archive_url_is_the_pinned_github_archive() -> None:
    assert ARCHIVE_URL == f"https://github.com/google/dreambooth/archive/{DREAMBOOTH_COMMIT}.tar.gz"


def test_good_archive_installs_only_the_dataset_and_verifies(installed: Path) -> None:
    assert sorted(p.name for p in installed.iterdir()) == ["dataset"]  # no LICENSE.md / README.md
    assert verify_dataset(installed) == []
    assert len(load_subjects(installed)) == 30
    assert [p.name for p in installed.parent.iterdir()] == ["dreambooth"]  # no temp folder left


def test_second_fetch_is_a_no_op(installed: Path, archive_server: str) -> None:
    before = os.stat(installed / "dataset" / "dog6" / "00.jpg").st_mtime_ns
    # A URL that 404s proves nothing is downloaded.
    assert (
        fetch_dataset(installed, url=f"{archive_server}/absent.tar.gz", progress=False)
        == installed / "dataset"
    )
    assert fetch_dataset(installed / "dataset", url=f"{archive_server}/absent.tar.gz", progress=False) == (
        installed / "dataset"
    )
    assert os.stat(installed / "dataset" / "dog6" / "00.jpg").st_mtime_ns == before


def test_tampered_or_missing_files_install_nothing(archive_server: str, tmp_path: Path) -> None:
    dest = tmp_path / "dreambooth"
    with pytest.raises(BenchError, match="nothing installed") as info:
        fetch_dataset(dest, url=f"{archive_server}/tampered.tar.gz", progress=False)
    assert "dog6/02.jpg: sha256 mismatch" in str(info.value)
    assert "vase/00.jpg: missing" in str(info.value)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(_bad_members()))
def test_unsafe_members_are_refused(archive_server: str, tmp_path: Path, name: str) -> None:
    dest = tmp_path / "inner" / "dreambooth"
    member = _bad_members()[name].name
    with pytest.raises(BenchError, match="refusing archive") as info:
        fetch_dataset(dest, url=f"{archive_server}/{name}.tar.gz", progress=False)
    assert repr(member) in str(info.value)
    assert not dest.exists()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "inner" / "evil").exists()
    assert list((tmp_path / "inner").iterdir()) == []


def test_http_error_is_one_line(archive_server: str, tmp_path: Path) -> None:
    dest = tmp_path / "dreambooth"
    with pytest.raises(BenchError, match=f"HTTP 404.*{URL_ENV_VAR}"):
        fetch_dataset(dest, url=f"{archive_server}/absent.tar.gz", progress=False)
    assert not dest.exists()


def test_non_empty_unverified_destination_is_left_alone(archive_server: str, tmp_path: Path) -> None:
    dest = tmp_path / "dreambooth"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(BenchError, match="exists but is not a verified copy"):
        fetch_dataset(dest, url=f"{archive_server}/good.tar.gz", progress=False)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]

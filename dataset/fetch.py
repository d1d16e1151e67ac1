"""Download the official dataset once, safely, atomically, and verified byte for byte.

`fetch_dataset(dest)` installs ``dest/dataset/<subject>/*.jpg`` (the clone layout, so
`resolve_data_dir(dest)` finds it). Steps, and why:

1. If `dest` already verifies against the manifest, return at once (idempotent, no network).
2. Stream the GitHub archive of the pinned commit into a temp folder *beside* `dest` (same file
   system, so the final rename is atomic), in 1 MiB chunks with a progress bar.
3. Refuse the whole archive if any member is unsafe: absolute path, a ``..`` component, a
   symlink, hardlink, device or FIFO (tar path traversal, CVE-2007-4559 and friends).
4. Extract only the ``dataset/`` subtree, then check every file's sha256 against the committed
   manifest. The archive itself is not hashed: GitHub does not promise byte-stable tarballs, but
   the files inside are pinned by the commit.
5. Rename the verified tree onto `dest`. Any failure removes the temp folder: nothing half-installed;
   a kill leaves it under a recognisable temp name (bench/atomic.py) that the next fetch sweeps.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from dreambench.atomic import sweep_temp_entries, temp_name
from dreambench.dataset.dreambooth import verify_dataset
from dreambench.dataset.location import subject_root
from dreambench.dataset.manifest import DREAMBOOTH_COMMIT, DREAMBOOTH_REPO
from dreambench.errors import BenchError

ARCHIVE_URL = f"https://github.com/{DREAMBOOTH_REPO}/archive/{DREAMBOOTH_COMMIT}.tar.gz"
URL_ENV_VAR = "DREAMBENCH_DATASET_URL"
_CHUNK = 1 << 20
_PINNED = f"{DREAMBOOTH_REPO}@{DREAMBOOTH_COMMIT[:7]}"


def _verified_root(dest: Path) -> Path | None:
    root = subject_root(dest) if dest.is_dir() else None
    if root is not None and not verify_dataset(root):
        return root
    return None


def _download(url: str, target: Path, progress: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    hint = f"set {URL_ENV_VAR} to a mirror, or point --data at an existing google/dreambooth clone"
    request = urllib.request.Request(url, headers={"User-Agent": "dreambench"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(target, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            columns = (TextColumn("dreambooth"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
            # stderr, so `--json` output on stdout stays machine-readable.
            with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
                task = bar.add_task("download", total=total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
    except urllib.error.HTTPError as exc:
        raise BenchError(f"download of {url} failed: HTTP {exc.code} {exc.reason}; {hint}") from None
    except urllib.error.URLError as exc:
        raise BenchError(f"download of {url} failed: {exc.reason}; {hint}") from None
    except (OSError, TimeoutError) as exc:
        raise BenchError(f"download of {url} failed: {exc}; {hint}") from None


def _check_member(member: tarfile.TarInfo, archive: str) -> PurePosixPath:
    """The member's path, or BenchError if extracting it could write outside the target folder."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith("\\") or ".." in path.parts:
        raise BenchError(f"refusing archive {archive}: member {member.name!r} has an unsafe path")
    if not (member.isreg() or member.isdir()):
        what = "symlink" if member.issym() else "hardlink" if member.islnk() else "special file"
        raise BenchError(f"refusing archive {archive}: member {member.name!r} is a {what}")
    return path


def _extract_dataset(archive_path: Path, url: str, tree: Path) -> int:
    """Extract <top>/dataset/** from the archive into tree/dataset; returns the file count."""
    try:
        with tarfile.open(archive_path, "r:*") as tar:
            members = [(m, _check_member(m, url)) for m in tar.getmembers()]
            count = 0
            for member, path in members:
                rel = PurePosixPath(*path.parts[1:]) if len(path.parts) > 1 else PurePosixPath()
                if not rel.parts or rel.parts[0] != "dataset":
                    continue
                target = tree.joinpath(*rel.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # regular files always have a payload
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                count += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BenchError(f"archive {url} is not a readable tar.gz: {exc}") from None
    return count


def fetch_dataset(dest: Path, url: str = ARCHIVE_URL, progress: bool = True) -> Path:
    """Install the pinned google/dreambooth dataset under `dest`; returns `dest/dataset`.

    `url` defaults to the GitHub archive of the pinned commit ($DREAMBENCH_DATASET_URL overrides
    the default). Returns at once when `dest` already verifies. Raises BenchError (and installs
    nothing) on a download error, an unsafe archive member, or any file that fails verification;
    also when `dest` exists, is not empty and does not verify (it is never overwritten).
    """
    dest = Path(dest).expanduser()
    if url == ARCHIVE_URL:
        url = os.environ.get(URL_ENV_VAR) or url
    done = _verified_root(dest)
    if done is not None:
        return done
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        problems = verify_dataset(dest) if dest.is_dir() else [f"{dest} is a file"]
        raise BenchError(
            f"{dest} exists but is not a verified copy of {_PINNED} ({len(problems)} problem(s), first: "
            f"{problems[0]}); remove it or fetch into another folder"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A fetch killed earlier left its stage (archive and half a tree) beside dest; only stages
    # whose writer is gone are removed, a concurrent fetch keeps its own.
    sweep_temp_entries(dest.parent, recursive=False)
    stage = dest.parent / temp_name(f"{dest.name}.fetch")
    stage.mkdir()
    try:
        archive_path = stage / "archive.tar.gz"
        _download(url, archive_path, progress)
        tree = stage / "tree"
        tree.mkdir()
        if _extract_dataset(archive_path, url, tree) == 0:
            raise BenchError(
                f"archive {url} has no <top>/dataset/ folder (expected the GitHub archive layout)"
            )
        archive_path.unlink()
        problems = verify_dataset(tree / "dataset")
        if problems:
            shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
            raise BenchError(
                f"archive {url} does not match {_PINNED}, nothing installed: {len(problems)} problem(s): {shown}"
            )
        if dest.is_dir():
            dest.rmdir()  # empty (checked above); rename cannot replace a folder portably
        try:
            os.rename(tree, dest)
        except OSError as exc:
            # Another process may have installed it meanwhile; that is fine if it verifies.
            done = _verified_root(dest)
            if done is None:
                raise BenchError(f"cannot move the verified dataset into {dest}: {exc}") from None
            return done
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dest / "dataset"

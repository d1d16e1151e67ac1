"""One process at a time per run directory (and per subject): a lock file naming its holder.

Two `bench run` on the same run directory (Enter pressed twice, two CI jobs) would write the same
files and do the same work twice. The second one is refused at once, exit 2, with one line naming
the holder's pid and host; it does not wait (a run can take hours, and a silent wait looks like a
hang). Layout::

    <run dir>/run.lock                   held by the process that runs `bench run` / `bench eval`
    <run dir>/subjects/<name>/subject.lock   held by a Ray worker while it runs that subject

The lock is ``flock`` on the file (the kernel drops it when the holder dies, kill -9 included) and
the file holds ``{"pid", "host", "since"}`` for the message. A lock file left by a dead holder is
therefore stale by construction: the next run takes it over (and says whose it was). Where the file
system has no ``flock`` (some network mounts), the file alone decides: a holder recorded on this
host whose pid is dead is taken over; a live one, or one on another host, refuses.

A Ray retry of a subject whose first worker is still running (a lost node that was not dead) waits
for that worker's ``subject.lock`` instead of writing the same files beside it; it then finds the
subject's work on disk and only finishes what is missing.

Locks are reentrant within a process (``bench eval`` holds the run's lock while it imports images
and again inside the run), and released files are removed, so a finished run directory holds none.
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from dreambench.atomic import pid_alive, this_host
from dreambench.errors import BenchError

RUN_LOCK_FILE = "run.lock"
SUBJECT_LOCK_FILE = "subject.lock"

# Locks this process holds: path -> (open file descriptor, nesting depth).
_held: dict[Path, tuple[int, int]] = {}


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lock, as written in the lock file."""

    pid: int
    host: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} (since {self.since})"

    def alive(self) -> bool | None:
        """True/False when the holder is on this host; None when that cannot be checked from here."""
        return pid_alive(self.pid) if self.host == this_host() else None


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in lock file ``path``; None when absent, empty or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        return Holder(int(data["pid"]), str(data["host"]), str(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class DirLock:
    """An exclusive lock on ``folder`` through ``folder/<file_name>``; a context manager.

    ``wait``: block until the holder is gone instead of refusing (Ray retries of a subject).
    ``what`` names the folder in the refusal (``run directory``, ``subject``).
    After ``acquire``, ``took_over`` is the stale holder whose lock file was left (or None).
    """

    def __init__(self, folder: Path, file_name: str, *, what: str, wait: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / file_name
        self.what = what
        self.wait = wait
        self.took_over: Holder | None = None
        self._created: list[Path] = []

    def _refuse(self, holder: Holder | None) -> BenchError:
        who = holder.describe() if holder else "another process"
        return BenchError(
            f"{self.what} {self.folder} is in use by {who}; wait for it to finish or stop it "
            f"(two runs never share a {self.what}), or use another --out"
        )

    def _make_folder(self) -> None:
        missing = []
        folder = self.folder
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"cannot create {self.what} {self.folder}: {exc.strerror or exc}") from None
        # Removed again on release when still empty: a refused or failed run leaves nothing behind.
        self._created = missing

    def acquire(self) -> None:
        key = self.path.absolute()
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            return
        while True:
            # Inside the loop: a holder that just let go removes the folders it created when empty.
            self._make_folder()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except FileNotFoundError:
                continue  # the folder went between our mkdir and open (see above): make it again
            except OSError as exc:
                self._remove_created()
                raise BenchError(f"cannot lock {self.what} {self.folder}: {exc.strerror or exc}") from None
            try:
                locked = self._flock(fd)
                # The holder before us may have removed the file between our open and our lock:
                # then we locked an unlinked file; start over on the one at the path now.
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                previous = read_holder(self.path)
                if not locked and previous is not None and previous.alive() is not False:
                    raise self._refuse(previous)
                self.took_over = previous
                record = {
                    "pid": os.getpid(),
                    "host": this_host(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                self._remove_created()
                raise
            _held[key] = (fd, 1)
            return

    def _flock(self, fd: int) -> bool:
        """True when the kernel lock is held; False where the file system has no flock."""
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise self._refuse(read_holder(self.path)) from None
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return False
            raise
        return True

    def release(self) -> None:
        key = self.path.absolute()
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
        # Unlink while still holding the lock, then close: a waiter that opened the old file sees
        # it unlinked (the samestat check above) and opens a new one.
        self.path.unlink(missing_ok=True)
        os.close(fd)
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: the run wrote something, keep it
        self._created = []

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def run_lock(run_dir: Path) -> DirLock:
    """The lock of a run directory: a second holder is refused at once (BenchError, exit 2)."""
    return DirLock(run_dir, RUN_LOCK_FILE, what="run directory")


def subject_lock(subject_dir: Path) -> DirLock:
    """The lock a Ray worker holds on one subject's folder; a second worker waits for it."""
    return DirLock(subject_dir, SUBJECT_LOCK_FILE, what="subject", wait=True)

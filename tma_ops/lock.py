"""Per-site lock: one run per site at a time.

The lock file holds its owner (run, pid, host, start time) and the owner holds an flock on it.
The kernel drops the flock when the owner dies, so a file with an owner but no flock is a stale
lock left by a dead process: it is reported, and broken only when asked.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tma_ops.errors import LockHeldError, StaleLockError, TmaError


@dataclass(frozen=True)
class LockOwner:
    site: str
    run_id: str
    pid: int
    host: str
    since: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, since {self.since})"


class SiteLock:
    def __init__(self, state_dir: Path, site: str) -> None:
        self.site = site
        self.path = state_dir / "locks" / f"{site}.lock"
        self._fd: int | None = None

    def acquire(self, run_id: str, *, break_stale: bool = False) -> LockOwner | None:
        """Take the lock; return the stale owner that was broken, if any."""
        fd = self._open()
        if not _try_flock(fd):
            owner = _read_owner(fd)
            os.close(fd)
            who = owner.describe() if owner else "another process"
            raise LockHeldError(f"site {self.site!r} is locked by {who}; wait for it to finish")
        stale = _read_owner(fd)
        if stale is not None and not break_stale:
            os.close(fd)
            raise StaleLockError(
                f"site {self.site!r} has a stale lock from {stale.describe()}, a process that "
                f"is gone; check the journal, then rerun with --break-stale-lock "
                f"or run `tma-ops lock break {self.site}`"
            )
        owner = LockOwner(
            self.site,
            run_id,
            os.getpid(),
            socket.gethostname(),
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        _write_owner(fd, owner)
        self._fd = fd
        return stale

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    def status(self) -> tuple[str, LockOwner | None]:
        """('free' | 'held' | 'stale', owner)."""
        if not self.path.exists():
            return "free", None
        fd = self._open()
        try:
            owner = _read_owner(fd)
            if not _try_flock(fd):
                return "held", owner
            return ("stale" if owner else "free"), owner
        finally:
            os.close(fd)

    def break_stale(self) -> LockOwner | None:
        """Clear a stale lock; refuse when a live process holds it."""
        fd = self._open()
        try:
            if not _try_flock(fd):
                owner = _read_owner(fd)
                who = owner.describe() if owner else "a live process"
                raise LockHeldError(
                    f"site {self.site!r} is held by {who}, which is alive: not breaking it"
                )
            owner = _read_owner(fd)
            os.ftruncate(fd, 0)
            return owner
        finally:
            os.close(fd)

    def __enter__(self) -> SiteLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TmaError(f"cannot open lock file {self.path}: {exc.strerror}") from exc


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_owner(fd: int) -> LockOwner | None:
    raw = os.pread(fd, 4096, 0)
    if not raw.strip():
        return None
    try:
        return LockOwner(**json.loads(raw))
    except (ValueError, TypeError):
        return LockOwner("?", "unknown", -1, "?", "?")


def _write_owner(fd: int, owner: LockOwner) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(asdict(owner)).encode(), 0)
    os.fsync(fd)

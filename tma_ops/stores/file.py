"""The embedded store: one file per key under a root directory.

Objects are written to a temporary file in the target directory, fsynced and renamed into place,
so a reader sees the old object or the new one, never a partial one. Retention locks live in a
sidecar tree `<root>/.locks/<key>.json`. Names starting with '.' are never keys (check_key refuses
them), which is what keeps temp files and lock metadata out of list().

The key rules and lock semantics are those of stores.common, shared with every store.
"""

from __future__ import annotations

import builtins
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from tma_ops.errors import StoreError
from tma_ops.stores import ObjectInfo
from tma_ops.stores.common import (
    Clock,
    active_lock,
    aware_utc,
    check_key,
    check_prefix,
    locked,
    not_found,
    read_chunks,
    refuse_shortening,
    utc_now,
)
from tma_ops.streams import Readable

LOCKS_DIR = ".locks"
TEMP_SUFFIX = ".tmp"


def os_error(path: Path | str, exc: OSError) -> StoreError:
    return StoreError(f"{path}: {exc.strerror or exc}")


@contextmanager
def os_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise os_error(path, exc) from exc


class FileStore:
    def __init__(self, root: Path, *, clock: Clock = utc_now) -> None:
        self.root = Path(root)
        self.url = f"file://{self.root}"
        self._clock = clock

    def put(self, key: str, source: Readable, size_hint: int | None = None) -> int:
        return _atomic_write(self._path(key), source, before_replace=lambda: self._refuse(key))

    def get(self, key: str) -> BinaryIO:
        # An open file is its own context manager; opening now reports a missing key at the call.
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise not_found(self.url, key) from exc
        except OSError as exc:
            raise os_error(path, exc) from exc

    def stat(self, key: str) -> ObjectInfo:
        size = self._stat_object(key).st_size
        return ObjectInfo(key, size, self._active_lock(key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._stat_object(key)
        self._refuse(key)
        try:
            path.unlink()
        except FileNotFoundError as exc:
            raise not_found(self.url, key) from exc
        except OSError as exc:
            raise os_error(path, exc) from exc
        _prune(path.parent, self.root)
        lock_path = self._lock_path(key)
        with os_errors(lock_path):
            lock_path.unlink(missing_ok=True)
        _prune(lock_path.parent, self.root)

    def lock(self, key: str, until: datetime) -> None:
        until = aware_utc(key, until)
        self._stat_object(key)
        refuse_shortening(self.url, key, self._active_lock(key), until)
        record = json.dumps({"key": key, "until": until.isoformat()}).encode()
        _atomic_write(self._lock_path(key), BytesIO(record))

    def list(self, prefix: str = "") -> builtins.list[str]:
        check_prefix(prefix)
        # Walk only the deepest directory the prefix names, not the whole store.
        directory = prefix.rpartition("/")[0]
        top = self.root.joinpath(*directory.split("/")) if directory else self.root
        return sorted(key for key in self._walk(top) if key.startswith(prefix))

    def _walk(self, top: Path) -> Iterator[str]:
        def fail(exc: OSError) -> None:
            # A missing root or prefix directory (or one deleted meanwhile) just holds no keys.
            if not isinstance(exc, FileNotFoundError | NotADirectoryError):
                raise os_error(exc.filename, exc) from exc

        for dirpath, dirnames, filenames in os.walk(top, onerror=fail):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            relative = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if not name.startswith("."):
                    yield (relative / name).as_posix()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _lock_path(self, key: str) -> Path:
        *parents, name = check_key(key).split("/")
        return self.root.joinpath(LOCKS_DIR, *parents, name + ".json")

    def _stat_object(self, key: str) -> os.stat_result:
        path = self._path(key)
        try:
            result = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise not_found(self.url, key) from exc
        except OSError as exc:
            raise os_error(path, exc) from exc
        if not stat.S_ISREG(result.st_mode):
            raise not_found(self.url, key)
        return result

    def _active_lock(self, key: str) -> datetime | None:
        return active_lock(self._read_lock(key), self._clock())

    def _refuse(self, key: str) -> None:
        until = self._active_lock(key)
        if until is not None:
            raise locked(self.url, key, until)

    def _read_lock(self, key: str) -> datetime | None:
        path = self._lock_path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_error(path, exc) from exc
        try:
            until = datetime.fromisoformat(json.loads(raw)["until"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{path}: unreadable lock metadata ({exc})") from exc
        if until.tzinfo is None:
            raise StoreError(f"{path}: lock time {until.isoformat()} has no timezone")
        return until


def _atomic_write(
    path: Path, source: Readable, before_replace: Callable[[], None] | None = None
) -> int:
    """Stream source into a temp file beside path, fsync it and rename it over path."""
    fd, temp = _create_temp(path)
    try:
        with open(fd, "wb") as out:
            size = 0
            for chunk in read_chunks(source):
                with os_errors(temp):
                    out.write(chunk)
                size += len(chunk)
            with os_errors(temp):
                out.flush()
                os.fsync(out.fileno())
        if before_replace is not None:
            before_replace()
        with os_errors(path):
            os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)
    return size


def _create_temp(path: Path) -> tuple[int, Path]:
    with os_errors(path.parent):
        # A concurrent delete() may prune the directory between mkdir and mkstemp: retry.
        for _ in range(2):
            path.parent.mkdir(parents=True, exist_ok=True)
            with suppress(FileNotFoundError):
                return _mkstemp(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return _mkstemp(path)


def _mkstemp(path: Path) -> tuple[int, Path]:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    return fd, Path(name)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable: it is recorded in the directory, not in the file."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        return  # deleted meanwhile along with the object: nothing left to make durable
    except OSError as exc:
        raise os_error(directory, exc) from exc
    try:
        with os_errors(directory):
            os.fsync(fd)
    finally:
        os.close(fd)


def _prune(directory: Path, stop: Path) -> None:
    """Remove empty directories from directory up to, not including, stop."""
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (or already gone): pruning is best effort
        directory = directory.parent

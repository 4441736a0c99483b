"""What the MariaDB/MySQL and PostgreSQL engines share: private credential files on the
environment, password scrubbing, restore tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tma_ops.errors import ExecutorError, InventoryError, TmaError
from tma_ops.executors import Executor
from tma_ops.model import ServerDatabase
from tma_ops.streams import Readable


class ServerEngine:
    """Base of the server engines: `password` and `database` set by the subclass."""

    restore_prefix = "tma-restore"
    staged_name = "dump"

    def __init__(self, spec: ServerDatabase, *, commit_timeout: float = 3600.0) -> None:
        self.spec = spec
        self.database = spec.name
        self.password = read_password(spec)
        self.commit_timeout = commit_timeout

    def prepare(self, executor: Executor, source: Readable) -> str:
        """Stage the dump in a private directory on the environment; refuse a damaged one."""
        directory = make_private_dir(executor, self.restore_prefix)
        staged = f"{directory}/{self.staged_name}"
        try:
            executor.put(staged, source)
            self._require_sound_dump(executor, staged)
        except BaseException:
            remove_private_dir(executor, directory)
            raise
        return staged

    def discard(self, executor: Executor, token: str) -> None:
        self._check_token(token)
        remove_private_dir(executor, str(PurePosixPath(token).parent))

    def _require_sound_dump(self, executor: Executor, staged: str) -> None:
        raise NotImplementedError

    @contextmanager
    def _scrubbed(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if not self.password or self.password not in str(exc):
                raise
            kind = type(exc) if isinstance(exc, TmaError) else ExecutorError
            raise kind(scrub(str(exc), self.password)) from None

    def _check_token(self, token: str, *names: str) -> None:
        """A token of this engine: a private directory's staged dump, or one of `names`."""
        path, accepted = PurePosixPath(token), names or (self.staged_name,)
        if path.name not in accepted or not path.parent.name.startswith(self.restore_prefix + "."):
            raise ValueError(f"not a restore token of {self.database}: {token!r}")


def read_password(spec: ServerDatabase) -> str | None:
    """The password from the inventory, or from `password_file` on this machine."""
    if spec.password_file is None:
        return spec.password
    try:
        return Path(spec.password_file).read_text().rstrip("\r\n")
    except OSError as exc:
        raise InventoryError(
            f"database {spec.name!r}: cannot read password_file {spec.password_file}: "
            f"{exc.strerror}"
        ) from exc


def make_private_dir(executor: Executor, prefix: str) -> str:
    """A fresh directory only its owner may enter (mktemp -d makes it 0700)."""
    script = 'umask 077 && exec mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXXXXXX"'
    path = executor.run(["sh", "-c", script, "sh", prefix]).out.strip()
    if not path.startswith("/") or f"/{prefix}." not in path:
        raise ExecutorError(f"{executor.url}: mktemp gave an unexpected path: {path!r}")
    return path


def remove_private_dir(executor: Executor, path: str) -> None:
    executor.run(["rm", "-rf", "--", path], check=False)


def scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def iter_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of a stream without their newlines, read in bounded chunks."""
    rest = b""
    while chunk := stream.read(1 << 20):
        *complete, rest = (rest + chunk).split(b"\n")
        yield from complete
    if rest:
        yield rest

"""Executor seam: how tma-ops reaches an environment (run commands, stream bytes in and out).

Implementations are chosen by URL scheme: `local://` now; `ssh://` and `docker://` plug in here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from tma_ops.errors import ExecutorError, InventoryError
from tma_ops.model import ExecutorSpec
from tma_ops.streams import Readable

# tar ends every failure with this line; the cause is on a line before it.
GENERIC_TRAILER = re.compile(r"Exiting with failure status due to previous errors")


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Executor(Protocol):
    url: str
    python: str  # interpreter used for helper scripts on the environment

    def run(
        self, argv: list[str], *, timeout: float | None = None, check: bool = True
    ) -> Result: ...

    def stream_out(self, argv: list[str]) -> AbstractContextManager[BinaryIO]:
        """Run argv and yield its stdout as a binary stream; a non-zero exit raises on close."""
        ...

    def stream_in(self, argv: list[str], source: Readable) -> Result:
        """Run argv with `source` copied to its stdin in bounded chunks."""
        ...

    def put(self, path: str, source: Readable) -> None: ...

    def get(self, path: str) -> AbstractContextManager[BinaryIO]: ...

    def exists(self, path: str) -> bool: ...


def open_executor(spec: ExecutorSpec | str) -> Executor:
    """The executor for an environment; a plain URL string stands for its default settings."""
    if isinstance(spec, str):
        spec = ExecutorSpec(url=spec)
    if spec.scheme == "local":
        from tma_ops.executors.local import LocalExecutor

        return LocalExecutor(spec.url)
    if spec.scheme == "ssh":
        from tma_ops.executors.ssh import SshExecutor

        return SshExecutor(spec)
    if spec.scheme == "docker":
        from tma_ops.executors.docker import DockerExecutor

        return DockerExecutor(spec)
    raise InventoryError(
        f"executor {spec.url!r}: unknown scheme {spec.scheme!r}; expected local://, ssh:// or "
        "docker://"
    )


def iter_chunks(stream: Readable, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def command_failed(argv: list[str], rc: int, err: str, url: str) -> ExecutorError:
    return ExecutorError(f"{url}: {describe_command(argv)} exited {rc}: {telling_line(err)}")


def telling_line(err: str) -> str:
    """The last line of error output that says what went wrong, not a generic trailer."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    telling = [line for line in lines if not GENERIC_TRAILER.search(line)]
    return (telling or lines or ["no error output"])[-1]


def describe_command(argv: list[str]) -> str:
    """The program and its first argument, never an inline script (which may be long)."""
    program = argv[0].rsplit("/", 1)[-1]
    first = argv[1] if len(argv) > 1 and argv[1] not in ("-c", "-e") else ""
    return f"`{program} {first}`" if first else f"`{program}`"

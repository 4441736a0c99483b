"""The files part: GNU tar archives, full or incremental (`tar --listed-incremental`).

An incremental archive holds only what changed since its parent, plus each directory's listing,
so extracting the chain in order with `tar --listed-incremental=/dev/null -x` rebuilds the exact
tree, deletions included, with standard tools only.

tar's state file (the "snar") stays on the environment beside the root, never in the store: it
lists every file name, and it is only needed where the next archive is made. A snapshot records
the state file's digest; the next snapshot is incremental only when the environment's state file
still has that digest, so a lost, stale or foreign state file just means a full archive.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from tma_ops.executors import Executor

FULL_FORMAT = "tar"
INCREMENTAL_FORMAT = "gnu-tar-listed-incremental"
STATE_SUFFIX = ".tma-tar-state"
# Leftovers of interrupted updates and restores are never part of a snapshot.
TAR_EXCLUDES = ["--exclude=.tma-*", "--exclude=*.tma-restore"]


class ChainLink(Protocol):
    @property
    def snapshot_id(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def files_state_sha256(self) -> str | None: ...


@dataclass(frozen=True)
class FilesPlan:
    """Full (level 0, no parent) or an increment of `parent` at `level`."""

    parent: str | None
    level: int

    @property
    def key_stem(self) -> str:
        return "files.tar.zst" if self.level == 0 else f"files.{self.level}.tar.zst"


def plan_files(
    snapshots: Sequence[ChainLink], env_name: str, state_sha256: str | None, full_every: int
) -> FilesPlan:
    """Increment the environment's newest snapshot when its state file is the one on the host.

    snapshots are oldest first. A full archive every `full_every` snapshots keeps chains short.
    """
    own = [m for m in snapshots if m.environment == env_name]
    if not own or state_sha256 is None:
        return FilesPlan(None, 0)
    newest = own[-1]
    if newest.files_state_sha256 != state_sha256 or newest.level + 1 >= full_every:
        return FilesPlan(None, 0)
    return FilesPlan(newest.snapshot_id, newest.level + 1)


def directory_ids(state: bytes) -> dict[tuple[bytes, bytes], bytes]:
    """(device, inode) -> name of every directory a tar state file (format 2) records.

    After a header line and the dump time, each record is: nfs flag, mtime seconds and
    nanoseconds, device, inode, name, then the directory's entries, all NUL-terminated, and
    empty strings closing the record.
    """
    _, _, body = state.partition(b"\n")
    tokens = body.split(b"\0")
    ids: dict[tuple[bytes, bytes], bytes] = {}
    index = 2  # the dump time: seconds and nanoseconds
    while index + 5 < len(tokens):
        device, inode, name = tokens[index + 3], tokens[index + 4], tokens[index + 5]
        ids[(device, inode)] = name
        index += 6
        while index < len(tokens) and tokens[index]:
            index += 1  # the directory's entries
        while index < len(tokens) and not tokens[index]:
            index += 1
    return ids


def renamed_directories(state: bytes, current: dict[tuple[bytes, bytes], bytes]) -> list[bytes]:
    """Directories tar takes for renamed: an inode its state file knew under another name.

    A directory deleted and another created with its freed inode (a cache wiped and rebuilt)
    reads as a rename, which GNU tar then fails to extract ("Cannot rename ...: Directory not
    empty"). An archive made while this holds must not be kept as an increment.
    """
    known = directory_ids(state)
    return sorted(name for ids, name in current.items() if ids in known and known[ids] != name)


def current_directory_ids(executor: Executor, root: str) -> dict[tuple[bytes, bytes], bytes]:
    """(device, inode) -> name, as tar names them (".", "./a"), of the directories under root."""
    listing = executor.run(["find", root, "-type", "d", "-printf", "%D %i %P\\0"]).out
    ids: dict[tuple[bytes, bytes], bytes] = {}
    for line in listing.split("\0"):
        device, _, rest = line.partition(" ")
        inode, _, name = rest.partition(" ")
        if device and inode:
            path = os.fsencode(f"./{name}" if name else ".")
            ids[(device.encode(), inode.encode())] = path
    return ids


def state_path(root: str) -> str:
    return root.rstrip("/") + STATE_SUFFIX


def state_digest(executor: Executor, path: str) -> str | None:
    """SHA-256 of a state file on the environment, None when there is none."""
    result = executor.run(
        ["sh", "-c", '[ -f "$1" ] || exit 0; sha256sum "$1"', "state", path], check=False
    )
    head = result.out.split(" ", 1)[0].strip()
    return head if result.ok and len(head) == 64 else None


@contextmanager
def archive_stream(
    executor: Executor, root: str, plan: FilesPlan, work_state: str
) -> Iterator[BinaryIO]:
    """Stream the archive of root; tar updates the work copy of the state file as it goes."""
    start = ["cp", "-p", state_path(root), work_state] if plan.level else ["rm", "-f", work_state]
    executor.run(start)
    with executor.stream_out(tar_create(root, work_state)) as stream:
        yield stream


def tar_create(root: str, state: str) -> list[str]:
    return [
        "tar",
        "-C",
        root,
        "--numeric-owner",
        f"--listed-incremental={state}",
        *TAR_EXCLUDES,
        "-cf",
        "-",
        ".",
    ]


def tar_extract(target: str, files_format: str) -> list[str]:
    incremental = ["--listed-incremental=/dev/null"] if files_format == INCREMENTAL_FORMAT else []
    return ["tar", "-C", target, "--numeric-owner", *incremental, "-xpf", "-"]


def read_state(executor: Executor, path: str) -> bytes:
    with executor.get(path) as stream:
        return stream.read()


def adopt_state(executor: Executor, root: str, work_state: str) -> None:
    """Make the snapshot's state file the environment's, once its manifest is stored."""
    executor.run(["mv", "-f", work_state, state_path(root)])


def discard_state(executor: Executor, work_state: str) -> None:
    executor.run(["rm", "-f", work_state], check=False)

"""Restore a snapshot into an environment: stage everything, check digests, then swap in.

Nothing live changes until both parts have arrived whole and match the manifest; the two are
staged side by side (the dump in a thread, the files through tar), then committed. Once its
digests are checked, the dump is loaded beside the live database in the same thread where the
engine can (MariaDB/MySQL: a shadow database), so that its commit is a swap. The files swap
is two renames; a crash between them leaves the staged tree in place, and rerunning the restore
finishes the job (each phase is idempotent).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from tma_ops.config import Site
from tma_ops.dbs import DatabaseEngine, database_of
from tma_ops.errors import SnapshotError
from tma_ops.executors import Executor, open_executor
from tma_ops.faults import pause_point
from tma_ops.files_archive import state_path, tar_extract
from tma_ops.parts import Part, Sealing, reading_part
from tma_ops.progress import SILENT, Advance, TransferProgress
from tma_ops.snapshot import Manifest, chain_of
from tma_ops.stores import Store
from tma_ops.streams import ReadingStopped, Stoppable

STAGED_SUFFIX = ".tma-restore"
REPLACED_SUFFIX = ".tma-replaced"

SWAP_SCRIPT = """set -e
root="$1"; staged="$1%s"; replaced="$1%s"
[ -d "$staged" ] || { echo "staged tree $staged is missing" >&2; exit 1; }
rm -rf "$replaced"
if [ -e "$root" ]; then mv "$root" "$replaced"; fi
mv "$staged" "$root"
rm -rf "$replaced"
""" % (STAGED_SUFFIX, REPLACED_SUFFIX)  # noqa: UP031 - braces of the shell script


def restore_snapshot(
    site: Site,
    manifest: Manifest,
    env_name: str,
    store: Store,
    *,
    progress: TransferProgress = SILENT,
    database: bool = True,
    files: bool = True,
) -> None:
    """Restore the snapshot's database and/or files (both by default) into the environment."""
    if manifest.site != site.name:
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id} belongs to site {manifest.site!r}, not {site.name!r}"
        )
    env = site.environment(env_name)
    engine, db_executor = database_of(env)
    if engine.name != manifest.database_engine:
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id} holds a {manifest.database_engine} "
            f"database; {site.name}/{env_name} uses {engine.name}"
        )
    target = _Target(engine, db_executor, open_executor(env.executor), env.root)
    sealing = Sealing.of(site.store.encryption)
    chain = chain_of(store, manifest) if files else []
    db_part = manifest.parts["db"] if database else None
    token = _stage(target, store, db_part, chain, sealing, progress)
    if token is not None:
        engine.commit(db_executor, token)
    pause_point(f"restore-{env_name}:after-db-commit")
    if files:
        target.executor.run(["sh", "-c", SWAP_SCRIPT, "swap", env.root])
        # tar's state file maps directory inodes to names: a tree swapped in has new inodes, and
        # a reused one would read as a rename. The next snapshot of this environment starts afresh.
        target.executor.run(["rm", "-f", state_path(env.root)])


@dataclass(frozen=True)
class _Target:
    """Where a restore lands: the database (through its executor) and the files root."""

    engine: DatabaseEngine
    db_executor: Executor
    executor: Executor
    root: str


def _stage(
    target: _Target,
    store: Store,
    db_part: Part | None,
    chain: list[Manifest],
    sealing: Sealing,
    progress: TransferProgress,
) -> str | None:
    """Stage what is restored; the database's token for commit, when there is one."""
    if db_part is not None and chain:
        return _stage_side_by_side(target, store, db_part, chain, sealing, progress)
    if db_part is not None:
        return _stage_database(target, store, db_part, sealing, progress)
    if chain:
        _stage_files(target, store, chain, sealing, progress)
    return None


def _stage_side_by_side(
    target: _Target,
    store: Store,
    db_part: Part,
    chain: list[Manifest],
    sealing: Sealing,
    progress: TransferProgress,
) -> str:
    """Stage the dump in a thread while the files are extracted: the two share nothing, and each
    pipeline alone leaves part of the machine idle (waiting on tar, on the staging write, on the
    database loading the dump aside). When one fails, the other stops at its next chunk (a load
    under way runs to its end) and leaves nothing behind; its failure is the one told.
    """
    stop = threading.Event()
    total = db_part.size + sum(link.parts["files"].size for link in chain)
    with (
        progress.transfer("restore database and files", total) as advance,
        ThreadPoolExecutor(1, thread_name_prefix="restore-database") as pool,
    ):
        shared = _OneBar(advance)
        dump = pool.submit(_stage_database, target, store, db_part, sealing, shared, stop)
        try:
            _stage_files(target, store, chain, sealing, shared, stop)
        except BaseException as exc:
            stop.set()
            _discard_staged_dump(target, dump)
            failure = dump.exception()
            if isinstance(exc, ReadingStopped) and failure is not None:
                raise failure from None
            raise
        try:
            return dump.result()
        except BaseException:
            target.executor.run(["rm", "-rf", target.root + STAGED_SUFFIX], check=False)
            raise


def _discard_staged_dump(target: _Target, dump: Future[str]) -> None:
    """Wait for the dump's staging to end (stopped or not) and throw its result away: the staged
    file, and what the engine loaded aside."""
    if dump.exception() is None:
        target.engine.discard(target.db_executor, dump.result())


class _OneBar(TransferProgress):
    """Transfers running side by side, shown as one bar: a terminal holds one live display."""

    def __init__(self, advance: Advance) -> None:
        super().__init__(enabled=False)
        self._advance = advance

    @contextmanager
    def transfer(self, description: str, total: int | None = None) -> Iterator[Advance]:
        yield self._advance


def _stage_database(
    target: _Target,
    store: Store,
    part: Part,
    sealing: Sealing,
    progress: TransferProgress,
    stop: threading.Event | None = None,
) -> str:
    """Stage the dump and, once both digests are checked (never SQL from unverified bytes), let
    the engine load it beside the live database: the token for commit."""
    database, executor = target.engine, target.db_executor
    token: str | None = None
    try:
        with reading_part(store, part, sealing, progress, "restore database") as plain:
            source = plain if stop is None else Stoppable(plain, stop)
            token = database.prepare(executor, source)
        if stop is None or not stop.is_set():  # else the files failed: it is discarded
            token = database.load_aside(executor, token)
    except BaseException:
        if stop is not None:
            stop.set()
        if token is not None:
            database.discard(executor, token)
        raise
    assert token is not None
    return token


def _stage_files(
    target: _Target,
    store: Store,
    chain: list[Manifest],
    sealing: Sealing,
    progress: TransferProgress,
    stop: threading.Event | None = None,
) -> None:
    """Extract the chain's archives in order into a staged tree beside root."""
    executor, staged = target.executor, target.root + STAGED_SUFFIX
    executor.run(["rm", "-rf", staged])
    executor.run(["mkdir", "-p", staged])
    try:
        for number, link in enumerate(chain, start=1):
            label = "restore files" if len(chain) == 1 else f"restore files {number}/{len(chain)}"
            part = link.parts["files"]
            with reading_part(store, part, sealing, progress, label) as plain:
                source = plain if stop is None else Stoppable(plain, stop)
                executor.stream_in(tar_extract(staged, link.files_format), source)
    except BaseException:
        # Whatever stopped the staging (damaged bytes, tar, an interrupt), leave nothing behind.
        executor.run(["rm", "-rf", staged], check=False)
        raise

"""Restore a snapshot into an environment: stage everything, check digests, then swap in.

Nothing live changes until both parts have arrived whole and match the manifest. The files swap
is two renames; a crash between them leaves the staged tree in place, and rerunning the restore
finishes the job (each phase is idempotent).
"""

from __future__ import annotations

from tma_ops.config import Site
from tma_ops.dbs import DatabaseEngine, database_of
from tma_ops.errors import SnapshotError
from tma_ops.executors import Executor, open_executor
from tma_ops.faults import pause_point
from tma_ops.files_archive import state_path, tar_extract
from tma_ops.parts import Part, Sealing, reading_part
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.snapshot import Manifest, chain_of
from tma_ops.stores import Store

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
    executor = open_executor(env.executor)
    engine, db_executor = database_of(env)
    if engine.name != manifest.database_engine:
        raise SnapshotError(
            f"snapshot {manifest.snapshot_id} holds a {manifest.database_engine} "
            f"database; {site.name}/{env_name} uses {engine.name}"
        )
    sealing = Sealing.of(site.store.encryption)
    token = None
    if database:
        db_part = manifest.parts["db"]
        token = _stage_database(engine, db_executor, store, db_part, sealing, progress)
    try:
        if files:
            chain = chain_of(store, manifest)
            _stage_files(executor, env.root, store, chain, sealing, progress)
    except BaseException:
        if token is not None:
            engine.discard(db_executor, token)
        raise
    if token is not None:
        engine.commit(db_executor, token)
    pause_point(f"restore-{env_name}:after-db-commit")
    if files:
        executor.run(["sh", "-c", SWAP_SCRIPT, "swap", env.root])
        # tar's state file maps directory inodes to names: a tree swapped in has new inodes, and
        # a reused one would read as a rename. The next snapshot of this environment starts afresh.
        executor.run(["rm", "-f", state_path(env.root)])


def _stage_database(
    database: DatabaseEngine,
    executor: Executor,
    store: Store,
    part: Part,
    sealing: Sealing,
    progress: TransferProgress,
) -> str:
    token: str | None = None
    try:
        with reading_part(store, part, sealing, progress, "restore database") as plain:
            token = database.prepare(executor, plain)
    except BaseException:
        if token is not None:
            database.discard(executor, token)
        raise
    assert token is not None
    return token


def _stage_files(
    executor: Executor,
    root: str,
    store: Store,
    chain: list[Manifest],
    sealing: Sealing,
    progress: TransferProgress,
) -> None:
    """Extract the chain's archives in order into a staged tree beside root."""
    staged = root + STAGED_SUFFIX
    executor.run(["rm", "-rf", staged])
    executor.run(["mkdir", "-p", staged])
    try:
        for number, link in enumerate(chain, start=1):
            label = "restore files" if len(chain) == 1 else f"restore files {number}/{len(chain)}"
            part = link.parts["files"]
            with reading_part(store, part, sealing, progress, label) as plain:
                executor.stream_in(tar_extract(staged, link.files_format), plain)
    except BaseException:
        # Whatever stopped the staging (damaged bytes, tar, an interrupt), leave nothing behind.
        executor.run(["rm", "-rf", staged], check=False)
        raise

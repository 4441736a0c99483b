"""One-off operations outside the cycle (a snapshot, an emergency restore), locked and journaled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tma_ops.config import Site
from tma_ops.cycle import new_run_id
from tma_ops.journal import Journal
from tma_ops.lock import SiteLock
from tma_ops.parts import Sealing
from tma_ops.progress import SILENT, TransferProgress
from tma_ops.restore import restore_snapshot
from tma_ops.snapshot import Manifest, create_snapshot, verify_snapshot
from tma_ops.stores import Store


@contextmanager
def journaled(
    journal: Journal, state_dir: Path, site: Site, step: str, data: dict[str, Any]
) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Lock the site and record started / done (with what the body reports) / failed."""
    run_id = "manual-" + new_run_id()
    with SiteLock(state_dir, site.name) as lock:
        lock.acquire(run_id)
        journal.append(run_id=run_id, site=site.name, step=step, status="started", data=data)
        result: dict[str, Any] = {}
        try:
            yield result.update
        except BaseException as exc:
            journal.append(
                run_id=run_id,
                site=site.name,
                step=step,
                status="failed",
                data={**data, "error": str(exc).splitlines()[0] if str(exc) else ""},
            )
            raise
        journal.append(
            run_id=run_id, site=site.name, step=step, status="done", data={**data, **result}
        )


def manual_snapshot(
    site: Site,
    env_name: str,
    store: Store,
    journal: Journal,
    state_dir: Path,
    progress: TransferProgress = SILENT,
) -> Manifest:
    with journaled(journal, state_dir, site, "snapshot", {"environment": env_name}) as report:
        manifest = create_snapshot(site, env_name, store, reason="manual", progress=progress)
        verify_snapshot(store, manifest, progress, Sealing.of(site.store.encryption))
        report({"snapshot_id": manifest.snapshot_id, "stored_bytes": manifest.total_size})
    return manifest


def manual_restore(
    site: Site,
    manifest: Manifest,
    env_name: str,
    store: Store,
    journal: Journal,
    state_dir: Path,
    progress: TransferProgress = SILENT,
) -> None:
    data = {"environment": env_name, "snapshot_id": manifest.snapshot_id}
    with journaled(journal, state_dir, site, "restore", data):
        restore_snapshot(site, manifest, env_name, store, progress=progress)

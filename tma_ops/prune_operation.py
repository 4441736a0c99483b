"""`tma-ops prune` as a one-off operation: under the site lock, journaled, a pending run protected.

A run killed mid-way is resumed (or rolled back) by the next cycle from the snapshots its journal
names; those snapshots are kept whatever the retention says, until that run has finished.
"""

from __future__ import annotations

from pathlib import Path

from tma_ops.config import Site
from tma_ops.cycle import find_pending_run, new_run_id
from tma_ops.journal import Journal
from tma_ops.lock import SiteLock
from tma_ops.operations import journaled
from tma_ops.pruning import PruneResult, prune_store
from tma_ops.stores import Store

# The pending run's step whose snapshot puts production back; the other steps' snapshot (the
# first one of the run) is what a resume refreshes or resets staging from.
ROLLBACK_SNAPSHOT_STEP = "pre_promotion_snapshot"


def prune_site(
    site: Site, store: Store, journal: Journal, state_dir: Path, *, dry_run: bool = False
) -> PruneResult:
    """Apply the site's retention to its store; a dry run deletes nothing and is not journaled."""
    if dry_run:
        with SiteLock(state_dir, site.name) as lock:
            lock.acquire("manual-" + new_run_id())
            return _prune(site, store, journal, dry_run=True)
    with journaled(journal, state_dir, site, "prune", {"dry_run": False}) as report:
        result = _prune(site, store, journal, dry_run=False)
        report(result.summary())
    return result


def _prune(site: Site, store: Store, journal: Journal, *, dry_run: bool) -> PruneResult:
    protected = pending_run_snapshots(journal, site.name)
    return prune_store(site.name, store, site.retention, protected=protected, dry_run=dry_run)


def pending_run_snapshots(journal: Journal, site: str) -> dict[str, str]:
    """The snapshots a killed, not yet resumed run of the site needs, each with the reason."""
    pending = find_pending_run(journal, site)
    if pending is None:
        return {}
    protected: dict[str, str] = {}
    for step, data in pending.outputs.items():
        snapshot_id = data.get("snapshot_id")
        if not isinstance(snapshot_id, str):
            continue
        need = "rollback" if step == ROLLBACK_SNAPSHOT_STEP else "resume"
        if need == "rollback" or snapshot_id not in protected:
            protected[snapshot_id] = f"pending {need} of run {pending.run_id}"
    return protected

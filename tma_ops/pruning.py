"""Prune one site's snapshots in its store: gather, plan (tma_ops.prune), then delete.

No lock and no journal here: the cycle's prune step calls this under the lock it already holds,
and `tma-ops prune` goes through tma_ops.prune_operation, which takes the lock and journals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tma_ops.config import Retention
from tma_ops.errors import ObjectLocked, ObjectNotFound
from tma_ops.prune import PrunePlan, SnapshotDeletion, SnapshotEntry, plan_prune
from tma_ops.snapshot import Manifest, created_at, list_snapshots, snapshots_prefix
from tma_ops.stores import Store


@dataclass
class PruneResult:
    site: str
    dry_run: bool
    plan: PrunePlan
    deleted: list[str] = field(default_factory=list)  # snapshots no longer listed
    deleted_orphans: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # one line per delete the store refused

    @property
    def clean(self) -> bool:
        """Nothing refused and nothing to warn about."""
        return not self.refused and not self.plan.warnings

    def summary(self) -> dict[str, Any]:
        """What the journal records and the cycle's prune step returns."""
        return {
            "dry_run": self.dry_run,
            "pruned": list(self.deleted),
            "kept": len(self.plan.kept),
            "kept_reasons": {k.snapshot_id: list(k.reasons) for k in self.plan.kept},
            "orphans_deleted": list(self.deleted_orphans),
            "refused": list(self.refused),
            "warnings": list(self.plan.warnings),
        }


def prune_store(
    site: str,
    store: Store,
    policy: Retention,
    *,
    protected: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Apply `policy` to the snapshots of `site`; the caller holds the site lock."""
    entries = [entry_of(manifest) for manifest in list_snapshots(store, site)]
    keys = store.list(snapshots_prefix(site))
    plan = plan_prune(site, entries, policy, keys, protected=protected)
    # Locks can only add to what is kept, so only the objects the draft would delete need a
    # stat (one request each on S3), not every object of every kept snapshot.
    locked = locks_of(store, plan.candidate_keys())
    if locked:
        plan = plan_prune(site, entries, policy, keys, protected=protected, locked=locked)
    result = PruneResult(site, dry_run, plan)
    if not dry_run:
        _execute(store, result)
    return result


def entry_of(manifest: Manifest) -> SnapshotEntry:
    return SnapshotEntry(
        manifest.snapshot_id,
        created_at(manifest),
        manifest.parent,
        tuple(stored.key for stored in manifest.own_objects()),
    )


def locks_of(store: Store, keys: Iterable[str]) -> dict[str, datetime]:
    """The keys under an active retention lock, with the time it ends."""
    locked = {}
    for key in keys:
        try:
            until = store.stat(key).locked_until
        except ObjectNotFound:
            continue  # a part the manifest names but the store lost: nothing to protect
        if until is not None:
            locked[key] = until
    return locked


def _execute(store: Store, result: PruneResult) -> None:
    # Incrementals come before their parents: when one stays (its manifest is locked), its
    # ancestors must stay too, or it could no longer be restored.
    still_needed: dict[str, str] = {}  # parent id -> the incremental that stayed
    for deletion in result.plan.deleted:
        child = still_needed.get(deletion.snapshot_id)
        if child is not None:
            result.refused.append(
                f"{deletion.snapshot_id}: kept, incremental {child} could not be deleted"
            )
        stays = child is not None or not _delete_snapshot(store, deletion, result)
        if stays and deletion.parent is not None:
            still_needed[deletion.parent] = deletion.snapshot_id
    for key in result.plan.orphan_keys:
        if _delete(store, key, result):
            result.deleted_orphans.append(key)


def _delete_snapshot(store: Store, deletion: SnapshotDeletion, result: PruneResult) -> bool:
    """Delete the manifest, then the other objects; False when the manifest had to stay."""
    manifest, *others = deletion.keys
    if not _delete(store, manifest, result):
        return False
    result.deleted.append(deletion.snapshot_id)
    for key in others:
        _delete(store, key, result)  # a refused part is left as an orphan, locked
    return True


def _delete(store: Store, key: str, result: PruneResult) -> bool:
    try:
        store.delete(key)
    except ObjectNotFound:
        return True
    except ObjectLocked as exc:
        result.refused.append(str(exc))
        return False
    return True

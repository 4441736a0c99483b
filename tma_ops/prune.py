"""What a prune of one site's snapshots deletes and keeps, and why: a pure function.

Inputs are what the store and the journal say: the snapshots (id, time, parent, part keys), the
retention policy, the ids to protect with a reason (a pending run's rollback, this run's
snapshots), the objects under a retention lock (key -> until), and every key under the site's
snapshots prefix. A snapshot is kept when the policy keeps it, when it is protected, or when one
of its objects is locked (it cannot be deleted whole, so it is not deleted at all). A kept
incremental keeps its parent, the parent's parent, and so on. Objects in a snapshot directory
without a manifest are the leftovers of an interrupted snapshot: they are deleted unless locked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from tma_ops.config import Retention
from tma_ops.retention import as_utc, retention_reasons
from tma_ops.snapshot import manifest_key, snapshots_prefix


@dataclass(frozen=True)
class SnapshotEntry:
    """What the plan needs of one listed snapshot (one with a manifest)."""

    snapshot_id: str
    created_at: datetime
    parent: str | None = None
    part_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeptSnapshot:
    snapshot_id: str
    created_at: datetime
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SnapshotDeletion:
    snapshot_id: str
    created_at: datetime
    parent: str | None
    keys: tuple[str, ...]  # the manifest first, so that a half-done delete is never listed


@dataclass(frozen=True)
class KeptObject:
    key: str
    reason: str


@dataclass(frozen=True)
class PrunePlan:
    kept: tuple[KeptSnapshot, ...]  # newest first
    deleted: tuple[SnapshotDeletion, ...]  # an incremental before its parent
    orphan_keys: tuple[str, ...]  # objects of interrupted snapshots, to delete
    kept_orphans: tuple[KeptObject, ...] = ()
    warnings: tuple[str, ...] = ()

    def candidate_keys(self) -> list[str]:
        """Every key the plan would delete: the only ones whose locks can change the plan."""
        return [key for d in self.deleted for key in d.keys] + list(self.orphan_keys)


@dataclass
class _Snapshots:
    """The listed snapshots by id, each with its objects and the reasons gathered to keep it."""

    site: str
    entries: dict[str, SnapshotEntry]
    directories: dict[str, list[str]]  # snapshot id -> keys under <site>/snapshots/<id>/
    reasons: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def keep(self, snapshot_id: str, reason: str) -> None:
        reasons = self.reasons.setdefault(snapshot_id, [])
        if reason not in reasons:
            reasons.append(reason)

    def warn(self, warning: str) -> None:
        if warning not in self.warnings:
            self.warnings.append(warning)

    def objects(self, snapshot_id: str) -> list[str]:
        """The manifest, the parts, then any other object left in the snapshot's directory."""
        found = [manifest_key(self.site, snapshot_id), *self.entries[snapshot_id].part_keys]
        found += self.directories.get(snapshot_id, [])
        return list(dict.fromkeys(found))


def plan_prune(
    site: str,
    snapshots: Iterable[SnapshotEntry],
    policy: Retention,
    keys: Iterable[str],
    *,
    protected: Mapping[str, str] | None = None,
    locked: Mapping[str, datetime] | None = None,
) -> PrunePlan:
    """The plan for `site`; `protected` maps snapshot ids to why they must stay, `locked` maps
    object keys to the end of their retention lock."""
    protected, locked = protected or {}, locked or {}
    state = _Snapshots(site, {s.snapshot_id: s for s in snapshots}, _directories(site, keys))
    times = ((sid, entry.created_at) for sid, entry in state.entries.items())
    for snapshot_id, reasons in retention_reasons(times, policy).items():
        for reason in reasons:
            state.keep(snapshot_id, reason)
    for snapshot_id, reason in protected.items():
        if snapshot_id in state.entries:
            state.keep(snapshot_id, reason)
        else:
            state.warn(f"snapshot {snapshot_id} ({reason}) has no manifest")
    _keep_locked(state, locked)
    _keep_ancestors(state)
    orphans, kept_orphans = _orphans(state, protected, locked)
    return PrunePlan(
        kept=tuple(_kept(state)),
        deleted=tuple(_deletions(state)),
        orphan_keys=tuple(orphans),
        kept_orphans=tuple(kept_orphans),
        warnings=tuple(state.warnings),
    )


def _directories(site: str, keys: Iterable[str]) -> dict[str, list[str]]:
    """Keys by the snapshot directory they are in; keys outside any directory are left out."""
    prefix = snapshots_prefix(site)
    directories: dict[str, list[str]] = {}
    for key in sorted(set(keys)):
        snapshot_id, slash, _name = key.removeprefix(prefix).partition("/")
        if key.startswith(prefix) and slash:
            directories.setdefault(snapshot_id, []).append(key)
    return directories


def _keep_locked(state: _Snapshots, locked: Mapping[str, datetime]) -> None:
    for snapshot_id in state.entries:
        until = [locked[key] for key in state.objects(snapshot_id) if key in locked]
        if until:
            state.keep(snapshot_id, locked_reason(max(until)))


def locked_reason(until: datetime) -> str:
    return f"locked until {as_utc(until).isoformat(timespec='seconds').replace('+00:00', 'Z')}"


def _keep_ancestors(state: _Snapshots) -> None:
    """An incremental is restored from its whole chain: each kept one keeps its ancestors."""
    for snapshot_id in list(state.reasons):
        seen = {snapshot_id}
        child, parent = snapshot_id, state.entries[snapshot_id].parent
        while parent is not None:
            if parent not in state.entries:
                state.warn(
                    f"snapshot {child} is an incremental of {parent}, which is missing: "
                    "it cannot be restored"
                )
                break
            if parent in seen:
                state.warn(f"snapshot {parent} is its own ancestor (parent loop)")
                break
            state.keep(parent, f"needed by incremental {child}")
            seen.add(parent)
            child, parent = parent, state.entries[parent].parent


def _orphans(
    state: _Snapshots, protected: Mapping[str, str], locked: Mapping[str, datetime]
) -> tuple[list[str], list[KeptObject]]:
    to_delete: list[str] = []
    kept: list[KeptObject] = []
    for snapshot_id, keys in state.directories.items():
        if snapshot_id in state.entries:
            continue
        if manifest_key(state.site, snapshot_id) in keys:
            continue  # a manifest this plan was not given: not an orphan, leave it alone
        for key in keys:
            if snapshot_id in protected:
                kept.append(KeptObject(key, protected[snapshot_id]))
            elif key in locked:
                kept.append(KeptObject(key, locked_reason(locked[key])))
            else:
                to_delete.append(key)
    return to_delete, kept


def _kept(state: _Snapshots) -> list[KeptSnapshot]:
    kept = [
        KeptSnapshot(sid, state.entries[sid].created_at, tuple(reasons))
        for sid, reasons in state.reasons.items()
    ]
    return sorted(kept, key=lambda k: (as_utc(k.created_at), k.snapshot_id), reverse=True)


def _deletions(state: _Snapshots) -> list[SnapshotDeletion]:
    doomed = [entry for sid, entry in state.entries.items() if sid not in state.reasons]
    # Deepest in its chain first: an incremental goes before its parent, so that an interrupted
    # prune never leaves a listed incremental without its parent.
    doomed.sort(
        key=lambda e: (_depth(state.entries, e.snapshot_id), as_utc(e.created_at), e.snapshot_id),
        reverse=True,
    )
    return [
        SnapshotDeletion(e.snapshot_id, e.created_at, e.parent, tuple(state.objects(e.snapshot_id)))
        for e in doomed
    ]


def _depth(entries: Mapping[str, SnapshotEntry], snapshot_id: str) -> int:
    seen = {snapshot_id}
    parent = entries[snapshot_id].parent
    while parent is not None and parent in entries and parent not in seen:
        seen.add(parent)
        parent = entries[parent].parent
    return len(seen) - 1

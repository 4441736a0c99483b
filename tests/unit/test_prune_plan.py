"""The prune plan: what is deleted and kept, and why. Table tests over a pure function.

Snapshot ids are short names; their parts are `blog/snapshots/<id>/db.sqlite.zst` and
`files.tar.zst`, and the store holds exactly their objects unless a row says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from tma_ops.config import Retention
from tma_ops.prune import PrunePlan, SnapshotEntry, plan_prune

pytestmark = pytest.mark.unit

SITE = "blog"
LOCK_END = datetime(2030, 1, 1, tzinfo=UTC)
LOCKED = "locked until 2030-01-01T00:00:00Z"


def key(snapshot_id: str, name: str) -> str:
    return f"{SITE}/snapshots/{snapshot_id}/{name}"


def snap(snapshot_id: str, day: int, parent: str | None = None) -> SnapshotEntry:
    return SnapshotEntry(
        snapshot_id,
        datetime(2024, 3, day, 10, tzinfo=UTC),
        parent,
        (key(snapshot_id, "db.sqlite.zst"), key(snapshot_id, "files.tar.zst")),
    )


def objects(entry: SnapshotEntry) -> list[str]:
    return [key(entry.snapshot_id, "manifest.json"), *entry.part_keys]


def keep_last(count: int) -> Retention:
    return Retention(keep_last=count, keep_daily=0, keep_weekly=0, keep_monthly=0)


@dataclass
class Case:
    snapshots: list[SnapshotEntry]
    policy: Retention
    kept: dict[str, tuple[str, ...]]
    deleted: list[str]
    protected: dict[str, str] = field(default_factory=dict)
    locked: dict[str, datetime] = field(default_factory=dict)
    extra_keys: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    kept_orphans: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def plan_of(case: Case) -> PrunePlan:
    keys = [k for entry in case.snapshots for k in objects(entry)] + case.extra_keys
    return plan_prune(
        SITE, case.snapshots, case.policy, keys, protected=case.protected, locked=case.locked
    )


FULLS = [snap("a", 1), snap("b", 2), snap("c", 3), snap("d", 4)]
# f1 <- i1 <- i2, then a new full f2 <- j1
CHAINS = [snap("f1", 1), snap("i1", 2, "f1"), snap("i2", 3, "i1"), snap("f2", 4)]
CHAINS += [snap("j1", 5, "f2")]

CASES = [
    pytest.param(Case([], keep_last(3), {}, []), id="empty-store"),
    pytest.param(
        Case(FULLS, keep_last(2), {"d": ("last",), "c": ("last",)}, ["b", "a"]),
        id="retention-only",
    ),
    pytest.param(
        Case(
            FULLS,
            Retention(keep_last=1, keep_daily=-1, keep_weekly=0, keep_monthly=0),
            {"d": ("last", "daily"), "c": ("daily",), "b": ("daily",), "a": ("daily",)},
            [],
        ),
        id="daily-unlimited-keeps-all",
    ),
    pytest.param(
        Case(
            CHAINS[:3],
            keep_last(1),
            {
                "i2": ("last",),
                "i1": ("needed by incremental i2",),
                "f1": ("needed by incremental i1",),
            },
            [],
        ),
        id="kept-incremental-keeps-its-whole-chain",
    ),
    pytest.param(
        Case(
            CHAINS,
            keep_last(1),
            {"j1": ("last",), "f2": ("needed by incremental j1",)},
            ["i2", "i1", "f1"],
        ),
        id="old-chain-deleted-incrementals-first",
    ),
    pytest.param(
        Case(
            [snap("f1", 1), snap("i1", 2, "f1"), snap("f2", 3), snap("g", 4)],
            keep_last(1),
            {"g": ("last",)},
            ["i1", "f2", "f1"],
        ),
        id="deletion-order-follows-chains-not-time",
    ),
    pytest.param(
        Case(
            CHAINS,
            keep_last(2),
            {
                "j1": ("last",),
                "f2": ("last", "needed by incremental j1"),
                "i1": ("pending rollback of run r1",),
                "f1": ("needed by incremental i1",),
            },
            ["i2"],
            protected={"i1": "pending rollback of run r1"},
        ),
        id="protected-incremental-keeps-its-parent",
    ),
    pytest.param(
        Case(
            CHAINS,
            keep_last(1),
            {
                "j1": ("last",),
                "f2": ("needed by incremental j1",),
                "i2": (LOCKED,),
                "i1": ("needed by incremental i2",),
                "f1": ("needed by incremental i1",),
            },
            [],
            locked={key("i2", "files.tar.zst"): LOCK_END},
        ),
        id="one-locked-part-keeps-the-snapshot-and-its-chain",
    ),
    pytest.param(
        Case(
            FULLS,
            keep_last(1),
            {"d": ("last",), "a": ("locked until 2031-06-01T00:00:00Z",)},
            ["c", "b"],
            locked={
                key("a", "manifest.json"): LOCK_END,
                key("a", "db.sqlite.zst"): datetime(2031, 6, 1, tzinfo=UTC),
            },
        ),
        id="locked-reason-names-the-latest-lock",
    ),
    pytest.param(
        Case(
            FULLS[:2],
            keep_last(1),
            {"b": ("last",)},
            ["a"],
            extra_keys=[key("x", "db.sqlite.zst"), key("x", "files.tar.zst")],
            orphans=[key("x", "db.sqlite.zst"), key("x", "files.tar.zst")],
        ),
        id="interrupted-snapshot-parts-are-orphans",
    ),
    pytest.param(
        Case(
            FULLS[:1],
            keep_last(1),
            {"a": ("last",)},
            [],
            extra_keys=[key("x", "db.sqlite.zst"), key("x", "files.tar.zst")],
            locked={key("x", "db.sqlite.zst"): LOCK_END},
            orphans=[key("x", "files.tar.zst")],
            kept_orphans={key("x", "db.sqlite.zst"): LOCKED},
        ),
        id="locked-orphan-is-kept-the-rest-goes",
    ),
    pytest.param(
        Case(
            FULLS[:1],
            keep_last(1),
            {"a": ("last",)},
            [],
            extra_keys=[key("x", "db.sqlite.zst")],
            protected={"x": "pending rollback of run r1"},
            kept_orphans={key("x", "db.sqlite.zst"): "pending rollback of run r1"},
            warnings=["snapshot x (pending rollback of run r1) has no manifest"],
        ),
        id="protected-id-without-manifest-keeps-its-objects",
    ),
    pytest.param(
        Case(
            FULLS[:1],
            keep_last(1),
            {"a": ("last",)},
            [],
            extra_keys=[key("y", "manifest.json"), key("y", "db.sqlite.zst"), "blog/snapshots/x"],
        ),
        id="unknown-manifest-and-loose-key-left-alone",
    ),
    pytest.param(
        Case(
            [snap("i1", 2, "gone"), snap("b", 3)],
            keep_last(2),
            {"b": ("last",), "i1": ("last",)},
            [],
            warnings=[
                "snapshot i1 is an incremental of gone, which is missing: it cannot be restored"
            ],
        ),
        id="missing-parent-is-reported",
    ),
    pytest.param(
        Case(
            [snap("i1", 1, "gone"), snap("i2", 2, "i1")],
            keep_last(2),
            {"i2": ("last",), "i1": ("last", "needed by incremental i2")},
            [],
            warnings=[
                "snapshot i1 is an incremental of gone, which is missing: it cannot be restored"
            ],
        ),
        id="missing-parent-reported-once",
    ),
    pytest.param(
        Case(
            [snap("p", 1, "q"), snap("q", 2, "p")],
            keep_last(1),
            {"q": ("last",), "p": ("needed by incremental q",)},
            [],
            warnings=["snapshot q is its own ancestor (parent loop)"],
        ),
        id="parent-loop-is-reported-not-followed-forever",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_plan(case: Case) -> None:
    plan = plan_of(case)
    assert {k.snapshot_id: k.reasons for k in plan.kept} == case.kept
    assert [d.snapshot_id for d in plan.deleted] == case.deleted
    assert list(plan.orphan_keys) == case.orphans
    assert {o.key: o.reason for o in plan.kept_orphans} == case.kept_orphans
    assert list(plan.warnings) == case.warnings


def test_kept_snapshots_are_listed_newest_first() -> None:
    plan = plan_of(Case(FULLS, keep_last(3), {}, []))
    assert [k.snapshot_id for k in plan.kept] == ["d", "c", "b"]


def test_a_deletion_removes_the_manifest_first_then_every_object_of_the_directory() -> None:
    stray = key("a", "files.1.tar.zst")
    plan = plan_of(Case(FULLS[:2], keep_last(1), {}, [], extra_keys=[stray]))
    (deletion,) = plan.deleted
    assert deletion.keys == (
        key("a", "manifest.json"),
        key("a", "db.sqlite.zst"),
        key("a", "files.tar.zst"),
        stray,
    )


def test_candidate_keys_are_what_the_plan_would_delete() -> None:
    orphan = key("x", "db.sqlite.zst")
    plan = plan_of(Case(FULLS[:2], keep_last(1), {}, [], extra_keys=[orphan]))
    assert plan.candidate_keys() == [*objects(FULLS[0]), orphan]


def test_locks_only_ever_add_to_what_is_kept() -> None:
    """Why the executor stats only the candidates: a lock elsewhere cannot change the plan."""
    case = Case(CHAINS, keep_last(1), {}, [])
    draft = plan_of(case)
    everything_locked = {k: LOCK_END for entry in CHAINS for k in objects(entry)}
    kept_ids = {k.snapshot_id for k in draft.kept}
    kept_locked = {
        k: until for k, until in everything_locked.items() if k.split("/")[2] in kept_ids
    }
    case.locked = kept_locked
    assert [d.snapshot_id for d in plan_of(case).deleted] == [d.snapshot_id for d in draft.deleted]

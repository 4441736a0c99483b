"""What a rollback does, decided from what is known: a pure function with table tests.

A rollback puts back one unit: the code (a release switched back to, or the snapshot's files),
and the database only when it has to. Restoring a database loses what visitors wrote since the
snapshot (orders, form entries), so it is kept whenever no migration ran since then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tma_ops.errors import TmaError

CodeAction = Literal["switch", "restore"]
DatabaseAction = Literal["keep", "restore"]


class NoRollbackTarget(TmaError):
    pass


@dataclass(frozen=True)
class RollbackFacts:
    has_releases: bool
    target_release: str | None  # release to switch back to (releases only)
    snapshot_id: str | None  # the snapshot taken before the change being undone
    migrations_ran: bool | None  # None: unknown (the change was cut short, or no record of it)
    forced_snapshot: bool = False  # the operator named a snapshot: restore it whole


@dataclass(frozen=True)
class RollbackPlan:
    code: CodeAction
    database: DatabaseAction
    release: str | None
    snapshot_id: str | None
    reasons: list[str] = field(default_factory=list)

    @property
    def restores_database(self) -> bool:
        return self.database == "restore"

    def describe(self) -> str:
        code = (
            f"switch the code back to release {self.release}"
            if self.code == "switch"
            else f"restore the files of snapshot {self.snapshot_id}"
        )
        database = (
            f"restore the database of snapshot {self.snapshot_id}"
            if self.restores_database
            else "keep the current database"
        )
        return f"{code}; {database}"


def plan_rollback(facts: RollbackFacts) -> RollbackPlan:
    if facts.forced_snapshot or not (facts.has_releases and facts.target_release):
        if facts.snapshot_id is None:
            raise NoRollbackTarget(_nothing_to_roll_back_to(facts))
        return _snapshot_plan(facts)
    database, reason = _database_action(facts.migrations_ran)
    if database == "restore" and facts.snapshot_id is None:
        raise NoRollbackTarget(
            f"release {facts.target_release} can be switched back to, but {reason} and no "
            "snapshot is known to restore the database from; name one with --to SNAPSHOT"
        )
    return RollbackPlan(
        code="switch",
        database=database,
        release=facts.target_release,
        snapshot_id=facts.snapshot_id if database == "restore" else None,
        reasons=[
            f"release {facts.target_release} is the newest earlier one not marked bad",
            reason,
        ],
    )


def _snapshot_plan(facts: RollbackFacts) -> RollbackPlan:
    if facts.forced_snapshot:
        database: DatabaseAction = "restore"
        reasons = [f"snapshot {facts.snapshot_id} was named: files and database are restored"]
    else:
        database, reason = _database_action(facts.migrations_ran)
        why_files = (
            "no earlier release to switch back to"
            if facts.has_releases
            else "the code has no releases: the snapshot's files are restored"
        )
        reasons = [why_files, reason]
    return RollbackPlan(
        code="restore",
        database=database,
        release=None,
        snapshot_id=facts.snapshot_id,
        reasons=reasons,
    )


def _database_action(migrations_ran: bool | None) -> tuple[DatabaseAction, str]:
    if migrations_ran is False:
        return "keep", "no migration ran: the current database is kept and nothing is lost"
    if migrations_ran:
        return "restore", "migrations ran: the database goes back to the snapshot"
    return "restore", "whether migrations ran is unknown: the database goes back to the snapshot"


def _nothing_to_roll_back_to(facts: RollbackFacts) -> str:
    if facts.has_releases:
        return "no earlier release to switch back to and no snapshot to restore"
    return "no snapshot to restore"

"""Which rollback for which facts: the code back by a release switch or the snapshot's files, the
database restored only when it must be."""

from __future__ import annotations

import pytest

from tma_ops.rollback_plan import NoRollbackTarget, RollbackFacts, plan_rollback

pytestmark = pytest.mark.unit

SNAP = "20261101T020000Z-aaaaaa"
REL = "20261001T020000Z-bbbbbb"


@pytest.mark.parametrize(
    ("facts", "code", "database", "release", "snapshot"),
    [
        pytest.param(
            RollbackFacts(True, REL, SNAP, migrations_ran=False),
            "switch", "keep", REL, None, id="release-no-migration-keeps-db",
        ),
        pytest.param(
            RollbackFacts(True, REL, SNAP, migrations_ran=True),
            "switch", "restore", REL, SNAP, id="release-migrated-restores-db",
        ),
        pytest.param(
            RollbackFacts(True, REL, SNAP, migrations_ran=None),
            "switch", "restore", REL, SNAP, id="release-unknown-migrations-restores-db",
        ),
        pytest.param(
            RollbackFacts(False, None, SNAP, migrations_ran=False),
            "restore", "keep", None, SNAP, id="no-releases-no-migration-files-only",
        ),
        pytest.param(
            RollbackFacts(False, None, SNAP, migrations_ran=True),
            "restore", "restore", None, SNAP, id="no-releases-migrated-whole-snapshot",
        ),
        pytest.param(
            RollbackFacts(False, None, SNAP, migrations_ran=None),
            "restore", "restore", None, SNAP, id="no-releases-unknown-whole-snapshot",
        ),
        pytest.param(
            RollbackFacts(True, None, SNAP, migrations_ran=False),
            "restore", "keep", None, SNAP, id="releases-but-no-earlier-one-restores-files",
        ),
        pytest.param(
            RollbackFacts(True, REL, SNAP, migrations_ran=False, forced_snapshot=True),
            "restore", "restore", None, SNAP, id="named-snapshot-restored-whole",
        ),
    ],
)  # fmt: skip
def test_plan(facts, code, database, release, snapshot):
    plan = plan_rollback(facts)
    assert (plan.code, plan.database, plan.release, plan.snapshot_id) == (
        code,
        database,
        release,
        snapshot,
    )
    assert plan.reasons and all(plan.reasons)


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        pytest.param(
            RollbackFacts(True, None, None, migrations_ran=False),
            "no earlier release to switch back to and no snapshot",
            id="releases-nothing",
        ),
        pytest.param(
            RollbackFacts(False, None, None, migrations_ran=None), "no snapshot", id="nothing"
        ),
        pytest.param(
            RollbackFacts(True, REL, None, migrations_ran=True),
            "no snapshot is known to restore the database from",
            id="switch-needs-db-but-no-snapshot",
        ),
    ],
)
def test_no_target(facts, message):
    with pytest.raises(NoRollbackTarget, match=message):
        plan_rollback(facts)


def test_describe_names_what_happens():
    plan = plan_rollback(RollbackFacts(True, REL, SNAP, migrations_ran=True))
    assert plan.describe() == (
        f"switch the code back to release {REL}; restore the database of snapshot {SNAP}"
    )
    kept = plan_rollback(RollbackFacts(False, None, SNAP, migrations_ran=False))
    assert kept.describe() == f"restore the files of snapshot {SNAP}; keep the current database"

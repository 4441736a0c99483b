"""What an operator's `tma-ops rollback [--to X]` goes back to, from the environment's releases
and the store's snapshots alone."""

from __future__ import annotations

import pytest

from tma_ops.releases import Release
from tma_ops.rollback import choose_rollback, latest_pre_promotion, release_before
from tma_ops.rollback_plan import NoRollbackTarget, RollbackFacts
from tma_ops.snapshot import Manifest

pytestmark = pytest.mark.unit

R1, R2, R3, R4 = (f"20261{n}01T020000Z-00000{n}" for n in range(1, 5))


def release(
    rid: str,
    status: str = "good",
    *,
    current: bool = False,
    snapshot: str | None = None,
    migrations: list[str] | None = None,
) -> Release:
    return Release(
        id=rid,
        status=status,
        created_at="",
        run_id=rid,
        snapshot_id=snapshot,
        migrations=migrations or [],
        previous=None,
        reason="",
        is_current=current,
        migrations_recorded=migrations is not None,
    )


def manifest(sid: str, reason: str, env: str = "production") -> Manifest:
    return Manifest("blog", env, sid, sid, "sqlite", {}, {}, reason=reason)


SNAPSHOTS = [
    manifest("s1", "cycle r1"),
    manifest("s2", "pre-promotion r1"),
    manifest("s3", "pre-promotion r2", env="staging"),
    manifest("s4", "manual"),
]


@pytest.mark.parametrize(
    ("releases", "wanted", "expected"),
    [
        ([release(R1), release(R2), release(R3)], R3, R2),
        ([release(R1), release(R2, "bad"), release(R3)], R3, R1),
        ([release(R1, "bad"), release(R2)], R2, None),
        ([release(R1), release(R2, "unknown")], R2, R1),
        ([release(R2)], R2, None),
    ],
)
def test_release_before_skips_bad_ones(releases, wanted, expected):
    found = release_before(releases, wanted)
    assert (found.id if found else None) == expected


def test_latest_pre_promotion_of_the_environment():
    assert latest_pre_promotion(SNAPSHOTS, "production").snapshot_id == "s2"
    assert latest_pre_promotion(SNAPSHOTS, "staging").snapshot_id == "s3"
    assert latest_pre_promotion(SNAPSHOTS[:1], "production") is None


@pytest.mark.parametrize(
    ("releases", "to", "expected"),
    [
        pytest.param(
            [release(R1), release(R2, "pending", current=True, snapshot="s2", migrations=[])],
            None,
            RollbackFacts(True, R1, "s2", False),
            id="undo-current-release-without-migrations",
        ),
        pytest.param(
            [release(R1), release(R2, "good", current=True, snapshot="s2", migrations=["0042"])],
            None,
            RollbackFacts(True, R1, "s2", True),
            id="undo-current-release-that-migrated",
        ),
        pytest.param(
            [release(R1), release(R2, "pending", current=True, snapshot="s2")],
            None,
            RollbackFacts(True, R1, "s2", None),
            id="undo-release-cut-short-migrations-unknown",
        ),
        pytest.param(
            [release(R1, "bad"), release(R2, current=True)],
            None,
            RollbackFacts(True, None, "s2", None),
            id="no-good-earlier-release-falls-back-to-snapshot",
        ),
        pytest.param([], None, RollbackFacts(False, None, "s2", None), id="no-releases"),
        pytest.param(
            [
                release(R1),
                release(R2, snapshot="s1", migrations=[]),
                release(R3, current=True, snapshot="s2", migrations=["0042"]),
            ],
            R1[:14],
            RollbackFacts(True, R1, "s1", True),
            id="named-release-by-prefix-undoes-every-later-one",
        ),
        pytest.param(
            [release(R1), release(R2, current=True, snapshot="s2", migrations=[])],
            "s4",
            RollbackFacts(True, None, "s4", None, forced_snapshot=True),
            id="named-snapshot",
        ),
        pytest.param(
            [], "latest", RollbackFacts(False, None, "s4", None, forced_snapshot=True), id="latest"
        ),
    ],
)
def test_choose_rollback(releases, to, expected):
    assert choose_rollback(releases, SNAPSHOTS, "production", to) == expected


@pytest.mark.parametrize(
    ("releases", "to", "message"),
    [
        ([release(R1, "bad"), release(R2, current=True)], R1, "marked bad"),
        ([release(R1), release(R2, current=True)], R2, "already the current one"),
        ([release(R1), release(R2, current=True)], "nope", "matches no release or snapshot"),
        ([release(R1), release(R2, current=True)], "s", "is ambiguous"),
        ([release(R1), release(R2), release(R3, current=True)], "2026", "ambiguous"),
    ],
)
def test_choose_rollback_refusals(releases, to, message):
    with pytest.raises(NoRollbackTarget, match=message):
        choose_rollback(releases, SNAPSHOTS, "production", to)

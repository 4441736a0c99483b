"""Restore-test cadence by tier, when a test is due, and checklist C3's three calendar months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tma_ops.errors import IntegrityError, StoreError, TmaError
from tma_ops.restore_cadence import cadence_days, is_due, months_before, passed_within_three_months
from tma_ops.restore_test import SnapshotChoice, choose_snapshot
from tma_ops.restore_test_record import failure_cause, failure_exit_code
from tma_ops.snapshot import Manifest

pytestmark = pytest.mark.unit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("tier", "override", "days"),
    [
        ("essentiel", None, 30),
        ("business", None, 7),
        ("critique", None, 1),
        ("essentiel", 7, 7),
        ("critique", 2, 2),
    ],
)
def test_the_cadence_is_the_tiers_verified_backup_row_unless_overridden(
    tier: str, override: int | None, days: int
) -> None:
    assert cadence_days(tier, override) == days


NOW = at("2026-03-10T02:00:00")


@pytest.mark.parametrize(
    ("last_passed", "cadence", "due", "reason"),
    [
        (None, 7, True, "no restore test has passed yet"),
        (NOW - timedelta(days=7), 7, True, "last passed 7d 0h ago"),
        (NOW - timedelta(days=8), 7, True, "last passed 8d 0h ago"),
        (NOW - timedelta(days=6), 7, False, "next due in 1d 0h"),
        # yesterday's daily test ended a few minutes after the hour: today's is still due
        (NOW - timedelta(days=1) + timedelta(minutes=7), 1, True, "last passed 23h 53m ago"),
        (NOW - timedelta(hours=22), 1, False, "next due in 2h 0m"),
        (NOW - timedelta(days=29), 30, False, "cadence: every 30 days"),
        (NOW - timedelta(days=30), 30, True, "cadence: every 30 days"),
    ],
)
def test_a_test_is_due_when_the_last_pass_is_a_cadence_old(
    last_passed: datetime | None, cadence: int, due: bool, reason: str
) -> None:
    result = is_due(last_passed, cadence, NOW)
    assert result.due is due
    assert reason in result.reason


@pytest.mark.parametrize(
    ("now", "three_months_before"),
    [
        ("2026-06-15T10:30:00", "2026-03-15T10:30:00"),
        ("2026-05-31T00:00:00", "2026-02-28T00:00:00"),  # clamped to February's end
        ("2028-05-31T00:00:00", "2028-02-29T00:00:00"),  # a leap year
        ("2026-02-28T12:00:00", "2025-11-28T12:00:00"),  # across the year
        ("2026-01-31T23:59:59", "2025-10-31T23:59:59"),
        ("2026-12-31T00:00:00", "2026-09-30T00:00:00"),
        ("2026-03-01T00:00:00", "2025-12-01T00:00:00"),
    ],
)
def test_three_calendar_months_clamp_the_day_to_the_months_end(
    now: str, three_months_before: str
) -> None:
    assert months_before(at(now), 3) == at(three_months_before)


@pytest.mark.parametrize(
    ("last_passed", "ok"),
    [
        (None, False),
        ("2026-02-28T00:00:00", True),  # exactly three months before 31 May
        ("2026-02-27T23:59:59", False),
        ("2026-05-30T00:00:00", True),
    ],
)
def test_c3_asks_for_a_pass_within_three_calendar_months(last_passed: str | None, ok: bool) -> None:
    now = at("2026-05-31T00:00:00")
    assert passed_within_three_months(at(last_passed) if last_passed else None, now) is ok


@pytest.mark.parametrize(
    ("exc", "cause", "code"),
    [
        (
            IntegrityError(
                "b/db.sql.zst.age: none of the identity file's keys can decrypt it "
                "(encrypted to other recipients?)"
            ),
            "b/db.sql.zst.age: cannot decrypt: no identity matches",
            6,
        ),
        (IntegrityError("b/f.tar.zst: SHA-256 mismatch\nmore"), "b/f.tar.zst: SHA-256 mismatch", 6),
        (StoreError("s3://b: connection refused"), "s3://b: connection refused", 2),
        (TmaError("1 of 3 smoke check(s) failed: x"), "1 of 3 smoke check(s) failed: x", 2),
        (OSError("disk full"), "OSError: disk full", 2),
    ],
)
def test_a_failure_is_one_line_naming_the_fault(exc: Exception, cause: str, code: int) -> None:
    assert failure_cause(exc).startswith(cause)
    assert "\n" not in failure_cause(exc)
    assert failure_exit_code(exc) == code


def manifest(snapshot_id: str, environment: str = "production") -> Manifest:
    return Manifest(
        site="blog",
        environment=environment,
        snapshot_id=snapshot_id,
        created_at="2026-01-01T00:00:00Z",
        database_engine="sqlite",
        components={},
        parts={},
    )


SNAPSHOTS = [manifest("20260101-a"), manifest("20260102-b", "staging"), manifest("20260103-c")]


@pytest.mark.parametrize(
    ("choice", "chosen"),
    [
        (SnapshotChoice("latest"), "20260103-c"),
        (SnapshotChoice("named", wanted="20260102"), "20260102-b"),  # any snapshot, if named
        (SnapshotChoice("named", wanted="20260101-a"), "20260101-a"),
    ],
)
def test_the_snapshot_to_test(choice: SnapshotChoice, chosen: str) -> None:
    assert choose_snapshot("blog", SNAPSHOTS, choice).snapshot_id == chosen


def test_a_random_choice_is_a_production_snapshot_repeated_by_its_seed() -> None:
    picks = {
        choose_snapshot("blog", SNAPSHOTS, SnapshotChoice("random", seed=s)).snapshot_id
        for s in range(40)
    }
    assert picks == {"20260101-a", "20260103-c"}
    again = [choose_snapshot("blog", SNAPSHOTS, SnapshotChoice("random", seed=7)) for _ in range(3)]
    assert len({m.snapshot_id for m in again}) == 1


@pytest.mark.parametrize(
    ("manifests", "choice", "message"),
    [
        (SNAPSHOTS, SnapshotChoice("named", wanted="2026"), "3 snapshots match '2026'"),
        (SNAPSHOTS, SnapshotChoice("named", wanted="nope"), "no snapshot matches 'nope'"),
        ([manifest("x", "staging")], SnapshotChoice("latest"), "no production snapshot"),
    ],
)
def test_an_impossible_choice_says_why(
    manifests: list[Manifest], choice: SnapshotChoice, message: str
) -> None:
    with pytest.raises(TmaError, match=message):
        choose_snapshot("blog", manifests, choice)

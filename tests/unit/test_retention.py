"""Retention with restic's `forget --keep-*` meaning: which snapshots are kept, and by which rule.

Table tests: one row per case, snapshot ids are their UTC creation times.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from tma_ops.config import Retention
from tma_ops.retention import retention_reasons, snapshots_to_keep

pytestmark = pytest.mark.unit


def policy(
    last: int = 1, daily: int = 0, weekly: int = 0, monthly: int = 0, yearly: int = 0
) -> Retention:
    # model_construct: keep_last 0 is refused in an inventory, but restic's own examples set one
    # rule alone, and the function must give the same answer.
    return Retention.model_construct(
        keep_last=last,
        keep_daily=daily,
        keep_weekly=weekly,
        keep_monthly=monthly,
        keep_yearly=yearly,
    )


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def kept(stamps: list[str], rules: Retention) -> dict[str, list[str]]:
    return retention_reasons([(stamp, at(stamp)) for stamp in stamps], rules)


# restic's documentation: one backup every Sunday for 12 weeks, then `forget --keep-daily 4`.
SUNDAYS = [
    f"{day:%Y-%m-%d}T11:00" for day in (date(2019, 9, 1) + timedelta(weeks=w) for w in range(12))
]
# 2020-12-31 (Thu) and 2021-01-03 (Sun) are in ISO week 53 of 2020; 2021-01-04 starts 2021-W01.
ISO_53 = ["2020-12-28T10:00", "2020-12-31T10:00", "2021-01-03T10:00", "2021-01-04T10:00"]
# 2024-12-30 (Mon) is in ISO week 1 of 2025, with 2025-01-03.
ISO_2025_W1 = ["2024-12-29T10:00", "2024-12-30T10:00", "2025-01-03T10:00"]
THREE_YEARS = ["2021-06-01T10:00", "2022-03-01T10:00", "2022-12-31T23:59", "2023-01-01T00:00"]
THREE_YEARS += ["2023-07-14T10:00"]
TWO_A_DAY = ["2024-05-01T09:00", "2024-05-01T18:00", "2024-05-02T10:00", "2024-05-03T08:00"]
TWO_A_DAY += ["2024-05-03T20:00"]
TWO_MONTHS = ["2024-01-05T10:00", "2024-01-20T10:00", "2024-01-31T10:00", "2024-02-02T10:00"]
TWO_MONTHS += ["2024-02-10T10:00"]


@pytest.mark.parametrize(
    ("stamps", "rules", "expected"),
    [
        pytest.param([], policy(last=3, daily=7), {}, id="no-snapshot"),
        pytest.param(
            SUNDAYS,
            policy(last=0, daily=4),
            {stamp: ["daily"] for stamp in SUNDAYS[-4:]},
            id="restic-doc-12-sundays-keep-daily-4",
        ),
        pytest.param(
            SUNDAYS[:3],
            policy(last=5),
            {stamp: ["last"] for stamp in SUNDAYS[:3]},
            id="keep-last-more-than-snapshots",
        ),
        pytest.param(
            SUNDAYS,
            policy(last=2),
            {SUNDAYS[-1]: ["last"], SUNDAYS[-2]: ["last"]},
            id="keep-last-n-newest",
        ),
        pytest.param(
            TWO_A_DAY,
            policy(last=1, daily=2),
            {"2024-05-03T20:00": ["last", "daily"], "2024-05-02T10:00": ["daily"]},
            id="daily-newest-of-each-day",
        ),
        pytest.param(
            TWO_A_DAY,
            policy(last=1, daily=-1),
            {
                "2024-05-03T20:00": ["last", "daily"],
                "2024-05-02T10:00": ["daily"],
                "2024-05-01T18:00": ["daily"],
                "2024-05-01T09:00": ["oldest daily"],
            },
            id="daily-unlimited-every-day-and-the-oldest",
        ),
        pytest.param(
            TWO_A_DAY,
            policy(last=1, daily=0, weekly=0, monthly=0, yearly=0),
            {"2024-05-03T20:00": ["last"]},
            id="zero-turns-rules-off",
        ),
        pytest.param(
            ISO_53,
            policy(last=1, weekly=2),
            {"2021-01-04T10:00": ["last", "weekly"], "2021-01-03T10:00": ["weekly"]},
            id="iso-week-53-spans-new-year",
        ),
        pytest.param(
            ISO_2025_W1,
            policy(last=1, weekly=2),
            {"2025-01-03T10:00": ["last", "weekly"], "2024-12-29T10:00": ["weekly"]},
            id="iso-week-1-starts-in-december",
        ),
        pytest.param(
            THREE_YEARS,
            policy(last=1, yearly=2),
            {"2023-07-14T10:00": ["last", "yearly"], "2022-12-31T23:59": ["yearly"]},
            id="yearly-newest-of-each-year",
        ),
        pytest.param(
            THREE_YEARS,
            policy(last=1, yearly=-1),
            {
                "2023-07-14T10:00": ["last", "yearly"],
                "2022-12-31T23:59": ["yearly"],
                "2021-06-01T10:00": ["yearly"],
            },
            id="yearly-unlimited",
        ),
        pytest.param(
            TWO_MONTHS,
            policy(last=1, monthly=6),
            {
                "2024-02-10T10:00": ["last", "monthly"],
                "2024-01-31T10:00": ["monthly"],
                "2024-01-05T10:00": ["oldest monthly"],
            },
            id="count-left-keeps-the-oldest-too",
        ),
        pytest.param(
            TWO_MONTHS,
            policy(last=1, monthly=2),
            {"2024-02-10T10:00": ["last", "monthly"], "2024-01-31T10:00": ["monthly"]},
            id="count-used-up-oldest-goes",
        ),
        pytest.param(
            TWO_MONTHS,
            policy(last=2, daily=1, weekly=1, monthly=1, yearly=1),
            {
                "2024-02-10T10:00": ["last", "daily", "weekly", "monthly", "yearly"],
                "2024-02-02T10:00": ["last"],
            },
            id="one-snapshot-many-reasons",
        ),
    ],
)
def test_retention_reasons(
    stamps: list[str], rules: Retention, expected: dict[str, list[str]]
) -> None:
    assert kept(stamps, rules) == expected


def test_restic_doc_daily_backups_for_years() -> None:
    """restic's example (one backup a day, keep-daily 7 weekly 5 monthly 12 yearly 75): 7 daily,
    4 more weekly (the dailies hold one), 11 more monthly, then one a year and, as the yearly
    count is far from used up, the oldest snapshot too."""
    first, last = date(2022, 1, 1), date(2024, 3, 10)  # 2024-03-10 is a Sunday
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    stamps = [f"{day}T02:00" for day in days]
    result = kept(stamps, policy(last=0, daily=7, weekly=5, monthly=12, yearly=75))
    dailies = [f"2024-03-{day:02}" for day in range(4, 11)]
    weeklies = ["2024-03-03", "2024-02-25", "2024-02-18", "2024-02-11"]
    monthlies = ["2024-02-29", "2024-01-31", "2023-12-31", "2023-11-30", "2023-10-31"]
    monthlies += ["2023-09-30", "2023-08-31", "2023-07-31", "2023-06-30", "2023-05-31"]
    monthlies += ["2023-04-30"]
    yearlies = ["2022-12-31", "2022-01-01"]
    expected = {f"{day}T02:00" for day in dailies + weeklies + monthlies + yearlies}
    assert set(result) == expected
    assert result["2024-03-10T02:00"] == ["daily", "weekly", "monthly", "yearly"]
    assert result["2023-12-31T02:00"] == ["monthly", "yearly"]
    assert result["2022-12-31T02:00"] == ["yearly"]
    assert result["2022-01-01T02:00"] == ["oldest yearly"]


def test_same_time_the_greater_id_counts_as_newer() -> None:
    same = at("2024-05-01T10:00")
    snapshots = [("b-snapshot", same), ("a-snapshot", same), ("c-older", at("2024-04-30T10:00"))]
    assert retention_reasons(snapshots, policy(last=1, daily=1)) == {
        "b-snapshot": ["last", "daily"]
    }
    assert retention_reasons(snapshots, policy(last=2)) == {
        "b-snapshot": ["last"],
        "a-snapshot": ["last"],
    }


def test_periods_are_taken_in_utc() -> None:
    # 00:30 in Paris on New Year's day is still 2023 in UTC.
    paris = timezone(timedelta(hours=1))
    snapshots = [
        ("new-year-paris", datetime(2024, 1, 1, 0, 30, tzinfo=paris)),
        ("dec-30", at("2023-12-30T10:00")),
    ]
    assert retention_reasons(snapshots, policy(last=1, yearly=1)) == {
        "new-year-paris": ["last", "yearly"]
    }
    assert retention_reasons(snapshots, policy(last=1, daily=2)) == {
        "new-year-paris": ["last", "daily"],
        "dec-30": ["daily"],
    }


def test_reasons_are_listed_newest_first() -> None:
    result = kept(SUNDAYS, policy(last=3))
    assert list(result) == SUNDAYS[-1:-4:-1]


def test_snapshots_to_keep_is_the_kept_ids_plus_the_protected() -> None:
    stamps = SUNDAYS[:4]
    snapshots = iter([(stamp, at(stamp)) for stamp in stamps])
    assert snapshots_to_keep(snapshots, policy(last=1), ["elsewhere", stamps[0]]) == {
        stamps[-1],
        stamps[0],
        "elsewhere",
    }

"""When a site's restore test is due, and whether it passed recently enough for the checklist.

The offer's "verified backup" row sets the cadence by tier: essentiel monthly, business weekly,
critique daily; a site's `restore_test.cadence_days` overrides it. Checklist point C3 asks for a
restore tested and validated in the last three calendar months.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

TIER_CADENCE_DAYS = {"essentiel": 30, "business": 7, "critique": 1}
# A scheduler firing at the same hour every day must not skip a day because yesterday's test
# finished a few minutes after the hour: a test is due this much before its cadence is up.
DUE_SLACK = timedelta(hours=1)
C3_MONTHS = 3


@dataclass(frozen=True)
class Due:
    due: bool
    reason: str  # one line: why the test is due or not


def cadence_days(tier: str, override: int | None) -> int:
    """The site's cadence in days: its own, else its tier's."""
    if override is not None:
        return override
    return TIER_CADENCE_DAYS[tier]


def is_due(last_passed_at: datetime | None, cadence: int, now: datetime) -> Due:
    """Due when no test ever passed, or the last pass is `cadence` days old (less DUE_SLACK)."""
    every = _every(cadence)
    if last_passed_at is None:
        return Due(True, f"no restore test has passed yet (cadence: {every})")
    next_at = last_passed_at + timedelta(days=cadence)
    if now >= next_at - DUE_SLACK:
        return Due(True, f"last passed {_ago(now - last_passed_at)} ago (cadence: {every})")
    return Due(
        False,
        f"last passed {_ago(now - last_passed_at)} ago; next due in "
        f"{_ago(next_at - now)} (cadence: {every})",
    )


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier, the day clamped to the month's
    end (31 May minus 3 months is 28 or 29 February)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


def passed_within_three_months(last_passed_at: datetime | None, now: datetime) -> bool:
    """Checklist C3: a restore test passed in the last three calendar months."""
    return last_passed_at is not None and last_passed_at >= months_before(now, C3_MONTHS)


def _every(days: int) -> str:
    return "daily" if days == 1 else f"every {days} days"


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 86400:
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 60}m"

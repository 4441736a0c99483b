"""`tma-ops status`: where each site stands on backups and restore tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tma_ops.config import Site
from tma_ops.errors import TmaError
from tma_ops.journal import Journal
from tma_ops.model_sandbox import SANDBOX
from tma_ops.restore_cadence import cadence_days, is_due, passed_within_three_months
from tma_ops.restore_test_record import PastTest, last_passed_at, past_tests, utc_stamp
from tma_ops.snapshot import created_at, list_snapshots
from tma_ops.stores import open_store


@dataclass(frozen=True)
class SiteStatus:
    site: str
    tier: str
    has_sandbox: bool
    newest_snapshot: str | None
    newest_snapshot_at: datetime | None
    store_error: str | None
    last_test: PastTest | None
    last_passed_at: datetime | None
    cadence_days: int
    due: bool
    due_reason: str
    c3_ok: bool  # a restore test passed in the last three calendar months
    now: datetime

    def as_record(self) -> dict[str, Any]:
        last = self.last_test
        return {
            "site": self.site,
            "tier": self.tier,
            "sandbox": self.has_sandbox,
            "newest_snapshot": self.newest_snapshot,
            "newest_snapshot_at": _stamp(self.newest_snapshot_at),
            "newest_snapshot_age_s": _age(self.newest_snapshot_at, self.now),
            "store_error": self.store_error,
            "last_test": None
            if last is None
            else {
                "run_id": last.run_id,
                "passed": last.passed,
                "tested_at": utc_stamp(last.tested_at),
                "snapshot_id": last.snapshot_id,
                "cause": last.cause,
            },
            "last_passed_at": _stamp(self.last_passed_at),
            "cadence_days": self.cadence_days,
            "due": self.due,
            "due_reason": self.due_reason,
            "restore_tested_in_3_months": self.c3_ok,
        }


def site_status(site: Site, journal: Journal, now: datetime) -> SiteStatus:
    newest, newest_at, store_error = None, None, None
    try:
        production = [
            m
            for m in list_snapshots(open_store(site.store), site.name)
            if m.environment == "production"
        ]
        if production:
            newest, newest_at = production[-1].snapshot_id, created_at(production[-1])
    except TmaError as exc:  # one unreachable store must not hide the other sites
        store_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    tests = past_tests(journal, site.name)
    passed_at = last_passed_at(tests)
    cadence = cadence_days(site.tier, site.restore_test.cadence_days)
    due = is_due(passed_at, cadence, now)
    return SiteStatus(
        site=site.name,
        tier=site.tier,
        has_sandbox=SANDBOX in site.environments,
        newest_snapshot=newest,
        newest_snapshot_at=newest_at,
        store_error=store_error,
        last_test=tests[-1] if tests else None,
        last_passed_at=passed_at,
        cadence_days=cadence,
        due=due.due,
        due_reason=due.reason,
        c3_ok=passed_within_three_months(passed_at, now),
        now=now,
    )


def status_line(status: SiteStatus) -> str:
    if status.store_error:
        snapshot = f"store unreadable: {status.store_error}"
    elif status.newest_snapshot is None:
        snapshot = "no production snapshot"
    else:
        snapshot = (
            f"newest snapshot {status.newest_snapshot} "
            f"({_human_age(_age(status.newest_snapshot_at, status.now))} old)"
        )
    last = status.last_test
    if last is None:
        tested = "never restore-tested"
    else:
        verdict = "passed" if last.passed else f"FAILED ({last.cause})"
        tested = f"last restore test {verdict} at {utc_stamp(last.tested_at)}"
    due = f"due: {status.due_reason}" if status.due else f"not due: {status.due_reason}"
    if not status.has_sandbox:
        due = "no sandbox environment to test in"
    flag = "" if status.c3_ok else " [C3: NO PASSING RESTORE TEST IN THE LAST 3 MONTHS]"
    return f"{status.site} ({status.tier}): {snapshot}; {tested}; {due}{flag}"


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else utc_stamp(moment)


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 3)


def _human_age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / 3600:.1f} h"

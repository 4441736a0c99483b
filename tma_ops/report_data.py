"""Everything the monthly client report says, gathered for one site or a client's sites and one
calendar month into a single JSON-able document (the report's `json` format is exactly this
document; the html, md and pdf renderers only lay it out).

Sources: the tickets file (tma_ops.commands_tickets), the monitor's database (tma_ops.uptime
through tma_ops.report_uptime), the journal (updates promoted, restore tests, the last plan's
held updates), the store (production snapshots) and the audit (tma_ops.audit). The audit is
scored at the time the report is made: its alerts are about now, not the month's past.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tma_ops.audit import score
from tma_ops.audit_evidence import gather
from tma_ops.commands_tickets import month_report
from tma_ops.journal import Event, Journal
from tma_ops.model import Site
from tma_ops.plan_consumption import Month
from tma_ops.report_advice import executive_summary, next_month_plan, recommendations
from tma_ops.report_text import Lang
from tma_ops.report_uptime import site_availability
from tma_ops.restore_cadence import cadence_days
from tma_ops.restore_test_record import STEP as RESTORE_TEST_STEP
from tma_ops.restore_test_record import parse_stamp
from tma_ops.snapshot import created_at, list_snapshots
from tma_ops.stores import open_store

FORMAT_VERSION = 1
PROMOTED = ("promoted", "partly-promoted")


def build_report(
    sites: Sequence[Site],
    month: Month,
    lang: Lang,
    journal: Journal,
    state_dir: Path,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report document for `sites` (one site, or every site of one client)."""
    moment = now or datetime.now(UTC)
    first = sites[0]
    return {
        "format": FORMAT_VERSION,
        "kind": "tma-ops monthly report",
        "month": str(month),
        "lang": lang,
        "generated_at": moment.isoformat(timespec="seconds"),
        "client": {
            "name": first.client.name or first.name,
            "timezone": first.client.timezone,
            "language": first.client.language,
        },
        "sites": [site_report(site, month, lang, journal, state_dir, moment) for site in sites],
    }


def site_report(
    site: Site, month: Month, lang: Lang, journal: Journal, state_dir: Path, now: datetime
) -> dict[str, Any]:
    zone = site.client.zone
    events = journal.events(site=site.name)
    store = open_store(site.store)
    tickets = _tickets(site, month, now)
    uptime = site_availability(state_dir, site, str(month))
    audit = score(gather(site, journal, store, state_dir), site.declarations, now).to_json()
    updates = updates_done(events, month, zone)
    tests = restore_tests(events, month, zone)
    advice = recommendations(audit, tickets, uptime, lang)
    snapshots = [m for m in list_snapshots(store, site.name) if m.environment == "production"]
    in_month = [m for m in snapshots if month.holds(created_at(m), zone)]
    return {
        "site": site.name,
        "tier": site.tier,
        "timezone": site.client.timezone,
        "summary": executive_summary(uptime, tickets, updates, tests, advice, lang),
        "tickets": tickets,
        "uptime": uptime,
        "updates": updates,
        "backups": {
            "snapshots_in_month": len(in_month),
            "newest_snapshot_at": created_at(snapshots[-1]).isoformat() if snapshots else None,
            "restore_tests": tests,
            "restore_cadence_days": _cadence(site),
        },
        "audit": audit,
        "recommendations": advice,
        "next_month": next_month_plan(
            month,
            site.tier,
            last_update_at(events),
            _cadence(site),
            held_updates(events),
            (uptime or {}).get("certificate"),
            bool(audit["audit_now"]),
            lang,
        ),
    }


def _tickets(site: Site, month: Month, now: datetime) -> dict[str, Any] | None:
    """The month's tickets; None when the contract names no ticket file (a bad file is an
    error: its problems are raised, not hidden)."""
    if not site.contract.tickets:
        return None
    return month_report(site, month, now).to_json()


def _cadence(site: Site) -> int:
    return cadence_days(site.tier, site.restore_test.cadence_days)


def _runs_finished(events: Sequence[Event]) -> dict[str, dict[str, Any]]:
    return {e.run_id: e.data for e in events if e.step == "run" and e.status == "finished"}


def updates_done(events: Sequence[Event], month: Month, zone: Any) -> list[dict[str, Any]]:
    """Components changed on production in the month: each promotion's changes, marked
    "promoted" or "rolled-back" by the run's outcome."""
    outcomes = _runs_finished(events)
    found = []
    for event in events:
        if event.step != "promote" or event.status != "done":
            continue
        at = parse_stamp(event.time)
        if not month.holds(at, zone):
            continue
        outcome = str(outcomes.get(event.run_id, {}).get("outcome", ""))
        for change in event.data.get("changes", []):
            found.append(
                {
                    "at": at.isoformat(),
                    "run_id": event.run_id,
                    "component": change.get("component"),
                    "from": change.get("before"),
                    "to": change.get("after"),
                    "status": "promoted" if outcome in PROMOTED else "rolled-back",
                }
            )
    return found


def restore_tests(events: Sequence[Event], month: Month, zone: Any) -> list[dict[str, Any]]:
    """The month's finished restore tests (formats: restore-test journal events)."""
    found = []
    for event in events:
        if event.step != RESTORE_TEST_STEP or event.status not in ("passed", "failed"):
            continue
        tested_at = parse_stamp(str(event.data.get("tested_at") or event.time))
        if not month.holds(tested_at, zone):
            continue
        found.append(
            {
                "tested_at": tested_at.isoformat(),
                "passed": event.status == "passed",
                "snapshot_id": event.data.get("snapshot_id"),
                "time_to_recovery_s": event.data.get("time_to_recovery_s"),
                "failed_stage": event.data.get("failed_stage"),
                "cause": event.data.get("cause"),
            }
        )
    return found


def last_update_at(events: Sequence[Event]) -> datetime | None:
    """The end of the last cycle that left production up to date."""
    done = [
        parse_stamp(e.time)
        for e in events
        if e.step == "run"
        and e.status == "finished"
        and e.data.get("outcome") in (*PROMOTED, "up-to-date")
    ]
    return max(done) if done else None


def held_updates(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The updates the last plan held back (not yet applied)."""
    plans = [e for e in events if e.step == "plan" and e.status == "done"]
    return list(plans[-1].data.get("held", [])) if plans else []


def client_sites(sites: dict[str, Site], client: str) -> list[Site]:
    """The sites whose client is `client` (a site without a client name is its own client)."""
    return [site for site in sites.values() if (site.client.name or site.name) == client]

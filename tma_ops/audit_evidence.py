"""Gathers the audit's evidence for one site from the journal, the store and the inventory.

Thin glue: reading only; every judgement is in tma_ops.audit. The monitor settings are read
with getattr: a site without `monitor` (or an inventory model without it) simply shows none.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tma_ops.audit import AuditEvidence, SecurityFix
from tma_ops.journal import Event, Journal
from tma_ops.model import Site
from tma_ops.model_checks import HostCheck, LogScanCheck, first_http_check
from tma_ops.restore_test_record import last_passed_at, parse_stamp, past_tests
from tma_ops.snapshot import created_at, list_snapshots
from tma_ops.stores import Store

UP_TO_DATE = ("promoted", "partly-promoted", "up-to-date")
PROMOTED = ("promoted", "partly-promoted")
MONITOR_FILE = "monitor.sqlite"
LOOPBACK = ("", "localhost", "127.0.0.1", "::1")


def gather(
    site: Site, journal: Journal, store: Store, state_dir: Path | None = None
) -> AuditEvidence:
    events = journal.events(site=site.name)
    tests = past_tests(journal, site.name)
    failed = [t.tested_at for t in tests if not t.passed]
    snapshots = [m for m in list_snapshots(store, site.name) if m.environment == "production"]
    return AuditEvidence(
        site=site.name,
        tier=site.tier,
        advisory_sources=len(site.updates.advisories),
        last_plan_at=_last(events, "plan", "done"),
        security_fixes=_security_fixes(events),
        tls_watch=_tls_watch(site),
        monitor=_monitor_target(site),
        monitor_alerts=_monitor_alerts(site),
        monitor_last_probe_at=_last_probe(state_dir, site.name),
        logscan=any(isinstance(c, LogScanCheck) for c in site.production.smoke),
        last_production_smoke_at=_last(events, "smoke_production", "done"),
        last_rollback=_last_rollback(events),
        snapshot_count=len(snapshots),
        newest_snapshot_at=created_at(snapshots[-1]) if snapshots else None,
        store=_store_description(site),
        off_site=_off_site(site),
        object_lock=site.store.object_lock is not None,
        last_restore_passed_at=last_passed_at(tests),
        last_restore_failed_at=max(failed) if failed else None,
        retention=_retention(site),
        last_prune_at=_last(events, "prune", "done"),
        last_staging_refresh_at=_last(events, "refresh_staging", "done"),
        **_promotions(events),
        last_update_at=_last_finished(events, UP_TO_DATE),
        last_cycle_at=_last(events, "run", "finished"),
        tickets=getattr(getattr(site, "contract", None), "tickets", None),
    )


def _time(event: Event) -> datetime:
    return parse_stamp(event.time)


def _last(events: list[Event], step: str, status: str) -> datetime | None:
    found = [_time(e) for e in events if e.step == step and e.status == status]
    return max(found) if found else None


def _last_finished(events: list[Event], outcomes: tuple[str, ...]) -> datetime | None:
    found = [
        _time(e)
        for e in events
        if e.step == "run" and e.status == "finished" and e.data.get("outcome") in outcomes
    ]
    return max(found) if found else None


def _by_run(events: list[Event]) -> dict[str, list[Event]]:
    runs: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        runs[event.run_id].append(event)
    return runs


def _promotions(events: list[Event]) -> dict[str, Any]:
    """Runs that promoted to production, and those without a passing staging smoke before."""
    promoted, untested = 0, []
    for run_id, run in _by_run(events).items():
        promote = next((i for i, e in enumerate(run) if e.step == "promote"), None)
        if promote is None:
            continue
        promoted += 1
        smoked = any(
            e.step == "smoke_staging" and e.status == "done" and e.data.get("ok") is True
            for e in run[:promote]
        )
        if not smoked:
            untested.append(run_id)
    return {"promotions": promoted, "untested_promotions": tuple(untested)}


def _security_fixes(events: list[Event]) -> tuple[SecurityFix, ...]:
    """Security fixes planned in a run that then promoted; the publication date when an
    advisory entry carries one (`published`)."""
    fixes = []
    for run in _by_run(events).values():
        finished = [e for e in run if e.step == "run" and e.status == "finished"]
        if not finished or finished[-1].data.get("outcome") not in PROMOTED:
            continue
        applied = {str(u.get("component")) for u in finished[-1].data.get("updates", [])}
        for plan in (e for e in run if e.step == "plan" and e.status == "done"):
            for entry in plan.data.get("entries", []):
                if entry.get("security") and entry.get("component") in applied:
                    published = entry.get("published")
                    fixes.append(
                        SecurityFix(
                            component=str(entry["component"]),
                            applied_at=_time(finished[-1]),
                            published_at=parse_stamp(str(published)) if published else None,
                        )
                    )
    return tuple(fixes)


def _last_rollback(events: list[Event]) -> tuple[datetime, str] | None:
    done = [
        (_time(e), "emergency rollback" if e.step == "emergency_rollback" else "cycle rollback")
        for e in events
        if (e.step == "rollback" and e.status == "done")
        or (e.step == "emergency_rollback" and e.status == "finished")
    ]
    return max(done) if done else None


def _tls_watch(site: Site) -> str | None:
    for check in site.production.smoke:
        if isinstance(check, HostCheck) and check.tls:
            targets = ", ".join(f"{t.host}:{t.port}" for t in check.tls)
            return f"host check of {targets} (warns {check.tls[0].min_days} d before expiry)"
    target = _monitor_target(site)
    if target and target.startswith("https://"):
        return f"monitor of {target}"
    return None


def _monitor_target(site: Site) -> str | None:
    monitor = getattr(site, "monitor", None)
    if monitor is None:
        return None
    url = getattr(monitor, "url", None) or first_http_check(site.production.smoke)
    return str(getattr(url, "url", url)) if url is not None else "production"


def _last_probe(state_dir: Path | None, site: str) -> datetime | None:
    """The monitor's last probe of the site, from <state_dir>/monitor.sqlite when it exists."""
    path = state_dir / MONITOR_FILE if state_dir is not None else None
    if path is None or not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
            row = connection.execute(
                "SELECT MAX(at) FROM probes WHERE site = ?", (site,)
            ).fetchone()
    except sqlite3.Error:
        return None  # a monitor file of another layout is no evidence
    return datetime.fromtimestamp(row[0], UTC) if row and row[0] is not None else None


def _monitor_alerts(site: Site) -> tuple[str, ...]:
    alerts = getattr(getattr(site, "monitor", None), "alerts", None)
    return tuple(kind for kind in ("webhook", "email") if getattr(alerts, kind, None))


def _store_description(site: Site) -> str:
    parts = urlsplit(site.store.url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"  # never a query or credentials


def _off_site(site: Site) -> bool:
    """s3 is off-site; a file:// store is on this machine, off-site only when production runs on
    another host; mem:// is nowhere."""
    scheme = site.store.scheme
    if scheme != "file":
        return scheme == "s3"
    executor = site.production.executor
    if executor.scheme == "ssh":
        return (urlsplit(executor.url).hostname or "").lower() not in LOOPBACK
    if executor.scheme == "docker" and executor.docker_host:
        host = urlsplit(executor.docker_host)
        return host.scheme in ("tcp", "ssh", "https") and (host.hostname or "") not in LOOPBACK
    return False


def _retention(site: Site) -> str:
    kept = site.retention.model_dump()
    return ", ".join(f"{key} {value}" for key, value in kept.items() if value)

"""The 28-point maintenance audit, scored from evidence and declarations. Pure: no I/O.

Each point's outcome is one of pass / fail / unknown / declared-pass / declared-fail, with one
line of evidence (what was seen, when) or "declared: <note>". Evidence wins: a declaration on a
point the evidence settles is shown as a conflict, never used. A point no evidence reaches is
taken from the declaration, else it is "unknown — declare it under declarations.<id>".

"No staging": the model requires a staging environment, so its existence proves nothing. A
staging that was never refreshed from production, or not for over six months, is no test bed:
D1 fails and the "no staging environment" signal is present. (A declaration cannot make up for
it: the journal settles D1.)

The rule of the three criticals: no staging, no update for over six months and no passing
restore test in three months, all three present, raise the "audit now" alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from tma_ops.audit_points import (
    AUDIT_NOW,
    POINTS,
    RULE_OF_THREE,
    SIGNALS,
    VERDICT,
    Point,
    Signal,
    Text,
)
from tma_ops.model_audit import Declaration
from tma_ops.restore_cadence import TIER_CADENCE_DAYS, months_before

Status = Literal["pass", "fail", "unknown", "declared-pass", "declared-fail"]
SignalState = Literal["present", "absent", "unknown"]
Seen = tuple[Literal["pass", "fail", "unknown"], str]
GREEN = ("pass", "declared-pass")
RED = ("fail", "declared-fail")
SECURITY_FIX_HOURS = 72
YEARLY_POINTS = ("A4", "E8")  # a declaration dated over 12 months ago does not hold


@dataclass(frozen=True)
class SecurityFix:
    component: str
    applied_at: datetime
    published_at: datetime | None = None  # when the journal knows the advisory's publication


@dataclass(frozen=True)
class AuditEvidence:
    """What the journal, the store and the inventory show about one site."""

    site: str
    tier: str = "business"
    advisory_sources: int = 0
    last_plan_at: datetime | None = None
    security_fixes: tuple[SecurityFix, ...] = ()
    tls_watch: str | None = None  # how the certificate is watched, None when it is not
    monitor: str | None = None  # the monitor's target, None when there is no monitor
    monitor_alerts: tuple[str, ...] = ()  # alert hooks: "webhook", "email"
    monitor_last_probe_at: datetime | None = None
    logscan: bool = False  # production's smoke checks scan its logs
    last_production_smoke_at: datetime | None = None
    last_rollback: tuple[datetime, str] | None = None  # when, and which kind of rollback
    snapshot_count: int = 0
    newest_snapshot_at: datetime | None = None
    store: str = ""  # the store, described without credentials
    off_site: bool = False
    object_lock: bool = False
    last_restore_passed_at: datetime | None = None
    last_restore_failed_at: datetime | None = None
    retention: str = ""
    last_prune_at: datetime | None = None
    last_staging_refresh_at: datetime | None = None
    promotions: int = 0
    untested_promotions: tuple[str, ...] = ()  # run ids promoted without a passing staging smoke
    last_update_at: datetime | None = None  # last cycle that left production up to date
    last_cycle_at: datetime | None = None
    tickets: str | None = None  # the tickets file the contract names


@dataclass(frozen=True)
class PointResult:
    point: Point
    status: Status
    evidence: str
    conflict: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.point.id,
            "pillar": self.point.pillar,
            "priority": self.point.priority,
            "text": dict(self.point.text),
            "status": self.status,
            "evidence": self.evidence,
            "conflict": self.conflict,
        }


@dataclass(frozen=True)
class SignalResult:
    signal: Signal
    state: SignalState
    because: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.signal.id,
            "level": self.signal.level,
            "text": dict(self.signal.text),
            "state": self.state,
            "because": self.because,
        }


@dataclass(frozen=True)
class AuditResult:
    site: str
    audited_at: datetime
    points: list[PointResult]
    signals: list[SignalResult]
    audit_now: bool
    verdict: dict[str, Text] = field(default_factory=dict)

    @property
    def sufficient(self) -> bool:
        return all(r.status in GREEN for r in self.points if r.point.priority == "critical")

    @property
    def critical_failed(self) -> bool:
        return any(r.status in RED for r in self.points if r.point.priority == "critical")

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "audited_at": self.audited_at.isoformat().replace("+00:00", "Z"),
            "points": [r.to_json() for r in self.points],
            "signals": [s.to_json() for s in self.signals],
            "audit_now": self.audit_now,
            "alert": dict(AUDIT_NOW) if self.audit_now else None,
            "sufficient": self.sufficient,
            "verdict": {key: dict(text) for key, text in self.verdict.items()},
        }


def score(
    evidence: AuditEvidence, declarations: Mapping[Any, Declaration], now: datetime
) -> AuditResult:
    points = [
        _combine(point, RULES[point.id](evidence, now) if point.id in RULES else None,
                 declarations.get(point.id), now)
        for point in POINTS
    ]  # fmt: skip
    signals = [_signal(signal, points, evidence, now) for signal in SIGNALS]
    present = {s.signal.id for s in signals if s.state == "present"}
    return AuditResult(
        site=evidence.site,
        audited_at=now,
        points=points,
        signals=signals,
        audit_now=all(name in present for name in RULE_OF_THREE),
        verdict=verdict(points),
    )


def _combine(
    point: Point, seen: Seen | None, declared: Declaration | None, now: datetime
) -> PointResult:
    status, line = seen if seen is not None else ("unknown", "")
    if status != "unknown":
        conflict = None
        if declared is not None and declared.ok != (status == "pass"):
            met = "met" if declared.ok else "not met"
            conflict = f"declared {met} ({declared.note}); the evidence wins"
        return PointResult(point, status, line, conflict)
    if declared is None:
        hint = f"unknown — declare it under declarations.{point.id}"
        return PointResult(point, "unknown", f"{line}; {hint}" if line else hint)
    ok, note = declared.ok, f"declared: {declared.note}"
    if declared.date is not None:
        note += f" ({declared.date.isoformat()})"
        if ok and point.id in YEARLY_POINTS and _over_a_year(declared.date, now):
            ok, note = False, f"{note}: over 12 months ago"
    return PointResult(point, "declared-pass" if ok else "declared-fail", note)


def _over_a_year(day: date, now: datetime) -> bool:
    return day < months_before(now, 12).date()


def _signal(
    signal: Signal, points: list[PointResult], evidence: AuditEvidence, now: datetime
) -> SignalResult:
    if not signal.point:  # updates older than six months: read from the journal directly
        last = evidence.last_update_at
        if last is None:
            return SignalResult(signal, "present", "no maintenance cycle completed in the journal")
        stale = last < months_before(now, 6)
        return SignalResult(
            signal, "present" if stale else "absent", f"last updates applied on {_day(last)}"
        )
    result = next(r for r in points if r.point.id == signal.point)
    state: SignalState = (
        "absent" if result.status in GREEN else "present" if result.status in RED else "unknown"
    )
    return SignalResult(signal, state, f"{result.point.id} {result.status}")


def verdict(points: list[PointResult]) -> dict[str, Text]:
    """The checklist's reading: every critical point green for maintenance to be sufficient, high
    points covered within 30 days, medium ones good practice."""

    def open_ids(priority: str) -> list[str]:
        return [
            r.point.id for r in points if r.point.priority == priority and r.status not in GREEN
        ]

    critical, high, medium = open_ids("critical"), open_ids("high"), open_ids("medium")
    out: dict[str, Text] = {"overall": _filled(VERDICT["sufficient"])}
    if critical:
        out["overall"] = _filled(
            VERDICT["insufficient"], count=str(len(critical)), ids=", ".join(critical)
        )
    if high:
        out["high"] = _filled(VERDICT["high"], ids=", ".join(high))
    if medium:
        out["medium"] = _filled(VERDICT["medium"], ids=", ".join(medium))
    return out


def _filled(text: Text, **values: str) -> Text:
    return {lang: template.format(**values) for lang, template in text.items()}


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def within(moment: datetime | None, now: datetime, months: int) -> bool:
    return moment is not None and moment >= months_before(now, months)


def days_old(moment: datetime, now: datetime) -> float:
    return (now - moment) / timedelta(days=1)


TIER_BACKUP_DAYS = TIER_CADENCE_DAYS  # the engagement table's "verified backup" row


# The points evidence can reach, one rule each: (pass | fail | unknown, what was seen).


def _a1_advisories(ev: AuditEvidence, now: datetime) -> Seen:
    if not ev.advisory_sources:
        return "fail", "no advisory source in updates.advisories: updates are not audited"
    sources = f"{ev.advisory_sources} advisory source(s)"
    if ev.last_plan_at is None:
        return "fail", f"{sources} set, but no update plan in the journal"
    if not within(ev.last_plan_at, now, 3):
        return "fail", f"{sources}; last checked on {_day(ev.last_plan_at)}, over 3 months ago"
    return "pass", f"{sources} checked by the update plan of {_day(ev.last_plan_at)}"


def _a2_security_delay(ev: AuditEvidence, _now: datetime) -> Seen:
    dated = [f for f in ev.security_fixes if f.published_at is not None]
    late = [
        f
        for f in dated
        if f.published_at is not None
        and f.applied_at - f.published_at > timedelta(hours=SECURITY_FIX_HOURS)
    ]
    if late:
        worst = max(late, key=lambda f: f.applied_at - (f.published_at or f.applied_at))
        hours = (worst.applied_at - (worst.published_at or worst.applied_at)) / timedelta(hours=1)
        return "fail", (
            f"{len(late)} security fix(es) applied after 72 h; {worst.component} "
            f"{hours:.0f} h after publication ({_day(worst.applied_at)})"
        )
    if dated and len(dated) == len(ev.security_fixes):
        last = max(f.applied_at for f in dated)
        return "pass", f"{len(dated)} security fix(es) applied within 72 h, last on {_day(last)}"
    if ev.security_fixes:
        last = max(f.applied_at for f in ev.security_fixes)
        return "unknown", (
            f"{len(ev.security_fixes)} security fix(es) applied, last on {_day(last)}; "
            "publication dates not in the journal"
        )
    return "unknown", "no security fix in the journal"


def _a3_tls(ev: AuditEvidence, _now: datetime) -> Seen:
    if ev.tls_watch:
        return "pass", f"certificate watched: {ev.tls_watch}"
    return "fail", "no TLS check in production's smoke checks and no https monitor"


def _b1_monitoring(ev: AuditEvidence, now: datetime) -> Seen:
    if ev.monitor is None:
        return "fail", "no uptime monitor configured (monitor:)"
    last = ev.monitor_last_probe_at
    if last is None:
        return "fail", f"{ev.monitor} never probed by `tma-ops monitor`"
    if now - last > timedelta(days=1):
        return "fail", f"{ev.monitor} last probed on {_day(last)}: the monitor is not running"
    if not ev.monitor_alerts:
        return "fail", f"{ev.monitor} probed, but no alert hook (monitor.alerts)"
    hooks = " and ".join(ev.monitor_alerts)
    return "pass", f"{ev.monitor} probed on {_day(last)}, alerts by {hooks}"


def _b2_logs(ev: AuditEvidence, now: datetime) -> Seen:
    if not ev.logscan:
        return "fail", "no logscan in production's smoke checks"
    last = ev.last_production_smoke_at
    if last is None:
        return "fail", "logscan configured, but production's logs were never read by a cycle"
    if not within(last, now, 3):
        return "fail", f"logscan configured; production's logs last read on {_day(last)}"
    return "pass", f"production's logs scanned by the smoke checks, last on {_day(last)}"


def _b5_emergency(ev: AuditEvidence, _now: datetime) -> Seen:
    if ev.last_rollback is None:
        return "unknown", "no rollback in the journal"
    when, kind = ev.last_rollback
    return "pass", f"rollback procedure exercised on {_day(when)} ({kind})"


def _c1_backups(ev: AuditEvidence, now: datetime) -> Seen:
    if not ev.snapshot_count or ev.newest_snapshot_at is None:
        return "fail", f"no production snapshot in {ev.store or 'the store'}"
    every = TIER_BACKUP_DAYS.get(ev.tier, 30)
    age = days_old(ev.newest_snapshot_at, now)
    seen = f"{ev.snapshot_count} snapshot(s), newest {_day(ev.newest_snapshot_at)}"
    if age > every + 1:  # a day of slack for a run that starts a little later than the last
        return "fail", f"{seen}, {age:.0f} days old; the {ev.tier} tier expects every {every} d"
    return "pass", f"{seen} (the {ev.tier} tier expects one every {every} d)"


def _c2_off_site(ev: AuditEvidence, _now: datetime) -> Seen:
    if not ev.snapshot_count:
        return "fail", "no snapshot stored anywhere"
    if not ev.off_site:
        return "fail", f"store {ev.store} is on the production host"
    lock = ", object lock on" if ev.object_lock else ""
    return "pass", f"snapshots off-site in {ev.store}{lock}"


def _c3_restore_test(ev: AuditEvidence, now: datetime) -> Seen:
    passed, failed = ev.last_restore_passed_at, ev.last_restore_failed_at
    if within(passed, now, 3) and passed is not None:
        return "pass", f"restore test passed on {_day(passed)}"
    if passed is not None:
        return "fail", f"last passing restore test on {_day(passed)}, over 3 months ago"
    if failed is not None:
        return "fail", f"no passing restore test; last one failed on {_day(failed)}"
    return "fail", "no restore test in the journal"


def _c4_retention(ev: AuditEvidence, now: datetime) -> Seen:
    if ev.last_prune_at is None:
        return "fail", f"retention {ev.retention}, but never applied (no prune in the journal)"
    if not within(ev.last_prune_at, now, 3):
        return "fail", f"retention {ev.retention}; last applied on {_day(ev.last_prune_at)}"
    return "pass", f"retention {ev.retention}, applied on {_day(ev.last_prune_at)}"


def _d1_staging(ev: AuditEvidence, now: datetime) -> Seen:
    last = ev.last_staging_refresh_at
    if last is None:
        return "fail", "staging never refreshed from production in the journal"
    if not within(last, now, 6):
        return "fail", f"staging last refreshed from production on {_day(last)}, over 6 months"
    return "pass", f"staging refreshed from production on {_day(last)}"


def _d2_tested_first(ev: AuditEvidence, _now: datetime) -> Seen:
    if not ev.promotions:
        return "unknown", "no promotion to production in the journal"
    untested = ev.untested_promotions
    if untested:
        return "fail", (
            f"{len(untested)} of {ev.promotions} promotion(s) without a passing staging smoke "
            f"in the same run ({', '.join(untested[:3])})"
        )
    return "pass", f"all {ev.promotions} promotion(s) after a passing staging smoke, same run"


def _d5_calendar(ev: AuditEvidence, now: datetime) -> Seen:
    if ev.last_cycle_at is None:
        return "fail", "no maintenance cycle in the journal"
    if not within(ev.last_cycle_at, now, 3):
        return "fail", f"last maintenance cycle on {_day(ev.last_cycle_at)}, over 3 months ago"
    return "pass", f"maintenance cycles run, last on {_day(ev.last_cycle_at)}"


def _e1_tickets(ev: AuditEvidence, _now: datetime) -> Seen:
    if ev.tickets:
        return "pass", f"tickets tracked in {ev.tickets} (contract.tickets)"
    return "unknown", "no tickets file in contract.tickets"


RULES = {
    "A1": _a1_advisories,
    "A2": _a2_security_delay,
    "A3": _a3_tls,
    "B1": _b1_monitoring,
    "B2": _b2_logs,
    "B5": _b5_emergency,
    "C1": _c1_backups,
    "C2": _c2_off_site,
    "C3": _c3_restore_test,
    "C4": _c4_retention,
    "D1": _d1_staging,
    "D2": _d2_tested_first,
    "D5": _d5_calendar,
    "E1": _e1_tickets,
}

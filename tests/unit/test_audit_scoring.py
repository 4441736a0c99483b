"""The 28-point audit's scorer: each point from evidence, declarations, conflicts, the signals
and the rule of the three criticals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tma_ops.audit import AuditEvidence, AuditResult, SecurityFix, score
from tma_ops.audit_points import POINTS, SIGNALS
from tma_ops.model_audit import Declaration

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
DAY = timedelta(days=1)
RECENT = NOW - 10 * DAY
OLD = NOW - 200 * DAY

# A site whose every machine-visible point is green.
HEALTHY = AuditEvidence(
    site="blog",
    tier="business",
    advisory_sources=1,
    last_plan_at=RECENT,
    security_fixes=(SecurityFix("seo", RECENT, RECENT - DAY),),
    tls_watch="host check of example.org:443",
    monitor="https://example.org/",
    monitor_alerts=("webhook",),
    monitor_last_probe_at=NOW - timedelta(minutes=1),
    logscan=True,
    last_production_smoke_at=RECENT,
    last_rollback=(RECENT, "emergency rollback"),
    snapshot_count=3,
    newest_snapshot_at=NOW - DAY,
    store="s3://bucket/sites",
    off_site=True,
    last_restore_passed_at=RECENT,
    retention="keep_last 3",
    last_prune_at=RECENT,
    last_staging_refresh_at=RECENT,
    promotions=2,
    last_update_at=RECENT,
    last_cycle_at=RECENT,
    tickets="tickets.csv",
)
NEGLECTED = AuditEvidence(site="legacy", store="file:///srv/store")


def status_of(result: AuditResult, point: str) -> str:
    return next(r.status for r in result.points if r.point.id == point)


def evidence_of(result: AuditResult, point: str) -> str:
    return next(r.evidence for r in result.points if r.point.id == point)


def signal_state(result: AuditResult, signal: str) -> str:
    return next(s.state for s in result.signals if s.signal.id == signal)


def test_the_reference_data_has_28_points_and_10_signals_in_both_languages() -> None:
    assert [p.id for p in POINTS][:5] == ["A1", "A2", "A3", "A4", "A5"]
    assert len(POINTS) == 28 and len({p.id for p in POINTS}) == 28
    assert len(SIGNALS) == 10
    assert all(set(p.text) == {"en", "fr"} for p in POINTS)
    assert all(set(s.text) == {"en", "fr"} for s in SIGNALS)
    critical = {p.id for p in POINTS if p.priority == "critical"}
    assert critical == {"A1", "A2", "A4", "B1", "B5", "C1", "C2", "C3", "D1", "D2"}


@pytest.mark.parametrize(
    ("point", "changes", "status", "words"),
    [
        ("A1", {}, "pass", "1 advisory source(s) checked"),
        ("A1", {"advisory_sources": 0}, "fail", "no advisory source"),
        ("A1", {"last_plan_at": None}, "fail", "no update plan"),
        ("A1", {"last_plan_at": OLD}, "fail", "over 3 months ago"),
        ("A2", {}, "pass", "within 72 h"),
        ("A2", {"security_fixes": (SecurityFix("seo", RECENT, RECENT - 4 * DAY),)}, "fail", "96 h"),
        ("A2", {"security_fixes": (SecurityFix("seo", RECENT),)}, "unknown", "publication dates"),
        ("A2", {"security_fixes": ()}, "unknown", "no security fix"),
        ("A3", {}, "pass", "example.org:443"),
        ("A3", {"tls_watch": None}, "fail", "no TLS check"),
        ("B1", {}, "pass", "alerts by webhook"),
        ("B1", {"monitor": None}, "fail", "no uptime monitor"),
        ("B1", {"monitor_last_probe_at": None}, "fail", "never probed"),
        ("B1", {"monitor_last_probe_at": NOW - 3 * DAY}, "fail", "not running"),
        ("B1", {"monitor_alerts": ()}, "fail", "no alert hook"),
        ("B2", {}, "pass", "logs scanned"),
        ("B2", {"logscan": False}, "fail", "no logscan"),
        ("B2", {"last_production_smoke_at": OLD}, "fail", "last read"),
        ("B5", {}, "pass", "emergency rollback"),
        ("B5", {"last_rollback": None}, "unknown", "declarations.B5"),
        ("C1", {}, "pass", "3 snapshot(s)"),
        ("C1", {"snapshot_count": 0, "newest_snapshot_at": None}, "fail", "no production snapshot"),
        ("C1", {"newest_snapshot_at": NOW - 9 * DAY}, "fail", "every 7 d"),
        ("C1", {"tier": "critique", "newest_snapshot_at": NOW - 3 * DAY}, "fail", "every 1 d"),
        ("C2", {}, "pass", "off-site in s3://bucket/sites"),
        ("C2", {"off_site": False, "store": "file:///srv"}, "fail", "on the production host"),
        ("C2", {"snapshot_count": 0}, "fail", "no snapshot"),
        ("C3", {}, "pass", "restore test passed"),
        ("C3", {"last_restore_passed_at": OLD}, "fail", "over 3 months ago"),
        (
            "C3",
            {"last_restore_passed_at": None, "last_restore_failed_at": RECENT},
            "fail",
            "failed",
        ),
        ("C3", {"last_restore_passed_at": None}, "fail", "no restore test"),
        ("C4", {}, "pass", "applied on"),
        ("C4", {"last_prune_at": None}, "fail", "never applied"),
        ("D1", {}, "pass", "staging refreshed"),
        ("D1", {"last_staging_refresh_at": None}, "fail", "never refreshed"),
        ("D1", {"last_staging_refresh_at": OLD}, "fail", "over 6 months"),
        ("D1", {"last_staging_refresh_at": NOW - 150 * DAY}, "pass", "staging refreshed"),
        ("D2", {}, "pass", "all 2 promotion(s)"),
        ("D2", {"untested_promotions": ("run-1",)}, "fail", "1 of 2"),
        ("D2", {"promotions": 0}, "unknown", "no promotion"),
        ("D5", {}, "pass", "cycles run"),
        ("D5", {"last_cycle_at": OLD}, "fail", "over 3 months"),
        ("E1", {}, "pass", "tickets.csv"),
        ("E1", {"tickets": None}, "unknown", "declarations.E1"),
    ],
)
def test_each_point_from_evidence(
    point: str, changes: dict[str, Any], status: str, words: str
) -> None:
    result = score(replace(HEALTHY, **changes), {}, NOW)
    assert status_of(result, point) == status
    assert words in evidence_of(result, point)


@pytest.mark.parametrize("point", ["A4", "A5", "B3", "B4", "D3", "D4", "E2", "E5", "E9"])
def test_points_out_of_sight_are_unknown_until_declared(point: str) -> None:
    unknown = score(HEALTHY, {}, NOW)
    assert status_of(unknown, point) == "unknown"
    assert evidence_of(unknown, point) == f"unknown — declare it under declarations.{point}"
    met = score(HEALTHY, {point: Declaration(ok=True, note="checked")}, NOW)
    assert (status_of(met, point), evidence_of(met, point)) == (
        "declared-pass",
        "declared: checked",
    )
    unmet = score(HEALTHY, {point: Declaration(ok=False, note="missing")}, NOW)
    assert status_of(unmet, point) == "declared-fail"


@pytest.mark.parametrize(
    ("declared", "status", "conflict"),
    [
        (Declaration(ok=True, note="we restore monthly"), "fail", "declared met"),
        (Declaration(ok=False, note="never"), "fail", None),
    ],
)
def test_evidence_wins_over_a_declaration_and_the_conflict_is_shown(
    declared: Declaration, status: str, conflict: str | None
) -> None:
    result = score(replace(HEALTHY, last_restore_passed_at=None), {"C3": declared}, NOW)
    row = next(r for r in result.points if r.point.id == "C3")
    assert row.status == status
    assert (row.conflict is None) if conflict is None else (conflict in (row.conflict or ""))


def test_a_declaration_fills_a_point_the_evidence_leaves_unknown() -> None:
    result = score(
        replace(HEALTHY, last_rollback=None),
        {"B5": Declaration(ok=True, note="runbook v3", date=date(2026, 5, 2))},
        NOW,
    )
    assert status_of(result, "B5") == "declared-pass"
    assert evidence_of(result, "B5") == "declared: runbook v3 (2026-05-02)"


@pytest.mark.parametrize(("day", "status"), [(date(2026, 1, 10), "declared-pass"),
                                             (date(2025, 5, 1), "declared-fail")])  # fmt: skip
def test_a_yearly_point_declared_over_12_months_ago_does_not_hold(day: date, status: str) -> None:
    result = score(HEALTHY, {"A4": Declaration(ok=True, note="review", date=day)}, NOW)
    assert status_of(result, "A4") == status


def test_signals_follow_their_points() -> None:
    healthy = score(HEALTHY, {"E3": Declaration(ok=False, note="no SLA yet")}, NOW)
    states = {s.signal.id: s.state for s in healthy.signals}
    assert states == {
        "email_only": "absent",
        "no_tickets": "absent",
        "no_staging": "absent",
        "stale_updates": "absent",
        "no_tested_backup": "absent",
        "no_monitoring": "absent",
        "no_report": "unknown",
        "no_sla": "present",
        "no_documentation": "unknown",
        "no_emergency_procedure": "absent",
    }


@pytest.mark.parametrize(
    ("changes", "fires"),
    [
        ({"last_staging_refresh_at": OLD, "last_update_at": OLD,
          "last_restore_passed_at": None}, True),
        ({"last_staging_refresh_at": None, "last_update_at": None,
          "last_restore_passed_at": OLD}, True),
        ({"last_update_at": OLD, "last_restore_passed_at": None}, False),  # staging kept fresh
        ({"last_staging_refresh_at": OLD, "last_restore_passed_at": None}, False),  # updated
        ({"last_staging_refresh_at": OLD, "last_update_at": OLD}, False),  # backup tested
        ({}, False),
    ],
)  # fmt: skip
def test_the_rule_of_three_fires_only_with_all_three(changes: dict[str, Any], fires: bool) -> None:
    result = score(replace(HEALTHY, **changes), {}, NOW)
    assert result.audit_now is fires
    assert (result.to_json()["alert"] is not None) is fires


def test_a_never_maintained_site_raises_the_alert_and_fails_critical_points() -> None:
    result = score(NEGLECTED, {}, NOW)
    assert result.audit_now and result.critical_failed and not result.sufficient
    assert signal_state(result, "stale_updates") == "present"
    assert "AUDIT" in result.to_json()["alert"]["en"]


def test_the_verdict_needs_every_critical_point_green() -> None:
    declared = {p.id: Declaration(ok=True, note="yes") for p in POINTS}
    green = score(HEALTHY, declared, NOW)
    assert green.sufficient and not green.critical_failed
    assert green.verdict["overall"]["en"].startswith("Maintenance sufficient")
    assert set(green.verdict) == {"overall"}
    unknown = score(HEALTHY, {}, NOW)
    assert not unknown.sufficient and not unknown.critical_failed  # A4 unknown: not green
    assert "A4" in unknown.verdict["overall"]["fr"]
    assert "E2" in unknown.verdict["high"]["en"] and "E5" in unknown.verdict["medium"]["en"]


def test_the_result_is_json_with_all_28_points() -> None:
    data = score(HEALTHY, {}, NOW).to_json()
    assert [p["id"] for p in data["points"]] == [p.id for p in POINTS]
    assert data["audited_at"] == "2026-06-15T12:00:00Z"
    assert all(p["evidence"] for p in data["points"])
    assert {s["state"] for s in data["signals"]} <= {"present", "absent", "unknown"}

"""The report's judgements: executive summary, alerts and recommendations, next month's plan."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tma_ops.plan_consumption import Month
from tma_ops.report_advice import executive_summary, next_month_plan, recommendations

pytestmark = pytest.mark.unit
NB = "\u00a0"


def uptime(percent: float | None = 99.9, breached: bool = False, unknown_s: int = 0) -> dict:
    return {"uptime_percent": percent, "sla_target": 99.5, "sla_breached": breached,
            "unknown_s": unknown_s, "total_s": 2_592_000, "incidents": [{}]}  # fmt: skip


def tickets(missed: tuple[str, ...] = (), gauge: float = 0.2, over: float = 0) -> dict:
    part = {"gauge": gauge, "over": over}
    return {
        "tickets": [{"id": "T1"}, {"id": "T2"}],
        "compliance": {"missed": list(missed)},
        "consumption": {"corrective": part, "evolutive_hours": {"gauge": None, "over": 0}},
    }


def point(id_: str, priority: str, status: str) -> dict:
    return {"id": id_, "priority": priority, "status": status,
            "text": {"en": f"point {id_}", "fr": f"point {id_} fr"}}  # fmt: skip


def audit(*points: dict, signals: tuple[dict, ...] = (), alert: bool = False) -> dict:
    return {
        "points": list(points),
        "signals": list(signals),
        "alert": {"en": "AUDIT NOW", "fr": "AUDIT IMMÉDIAT"} if alert else None,
        "audit_now": alert,
    }


def signal(id_: str, level: str, state: str = "present") -> dict:
    return {"id": id_, "level": level, "state": state, "text": {"en": id_, "fr": id_ + " fr"}}


def sources(advice: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(item["level"], item["source"]) for item in advice]


@pytest.mark.parametrize(
    ("audit_json", "tickets_json", "uptime_json", "expected"),
    [
        (audit(), None, uptime(), []),
        (audit(), None, uptime(99.1, breached=True), [("critical", "sla")]),
        (audit(), None, None, [("high", "monitor")]),
        # B1 failing says it already: no second line about the missing monitor data.
        (audit(point("B1", "critical", "fail")), None, None, [("critical", "audit:B1")]),
        (audit(), None, uptime(unknown_s=400_000), [("high", "monitor")]),
        (audit(), tickets(missed=("T2",)), uptime(), [("high", "sla")]),
        (audit(), tickets(gauge=1.5, over=1), uptime(), [("medium", "plan")]),
        (audit(), tickets(gauge=0.8), uptime(), [("medium", "plan")]),
        (
            audit(
                point("E6", "medium", "declared-fail"),
                point("C2", "critical", "fail"),
                point("A5", "high", "declared-pass"),
                point("A2", "critical", "unknown"),
                point("B3", "high", "unknown"),
            ),
            None,
            uptime(),
            [("critical", "audit:C2"), ("medium", "audit:E6"), ("medium", "audit:A2")],
        ),
        (
            audit(
                point("C3", "critical", "fail"),
                signals=(
                    signal("no_tested_backup", "critical"),  # read from C3: said once
                    signal("stale_updates", "critical"),
                    signal("no_sla", "medium", "absent"),
                ),
                alert=True,
            ),
            None,
            uptime(),
            [("critical", "audit_now"), ("critical", "audit:C3"),
             ("critical", "signal:stale_updates")],
        ),
    ],
)  # fmt: skip
def test_recommendations(
    audit_json: dict, tickets_json: dict | None, uptime_json: dict | None, expected: list
) -> None:
    assert sources(recommendations(audit_json, tickets_json, uptime_json, "en")) == expected


def test_recommendations_speak_the_report_language() -> None:
    advice = recommendations(audit(point("C2", "critical", "fail")), None, uptime(99.1, True), "fr")
    assert advice[0]["text"].startswith(f"La disponibilité de 99,10{NB}% est sous l'objectif")
    assert advice[1]["text"] == "C2 point C2 fr : non satisfait."


@pytest.mark.parametrize(
    ("lang", "uptime_json", "tickets_json", "expected"),
    [
        (
            "en",
            uptime(99.82),
            tickets(),
            [
                "Availability 99.82% (SLA target 99.5% met), 1 incident(s).",
                "2 ticket(s) handled; 1 update(s) applied to production; 1 of 2 restore "
                "test(s) passed.",
                "2 point(s) need attention, 1 critical: see the recommendations.",
            ],
        ),
        (
            "fr",
            uptime(99.1, breached=True),
            tickets(missed=("T1",)),
            [
                f"Disponibilité de 99,10{NB}% (objectif SLA de 99,5{NB}% non atteint), "
                "1 incident(s).",
                "2 ticket(s) traité(s) (dont 1 hors délai) ; 1 mise(s) à jour appliquée(s) en "
                "production ; 1 test(s) de restauration réussi(s) sur 2.",
                "2 point(s) demandent attention, dont 1 critique(s) : voir les recommandations.",
            ],
        ),
        (
            "en",
            None,
            None,
            [
                "No availability measured this month.",
                "0 ticket(s) handled; 1 update(s) applied to production; 1 of 2 restore "
                "test(s) passed.",
                "2 point(s) need attention, 1 critical: see the recommendations.",
            ],
        ),
    ],
)
def test_executive_summary_has_three_lines(
    lang: str, uptime_json: dict | None, tickets_json: dict | None, expected: list[str]
) -> None:
    updates = [{"status": "promoted"}, {"status": "rolled-back"}]
    tests = [{"passed": True}, {"passed": False}]
    advice = [{"level": "critical"}, {"level": "medium"}]
    lines = executive_summary(uptime_json, tickets_json, updates, tests, advice, lang)
    assert lines == expected


def test_a_quiet_month_says_so() -> None:
    lines = executive_summary(uptime(), None, [], [], [{"level": "high"}], "en")
    assert lines[1:] == [
        "0 ticket(s) handled; 0 update(s) applied to production; no restore test.",
        "No critical alert this month.",
    ]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def plan_of(tier: str, last: datetime | None, **extra: Any) -> list[dict[str, Any]]:
    values: dict[str, Any] = {"held": [], "certificate": None, "audit_now": False, "cadence": 7}
    values.update(extra)
    return next_month_plan(
        Month(2024, 5), tier, last, values["cadence"], values["held"], values["certificate"],
        values["audit_now"], "en",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tier", "last", "preventive_due"),
    [
        ("critique", at("2024-05-20T10:00"), "2024-06-01"),  # monthly
        ("business", at("2024-03-10T10:00"), "2024-06-10"),  # quarterly: 3 months later
        ("business", at("2024-01-10T10:00"), "2024-06-01"),  # overdue: at once
        ("business", at("2024-05-10T10:00"), None),  # next due in August
        ("business", None, "2024-06-01"),  # never updated
        ("essentiel", None, None),  # urgent security updates only
    ],
)
def test_preventive_updates_follow_the_tier(
    tier: str, last: datetime | None, preventive_due: str | None
) -> None:
    plan = plan_of(tier, last)
    preventive = [item["due"] for item in plan if item["action"].startswith("Preventive")]
    assert preventive == ([preventive_due] if preventive_due else [])
    assert plan[-1] == {"action": "Monthly report for June 2024", "due": "2024-07-05"}


@pytest.mark.parametrize(
    ("cadence", "words"),
    [(1, "daily"), (7, "every 7 days, 5 planned"), (30, "every 30 days, 1 planned")],
)
def test_restore_tests_follow_the_cadence(cadence: int, words: str) -> None:
    actions = [item["action"] for item in plan_of("business", None, cadence=cadence)]
    assert f"Restore tests of the backups ({words})" in actions


def test_held_updates_certificate_and_audit_are_planned() -> None:
    held = [{"component": "payments", "from_version": "3.1.0", "to_version": "4.0.0",
             "reason": "major not approved"}]  # fmt: skip
    plan = plan_of(
        "business",
        at("2024-05-10T10:00"),
        held=held,
        certificate={"expires_on": "2024-06-20", "days_left": 40},
        audit_now=True,
    )
    assert plan[0] == {
        "action": "Full maintenance audit (rule of the three criticals)",
        "due": "2024-06-01",
    }
    actions = {item["action"]: item["due"] for item in plan}
    assert actions["Review the held update payments 3.1.0 -> 4.0.0 (major not approved)"] is None
    assert actions["Renew the TLS certificate (expires on 20 June 2024)"] == "2024-06-20"
    far = plan_of("business", None, certificate={"expires_on": "2024-12-01", "days_left": 200})
    assert not any("TLS" in item["action"] for item in far)

"""The report's judgements, pure: the executive summary (three lines at most), the alerts and
recommendations (from the audit, the SLA, the tickets and the warning signals) and next month's
plan. They read the JSON of the other parts (tma_ops.uptime, tma_ops.commands_tickets,
tma_ops.audit) and write in the report's language."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from tma_ops.audit import RED
from tma_ops.audit_points import SIGNALS
from tma_ops.plan_consumption import TEXT as PLAN_TEXT
from tma_ops.plan_consumption import Month
from tma_ops.report_text import Lang, day, month_name, percent
from tma_ops.restore_cadence import months_before

LEVELS = ("critical", "high", "medium")
UNKNOWN_SHARE_ALERT = 0.10  # more of the month unwatched than this is worth a word
GAUGE_NEARLY_USED = 0.8
PREVENTIVE_MONTHS = {"critique": 1, "business": 3}  # essentiel: urgent security updates only
Json = Mapping[str, Any]

ADVICE: dict[str, dict[str, str]] = {
    "en": {
        "sla_breached": "Uptime {uptime} is below the SLA target of {target}: a credit is due on "
        "the next invoice, and the incidents are analysed to prevent a repeat.",
        "no_monitoring": "No monitoring data this month: set up the uptime watch so that "
        "incidents are detected in minutes, not reported by users.",
        "unwatched": "The site was not monitored for {share} of the month: keep the monitor "
        "running so that availability can be measured.",
        "missed": "{count} ticket(s) past their response target ({ids}): the escalation path "
        "is reviewed.",
        "over": "The plan is exceeded ({what}): consider a higher plan or extra hours.",
        "nearly": "The plan is almost used up ({share} of {what}).",
        "point": "{id} {text}: not met.",
        "unknown_point": "{id} {text}: to be confirmed (no evidence, no declaration).",
        "signal": "Warning signal: {text}.",
        "none": "no alert",
        "uptime_line": "Availability {uptime} (SLA target {target} {sla}), {incidents} "
        "incident(s).",
        "uptime_none": "No availability measured this month.",
        "met": "met",
        "missed_word": "missed",
        "activity": "{tickets} ticket(s) handled{late}; {updates} update(s) applied to "
        "production; {tests}.",
        "late": " ({count} past target)",
        "tests": "{passed} of {total} restore test(s) passed",
        "no_tests": "no restore test",
        "attention": "{count} point(s) need attention, {critical} critical: see the "
        "recommendations.",
        "calm": "No critical alert this month.",
        "plan_preventive": "Preventive update cycle (staging first, then production)",
        "plan_restore": "Restore tests of the backups ({cadence})",
        "daily": "daily",
        "every": "every {days} days, {count} planned",
        "plan_held": "Review the held update {component} {before} -> {after} ({reason})",
        "plan_certificate": "Renew the TLS certificate (expires on {date})",
        "plan_report": "Monthly report for {month}",
        "plan_audit": "Full maintenance audit (rule of the three criticals)",
    },
    "fr": {
        "sla_breached": "La disponibilité de {uptime} est sous l'objectif SLA de {target} : un "
        "avoir est dû sur la prochaine facture, et les incidents sont analysés pour éviter "
        "qu'ils se reproduisent.",
        "no_monitoring": "Aucune donnée de surveillance ce mois-ci : mettre en place la "
        "surveillance de disponibilité pour détecter les incidents en quelques minutes, "
        "plutôt que par les utilisateurs.",
        "unwatched": "Le site n'a pas été surveillé pendant {share} du mois : garder la "
        "surveillance active pour pouvoir mesurer la disponibilité.",
        "missed": "{count} ticket(s) au-delà du délai de réponse ({ids}) : le circuit "
        "d'escalade est revu.",
        "over": "Le forfait est dépassé ({what}) : envisager une formule supérieure ou des "
        "heures supplémentaires.",
        "nearly": "Le forfait est presque consommé ({share} des {what}).",
        "point": "{id} {text} : non satisfait.",
        "unknown_point": "{id} {text} : à confirmer (ni constat, ni déclaration).",
        "signal": "Signal d'alerte : {text}.",
        "none": "aucune alerte",
        "uptime_line": "Disponibilité de {uptime} (objectif SLA de {target} {sla}), "
        "{incidents} incident(s).",
        "uptime_none": "Aucune disponibilité mesurée ce mois-ci.",
        "met": "atteint",
        "missed_word": "non atteint",
        "activity": "{tickets} ticket(s) traité(s){late} ; {updates} mise(s) à jour appliquée(s) "
        "en production ; {tests}.",
        "late": " (dont {count} hors délai)",
        "tests": "{passed} test(s) de restauration réussi(s) sur {total}",
        "no_tests": "aucun test de restauration",
        "attention": "{count} point(s) demandent attention, dont {critical} critique(s) : voir "
        "les recommandations.",
        "calm": "Aucune alerte critique ce mois-ci.",
        "plan_preventive": "Cycle de mises à jour préventives (préproduction puis production)",
        "plan_restore": "Tests de restauration des sauvegardes ({cadence})",
        "daily": "quotidiens",
        "every": "tous les {days} jours, {count} prévus",
        "plan_held": "Examiner la mise à jour retenue {component} {before} -> {after} ({reason})",
        "plan_certificate": "Renouveler le certificat TLS (expire le {date})",
        "plan_report": "Rapport mensuel de {month}",
        "plan_audit": "Audit complet de la maintenance (règle des trois critiques)",
    },
}


def _say(lang: Lang, key: str, **values: object) -> str:
    return ADVICE[lang][key].format(**values)


def recommendations(
    audit: Json | None, tickets: Json | None, uptime: Json | None, lang: Lang
) -> list[dict[str, str]]:
    """Alerts, most serious first: {"level": critical|high|medium, "source", "text"}."""
    found: list[dict[str, str]] = []
    if audit and audit.get("alert"):
        found.append(_advice("critical", "audit_now", str(audit["alert"][lang])))
    if uptime is not None or not _failing(audit, "B1"):  # else B1's failure says it
        found += _uptime_advice(uptime, lang)
    found += _ticket_advice(tickets, lang)
    found += _audit_advice(audit, lang)
    return sorted(found, key=lambda item: LEVELS.index(item["level"]))


def _failing(audit: Json | None, point_id: str) -> bool:
    points = audit["points"] if audit else []
    return any(p["id"] == point_id and p["status"] in RED for p in points)


def _advice(level: str, source: str, text: str) -> dict[str, str]:
    return {"level": level, "source": source, "text": text}


def _uptime_advice(uptime: Json | None, lang: Lang) -> list[dict[str, str]]:
    if uptime is None or uptime.get("uptime_percent") is None:
        return [_advice("high", "monitor", _say(lang, "no_monitoring"))]
    found = []
    if uptime.get("sla_breached"):
        text = _say(
            lang,
            "sla_breached",
            uptime=percent(uptime["uptime_percent"], lang),
            target=percent(uptime["sla_target"], lang, 1),
        )
        found.append(_advice("critical", "sla", text))
    share = uptime["unknown_s"] / uptime["total_s"] if uptime.get("total_s") else 0
    if share > UNKNOWN_SHARE_ALERT:
        text = _say(lang, "unwatched", share=percent(100 * share, lang, 0))
        found.append(_advice("high", "monitor", text))
    return found


def _ticket_advice(tickets: Json | None, lang: Lang) -> list[dict[str, str]]:
    if not tickets:
        return []
    found = []
    missed = tickets["compliance"]["missed"]
    if missed:
        text = _say(lang, "missed", count=len(missed), ids=", ".join(missed))
        found.append(_advice("high", "sla", text))
    words = {"corrective": "corrective", "evolutive_hours": "evolutive"}
    for key, word in words.items():
        part = tickets["consumption"][key]
        name = _plan_word(word, lang)
        gauge = part.get("gauge")
        if part.get("over"):
            found.append(_advice("medium", "plan", _say(lang, "over", what=name)))
        elif gauge is not None and gauge >= GAUGE_NEARLY_USED:
            share = percent(100 * gauge, lang, 0)
            found.append(_advice("medium", "plan", _say(lang, "nearly", share=share, what=name)))
    return found


def _plan_word(word: str, lang: Lang) -> str:
    return PLAN_TEXT[lang][word]


def _audit_advice(audit: Json | None, lang: Lang) -> list[dict[str, str]]:
    if not audit:
        return []
    found = []
    failing: set[str] = set()
    for point in audit["points"]:
        values = {"id": point["id"], "text": point["text"][lang]}
        if point["status"] in RED:
            failing.add(point["id"])
            text = _say(lang, "point", **values)
            found.append(_advice(point["priority"], f"audit:{point['id']}", text))
        elif point["status"] == "unknown" and point["priority"] == "critical":
            found.append(
                _advice("medium", f"audit:{point['id']}", _say(lang, "unknown_point", **values))
            )
    by_id = {signal.id: signal for signal in SIGNALS}
    for signal in audit["signals"]:
        known = by_id.get(signal["id"])
        if signal["state"] != "present" or (known and known.point in failing):
            continue  # a signal read from a failing point is already said by the point
        text = _say(lang, "signal", text=signal["text"][lang])
        found.append(_advice(signal["level"], f"signal:{signal['id']}", text))
    return found


def executive_summary(
    uptime: Json | None,
    tickets: Json | None,
    updates: Sequence[Json],
    restore_tests: Sequence[Json],
    advice: Sequence[Json],
    lang: Lang,
) -> list[str]:
    """Three lines: availability, the month's work, what needs attention."""
    return [
        _uptime_line(uptime, lang),
        _activity_line(tickets, updates, restore_tests, lang),
        _attention_line(advice, lang),
    ]


def _uptime_line(uptime: Json | None, lang: Lang) -> str:
    if uptime is None or uptime.get("uptime_percent") is None:
        return _say(lang, "uptime_none")
    return _say(
        lang,
        "uptime_line",
        uptime=percent(uptime["uptime_percent"], lang),
        target=percent(uptime["sla_target"], lang, 1),
        sla=_say(lang, "missed_word" if uptime["sla_breached"] else "met"),
        incidents=len(uptime.get("incidents", [])),
    )


def _activity_line(
    tickets: Json | None, updates: Sequence[Json], tests: Sequence[Json], lang: Lang
) -> str:
    count = len(tickets["tickets"]) if tickets else 0
    missed = len(tickets["compliance"]["missed"]) if tickets else 0
    promoted = sum(1 for update in updates if update.get("status") == "promoted")
    passed = sum(1 for test in tests if test.get("passed"))
    test_text = (
        _say(lang, "tests", passed=passed, total=len(tests)) if tests else _say(lang, "no_tests")
    )
    return _say(
        lang,
        "activity",
        tickets=count,
        late=_say(lang, "late", count=missed) if missed else "",
        updates=promoted,
        tests=test_text,
    )


def _attention_line(advice: Sequence[Json], lang: Lang) -> str:
    critical = sum(1 for item in advice if item["level"] == "critical")
    if not critical:
        return _say(lang, "calm")
    return _say(lang, "attention", count=len(advice), critical=critical)


def next_month_plan(
    month: Month,
    tier: str,
    last_update_at: datetime | None,
    restore_cadence_days: int,
    held: Sequence[Json],
    certificate: Json | None,
    audit_now: bool,
    lang: Lang,
) -> list[dict[str, str | None]]:
    """Planned actions of the month after `month`: {"action", "due": ISO date or None}."""
    following = month.following
    first = date(following.year, following.month, 1)
    last = date(following.following.year, following.following.month, 1) - timedelta(days=1)
    plan: list[dict[str, str | None]] = []
    if audit_now:
        plan.append({"action": _say(lang, "plan_audit"), "due": first.isoformat()})
    due = _preventive_due(tier, last_update_at, first, last)
    if due is not None:
        plan.append({"action": _say(lang, "plan_preventive"), "due": due.isoformat()})
    plan.append({"action": _restore_action(restore_cadence_days, first, last, lang), "due": None})
    for update in held:
        action = _say(
            lang,
            "plan_held",
            component=update.get("component", "?"),
            before=update.get("from_version", "?"),
            after=update.get("to_version", "?"),
            reason=update.get("reason", ""),
        )
        plan.append({"action": action, "due": None})
    if certificate and certificate.get("expires_on"):
        expires = date.fromisoformat(str(certificate["expires_on"]))
        if expires <= last + timedelta(days=30):
            text = _say(lang, "plan_certificate", date=day(expires, lang))
            plan.append({"action": text, "due": min(expires, last).isoformat()})
    report_month = following.following
    plan.append(
        {
            "action": _say(lang, "plan_report", month=_month_words(following, lang)),
            "due": date(report_month.year, report_month.month, 5).isoformat(),
        }
    )
    return plan


def _preventive_due(
    tier: str, last_update_at: datetime | None, first: date, last: date
) -> date | None:
    """Monthly (critique): every month. Quarterly (business): three months after the last
    update cycle, or now when none is known. Essentiel: none."""
    months = PREVENTIVE_MONTHS.get(tier)
    if months is None:
        return None
    if months == 1 or last_update_at is None:
        return first
    next_due = months_before(last_update_at, -months).date()
    if next_due > last:
        return None
    return max(next_due, first)


def _restore_action(cadence: int, first: date, last: date, lang: Lang) -> str:
    days = (last - first).days + 1
    if cadence <= 1:
        return _say(lang, "plan_restore", cadence=_say(lang, "daily"))
    count = math.ceil(days / cadence)
    return _say(lang, "plan_restore", cadence=_say(lang, "every", days=cadence, count=count))


def _month_words(month: Month, lang: Lang) -> str:
    return month_name(str(month), lang)

"""The words of the monthly client report in French and English, and numbers, dates and
durations written the way each language writes them ("12 mai 2024", "99,82 %")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = ("fr", "en")
NBSP = "\u00a0"  # French puts a non-breaking space before % and between thousands

MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
}  # fmt: skip

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "title": "Monthly maintenance report",
        "month": "Month",
        "client": "Client",
        "site": "Site",
        "tier": "Plan",
        "generated": "Generated on",
        "summary": "Executive summary",
        "tickets": "Tickets handled",
        "plan": "Plan consumption",
        "updates": "Updates done",
        "uptime": "Availability",
        "backups": "Backups and restore tests",
        "recommendations": "Alerts and recommendations",
        "next_month": "Next month's plan",
        "id": "Ticket",
        "ticket_title": "Title",
        "priority": "Priority",
        "time_spent": "Time spent",
        "status": "Status",
        "first_response": "First response",
        "no_tickets": "No ticket was opened this month.",
        "no_ticket_file": "No ticket file is set for this site.",
        "corrective": "Corrective tickets",
        "evolutive": "Evolutive hours",
        "used_of": "{used} used of {available}",
        "unlimited": "unlimited",
        "carried": "including {carried} carried over from last month",
        "over": "over the plan by {over}",
        "date": "Date",
        "component": "Component",
        "from_to": "Version",
        "environment": "Environment",
        "no_updates": "No update was applied to production this month.",
        "uptime_figure": "Uptime of the month",
        "sla_target": "SLA target",
        "sla_met": "SLA target met",
        "sla_breached": "SLA target missed",
        "no_monitoring": "No monitoring data for this month.",
        "incidents": "Incidents",
        "no_incidents": "No incident.",
        "start": "Start",
        "duration": "Duration",
        "detail": "Detail",
        "up": "Up",
        "down": "Down",
        "unknown": "Not monitored",
        "maintenance": "Scheduled maintenance",
        "day": "Day",
        "snapshots": "Production snapshots this month",
        "newest_snapshot": "Latest snapshot",
        "restore_tests": "Restore tests",
        "no_restore_tests": "No restore test this month.",
        "passed": "passed",
        "failed": "failed",
        "recovery": "Time to recovery",
        "no_recommendations": "No alert: nothing to recommend this month.",
        "audit_verdict": "Checklist verdict",
        "action": "Planned action",
        "due": "By",
        "none": "none",
        "level_critical": "critical",
        "level_high": "high",
        "level_medium": "medium",
        "gauge": "Gauge",
        "colon": ": ",
    },
    "fr": {
        "title": "Rapport mensuel de maintenance",
        "month": "Mois",
        "client": "Client",
        "site": "Site",
        "tier": "Formule",
        "generated": "Généré le",
        "summary": "Synthèse",
        "tickets": "Tickets traités",
        "plan": "Consommation du forfait",
        "updates": "Mises à jour effectuées",
        "uptime": "Disponibilité",
        "backups": "Sauvegardes et tests de restauration",
        "recommendations": "Alertes et recommandations",
        "next_month": "Prévisionnel du mois prochain",
        "id": "Ticket",
        "ticket_title": "Intitulé",
        "priority": "Priorité",
        "time_spent": "Temps passé",
        "status": "Statut",
        "first_response": "Première réponse",
        "no_tickets": "Aucun ticket ouvert ce mois-ci.",
        "no_ticket_file": "Aucun fichier de tickets n'est défini pour ce site.",
        "corrective": "Tickets correctifs",
        "evolutive": "Heures d'évolutif",
        "used_of": "{used} utilisés sur {available}",
        "unlimited": "illimité",
        "carried": "dont {carried} reportés du mois précédent",
        "over": "dépassement de {over}",
        "date": "Date",
        "component": "Composant",
        "from_to": "Version",
        "environment": "Environnement",
        "no_updates": "Aucune mise à jour n'a été appliquée en production ce mois-ci.",
        "uptime_figure": "Disponibilité du mois",
        "sla_target": "Objectif SLA",
        "sla_met": "Objectif SLA atteint",
        "sla_breached": "Objectif SLA non atteint",
        "no_monitoring": "Aucune donnée de surveillance pour ce mois.",
        "incidents": "Incidents",
        "no_incidents": "Aucun incident.",
        "start": "Début",
        "duration": "Durée",
        "detail": "Détail",
        "up": "Disponible",
        "down": "Indisponible",
        "unknown": "Non surveillé",
        "maintenance": "Maintenance planifiée",
        "day": "Jour",
        "snapshots": "Sauvegardes de production ce mois-ci",
        "newest_snapshot": "Dernière sauvegarde",
        "restore_tests": "Tests de restauration",
        "no_restore_tests": "Aucun test de restauration ce mois-ci.",
        "passed": "réussi",
        "failed": "échoué",
        "recovery": "Temps de remise en service",
        "no_recommendations": "Aucune alerte : rien à recommander ce mois-ci.",
        "audit_verdict": "Verdict de la check-list",
        "action": "Action prévue",
        "due": "Échéance",
        "none": "aucun",
        "level_critical": "critique",
        "level_high": "élevé",
        "level_medium": "moyen",
        "gauge": "Jauge",
        "colon": NBSP + ": ",
    },
}


def label(lang: Lang, key: str, **values: object) -> str:
    text = CATALOGUE[lang][key]
    return text.format(**{k: str(v) for k, v in values.items()}) if values else text


def number(value: float, lang: Lang, decimals: int = 0) -> str:
    """1234.5 -> "1,234.5" (en) or "1 234,5" (fr, non-breaking spaces)."""
    text = f"{value:,.{decimals}f}"
    if lang == "fr":
        text = text.replace(",", NBSP).replace(".", ",")
    return text


def percent(value: float, lang: Lang, decimals: int = 2) -> str:
    """99.8234 -> "99.82%" (en) or "99,82 %" (fr)."""
    sign = f"{NBSP}%" if lang == "fr" else "%"
    return number(value, lang, decimals) + sign


def day(moment: date | datetime, lang: Lang) -> str:
    """ "12 May 2024" / "12 mai 2024"; the first of a month is "1er" in French."""
    name = MONTHS[lang][moment.month - 1]
    first = "1er" if lang == "fr" and moment.day == 1 else str(moment.day)
    return f"{first} {name} {moment.year}"


def day_time(moment: datetime, lang: Lang) -> str:
    """ "12 May 2024, 14:05" / "12 mai 2024 à 14 h 05" (the moment as given, already local)."""
    if lang == "fr":
        return f"{day(moment, lang)} à {moment.hour} h {moment.minute:02d}"
    return f"{day(moment, lang)}, {moment.hour:02d}:{moment.minute:02d}"


def month_name(month: str, lang: Lang) -> str:
    """ "2024-05" -> "May 2024" / "mai 2024"."""
    year, number_ = int(month[:4]), int(month[5:7])
    return f"{MONTHS[lang][number_ - 1]} {year}"


def duration(seconds: float, lang: Lang) -> str:
    """3900 -> "1 h 05 min"; 45 -> "45 s"; 90000 -> "1 d 1 h" / "1 j 1 h"."""
    total = round(seconds)
    if seconds < 10 and not float(seconds).is_integer():
        return f"{number(seconds, lang, 1)}{NBSP}s"
    if total < 60:
        return f"{total}{NBSP}s"
    minutes, hours = total // 60 % 60, total // 3600
    if hours >= 24:
        days = "j" if lang == "fr" else "d"
        return f"{hours // 24}{NBSP}{days} {hours % 24}{NBSP}h"
    if hours:
        return f"{hours}{NBSP}h {minutes:02d}{NBSP}min"
    return f"{minutes}{NBSP}min"


def hours(value: float, lang: Lang) -> str:
    """1.5 -> "1.5 h" / "1,5 h"; whole hours without decimals."""
    decimals = 0 if float(value).is_integer() else 2
    text = number(value, lang, decimals)
    if decimals and text.endswith("0"):
        text = text[:-1]
    return f"{text}{NBSP}h"

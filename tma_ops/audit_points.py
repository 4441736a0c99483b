"""The maintenance audit's reference data: the 28-point checklist and the 10 warning signals,
in English and French (the client report speaks the client's language)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Priority = Literal["critical", "high", "medium"]
Level = Literal["critical", "high", "medium"]
Text = dict[str, str]  # language ("en", "fr") -> text

PILLARS: dict[str, Text] = {
    "security": {"en": "Active security", "fr": "Sécurité active"},
    "supervision": {"en": "Supervision", "fr": "Supervision"},
    "backups": {"en": "Backups", "fr": "Sauvegardes"},
    "updates": {"en": "Updates and staging", "fr": "Mises à jour et préproduction"},
    "organisation": {"en": "Organisation", "fr": "Organisation"},
}
PILLAR_OF_LETTER = {
    "A": "security",
    "B": "supervision",
    "C": "backups",
    "D": "updates",
    "E": "organisation",
}


@dataclass(frozen=True)
class Point:
    id: str
    priority: Priority
    text: Text

    @property
    def pillar(self) -> str:
        return PILLAR_OF_LETTER[self.id[0]]


def _point(id_: str, priority: Priority, en: str, fr: str) -> Point:
    return Point(id_, priority, {"en": en, "fr": fr})


POINTS: tuple[Point, ...] = (
    _point("A1", "critical", "Dependencies audited regularly (npm audit, WPScan or equivalent)",
           "Dépendances auditées régulièrement (npm audit, WPScan ou équivalent)"),
    _point("A2", "critical", "Security updates applied within 72 h of publication",
           "Mises à jour de sécurité appliquées sous 72 h après publication"),
    _point("A3", "high", "TLS certificate valid and renewal automated",
           "Certificat TLS valide et renouvellement automatisé"),
    _point("A4", "critical", "Accesses (admin, SSH, DB) reviewed and cleaned in the last 12 months",
           "Accès (admin, SSH, BDD) revus et nettoyés dans les 12 derniers mois"),
    _point("A5", "high", "WAF or CDN protection in place",
           "Protection WAF ou CDN en place"),
    _point("B1", "critical", "Uptime monitoring active with automatic alerts",
           "Surveillance de disponibilité active avec alertes automatiques"),
    _point("B2", "high", "Application and server logs accessible and read regularly",
           "Journaux applicatifs et serveur accessibles et lus régulièrement"),
    _point("B3", "high", "Error tracking (Sentry or equivalent) in place",
           "Suivi des erreurs (Sentry ou équivalent) en place"),
    _point("B4", "medium", "Load time watched (Lighthouse, Core Web Vitals)",
           "Temps de chargement surveillé (Lighthouse, Core Web Vitals)"),
    _point("B5", "critical", "Emergency procedure (contacts, rollback, escalation) documented",
           "Procédure d'urgence (contacts, rollback, escalade) documentée"),
    _point("C1", "critical", "Automatic database backups in place (defined frequency)",
           "Sauvegardes automatiques de la base en place (fréquence définie)"),
    _point("C2", "critical", "Backups stored off-site (not on the same server)",
           "Sauvegardes stockées hors site (pas sur le même serveur)"),
    _point("C3", "critical", "A restore was tested and validated in the last 3 months",
           "Une restauration a été testée et validée dans les 3 derniers mois"),
    _point("C4", "high", "Backup retention defined and respected",
           "Rétention des sauvegardes définie et respectée"),
    _point("D1", "critical", "A staging environment exists and is kept up to date",
           "Un environnement de préproduction existe et est tenu à jour"),
    _point("D2", "critical", "Every update is tested on staging before production",
           "Chaque mise à jour est testée en préproduction avant la production"),
    _point("D3", "high", "Main CMS or framework on a supported version (< 2 majors behind)",
           "CMS ou framework principal en version supportée (< 2 versions majeures de retard)"),
    _point("D4", "high", "Obsolete or abandoned plugins/dependencies identified",
           "Extensions ou dépendances obsolètes ou abandonnées identifiées"),
    _point("D5", "medium", "A preventive update calendar is planned (monthly or quarterly)",
           "Un calendrier de mises à jour préventives est planifié (mensuel ou trimestriel)"),
    _point("E1", "high", "All requests go through a ticketing tool",
           "Toutes les demandes passent par un outil de tickets"),
    _point("E2", "high", "P0-P3 priority matrix defined and contractually accepted",
           "Matrice de priorités P0-P3 définie et acceptée contractuellement"),
    _point("E3", "high", "Response and resolution SLAs written in the contract",
           "SLA de réponse et de résolution inscrits au contrat"),
    _point("E4", "high", "Monthly report sent with plan consumption",
           "Rapport mensuel envoyé avec la consommation du forfait"),
    _point("E5", "medium",
           "Technical documentation up to date (architecture, procedures, contacts)",
           "Documentation technique à jour (architecture, procédures, contacts)"),
    _point("E6", "medium", "Client trained on the request channel",
           "Client formé au canal de demandes"),
    _point("E7", "high", "Critical accesses kept in a shared password manager",
           "Accès critiques conservés dans un gestionnaire de mots de passe partagé"),
    _point("E8", "medium", "Maintenance review with the client at least once a year",
           "Revue de maintenance avec le client au moins une fois par an"),
    _point("E9", "high", "Contract states explicitly what is outside maintenance scope",
           "Le contrat précise explicitement ce qui est hors du périmètre de maintenance"),
)  # fmt: skip
POINT_BY_ID = {point.id: point for point in POINTS}


@dataclass(frozen=True)
class Signal:
    id: str
    level: Level
    point: str  # the checklist point whose failure reveals it
    text: Text


SIGNALS: tuple[Signal, ...] = (
    Signal("email_only", "high", "E1", {"en": "Everything goes through email",
                                        "fr": "Tout passe par e-mail"}),
    Signal("no_tickets", "high", "E1", {"en": "No ticket tracking",
                                        "fr": "Aucun suivi de tickets"}),
    Signal("no_staging", "critical", "D1", {"en": "No staging environment",
                                            "fr": "Pas d'environnement de préproduction"}),
    Signal("stale_updates", "critical", "", {"en": "Updates never done (> 6 months)",
                                             "fr": "Mises à jour jamais faites (> 6 mois)"}),
    Signal("no_tested_backup", "critical", "C3", {"en": "No tested backup",
                                                  "fr": "Aucune sauvegarde testée"}),
    Signal("no_monitoring", "high", "B1", {"en": "No uptime monitoring",
                                           "fr": "Aucune surveillance de disponibilité"}),
    Signal("no_report", "high", "E4", {"en": "No activity report",
                                       "fr": "Aucun rapport d'activité"}),
    Signal("no_sla", "medium", "E3", {"en": "No SLA", "fr": "Aucun SLA"}),
    Signal("no_documentation", "medium", "E5", {"en": "No documentation",
                                                "fr": "Aucune documentation"}),
    Signal("no_emergency_procedure", "high", "B5", {"en": "No emergency procedure",
                                                    "fr": "Aucune procédure d'urgence"}),
)  # fmt: skip
RULE_OF_THREE = ("no_staging", "stale_updates", "no_tested_backup")

AUDIT_NOW: Text = {
    "en": "AUDIT NOW: no staging, no update for over 6 months and no tested backup. "
    "A major incident is not possible but probable.",
    "fr": "AUDIT IMMÉDIAT : pas de préproduction, aucune mise à jour depuis plus de 6 mois et "
    "aucune sauvegarde testée. Un incident majeur n'est pas possible mais probable.",
}
VERDICT: dict[str, Text] = {
    "sufficient": {
        "en": "Maintenance sufficient: every critical point is green.",
        "fr": "Maintenance suffisante : tous les points critiques sont au vert.",
    },
    "insufficient": {
        "en": "Maintenance insufficient: {count} critical point(s) not green ({ids}).",
        "fr": "Maintenance insuffisante : {count} point(s) critique(s) non au vert ({ids}).",
    },
    "high": {
        "en": "High points to cover within 30 days: {ids}.",
        "fr": "Points élevés à couvrir sous 30 jours : {ids}.",
    },
    "medium": {
        "en": "Good practice still open (medium): {ids}.",
        "fr": "Bonnes pratiques encore ouvertes (moyen) : {ids}.",
    },
}

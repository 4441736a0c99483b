"""When the monitor alerts (a pure decision) and how: a JSON webhook, an email over SMTP.

A site goes down after two failed probes in a row (one failure is often a blip), up on the
first good probe after that; a certificate under the warning threshold is told once a day.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tma_ops.model_monitor import AlertSpec, EmailAlerts
from tma_ops.monitor_store import AlertState
from tma_ops.redact import Redactor

FAILURES_FOR_DOWN = 2
HOOK_TIMEOUT_S = 15

SUBJECTS = {
    "en": {
        "down": "{site} is down",
        "up": "{site} is back up",
        "cert": "{site}: TLS certificate expires in {days} days",
    },
    "fr": {
        "down": "{site} est inaccessible",
        "up": "{site} est de nouveau accessible",
        "cert": "{site} : le certificat TLS expire dans {days} jours",
    },
}


@dataclass(frozen=True)
class Alert:
    site: str
    kind: str  # down | up | cert
    at: datetime
    url: str
    detail: str
    tls_days_left: int | None = None

    def subject(self, language: str = "en") -> str:
        template = SUBJECTS.get(language, SUBJECTS["en"])[self.kind]
        return template.format(site=self.site, days=self.tls_days_left)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "url": self.url,
            "detail": self.detail,
            "tls_days_left": self.tls_days_left,
        }


def decide(
    previous: AlertState,
    recent_ok: Sequence[bool],
    tls_days_left: int | None,
    tls_warn_days: int,
    today: date,
) -> tuple[AlertState, list[str]]:
    """The new alert state and the alerts to send, from the state last sent and the newest
    probes' outcomes (oldest first, the current one last)."""
    state, kinds = previous.state, []
    failures = _trailing_failures(recent_ok)
    if recent_ok and recent_ok[-1]:
        if state == "down":
            kinds.append("up")
        state = "up"
    elif failures >= FAILURES_FOR_DOWN:
        if state != "down":
            kinds.append("down")
        state = "down"
    cert_day = previous.cert_alert_day
    if (
        tls_days_left is not None
        and tls_days_left < tls_warn_days
        and cert_day != today.isoformat()
    ):
        kinds.append("cert")
        cert_day = today.isoformat()
    return AlertState(state, cert_day), kinds


def _trailing_failures(recent_ok: Sequence[bool]) -> int:
    count = 0
    for ok in reversed(recent_ok):
        if ok:
            break
        count += 1
    return count


def deliver(
    alert: Alert,
    spec: AlertSpec,
    language: str,
    log: Callable[[str], None],
    secrets: Sequence[str] = (),
) -> None:
    """Send `alert` to every hook; a failing hook is logged in one line and never raised."""
    hooks: list[tuple[str, Callable[[], None]]] = []
    if spec.webhook:
        url = spec.webhook
        hooks.append(("webhook", lambda: post_webhook(url, alert, language)))
    if spec.email:
        email = spec.email
        hooks.append(("email", lambda: send_email(email, alert, language)))
    redactor = Redactor(secrets)
    for name, send in hooks:
        try:
            send()
        except Exception as exc:  # a broken hook must never stop the watch
            reason = redactor.text(f"{type(exc).__name__}: {exc}").replace("\n", " ")
            log(f"{alert.site}: {alert.kind} alert not sent by {name}: {reason}")


def post_webhook(url: str, alert: Alert, language: str) -> None:
    body = dict(alert.to_json(), text=alert.subject(language))
    request = urllib.request.Request(
        url,
        data=json.dumps(body, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "tma-ops-monitor"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=HOOK_TIMEOUT_S) as response:
        response.read()


def send_email(spec: EmailAlerts, alert: Alert, language: str) -> None:
    message = EmailMessage()
    message["Subject"] = alert.subject(language)
    message["From"] = spec.from_
    message["To"] = ", ".join(spec.to)
    message.set_content(email_body(alert, language))
    with smtplib.SMTP(spec.smtp_host, spec.smtp_port, timeout=HOOK_TIMEOUT_S) as smtp:
        if spec.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if spec.username:
            smtp.login(spec.username, _password(spec))
        smtp.send_message(message)


def email_body(alert: Alert, language: str) -> str:
    labels = (
        ("URL", "Date (UTC)", "Détail") if language == "fr" else ("URL", "Time (UTC)", "Detail")
    )
    values = (alert.url, alert.at.strftime("%Y-%m-%d %H:%M:%S"), alert.detail)
    lines = [alert.subject(language), ""]
    lines += [f"{label}: {value}" for label, value in zip(labels, values, strict=True)]
    return "\n".join(lines) + "\n"


def _password(spec: EmailAlerts) -> str:
    if not spec.password_file:
        return ""
    return Path(spec.password_file).expanduser().read_text().strip()

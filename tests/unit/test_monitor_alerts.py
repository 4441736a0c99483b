"""When the monitor alerts: down after two failures in a row, up once back, certificate daily."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tma_ops.monitor_alerts import Alert, decide, email_body
from tma_ops.monitor_store import AlertState

pytestmark = pytest.mark.unit

TODAY = date(2026, 4, 15)


@pytest.mark.parametrize(
    ("previous", "recent", "expected_state", "expected_alerts"),
    [
        ("unknown", [True], "up", []),  # first look: nothing to tell
        ("unknown", [False], "unknown", []),  # one failure may be a blip
        ("unknown", [False, False], "down", ["down"]),
        ("up", [True, True], "up", []),
        ("up", [True, False], "up", []),  # flapping: not down yet
        ("up", [False, False], "down", ["down"]),
        ("down", [False, False], "down", []),  # told once
        ("down", [False, True], "up", ["up"]),
        ("down", [False], "down", []),
        ("up", [], "up", []),
    ],
)
def test_down_and_up_are_told_on_transitions_only(
    previous: str, recent: list[bool], expected_state: str, expected_alerts: list[str]
) -> None:
    state, alerts = decide(AlertState(previous), recent, None, 14, TODAY)
    assert (state.state, alerts) == (expected_state, expected_alerts)


@pytest.mark.parametrize(
    ("days_left", "last_day", "alerts", "day_after"),
    [
        (5, None, ["cert"], "2026-04-15"),
        (5, "2026-04-14", ["cert"], "2026-04-15"),  # once a day
        (5, "2026-04-15", [], "2026-04-15"),  # already told today
        (13, None, ["cert"], "2026-04-15"),
        (14, None, [], None),  # at the threshold: fine
        (-2, None, ["cert"], "2026-04-15"),  # expired
        (None, None, [], None),  # http, or no certificate read
    ],
)
def test_a_certificate_under_the_threshold_is_told_once_a_day(
    days_left: int | None, last_day: str | None, alerts: list[str], day_after: str | None
) -> None:
    state, sent = decide(AlertState("up", last_day), [True], days_left, 14, TODAY)
    assert sent == alerts and state.cert_alert_day == day_after and state.state == "up"


def test_a_down_site_with_an_expiring_certificate_gets_both_alerts() -> None:
    _state, sent = decide(AlertState("up"), [False, False], 3, 14, TODAY)
    assert sent == ["down", "cert"]


@pytest.mark.parametrize(
    ("kind", "language", "subject"),
    [
        ("down", "en", "shop is down"),
        ("down", "fr", "shop est inaccessible"),
        ("up", "fr", "shop est de nouveau accessible"),
        ("cert", "en", "shop: TLS certificate expires in 5 days"),
        ("cert", "fr", "shop : le certificat TLS expire dans 5 jours"),
    ],
)
def test_alert_texts_speak_the_client_s_language(kind: str, language: str, subject: str) -> None:
    alert = Alert("shop", kind, datetime(2026, 4, 15, 8, 0, tzinfo=UTC), "https://x/", "ok", 5)
    assert alert.subject(language) == subject
    assert email_body(alert, language).startswith(subject + "\n")

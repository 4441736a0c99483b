"""The client and monitor sections of a site: defaults, and one clear line for bad values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tma_ops.config import load_inventory
from tma_ops.errors import InventoryError
from tma_ops.model_monitor import MaintenanceWindow, sla_target
from tma_ops.monitor import monitor_check

pytestmark = pytest.mark.unit

DEMO = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"


def inventory_with(tmp_path: Path, **blog_keys: Any) -> Path:
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    document["sites"]["blog"].update(blog_keys)
    path = tmp_path / "tma.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_defaults_watch_production_s_first_http_check_for_a_paris_client(tmp_path: Path) -> None:
    site = load_inventory(inventory_with(tmp_path)).site("blog")
    assert (site.client.timezone, site.client.language, site.client.name) == (
        "Europe/Paris",
        "fr",
        None,
    )
    assert site.monitor.interval_s == 60 and site.monitor.tls_warn_days == 14
    assert sla_target(site.monitor, site.tier) == 99.5
    check = monitor_check(site)
    assert check.url.endswith("/blog/production/") and check.contains == "Atelier Lumière"


def test_a_webhook_url_is_a_secret_of_the_site(tmp_path: Path) -> None:
    hook = "https://hooks.example.org/T0/B0/abcdef123456"
    monitor = {"alerts": {"webhook": hook}, "sla_uptime": 99.9}
    site = load_inventory(inventory_with(tmp_path, monitor=monitor)).site("blog")
    assert hook in site.secrets() and sla_target(site.monitor, site.tier) == 99.9


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"client": {"timezone": "Europe/Pariss"}},
            "expected an IANA time zone like Europe/Paris, got 'Europe/Pariss'",
        ),
        ({"client": {"language": "de"}}, "client.language"),
        ({"monitor": {"url": "ftp://x"}}, "expected an http:// or https:// URL, got 'ftp://x'"),
        (
            {"monitor": {"maintenance_windows": [{"weekly": "sunday 2-4"}]}},
            "expected a weekly window like 'sun 02:00-04:00', got 'sunday 2-4'",
        ),
        (
            {"monitor": {"maintenance_windows": [{"weekly": "sun 25:00-04:00"}]}},
            "expected times between 00:00 and 24:00",
        ),
        (
            {
                "monitor": {
                    "maintenance_windows": [
                        {"start": "2026-04-02T10:00", "end": "2026-04-02T09:00"}
                    ]
                }
            },
            "expected end after start",
        ),
        (
            {
                "monitor": {
                    "maintenance_windows": [{"start": "tomorrow", "end": "2026-04-02T09:00"}]
                }
            },
            "expected an ISO date-time, got 'tomorrow'",
        ),
        (
            {"monitor": {"alerts": {"email": {"to": "a@b.fr", "smtp_host": "x"}}}},
            "monitor.alerts.email.from",
        ),
        ({"monitor": {"interval_s": 1}}, "monitor.interval_s"),
        (
            {"monitor": {"maintenance_windows": [{"start": "2026-04-02T10:00"}]}},
            "maintenance_windows.0: expected start and end (ISO date-times) or weekly",
        ),
    ],
)
def test_bad_values_give_one_line_naming_the_key(
    tmp_path: Path, keys: dict[str, Any], message: str
) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory_with(tmp_path, **keys))
    text = str(caught.value)
    assert message in text and "\n" not in text and "sites.blog" in text


@pytest.mark.parametrize(
    ("text", "weekday", "start", "minutes"),
    [
        ("sun 02:00-04:00", 6, "02:00", 120),
        ("mon 23:30-00:30", 0, "23:30", 60),
        ("sat 22:00-24:00", 5, "22:00", 120),
        ("  wed 00:00 - 06:15 ", 2, "00:00", 375),
    ],
)
def test_weekly_windows_are_read_in_local_time(
    text: str, weekday: int, start: str, minutes: int
) -> None:
    window = MaintenanceWindow(weekly=text)
    begins, duration = window.bounds()
    assert (window.weekday, begins.strftime("%H:%M"), duration) == (weekday, start, minutes)

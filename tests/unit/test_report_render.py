"""Laying the report document out: HTML (inline CSS and SVG, escaped), Markdown (tables, a text
gauge), JSON (the document itself), every figure written for the report's language."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from tma_ops.report_render import markdown_cell, render

pytestmark = pytest.mark.unit
NB = "\u00a0"
DAY = 86400


def document(lang: str = "fr") -> dict[str, Any]:
    ticket = {"id": "T-1", "title": "<script>alert(1)</script> | pipe", "priority": "P1",
              "kind": "corrective", "opened": "2024-05-07T16:30:00+02:00",
              "time_spent_minutes": 90, "status": "résolu"}  # fmt: skip
    check = {"status": "late", "elapsed_hours": 9.5, "target_hours": 8.0, "clock": "business"}
    days = [
        {"date": f"2024-05-{n:02d}", "day": n, "up_s": DAY - 600 * (n == 3),
         "down_s": 600 * (n == 3), "maintenance_s": 0, "unknown_s": 0}
        for n in range(1, 32)
    ]  # fmt: skip
    site = {
        "site": "blog",
        "tier": "business",
        "timezone": "Europe/Paris",
        "summary": ["line one", "line two", "line three"],
        "tickets": {
            "tickets": [ticket],
            "compliance": {"tickets": [{"id": "T-1", "first_response": check}], "missed": ["T-1"]},
            "consumption": {
                "corrective": {
                    "used": 6,
                    "available": 5,
                    "carried_over": 0,
                    "over": 1,
                    "gauge": 1.2,
                },
                "evolutive_hours": {
                    "used": 1.5,
                    "available": 4.0,
                    "carried_over": 2.0,
                    "over": 0,
                    "gauge": 0.375,
                },
            },
        },
        "uptime": {
            "uptime_percent": 99.8234,
            "sla_target": 99.5,
            "sla_breached": False,
            "up_s": 30 * DAY,
            "down_s": 600,
            "maintenance_s": 0,
            "unknown_s": DAY - 600,
            "incidents": [
                {
                    "start": "2024-05-03T08:00:00+00:00",
                    "end": "2024-05-03T08:10:00+00:00",
                    "duration_s": 600,
                    "detail": "got 503 <b>",
                }
            ],
            "days": days,
        },
        "updates": [
            {
                "at": "2024-05-12T09:00:00+00:00",
                "component": "seo",
                "from": "1.0.0",
                "to": "1.1.0",
                "status": "promoted",
            }
        ],
        "backups": {
            "snapshots_in_month": 4,
            "newest_snapshot_at": "2024-05-30T01:00:00+00:00",
            "restore_tests": [
                {
                    "tested_at": "2024-05-12T02:00:00+00:00",
                    "passed": True,
                    "snapshot_id": "S1",
                    "time_to_recovery_s": 42.0,
                    "cause": None,
                }
            ],
        },
        "audit": {"verdict": {"overall": {"en": "Maintenance sufficient", "fr": "Suffisante"}}},
        "recommendations": [{"level": "critical", "source": "sla", "text": "do <this> now"}],
        "next_month": [{"action": "Preventive update cycle", "due": "2024-06-01"}],
    }
    return {"format": 1, "month": "2024-05", "lang": lang, "generated_at": "2024-06-01T08:00:00",
            "client": {"name": "Boulangerie & fils"}, "sites": [site]}  # fmt: skip


def test_html_is_self_contained_escaped_and_charted() -> None:
    html = render(document("fr"), "html").decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Boulangerie &amp; fils" in html and "do &lt;this&gt; now" in html
    assert "got 503 &lt;b&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched
    assert "<style>" in html and "@page" in html
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 3  # two gauges and the uptime chart
    for svg in svgs:
        ET.fromstring(svg)
    assert f"99,82{NB}%" in html and "Objectif SLA atteint" in html
    assert "12 mai 2024" in html and "7 mai 2024" in html
    titles = re.findall(r"<h3>(.*?)</h3>", html)
    assert titles == [
        "1. Synthèse", "2. Tickets traités", "3. Consommation du forfait",
        "4. Mises à jour effectuées", "5. Disponibilité", "6. Sauvegardes et tests de restauration",
        "7. Alertes et recommandations", "8. Prévisionnel du mois prochain",
    ]  # fmt: skip


def test_english_html() -> None:
    html = render(document("en"), "html").decode()
    assert "99.82%" in html and "12 May 2024" in html and "SLA target met" in html
    assert "<h3>7. Alerts and recommendations</h3>" in html
    assert "6 used of 5; over the plan by 1" in html


def test_markdown_has_tables_and_a_text_gauge() -> None:
    md = render(document("fr"), "md").decode()
    assert "# Rapport mensuel de maintenance" in md
    assert f"Client{NB}: Boulangerie & fils · Mois{NB}: mai 2024" in md
    assert "| T-1 | \\<script>alert(1)\\</script> \\| pipe | P1 | 7 mai 2024 | en retard ⚠ |" in md
    assert (
        f"**Tickets correctifs**{NB}: 6 utilisés sur 5; dépassement de 1 `[{'#' * 20}] 120{NB}%`"
        in md
    )
    assert f"`[{'#' * 8}{'-' * 12}] 38{NB}%`" in md
    assert f"**Disponibilité du mois{NB}: 99,82{NB}%**" in md
    assert "| seo | 1.0.0 → 1.1.0 | en production |" in md
    assert "<svg" not in md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in rows)


def test_json_is_the_document() -> None:
    assert json.loads(render(document("en"), "json")) == document("en")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a|b", "a\\|b"),
        ("two\nlines", "two lines"),
        (3, "3"),
        ("  spaced  out ", "spaced out"),
        ("<b>x</b>", "\\<b>x\\</b>"),
        ("a\\b", "a\\\\b"),
    ],
)
def test_markdown_cells(value: object, expected: str) -> None:
    assert markdown_cell(value) == expected

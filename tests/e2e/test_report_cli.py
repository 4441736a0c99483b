"""`tma-ops report` through the real CLI on the demo workspace, for the current month: a real
cycle (blog promoted, shop rolled back) and restore test in the journal, a monitor database
holding a month of probes with an incident and a gap, and a ticket file of the month; the
client's report in French and English, in all four formats. The PDF's uptime chart is rendered
to an image and must show its coloured bars."""

from __future__ import annotations

import calendar
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdfium2 as pdfium
import pytest
from e2e_support import Workspace, edit_inventory, make_workspace

from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK
from tma_ops.monitor_store import MonitorStore, ProbeResult
from tma_ops.report_charts import COLOURS

pytestmark = pytest.mark.e2e
CLIENT = "Boulangerie Martin"
PARIS = ZoneInfo("Europe/Paris")
GAP_DAYS = (10, 11)  # the monitor was not running
INCIDENT = (3, 10, 12)  # day, from hour, to hour (local): the site answered 503
TITLES = {
    "fr": ["Synthèse", "Tickets traités", "Consommation du forfait", "Mises à jour effectuées",
           "Disponibilité", "Sauvegardes et tests de restauration", "Alertes et recommandations",
           "Prévisionnel du mois prochain"],
    "en": ["Executive summary", "Tickets handled", "Plan consumption", "Updates done",
           "Availability", "Backups and restore tests", "Alerts and recommendations",
           "Next month's plan"],
}  # fmt: skip


@dataclass
class Reported:
    workspace: Workspace
    month: str
    days: int
    files: dict[tuple[str, str], Path]


def seed_monitor(state_dir: Path, site: str, year: int, month: int) -> None:
    """Hourly probes and heartbeats over the whole month, in the client's zone."""
    at = datetime(year, month, 1, tzinfo=PARIS).astimezone(UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=PARIS).astimezone(UTC)
    with MonitorStore.in_state_dir(state_dir) as store:
        while at < end:
            local = at.astimezone(PARIS)
            if local.day not in GAP_DAYS:
                store.record_heartbeat(at, 3600)
                down = local.day == INCIDENT[0] and INCIDENT[1] <= local.hour < INCIDENT[2]
                detail = "expected status 200, got 503" if down else "status 200"
                probe = ProbeResult(site, at, not down, 503 if down else 200, 40, detail, 60)
                store.record_probe(probe)
            at += timedelta(hours=1)


def add_tickets(path: Path, year: int, month: int) -> None:
    """Tickets of the current month after the demo's own (May 2024)."""
    day = f"{year:04d}-{month:02d}"
    with path.open("a", encoding="utf-8") as rows:
        rows.write(
            f"B-1,Erreur 500 sur la boutique,P0,corrective,{day}-03 10:05,{day}-03 10:40,"
            f"{day}-03 12:10,2h00,résolu\n"
            f"B-2,Formulaire <contact> | cassé,P1,corrective,{day}-04 09:00,{day}-04 11:00,,45,"
            "en cours\n"
            f"B-3,Texte de la page À propos,P3,evolutive,{day}-05 10:00,{day}-05 11:00,"
            f"{day}-06 16:00,1h30,livré\n"
        )


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for workspace in make_workspace(tmp_path_factory.mktemp("report") / "ws", monkeypatch):
            yield prepare(workspace, tmp_path_factory.mktemp("out"))


def prepare(workspace: Workspace, out: Path) -> Reported:
    client = {"name": CLIENT, "timezone": "Europe/Paris", "language": "fr"}
    edit_inventory(
        workspace,
        "blog",
        site={
            "client": client,
            "monitor": {"maintenance_windows": [{"weekly": "sun 02:00-03:00"}]},
        },
    )
    edit_inventory(workspace, "shop", site={"client": client})
    now = datetime.now(PARIS)
    add_tickets(workspace.root / "tickets-blog.csv", now.year, now.month)
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK
    assert workspace.cli("cycle", "shop").returncode == EXIT_ROLLED_BACK
    restore = workspace.cli("restore-test", "blog")
    assert restore.returncode == EXIT_OK, restore.stderr
    seed_monitor(workspace.root / "state", "blog", now.year, now.month)
    month = f"{now.year:04d}-{now.month:02d}"
    files = {}
    for lang in ("fr", "en"):
        for fmt in ("json", "html", "md", "pdf"):
            path = out / f"report-{lang}.{fmt}"
            done = workspace.cli(
                "report", "--client", CLIENT, "--month", month, "--lang", lang,
                "--format", fmt, "--output", str(path),
            )  # fmt: skip
            assert done.returncode == EXIT_OK, done.stderr
            files[(lang, fmt)] = path
    demo_month = workspace.cli("report", "blog", "--month", "2024-05", "--format", "md")
    assert demo_month.returncode == EXIT_OK, demo_month.stderr
    files[("fr", "2024-05")] = out / "report-2024-05.md"
    files[("fr", "2024-05")].write_text(demo_month.stdout, encoding="utf-8")
    return Reported(workspace, month, calendar.monthrange(now.year, now.month)[1], files)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_json_document_gathers_every_source(reported: Reported, lang: str) -> None:
    document = json.loads(reported.files[(lang, "json")].read_text(encoding="utf-8"))
    assert (document["month"], document["lang"], document["client"]["name"]) == (
        reported.month, lang, CLIENT,
    )  # fmt: skip
    blog, shop = document["sites"]
    assert (blog["site"], shop["site"]) == ("blog", "shop")
    assert len(blog["summary"]) == 3
    updates = {(u["component"], u["from"], u["to"], u["status"]) for u in blog["updates"]}
    assert updates == {
        ("gallery", "2.0.0", "2.0.1", "promoted"),
        ("seo", "1.0.0", "1.1.0", "promoted"),
    }
    assert {u["status"] for u in shop["updates"]} == {"rolled-back"}
    assert [t["id"] for t in blog["tickets"]["tickets"]] == ["B-1", "B-2", "B-3"]
    assert blog["tickets"]["consumption"]["corrective"]["used"] == 2
    assert shop["tickets"] is None
    uptime = blog["uptime"]
    assert len(uptime["days"]) == reported.days
    assert uptime["down_s"] == 2 * 3600 and len(uptime["incidents"]) == 1
    assert [d["unknown_s"] for d in uptime["days"] if d["day"] == GAP_DAYS[1]] == [86400]
    assert 99 < uptime["uptime_percent"] < 100 and uptime["sla_breached"] is False
    assert shop["uptime"]["uptime_percent"] is None  # the monitor holds nothing for shop
    tests = blog["backups"]["restore_tests"]
    assert [t["passed"] for t in tests] == [True]
    assert blog["backups"]["snapshots_in_month"] >= 2
    assert len(blog["audit"]["points"]) == 28
    assert blog["recommendations"] and all(r["text"] for r in blog["recommendations"])
    assert blog["next_month"][-1]["action"]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_html_and_markdown_lay_out_every_section(reported: Reported, lang: str) -> None:
    html = reported.files[(lang, "html")].read_text(encoding="utf-8")
    md = reported.files[(lang, "md")].read_text(encoding="utf-8")
    for number, title in enumerate(TITLES[lang], start=1):
        heading = f"{number}. {title}".replace("'", "&#39;")
        assert html.count(f"<h3>{heading}</h3>") == 2  # blog and shop
        assert md.count(f"### {number}. {title}\n") == 2
    assert html.count("<svg") == 3  # blog: two gauges and the chart; shop: no tickets, no monitor
    assert "Formulaire &lt;contact&gt; | cassé" in html
    assert "| B-2 | Formulaire \\<contact> \\| cassé | P1 |" in md
    assert "| gallery | 2.0.0 → 2.0.1 |" in md
    words = {"fr": "en production", "en": "in production"}[lang]
    assert words in html and words in md


def test_the_demo_month_of_tickets_reports_in_the_client_language(reported: Reported) -> None:
    md = reported.files[("fr", "2024-05")].read_text(encoding="utf-8")
    assert md.startswith("# Rapport mensuel de maintenance")  # the client's language: fr
    assert "Mois\u00a0: mai 2024" in md
    for ticket in ("BLOG-121", "BLOG-122", "BLOG-123", "BLOG-124", "BLOG-125", "BLOG-126"):
        assert f"| {ticket} |" in md
    assert "Aucune donnée de surveillance pour ce mois." in md
    assert "Aucune mise à jour n'a été appliquée en production ce mois-ci." in md


def chart_pixels(pdf_path: Path) -> dict[str, int]:
    """Pixels of each state's colour inside the uptime chart of the PDF, found by its axis
    label "50%" (the chart's bars stand right of it)."""
    pdf = pdfium.PdfDocument(str(pdf_path))
    scale = 2
    for index in range(len(pdf)):
        page = pdf[index]
        found = page.get_textpage().search("50%").get_next()
        if not found:
            continue
        _left, bottom, right, top = page.get_textpage().get_charbox(found[0] + found[1] - 1)
        image = page.render(scale=scale).to_pil().convert("RGB")
        height = page.get_height()
        middle = (bottom + top) / 2
        box = (
            int((right + 2) * scale), int((height - middle - 44) * scale),
            int((right + 345) * scale), int((height - middle + 44) * scale),
        )  # fmt: skip
        region = image.crop(box)
        counts = {state: 0 for state in ("up", "down", "unknown", "white")}
        wanted = {s: _rgb(COLOURS[s]) for s in ("up", "down", "unknown")} | {"white": (255,) * 3}
        data = region.tobytes()
        for offset in range(0, len(data), 3):
            pixel = data[offset : offset + 3]
            for state, colour in wanted.items():
                if all(abs(a - b) <= 6 for a, b in zip(pixel, colour, strict=True)):
                    counts[state] += 1
        counts["total"] = region.width * region.height
        return counts
    raise AssertionError(f"{pdf_path}: no uptime chart (no '50%' axis label) in the PDF")


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_pdf_draws_the_uptime_chart(reported: Reported, lang: str) -> None:
    path = reported.files[(lang, "pdf")]
    assert path.read_bytes().startswith(b"%PDF-")
    counts = chart_pixels(path)
    # Most of the chart is green bars; the incident shows red, the monitor's gap grey.
    assert counts["up"] > counts["total"] * 0.3, counts
    assert counts["down"] > 0 and counts["unknown"] > counts["down"], counts
    assert counts["white"] < counts["total"] * 0.6, counts

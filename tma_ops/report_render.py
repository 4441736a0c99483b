"""Lays the report document (tma_ops.report_data) out as HTML (self-contained: inline CSS and
SVG, print-friendly), Markdown, PDF (the HTML through WeasyPrint) or JSON (the document itself).
Every figure is written the way the report's language writes it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined

from tma_ops.errors import TmaError
from tma_ops.report_charts import gauge_svg, text_gauge, uptime_svg
from tma_ops.report_text import (
    Lang,
    day,
    day_time,
    duration,
    hours,
    label,
    month_name,
    number,
    percent,
)
from tma_ops.response_sla import TEXT as RESPONSE_TEXT

Format = Literal["html", "pdf", "md", "json"]
FORMATS: tuple[Format, ...] = ("html", "pdf", "md", "json")


def render(document: dict[str, Any], fmt: Format) -> bytes:
    if fmt == "json":
        return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    if fmt == "md":
        return render_markdown(document).encode()
    html = render_html(document)
    if fmt == "html":
        return html.encode()
    return html_to_pdf(html)


def _environment(autoescape: bool) -> Environment:
    environment = Environment(
        loader=PackageLoader("tma_ops", "templates"),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["cell"] = markdown_cell
    return environment


def markdown_cell(value: object) -> str:
    """A value fit for one cell of a Markdown table: no pipe, no line break, no HTML tag."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<")


def render_html(document: dict[str, Any]) -> str:
    template = _environment(autoescape=True).get_template("report.html.j2")
    return template.render(**view(document, charts=True))


def render_markdown(document: dict[str, Any]) -> str:
    template = _environment(autoescape=False).get_template("report.md.j2")
    return template.render(**view(document, charts=False))


def html_to_pdf(html: str) -> bytes:
    try:
        from weasyprint import HTML  # loads pango: only when a PDF is asked for
    except (ImportError, OSError) as exc:
        raise TmaError(
            f"--format pdf: WeasyPrint cannot be loaded ({str(exc).splitlines()[0]}); "
            "expected the weasyprint package and the pango libraries (scripts/test-deps)"
        ) from exc
    pdf = HTML(string=html).write_pdf()
    assert pdf is not None  # no target given: the bytes are returned
    return bytes(pdf)


def view(document: dict[str, Any], charts: bool) -> dict[str, Any]:
    """What the templates show: labels and every value already written for the language."""
    lang: Lang = document["lang"]

    def t(key: str, **values: object) -> str:
        return label(lang, key, **values)

    return {
        "t": t,
        "lang": lang,
        "client": document["client"]["name"],
        "month": month_name(document["month"], lang),
        "generated": day(datetime.fromisoformat(document["generated_at"]), lang),
        "sites": [_site_view(site, lang, charts) for site in document["sites"]],
    }


def _site_view(site: dict[str, Any], lang: Lang, charts: bool) -> dict[str, Any]:
    zone = ZoneInfo(site["timezone"])
    return {
        "name": site["site"],
        "tier": site["tier"],
        "summary": site["summary"][:3],
        "tickets": _tickets_view(site["tickets"], lang, zone),
        "plan": _plan_view(site["tickets"], lang, charts),
        "updates": [
            {**u, "date": day(_local(u["at"], zone), lang), "status": _status(u["status"], lang)}
            for u in site["updates"]
        ],
        "uptime": _uptime_view(site["uptime"], lang, zone, charts),
        "backups": _backups_view(site["backups"], lang, zone),
        "recommendations": [
            {**item, "level_text": label(lang, f"level_{item['level']}")}
            for item in site["recommendations"]
        ],
        "next_month": [
            {"action": item["action"], "due": _due(item["due"], lang)}
            for item in site["next_month"]
        ],
        "verdict": site["audit"].get("verdict", {}).get("overall", {}).get(lang, ""),
    }


def _local(stamp: str, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(stamp).astimezone(zone)


def _due(due: str | None, lang: Lang) -> str:
    return "" if due is None else day(datetime.fromisoformat(due), lang)


def _status(status: str, lang: Lang) -> str:
    words = {
        "en": {"promoted": "in production", "rolled-back": "rolled back"},
        "fr": {"promoted": "en production", "rolled-back": "annulée (retour arrière)"},
    }
    return words[lang].get(status, status)


def _tickets_view(tickets: dict[str, Any] | None, lang: Lang, zone: ZoneInfo) -> dict[str, Any]:
    if tickets is None:
        return {"file": False, "rows": []}
    checks = {c["id"]: c for c in tickets["compliance"]["tickets"]}
    rows = []
    for ticket in tickets["tickets"]:
        check = checks.get(ticket["id"], {}).get("first_response", {})
        rows.append(
            {
                "id": ticket["id"],
                "title": ticket["title"],
                "priority": ticket["priority"],
                "opened": day(_local(ticket["opened"], zone), lang),
                "time_spent": duration(60 * ticket["time_spent_minutes"], lang)
                if ticket["time_spent_minutes"]
                else "-",
                "status": ticket["status"] or "",
                "response": RESPONSE_TEXT[lang].get(check.get("status", ""), ""),
                "late": check.get("status") in ("late", "open-late"),
            }
        )
    return {"file": True, "rows": rows}


def _plan_view(tickets: dict[str, Any] | None, lang: Lang, charts: bool) -> list[dict[str, Any]]:
    if tickets is None:
        return []
    used = tickets["consumption"]
    gauges = []
    for key, title_key, unit in (
        ("corrective", "corrective", "count"),
        ("evolutive_hours", "evolutive", "hours"),
    ):
        part = used[key]
        available = part["available"]
        write = (lambda v: hours(v, lang)) if unit == "hours" else (lambda v: number(v, lang))
        caption = label(
            lang,
            "used_of",
            used=write(part["used"]),
            available=label(lang, "unlimited") if available is None else write(available),
        )
        if part["carried_over"]:
            caption += f" ({label(lang, 'carried', carried=write(part['carried_over']))})"
        if part["over"]:
            caption += f"; {label(lang, 'over', over=write(part['over']))}"
        title = label(lang, title_key)
        gauges.append(
            {
                "title": title,
                "caption": caption,
                "svg": gauge_svg(title, part["used"], available, caption) if charts else "",
                "text": _text_gauge(part["used"], available, lang),
            }
        )
    return gauges


def _text_gauge(used: float, available: float | None, lang: Lang) -> str:
    if not available:
        return ""
    return f"{text_gauge(used, available)} {percent(100 * used / available, lang, 0)}"


def _uptime_view(
    uptime: dict[str, Any] | None, lang: Lang, zone: ZoneInfo, charts: bool
) -> dict[str, Any] | None:
    if uptime is None or uptime["uptime_percent"] is None:
        return None
    states = {s: label(lang, s) for s in ("up", "down", "maintenance", "unknown")}
    title = label(lang, "uptime")
    totals = {s: duration(uptime[f"{s}_s"], lang) for s in states}
    return {
        "figure": percent(uptime["uptime_percent"], lang),
        "target": percent(uptime["sla_target"], lang, 1),
        "sla": label(lang, "sla_breached" if uptime["sla_breached"] else "sla_met"),
        "breached": uptime["sla_breached"],
        "totals": [{"label": states[s], "value": totals[s]} for s in states],
        "incidents": [
            {
                "start": day_time(_local(i["start"], zone), lang),
                "duration": duration(i["duration_s"], lang),
                "detail": i["detail"],
            }
            for i in uptime["incidents"]
        ],
        "svg": uptime_svg(uptime["days"], states, title) if charts else "",
    }


def _backups_view(backups: dict[str, Any], lang: Lang, zone: ZoneInfo) -> dict[str, Any]:
    newest = backups["newest_snapshot_at"]
    return {
        "count": backups["snapshots_in_month"],
        "newest": day_time(_local(newest, zone), lang) if newest else label(lang, "none"),
        "tests": [
            {
                "date": day_time(_local(test["tested_at"], zone), lang),
                "snapshot": test["snapshot_id"],
                "result": label(lang, "passed" if test["passed"] else "failed"),
                "passed": test["passed"],
                "recovery": duration(test["time_to_recovery_s"], lang)
                if test["time_to_recovery_s"] is not None
                else (test["cause"] or ""),
            }
            for test in backups["restore_tests"]
        ],
    }

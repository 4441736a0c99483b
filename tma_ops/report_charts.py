"""The report's charts as plain SVG strings (no script): the plan consumption gauge and the
uptime of each day of the month. Deterministic (same input, same bytes) and escaped: every
text that comes from outside goes through `html.escape`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

STATES = ("up", "down", "maintenance", "unknown")  # bottom to top in each day's bar
COLOURS = {
    "up": "#2e7d32",
    "down": "#c62828",
    "maintenance": "#1565c0",
    "unknown": "#9e9e9e",
    "gauge": "#2e7d32",
    "gauge_over": "#c62828",
    "track": "#e0e0e0",
    "text": "#212121",
}
GAUGE_WIDTH, GAUGE_HEIGHT, GAUGE_BAR = 360, 54, 18
CHART_HEIGHT, BAR_AREA, BAR_STEP, LEFT = 190, 120, 14, 36


def _number(value: float) -> str:
    """Coordinates with at most two decimals and no trailing zeros: stable text."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def gauge_svg(title: str, used: float, available: float | None, caption: str) -> str:
    """A horizontal gauge: the share of the allowance used (red past the allowance, the bar then
    full with a mark where the allowance ends). Without an allowance (unlimited), an empty track
    and the caption only."""
    share = None if not available else used / available
    width = GAUGE_WIDTH - 2
    parts = [
        _svg_open(GAUGE_WIDTH, GAUGE_HEIGHT, title),
        f'<text x="1" y="13" font-size="12" fill="{COLOURS["text"]}">{escape(title)}</text>',
        f'<rect class="track" x="1" y="20" width="{width}" height="{GAUGE_BAR}" rx="3" '
        f'fill="{COLOURS["track"]}"/>',
    ]
    if share is not None and used > 0:
        over = share > 1
        filled = width * min(share, 1.0)
        colour = COLOURS["gauge_over"] if over else COLOURS["gauge"]
        parts.append(
            f'<rect class="used" x="1" y="20" width="{_number(filled)}" height="{GAUGE_BAR}" '
            f'rx="3" fill="{colour}"/>'
        )
        if over:
            mark = 1 + width / share
            parts.append(
                f'<line class="allowance" x1="{_number(mark)}" y1="17" x2="{_number(mark)}" '
                f'y2="{20 + GAUGE_BAR + 3}" stroke="{COLOURS["text"]}" stroke-width="2"/>'
            )
    parts.append(
        f'<text x="1" y="{GAUGE_HEIGHT - 2}" font-size="11" fill="{COLOURS["text"]}">'
        f"{escape(caption)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def uptime_svg(days: Sequence[Mapping[str, Any]], labels: Mapping[str, str], title: str) -> str:
    """One stacked bar per day of the month: up, down, maintenance and not monitored, each as
    its share of the day (days are 23 or 25 hours long across a daylight-saving change).
    `days` items: {"day": 1.., "up_s", "down_s", "maintenance_s", "unknown_s"}; `labels` names
    the four states for the legend."""
    width = LEFT + BAR_STEP * max(len(days), 1) + 8
    base = 12 + BAR_AREA
    parts = [_svg_open(width, CHART_HEIGHT, title)]
    parts.append(
        f'<line x1="{LEFT - 2}" y1="{base}" x2="{width - 4}" y2="{base}" '
        f'stroke="{COLOURS["text"]}" stroke-width="1"/>'
    )
    for tick, text in ((base, "0"), (base - BAR_AREA / 2, "50"), (12, "100")):
        parts.append(
            f'<text x="{LEFT - 6}" y="{_number(tick + 4)}" font-size="9" text-anchor="end" '
            f'fill="{COLOURS["text"]}">{text}%</text>'
        )
    for index, entry in enumerate(days):
        parts += _day_bar(index, entry, base)
    parts += _legend(labels, base + 36)
    parts.append("</svg>")
    return "".join(parts)


def _day_bar(index: int, entry: Mapping[str, Any], base: float) -> list[str]:
    x = LEFT + index * BAR_STEP
    seconds = {state: float(entry.get(f"{state}_s", 0) or 0) for state in STATES}
    total = sum(seconds.values())
    parts = []
    top = base
    for state in STATES:
        if total <= 0 or seconds[state] <= 0:
            continue
        height = BAR_AREA * seconds[state] / total
        top -= height
        parts.append(
            f'<rect class="{state}" x="{x}" y="{_number(top)}" width="{BAR_STEP - 3}" '
            f'height="{_number(height)}" fill="{COLOURS[state]}"/>'
        )
    day = int(entry.get("day", index + 1))
    if day == 1 or day % 5 == 0:
        parts.append(
            f'<text x="{_number(x + (BAR_STEP - 3) / 2)}" y="{_number(base + 13)}" font-size="9" '
            f'text-anchor="middle" fill="{COLOURS["text"]}">{day}</text>'
        )
    return parts


def _legend(labels: Mapping[str, str], y: float) -> list[str]:
    parts = []
    x = float(LEFT)
    for state in ("up", "down", "maintenance", "unknown"):
        text = labels.get(state, state)
        parts.append(
            f'<rect x="{_number(x)}" y="{_number(y - 9)}" width="10" height="10" '
            f'fill="{COLOURS[state]}"/>'
            f'<text x="{_number(x + 14)}" y="{_number(y)}" font-size="10" '
            f'fill="{COLOURS["text"]}">{escape(text)}</text>'
        )
        x += 24 + 6 * len(text)
    return parts


def _svg_open(width: float, height: float, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_number(width)}" '
        f'height="{_number(height)}" viewBox="0 0 {_number(width)} {_number(height)}" '
        f'role="img" aria-label="{escape(title)}" font-family="DejaVu Sans, sans-serif">'
        f"<title>{escape(title)}</title>"
    )


def text_gauge(used: float, available: float | None, width: int = 20) -> str:
    """The gauge for plain text: "[########------------]"; unlimited: no bar."""
    if not available:
        return ""
    filled = max(min(round(width * used / available), width), 0)
    return f"[{'#' * filled}{'-' * (width - filled)}]"

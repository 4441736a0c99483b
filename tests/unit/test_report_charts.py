"""The report's SVG charts: well-formed, deterministic, escaped, and drawn to scale."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tma_ops.report_charts import (
    BAR_AREA,
    COLOURS,
    GAUGE_WIDTH,
    gauge_svg,
    text_gauge,
    uptime_svg,
)

pytestmark = pytest.mark.unit
SVG = "{http://www.w3.org/2000/svg}"
DAY = 86400
LABELS = {"up": "Up", "down": "Down", "maintenance": "Maintenance", "unknown": "Not monitored"}


def rects(svg: str, cls: str) -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("class") == cls]


@pytest.mark.parametrize(
    ("used", "available", "width", "colour", "allowance_mark"),
    [
        (2, 4, (GAUGE_WIDTH - 2) / 2, COLOURS["gauge"], False),
        (4, 4, GAUGE_WIDTH - 2, COLOURS["gauge"], False),
        (6, 4, GAUGE_WIDTH - 2, COLOURS["gauge_over"], True),
        (0, 4, None, None, False),
        (3, None, None, None, False),  # unlimited: the track only
    ],
)
def test_gauge_fills_its_share_and_turns_red_past_the_allowance(
    used: float,
    available: float | None,
    width: float | None,
    colour: str | None,
    allowance_mark: bool,
) -> None:
    svg = gauge_svg("Tickets", used, available, "caption")
    assert len(rects(svg, "track")) == 1
    filled = rects(svg, "used")
    if width is None:
        assert filled == []
    else:
        assert float(filled[0].get("width", "")) == pytest.approx(width, abs=0.01)
        assert filled[0].get("fill") == colour
    marks = [line for line in ET.fromstring(svg).iter(f"{SVG}line")]
    assert bool(marks) == allowance_mark
    if allowance_mark:  # the allowance ends two thirds along a bar 1.5 times over
        assert float(marks[0].get("x1", "")) == pytest.approx(1 + (GAUGE_WIDTH - 2) * 4 / 6, 0.01)


def test_texts_are_escaped() -> None:
    svg = gauge_svg('<script>alert("x")</script> & co', 1, 2, "a < b")
    assert "<script>" not in svg
    root = ET.fromstring(svg)  # still well-formed
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ['<script>alert("x")</script> & co', "a < b"]
    labels = {**LABELS, "down": "<b>Down</b>"}
    assert "<b>" not in uptime_svg([], labels, "title & more")
    ET.fromstring(uptime_svg([], labels, "title & more"))


def day(number: int, up: int = 0, down: int = 0, maintenance: int = 0, unknown: int = 0) -> dict:
    return {"day": number, "up_s": up, "down_s": down, "maintenance_s": maintenance,
            "unknown_s": unknown}  # fmt: skip


def test_uptime_chart_stacks_each_day_by_share() -> None:
    days = [
        day(1, up=DAY),
        day(2, up=DAY - 7200, down=3600, maintenance=3600),
        day(3, unknown=DAY),
        day(4, up=23 * 3600),  # the day daylight saving starts: 23 hours, all up
    ]
    svg = uptime_svg(days, LABELS, "Uptime")

    up, down = rects(svg, "up"), rects(svg, "down")
    maintenance, unknown = rects(svg, "maintenance"), rects(svg, "unknown")
    assert (len(up), len(down), len(maintenance), len(unknown)) == (3, 1, 1, 1)
    heights = [float(r.get("height", "")) for r in up]
    assert heights[0] == pytest.approx(BAR_AREA) and heights[2] == pytest.approx(BAR_AREA)
    assert heights[1] == pytest.approx(BAR_AREA * (DAY - 7200) / DAY, abs=0.01)
    assert float(down[0].get("height", "")) == pytest.approx(BAR_AREA / 24, abs=0.01)
    assert down[0].get("fill") == COLOURS["down"] and unknown[0].get("fill") == COLOURS["unknown"]
    # Bars stand on the same baseline, each stacked without overlap.
    assert float(up[1].get("y", "")) == pytest.approx(float(down[0].get("y", "")) + float(
        down[0].get("height", "")), abs=0.01)  # fmt: skip
    legend = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert {"Up", "Down", "Maintenance", "Not monitored"} <= set(legend)


def test_charts_are_deterministic() -> None:
    days = [day(n, up=DAY - n * 60, down=n * 60) for n in range(1, 31)]
    assert uptime_svg(days, LABELS, "U") == uptime_svg(list(days), dict(LABELS), "U")
    assert gauge_svg("G", 1.25, 4, "c") == gauge_svg("G", 1.25, 4.0, "c")


@pytest.mark.parametrize(
    ("used", "available", "expected"),
    [(0, 4, "[" + "-" * 20 + "]"), (2, 4, "[" + "#" * 10 + "-" * 10 + "]"),
     (9, 4, "[" + "#" * 20 + "]"), (3, None, ""), (3, 0, "")],
)  # fmt: skip
def test_text_gauge(used: float, available: float | None, expected: str) -> None:
    assert text_gauge(used, available) == expected

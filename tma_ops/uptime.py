"""A site's availability over a calendar month in its client's time zone.

From the probe samples, the monitor's heartbeats and the declared maintenance windows: seconds
up, down, unknown (the monitor was not running, or its samples are too far apart) and in
maintenance (excluded). A sample's state holds until the next sample, at most two of the
monitor's intervals, and never past the end of the monitor's coverage. Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tma_ops.errors import TmaError
from tma_ops.model_monitor import MaintenanceWindow

MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
Span = tuple[float, float]  # [start, end) in POSIX seconds

LABELS = {
    "en": {
        "uptime": "Uptime",
        "incidents": "Incidents",
        "unknown": "Not monitored",
        "maintenance": "Scheduled maintenance",
        "sla_met": "SLA target met",
        "sla_breached": "SLA target missed",
        "no_data": "No monitoring data for this month",
    },
    "fr": {
        "uptime": "Disponibilité",
        "incidents": "Incidents",
        "unknown": "Non surveillé",
        "maintenance": "Maintenance planifiée",
        "sla_met": "Objectif SLA atteint",
        "sla_breached": "Objectif SLA non atteint",
        "no_data": "Aucune donnée de surveillance pour ce mois",
    },
}


@dataclass(frozen=True)
class Sample:
    at: datetime
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Heartbeat:
    """The monitor was running at `at` and promised another look within `interval_s`."""

    at: datetime
    interval_s: float

    @property
    def span(self) -> Span:
        start = self.at.timestamp()
        return start, start + 2 * self.interval_s


@dataclass(frozen=True)
class Incident:
    start: datetime
    end: datetime
    detail: str

    @property
    def duration_s(self) -> int:
        return round((self.end - self.start).total_seconds())

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "duration_s": self.duration_s,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class MonthUptime:
    site: str
    month: str  # YYYY-MM
    timezone: str
    start: datetime  # local midnight of the 1st, in UTC
    end: datetime
    up_s: int
    down_s: int
    unknown_s: int
    maintenance_s: int
    sla_target: float
    incidents: list[Incident] = field(default_factory=list)

    @property
    def total_s(self) -> int:
        return round((self.end - self.start).total_seconds())

    @property
    def uptime_percent(self) -> float | None:
        known = self.up_s + self.down_s
        return None if known == 0 else 100 * self.up_s / known

    @property
    def sla_breached(self) -> bool:
        percent = self.uptime_percent
        return percent is not None and percent < self.sla_target

    def to_json(self) -> dict[str, Any]:
        percent = self.uptime_percent
        return {
            "site": self.site,
            "month": self.month,
            "timezone": self.timezone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "total_s": self.total_s,
            "up_s": self.up_s,
            "down_s": self.down_s,
            "unknown_s": self.unknown_s,
            "maintenance_s": self.maintenance_s,
            "uptime_percent": None if percent is None else round(percent, 4),
            "sla_target": self.sla_target,
            "sla_breached": self.sla_breached,
            "incidents": [incident.to_json() for incident in self.incidents],
        }


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first and next month's first local midnights, in UTC."""
    if not MONTH.fullmatch(month):
        raise TmaError(f"expected a month as YYYY-MM, got {month!r}")
    year, number = int(month[:4]), int(month[5:])
    first = datetime(year, number, 1, tzinfo=zone)
    following = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return first.astimezone(UTC), following.astimezone(UTC)


def month_uptime(
    site: str,
    month: str,
    zone: ZoneInfo,
    samples: Sequence[Sample],
    heartbeats: Sequence[Heartbeat],
    windows: Sequence[MaintenanceWindow],
    sla_target: float,
) -> MonthUptime:
    start, end = month_bounds(month, zone)
    period: list[Span] = [(start.timestamp(), end.timestamp())]
    maintenance = intersect(union(maintenance_spans(windows, start, end, zone)), period)
    up, down, down_details = state_spans(samples, heartbeats)
    up = subtract(intersect(up, period), maintenance)
    down = subtract(intersect(down, period), maintenance)
    total = end.timestamp() - start.timestamp()
    up_s, down_s, maintenance_s = (round(length(spans)) for spans in (up, down, maintenance))
    return MonthUptime(
        site=site,
        month=month,
        timezone=zone.key,
        start=start,
        end=end,
        up_s=up_s,
        down_s=down_s,
        unknown_s=round(total) - up_s - down_s - maintenance_s,
        maintenance_s=maintenance_s,
        sla_target=sla_target,
        incidents=incidents_of(down, down_details),
    )


def state_spans(
    samples: Sequence[Sample], heartbeats: Sequence[Heartbeat]
) -> tuple[list[Span], list[Span], dict[float, str]]:
    """Spans known up and known down, and the detail of the sample starting each down span."""
    coverage = union([beat.span for beat in heartbeats])
    beats = sorted(heartbeats, key=lambda beat: beat.at)
    beat_times = [beat.at.timestamp() for beat in beats]
    longest = max((beat.interval_s for beat in beats), default=0.0)
    ordered = sorted(samples, key=lambda sample: sample.at)
    up: list[Span] = []
    down: list[Span] = []
    details: dict[float, str] = {}
    for index, sample in enumerate(ordered):
        at = sample.at.timestamp()
        interval = _promised_interval(beats, beat_times, at, longest)
        if interval is None:
            continue  # no running monitor vouches for this sample
        until = at + 2 * interval
        if index + 1 < len(ordered):
            until = min(until, ordered[index + 1].at.timestamp())
        held = _clip((at, until), coverage)
        (up if sample.ok else down).extend(held)
        if not sample.ok:
            details.update({span_start: sample.detail for span_start, _ in held})
    return union(up), union(down), details


def _promised_interval(
    beats: Sequence[Heartbeat], beat_times: list[float], at: float, longest: float
) -> float | None:
    """The interval of the latest heartbeat covering `at`."""
    index = bisect_right(beat_times, at) - 1
    while index >= 0 and beat_times[index] >= at - 2 * longest:
        start, stop = beats[index].span
        if start <= at < stop:
            return beats[index].interval_s
        index -= 1
    return None


def _clip(span: Span, coverage: list[Span]) -> list[Span]:
    """`span` cut to a sorted, disjoint `coverage`."""
    start, end = span
    index = max(bisect_right(coverage, (start, float("inf"))) - 1, 0)
    found = []
    while index < len(coverage) and coverage[index][0] < end:
        low, high = max(start, coverage[index][0]), min(end, coverage[index][1])
        if high > low:
            found.append((low, high))
        index += 1
    return found


def incidents_of(down: list[Span], details: dict[float, str]) -> list[Incident]:
    incidents = []
    for start, end in down:
        detail = details.get(start) or _detail_near(details, start, end)
        incidents.append(Incident(_utc(start), _utc(end), detail))
    return incidents


def _detail_near(details: dict[float, str], start: float, end: float) -> str:
    """The detail of the failed sample this down span began with (its front may have been cut
    by maintenance or the month's start)."""
    before = [moment for moment in details if moment <= start]
    inside = [moment for moment in details if start < moment < end]
    if before:
        return details[max(before)]
    return details[min(inside)] if inside else ""


def maintenance_spans(
    windows: Sequence[MaintenanceWindow], start: datetime, end: datetime, zone: ZoneInfo
) -> list[Span]:
    """The declared windows meeting [start, end), in POSIX seconds."""
    spans: list[Span] = []
    for window in windows:
        if window.weekly is not None:
            spans += _weekly_spans(window, start, end, zone)
        elif window.start is not None and window.end is not None:
            spans.append((_aware(window.start, zone), _aware(window.end, zone)))
    return intersect(union(spans), [(start.timestamp(), end.timestamp())])


def _weekly_spans(
    window: MaintenanceWindow, start: datetime, end: datetime, zone: ZoneInfo
) -> list[Span]:
    begins, minutes = window.bounds()
    day = start.astimezone(zone).date() - timedelta(days=1)  # one running in from the day before
    last = end.astimezone(zone).date()
    spans = []
    while day <= last:
        if day.weekday() == window.weekday:
            spans.append(_local_span(day, begins.hour * 60 + begins.minute, minutes, zone))
        day += timedelta(days=1)
    return spans


def _local_span(day: date, start_minute: int, minutes: int, zone: ZoneInfo) -> Span:
    # Wall-clock times: across a DST change the window keeps its local start and end.
    first = datetime(day.year, day.month, day.day, tzinfo=zone)
    local_start = first + timedelta(minutes=start_minute)
    local_end = local_start + timedelta(minutes=minutes)
    return local_start.timestamp(), local_end.timestamp()


def _aware(moment: datetime, zone: ZoneInfo) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def union(spans: Sequence[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(spans: Sequence[Span], others: Sequence[Span]) -> list[Span]:
    coverage = union(others)
    found = []
    for span in union(spans):
        found += _clip(span, coverage)
    return union(found)


def subtract(spans: Sequence[Span], removed: Sequence[Span]) -> list[Span]:
    cuts = union(removed)
    remaining: list[Span] = []
    for start, end in union(spans):
        cursor = start
        for low, high in _clip((start, end), cuts):
            if low > cursor:
                remaining.append((cursor, low))
            cursor = high
        if end > cursor:
            remaining.append((cursor, end))
    return remaining


def length(spans: Sequence[Span]) -> float:
    return sum(end - start for start, end in spans)

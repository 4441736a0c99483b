"""The availability section of the monthly report: the month's figure from tma_ops.uptime and,
for the chart, each local day's seconds up, down, in maintenance and not monitored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tma_ops.model import Site
from tma_ops.model_monitor import MaintenanceWindow
from tma_ops.monitor_store import FILE_NAME, MonitorStore, site_month_uptime
from tma_ops.uptime import (
    Heartbeat,
    Sample,
    Span,
    intersect,
    length,
    maintenance_spans,
    month_bounds,
    state_spans,
    subtract,
)


@dataclass(frozen=True)
class DayState:
    day: date  # local day in the client's zone
    up_s: int
    down_s: int
    maintenance_s: int
    unknown_s: int

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "day": self.day.day,
            "up_s": self.up_s,
            "down_s": self.down_s,
            "maintenance_s": self.maintenance_s,
            "unknown_s": self.unknown_s,
        }


def local_days(month: str, zone: ZoneInfo) -> list[tuple[date, Span]]:
    """Each local day of the month with its [start, end) in POSIX seconds (23 or 25 hours
    across a daylight-saving change)."""
    start, end = month_bounds(month, zone)
    first = start.astimezone(zone).date()
    days: list[tuple[date, Span]] = []
    day = first
    while True:
        begin = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        following = day + timedelta(days=1)
        finish = datetime(following.year, following.month, following.day, tzinfo=zone)
        if begin >= end.timestamp():
            return days
        days.append((day, (begin, finish.timestamp())))
        day = following


def day_states(
    month: str,
    zone: ZoneInfo,
    samples: Sequence[Sample],
    heartbeats: Sequence[Heartbeat],
    windows: Sequence[MaintenanceWindow],
) -> list[DayState]:
    """Per local day: up, down, maintenance, and the rest not monitored (the same reading as
    tma_ops.uptime.month_uptime: maintenance is excluded from up and down)."""
    start, end = month_bounds(month, zone)
    maintenance = maintenance_spans(windows, start, end, zone)
    up, down, _details = state_spans(samples, heartbeats)
    up, down = subtract(up, maintenance), subtract(down, maintenance)
    states = []
    for day, span in local_days(month, zone):
        up_s, down_s, maintenance_s = (
            round(length(intersect(spans, [span]))) for spans in (up, down, maintenance)
        )
        unknown_s = round(span[1] - span[0]) - up_s - down_s - maintenance_s
        states.append(DayState(day, up_s, down_s, maintenance_s, unknown_s))
    return states


def monitor_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def site_availability(state_dir: Path, site: Site, month: str) -> dict[str, Any] | None:
    """The month's uptime (tma_ops.uptime's JSON) with a "days" list and the newest
    certificate reading; None when the monitor never ran on this machine."""
    path = monitor_path(state_dir)
    if not path.exists():
        return None
    zone = site.client.zone
    start, end = month_bounds(month, zone)
    with MonitorStore(path) as store:
        figure = site_month_uptime(store, site, month).to_json()
        samples = store.samples(site.name, start, end)
        heartbeats = store.heartbeats(start, end)
        latest = store.latest_probes(site.name, 1)
    days = day_states(month, zone, samples, heartbeats, site.monitor.maintenance_windows)
    figure["days"] = [state.to_json() for state in days]
    figure["probes"] = len(samples)
    figure["certificate"] = _certificate(latest[0].at, latest[0].tls_days_left) if latest else None
    return figure


def _certificate(at: datetime, days_left: int | None) -> dict[str, Any] | None:
    if days_left is None:
        return None
    expires = at.astimezone(UTC) + timedelta(days=days_left)
    return {
        "checked_at": at.isoformat(),
        "days_left": days_left,
        "expires_on": expires.date().isoformat(),
    }

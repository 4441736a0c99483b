"""Uptime of a calendar month in the client's zone: maintenance, unknown periods, DST months."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter

from tma_ops.errors import TmaError
from tma_ops.model_monitor import MaintenanceWindow
from tma_ops.uptime import (
    Heartbeat,
    MonthUptime,
    Sample,
    maintenance_spans,
    month_bounds,
    month_uptime,
)

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
HOUR = 3600
WINDOWS = TypeAdapter(list[MaintenanceWindow])


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def watched(
    start: datetime,
    end: datetime,
    every_s: int = 600,
    down: tuple[datetime, datetime] | None = None,
) -> tuple[list[Sample], list[Heartbeat]]:
    """A monitor running from start to end, probing every `every_s`; down within `down`."""
    samples, beats = [], []
    moment = start
    while moment < end:
        failing = down is not None and down[0] <= moment < down[1]
        samples.append(Sample(moment, not failing, "status 500" if failing else ""))
        beats.append(Heartbeat(moment, every_s))
        moment += timedelta(seconds=every_s)
    return samples, beats


def uptime(
    month: str,
    samples: Sequence[Sample] = (),
    beats: Sequence[Heartbeat] = (),
    windows: Sequence[dict[str, str]] = (),
    target: float = 99.5,
) -> MonthUptime:
    return month_uptime(
        "shop", month, PARIS, samples, beats, WINDOWS.validate_python(windows), target
    )


@pytest.mark.parametrize(
    ("month", "hours"),
    [("2026-03", 743), ("2026-10", 745), ("2026-04", 720), ("2026-02", 672), ("2026-12", 744)],
)
def test_month_boundaries_are_local_midnights_so_dst_months_are_an_hour_off(
    month: str, hours: int
) -> None:
    start, end = month_bounds(month, PARIS)
    assert (end - start).total_seconds() == hours * HOUR
    assert start.astimezone(PARIS).hour == 0 and end.astimezone(PARIS).hour == 0


@pytest.mark.parametrize(("month", "hours"), [("2026-03", 743), ("2026-10", 745)])
def test_a_dst_month_watched_throughout_is_all_up(month: str, hours: int) -> None:
    start, end = month_bounds(month, PARIS)
    result = uptime(month, *watched(start - timedelta(hours=1), end + timedelta(hours=1)))
    assert (result.up_s, result.down_s, result.unknown_s) == (hours * HOUR, 0, 0)
    assert result.uptime_percent == 100 and not result.sla_breached and result.incidents == []


def test_a_month_with_no_data_is_all_unknown_and_has_no_uptime() -> None:
    result = uptime("2026-04")
    assert (result.up_s, result.down_s, result.unknown_s) == (0, 0, 720 * HOUR)
    assert result.uptime_percent is None and not result.sla_breached
    assert result.to_json()["uptime_percent"] is None


def test_while_the_monitor_is_stopped_time_is_unknown_not_down() -> None:
    # Running 1-10 April, stopped until the 20th, running again to the end; the last sample
    # before the stop was a failure: like its heartbeat, it holds two intervals, not ten days.
    first = watched(local("2026-04-01T00:00"), local("2026-04-10T00:00"))
    first[0][-1] = Sample(first[0][-1].at, False, "connection refused")
    second = watched(local("2026-04-20T00:00"), local("2026-05-01T00:00"))
    result = uptime("2026-04", first[0] + second[0], first[1] + second[1])
    assert result.down_s == 1200
    assert result.unknown_s == 10 * 24 * HOUR - 1200 + 600
    assert result.up_s == 20 * 24 * HOUR - 600
    assert [incident.detail for incident in result.incidents] == ["connection refused"]


def test_samples_too_far_apart_leave_the_gap_unknown_though_heartbeats_continue() -> None:
    samples, beats = watched(local("2026-04-01T00:00"), local("2026-05-01T00:00"), every_s=HOUR)
    gap = [s for s in samples if not local("2026-04-10T00:00") < s.at < local("2026-04-11T00:00")]
    result = uptime("2026-04", gap, beats)
    # the sample at 00:00 on the 10th holds two intervals; the next comes at 00:00 on the 11th
    assert result.unknown_s == 22 * HOUR
    assert result.up_s == 720 * HOUR - 22 * HOUR


def test_an_outage_becomes_one_incident_with_its_first_detail() -> None:
    down = (local("2026-04-15T10:00"), local("2026-04-15T11:30"))
    samples, beats = watched(local("2026-04-01T00:00"), local("2026-05-01T00:00"), down=down)
    result = uptime("2026-04", samples, beats)
    assert result.down_s == 90 * 60
    [incident] = result.incidents
    assert (incident.start, incident.end) == (down[0].astimezone(UTC), down[1].astimezone(UTC))
    assert incident.duration_s == 5400 and incident.detail == "status 500"
    assert result.to_json()["incidents"][0]["duration_s"] == 5400


@pytest.mark.parametrize(
    ("down_s", "breached"),
    [(12960, False), (12961, True), (12600, False), (0, False)],  # 0.5 % of 30 days = 12960 s
)
def test_sla_breach_just_under_99_5_percent(down_s: int, breached: bool) -> None:
    start = local("2026-04-10T00:00")
    samples, beats = watched(local("2026-04-01T00:00"), local("2026-05-01T00:00"), every_s=HOUR)
    beats = [Heartbeat(beat.at, 4 * HOUR) for beat in beats]  # a sample may hold 8 hours
    back = start + timedelta(seconds=down_s)
    samples = [s for s in samples if not start <= s.at < back]
    samples += [Sample(start, False, "status 503"), Sample(back, True)] if down_s else []
    result = uptime("2026-04", sorted(samples, key=lambda s: s.at), beats)
    assert result.down_s == down_s and result.unknown_s == 0
    assert result.sla_breached is breached
    assert result.to_json()["sla_breached"] is breached


@pytest.mark.parametrize(
    ("month", "windows", "maintenance_hours"),
    [
        ("2026-04", [{"start": "2026-04-15T09:00", "end": "2026-04-15T12:00"}], 3),
        ("2026-04", [{"start": "2026-04-15T07:00Z", "end": "2026-04-15T10:00Z"}], 3),
        ("2026-04", [{"weekly": "sun 02:00-04:00"}], 4 * 2),  # 5, 12, 19, 26 April
        ("2026-03", [{"weekly": "sun 02:00-04:00"}], 4 * 2 + 1),  # 29 March: 02:00 skipped
        ("2026-10", [{"weekly": "sun 02:00-04:00"}], 3 * 2 + 3),  # 25 October: 02:00 twice
        # straddling the month's end: one-off and a weekly window past midnight (Thu 30 April)
        ("2026-04", [{"start": "2026-04-30T22:00", "end": "2026-05-01T02:00"}], 2),
        ("2026-05", [{"start": "2026-04-30T22:00", "end": "2026-05-01T02:00"}], 2),
        ("2026-04", [{"weekly": "thu 23:00-01:00"}], 4 * 2 + 1),  # 2, 9, 16, 23, 30 April
        ("2026-05", [{"weekly": "thu 23:00-01:00"}], 1 + 4 * 2),  # from 30 April, then 7 ... 28
        # overlapping windows count once
        (
            "2026-04",
            [
                {"weekly": "sun 02:00-04:00"},
                {"start": "2026-04-05T03:00", "end": "2026-04-05T05:00"},
            ],
            4 * 2 + 1,
        ),
    ],
)
def test_maintenance_windows_are_excluded(
    month: str, windows: list[dict[str, str]], maintenance_hours: int
) -> None:
    start, end = month_bounds(month, PARIS)
    samples, beats = watched(start, end, every_s=HOUR)
    samples = [Sample(s.at, False, "maintenance page") for s in samples]  # down all month
    result = uptime(month, samples, beats, windows)
    assert result.maintenance_s == maintenance_hours * HOUR
    assert result.down_s == result.total_s - maintenance_hours * HOUR
    assert result.up_s == 0 and result.unknown_s == 0


def test_maintenance_over_an_outage_removes_it_and_cuts_the_incident() -> None:
    down = (local("2026-04-15T10:00"), local("2026-04-15T12:00"))
    samples, beats = watched(local("2026-04-01T00:00"), local("2026-05-01T00:00"), down=down)
    windows = [{"start": "2026-04-15T09:00", "end": "2026-04-15T11:00"}]
    result = uptime("2026-04", samples, beats, windows)
    assert result.down_s == HOUR and result.maintenance_s == 2 * HOUR
    [incident] = result.incidents
    assert incident.start == local("2026-04-15T11:00").astimezone(UTC)
    assert incident.detail == "status 500"


def test_an_outage_running_over_the_month_start_is_cut_at_local_midnight() -> None:
    down = (local("2026-03-31T22:00"), local("2026-04-01T01:00"))
    samples, beats = watched(local("2026-03-31T00:00"), local("2026-05-01T00:00"), down=down)
    result = uptime("2026-04", samples, beats)
    [incident] = result.incidents
    assert incident.start == local("2026-04-01T00:00").astimezone(UTC)
    assert incident.duration_s == HOUR and incident.detail == "status 500"


def test_weekly_windows_keep_their_local_hours_across_the_dst_change() -> None:
    start, end = month_bounds("2026-03", PARIS)
    windows = WINDOWS.validate_python([{"weekly": "sat 22:00-23:00"}])
    spans = maintenance_spans(windows, start, end, PARIS)
    hours = [datetime.fromtimestamp(s, PARIS).strftime("%d %H:%M") for s, _ in spans]
    assert hours == ["07 22:00", "14 22:00", "21 22:00", "28 22:00"]
    assert {e - s for s, e in spans} == {HOUR}


@pytest.mark.parametrize("month", ["2026-13", "2026-4", "april", "2026-04-01"])
def test_a_malformed_month_is_one_line_error(month: str) -> None:
    with pytest.raises(TmaError, match=rf"expected a month as YYYY-MM, got '{month}'"):
        month_bounds(month, PARIS)

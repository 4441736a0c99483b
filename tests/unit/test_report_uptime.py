"""The uptime chart's days: local days of the client's zone (23 or 25 hours across daylight
saving), each split into up, down, maintenance and not monitored, adding up to the month's
figure of tma_ops.uptime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tma_ops.model_monitor import MaintenanceWindow
from tma_ops.report_uptime import day_states, local_days
from tma_ops.uptime import Heartbeat, Sample, month_uptime

pytestmark = pytest.mark.unit
PARIS = ZoneInfo("Europe/Paris")
HOUR = 3600


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).astimezone(UTC)


def hourly(start: str, end: str, down: tuple[str, ...] = ()) -> tuple[list, list]:
    """Heartbeats and probes every hour in [start, end); probes at the `down` local hours fail."""
    samples, beats = [], []
    at, stop = local(start), local(end)
    failing = {local(moment) for moment in down}
    while at < stop:
        beats.append(Heartbeat(at, HOUR))
        samples.append(Sample(at, at not in failing, "503" if at in failing else ""))
        at += timedelta(hours=1)
    return samples, beats


@pytest.mark.parametrize(
    ("month", "days", "long_day", "hours"),
    [("2024-10", 31, 27, 25), ("2024-03", 31, 31, 23), ("2024-02", 29, None, 24)],
)
def test_local_days_follow_daylight_saving(
    month: str, days: int, long_day: int | None, hours: int
) -> None:
    found = local_days(month, PARIS)
    assert len(found) == days
    lengths = {day.day: (end - start) / HOUR for day, (start, end) in found}
    if long_day is not None:
        assert lengths.pop(long_day) == hours
    assert set(lengths.values()) == {24}


def test_days_split_into_states_and_add_up_to_the_month() -> None:
    samples, beats = hourly(
        "2024-10-01T00:00", "2024-10-29T00:00", down=("2024-10-03T10:00", "2024-10-03T11:00")
    )
    # The monitor stopped on the 10th and the 11th.
    kept = [i for i, beat in enumerate(beats) if beat.at.astimezone(PARIS).day not in (10, 11)]
    samples, beats = [samples[i] for i in kept], [beats[i] for i in kept]
    windows = [MaintenanceWindow(weekly="sun 02:00-04:00")]

    days = day_states("2024-10", PARIS, samples, beats, windows)
    month = month_uptime("blog", "2024-10", PARIS, samples, beats, windows, 99.5)

    by_day = {state.day.day: state for state in days}
    assert (by_day[3].down_s, by_day[3].up_s) == (2 * HOUR, 22 * HOUR)
    # The last sample of the 9th holds for two of the monitor's intervals, into the 10th.
    assert (by_day[10].up_s, by_day[10].unknown_s) == (HOUR, 23 * HOUR)
    assert by_day[11].unknown_s == 24 * HOUR
    assert by_day[6].maintenance_s == 2 * HOUR  # a Sunday
    # The long Sunday: 02:00-04:00 local lasts three hours (02:00-03:00 is lived twice).
    assert (by_day[27].maintenance_s, by_day[27].up_s) == (3 * HOUR, 22 * HOUR)
    assert by_day[30].unknown_s == 24 * HOUR  # after the data ends
    for state in days:
        total = state.up_s + state.down_s + state.maintenance_s + state.unknown_s
        assert total == (25 if state.day.day == 27 else 24) * HOUR
    assert sum(s.up_s for s in days) == month.up_s
    assert sum(s.down_s for s in days) == month.down_s
    assert sum(s.maintenance_s for s in days) == month.maintenance_s
    assert sum(s.unknown_s for s in days) == month.unknown_s
    assert days[0].to_json() == {
        "date": "2024-10-01", "day": 1, "up_s": 24 * HOUR, "down_s": 0,
        "maintenance_s": 0, "unknown_s": 0,
    }  # fmt: skip

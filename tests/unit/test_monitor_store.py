"""The monitor's SQLite file: probes, heartbeats and coverage, alert state, a month's uptime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tma_ops.errors import TmaError
from tma_ops.monitor_store import AlertState, MonitorStore, ProbeResult

pytestmark = pytest.mark.unit

T0 = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


def probe(minutes: int, ok: bool = True, site: str = "shop") -> ProbeResult:
    at = T0 + timedelta(minutes=minutes)
    return ProbeResult(
        site, at, ok, 200 if ok else 500, 12, "status 200" if ok else "status 500", 30
    )


def test_probes_of_a_period_start_with_the_one_still_holding_at_its_start(tmp_path: Path) -> None:
    with MonitorStore.in_state_dir(tmp_path) as store:
        for minutes in (0, 10, 20, 30):
            store.record_probe(probe(minutes, ok=minutes != 10))
        store.record_probe(probe(15, site="blog"))
        found = store.probes("shop", T0 + timedelta(minutes=15), T0 + timedelta(minutes=30))
        assert [p.at for p in found] == [T0 + timedelta(minutes=m) for m in (10, 20)]
        assert found[0] == probe(10, ok=False)
        assert [p.ok for p in store.latest_probes("shop", 2)] == [True, True]
    assert (tmp_path / "monitor.sqlite").exists()


def test_coverage_merges_heartbeats_and_shows_when_the_monitor_stopped(tmp_path: Path) -> None:
    with MonitorStore.in_state_dir(tmp_path) as store:
        for minutes in (0, 1, 2, 10):
            store.record_heartbeat(T0 + timedelta(minutes=minutes), 60)
        coverage = store.coverage(T0, T0 + timedelta(hours=1))
    assert coverage == [
        (T0, T0 + timedelta(minutes=4)),
        (T0 + timedelta(minutes=10), T0 + timedelta(minutes=12)),
    ]


def test_alert_state_is_kept_per_site_across_openings(tmp_path: Path) -> None:
    with MonitorStore.in_state_dir(tmp_path) as store:
        assert store.alert_state("shop") == AlertState("unknown", None)
        store.save_alert_state("shop", AlertState("down", "2026-04-10"), T0)
        store.save_alert_state("shop", AlertState("up", "2026-04-10"), T0)
    with MonitorStore.in_state_dir(tmp_path) as store:
        assert store.alert_state("shop") == AlertState("up", "2026-04-10")
        assert store.alert_state("blog") == AlertState()


def test_an_unwritable_state_directory_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(TmaError, match=r"file/monitor.sqlite: cannot open the monitor's database"):
        MonitorStore.in_state_dir(tmp_path / "file")

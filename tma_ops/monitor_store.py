"""The monitor's own SQLite file (`<state_dir>/monitor.sqlite`, WAL): probe results, the
monitor's heartbeats and, per site, the alert state last sent."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from tma_ops.errors import TmaError
from tma_ops.model import Site
from tma_ops.model_monitor import sla_target
from tma_ops.uptime import (
    Heartbeat,
    MonthUptime,
    Sample,
    intersect,
    month_bounds,
    month_uptime,
    union,
)

FILE_NAME = "monitor.sqlite"
BUSY_TIMEOUT_S = 30
SCHEMA = """
CREATE TABLE IF NOT EXISTS probes (
    site TEXT NOT NULL, at REAL NOT NULL, ok INTEGER NOT NULL, status INTEGER,
    latency_ms INTEGER, detail TEXT NOT NULL, tls_days_left INTEGER
);
CREATE INDEX IF NOT EXISTS probes_by_site_time ON probes (site, at);
CREATE TABLE IF NOT EXISTS heartbeats (at REAL NOT NULL, interval_s REAL NOT NULL, pid INTEGER);
CREATE INDEX IF NOT EXISTS heartbeats_by_time ON heartbeats (at);
CREATE TABLE IF NOT EXISTS alert_state (
    site TEXT PRIMARY KEY, state TEXT NOT NULL, changed_at REAL NOT NULL,
    cert_alert_day TEXT
);
"""


@dataclass(frozen=True)
class ProbeResult:
    site: str
    at: datetime
    ok: bool
    status: int | None
    latency_ms: int | None
    detail: str
    tls_days_left: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "at": self.at.isoformat(),
            "ok": self.ok,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
            "tls_days_left": self.tls_days_left,
        }


@dataclass(frozen=True)
class AlertState:
    """What the alert hooks were last told about a site: `up`, `down` or `unknown`."""

    state: str = "unknown"
    cert_alert_day: str | None = None  # ISO date of the last certificate alert


class MonitorStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise TmaError(f"{path}: cannot open the monitor's database ({exc})") from exc

    @classmethod
    def in_state_dir(cls, directory: Path) -> MonitorStore:
        return cls(directory / FILE_NAME)

    def __enter__(self) -> MonitorStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def record_probe(self, probe: ProbeResult) -> None:
        self._conn.execute(
            "INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                probe.site,
                probe.at.timestamp(),
                int(probe.ok),
                probe.status,
                probe.latency_ms,
                probe.detail,
                probe.tls_days_left,
            ),
        )

    def record_heartbeat(self, at: datetime, interval_s: float, pid: int | None = None) -> None:
        self._conn.execute(
            "INSERT INTO heartbeats VALUES (?, ?, ?)", (at.timestamp(), interval_s, pid)
        )

    def probes(self, site: str, start: datetime, end: datetime) -> list[ProbeResult]:
        """The site's probes in [start, end), and the last one before `start` (its state
        still holds at `start`)."""
        rows = self._conn.execute(
            "SELECT * FROM probes WHERE site = ? AND at >= "
            "COALESCE((SELECT MAX(at) FROM probes WHERE site = ? AND at < ?), ?) AND at < ? "
            "ORDER BY at",
            (site, site, start.timestamp(), start.timestamp(), end.timestamp()),
        ).fetchall()
        return [_probe(row) for row in rows]

    def latest_probes(self, site: str, count: int) -> list[ProbeResult]:
        """The site's `count` newest probes, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM probes WHERE site = ? ORDER BY at DESC LIMIT ?", (site, count)
        ).fetchall()
        return [_probe(row) for row in reversed(rows)]

    def samples(self, site: str, start: datetime, end: datetime) -> list[Sample]:
        return [Sample(probe.at, probe.ok, probe.detail) for probe in self.probes(site, start, end)]

    def heartbeats(self, start: datetime, end: datetime) -> list[Heartbeat]:
        """The heartbeats whose coverage [at, at + 2 * interval) meets [start, end)."""
        rows = self._conn.execute(
            "SELECT at, interval_s FROM heartbeats WHERE at + 2 * interval_s > ? AND at < ? "
            "ORDER BY at",
            (start.timestamp(), end.timestamp()),
        ).fetchall()
        return [Heartbeat(_time(at), interval) for at, interval in rows]

    def coverage(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """When the monitor was running within [start, end), as merged intervals."""
        spans = union([beat.span for beat in self.heartbeats(start, end)])
        clipped = intersect(spans, [(start.timestamp(), end.timestamp())])
        return [(_time(low), _time(high)) for low, high in clipped]

    def alert_state(self, site: str) -> AlertState:
        row = self._conn.execute(
            "SELECT state, cert_alert_day FROM alert_state WHERE site = ?", (site,)
        ).fetchone()
        return AlertState(row[0], row[1]) if row else AlertState()

    def save_alert_state(self, site: str, state: AlertState, at: datetime) -> None:
        self._conn.execute(
            "INSERT INTO alert_state VALUES (?, ?, ?, ?) ON CONFLICT (site) DO UPDATE SET "
            "state = excluded.state, changed_at = excluded.changed_at, "
            "cert_alert_day = excluded.cert_alert_day",
            (site, state.state, at.timestamp(), state.cert_alert_day),
        )


def site_month_uptime(store: MonitorStore, site: Site, month: str) -> MonthUptime:
    """A site's uptime for `month` (YYYY-MM, in its client's zone) from what the monitor stored."""
    zone = site.client.zone
    start, end = month_bounds(month, zone)
    return month_uptime(
        site.name,
        month,
        zone,
        store.samples(site.name, start, end),
        store.heartbeats(start, end),
        site.monitor.maintenance_windows,
        sla_target(site.monitor, site.tier),
    )


def _probe(row: tuple[Any, ...]) -> ProbeResult:
    site, at, ok, status, latency_ms, detail, tls_days_left = row
    return ProbeResult(site, _time(at), bool(ok), status, latency_ms, detail, tls_days_left)


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

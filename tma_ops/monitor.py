"""The uptime watch: probe each site's URL, store the result and a heartbeat, alert on changes.

A probe is the site's smoke HTTP check (status, body markers, forbidden markers) with the
monitor's timeout, plus, for https, the days left on the certificate the server presents.
"""

from __future__ import annotations

import os
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from urllib.parse import urlsplit

from cryptography import x509

from tma_ops.checks.host import days_left, fetch_certificate
from tma_ops.checks.http import HttpSmokeCheck
from tma_ops.model import Site
from tma_ops.model_checks import HttpCheck, TlsTarget
from tma_ops.monitor_alerts import FAILURES_FOR_DOWN, Alert, decide, deliver
from tma_ops.monitor_store import MonitorStore, ProbeResult

Clock = Callable[[], datetime]
Log = Callable[[str], None]


def _now() -> datetime:
    return datetime.now(UTC)


class MonitorProbe(HttpSmokeCheck):
    """The smoke HTTP check with the monitor's own timeout."""

    def __init__(self, spec: HttpCheck, timeout_s: float) -> None:
        super().__init__(spec)
        self._timeout_s = timeout_s

    @property
    def timeout(self) -> float:
        return self._timeout_s


def monitor_check(site: Site) -> HttpCheck:
    """What is probed: the monitor's URL with the production smoke check's markers when the
    URLs match; a slow answer within the timeout is not an outage."""
    smoke = next((c for c in site.production.smoke if isinstance(c, HttpCheck)), None)
    url = site.monitor.url or (smoke.url if smoke else None)
    if url is None:
        raise ValueError(f"site {site.name!r}: no monitor.url and no http smoke check")
    base = smoke if smoke is not None and smoke.url == url else HttpCheck(url=url)
    latency_ms = max(1, round(site.monitor.timeout_s * 1000))
    return base.model_copy(update={"max_latency_ms": latency_ms})


def probe_site(site: Site, clock: Clock = _now) -> ProbeResult:
    check = monitor_check(site)
    at = clock()
    result = MonitorProbe(check, site.monitor.timeout_s).check()
    return ProbeResult(
        site=site.name,
        at=at,
        ok=result.ok,
        status=result.data.get("status"),
        latency_ms=result.data.get("latency_ms"),
        detail=result.detail,
        tls_days_left=tls_days_left(check.url, site.monitor.timeout_s, at),
    )


def tls_days_left(url: str, timeout_s: float, now: datetime) -> int | None:
    """Days left on the certificate an https URL's server presents; None for http or when no
    certificate could be read (the probe itself then says why)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    target = TlsTarget(host=parts.hostname, port=parts.port or 443)
    try:
        der = fetch_certificate(target)
        not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    except (OSError, ssl.SSLError, ValueError):
        return None
    return days_left(not_after, now)


def watch_site(
    site: Site, store: MonitorStore, log: Log, clock: Clock = _now, secrets: Sequence[str] = ()
) -> tuple[ProbeResult, list[Alert]]:
    """Probe one site, store the result, send the alerts its transition calls for."""
    probe = probe_site(site, clock)
    store.record_probe(probe)
    recent = [p.ok for p in store.latest_probes(site.name, FAILURES_FOR_DOWN)]
    previous = store.alert_state(site.name)
    state, kinds = decide(
        previous, recent, probe.tls_days_left, site.monitor.tls_warn_days, probe.at.date()
    )
    alerts = [
        Alert(site.name, kind, probe.at, monitor_check(site).url, probe.detail, probe.tls_days_left)
        for kind in kinds
    ]
    for alert in alerts:
        log(f"{site.name}: alert {alert.kind}: {alert.subject('en')}")
        deliver(alert, site.monitor.alerts, site.client.language, log, secrets)
    if state != previous:
        store.save_alert_state(site.name, state, probe.at)
    return probe, alerts


def run_once(
    sites: Sequence[Site],
    store: MonitorStore,
    interval_s: float,
    log: Log,
    clock: Clock = _now,
    stop: threading.Event | None = None,
) -> list[ProbeResult]:
    """One round: a heartbeat promising the next round within `interval_s`, then every site."""
    store.record_heartbeat(clock(), interval_s, os.getpid())
    secrets = [secret for site in sites for secret in site.secrets()]
    probes = []
    for site in sites:
        if stop is not None and stop.is_set():
            break
        probe, _alerts = watch_site(site, store, log, clock, secrets)
        probes.append(probe)
    return probes


def run_forever(
    sites: Sequence[Site],
    store: MonitorStore,
    interval_s: float,
    log: Log,
    on_round: Callable[[list[ProbeResult]], None],
) -> None:
    """Rounds every `interval_s` until SIGTERM or SIGINT; the round under way is finished."""
    with stop_on_signals() as stop:
        while not stop.is_set():
            started = time.monotonic()
            on_round(run_once(sites, store, interval_s, log, stop=stop))
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()

    def handler(_number: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {
        number: signal.signal(number, handler) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for number, old in previous.items():
            signal.signal(number, old)

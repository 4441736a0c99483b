"""`tma-ops monitor [SITE...] [--once] [--interval S]`: the uptime watch."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tma_ops.commands import emit, open_inventory, say, state_dir
from tma_ops.errors import EXIT_OK, EXIT_WARNINGS, TmaError
from tma_ops.monitor import monitor_check, run_forever, run_once
from tma_ops.monitor_store import MonitorStore, ProbeResult

DESCRIPTION = """Watch the sites' availability: every round, each site's monitor URL (monitor.url,
else production's first http smoke check) is fetched and judged like the smoke check (status,
markers, forbidden markers) within monitor.timeout_s; for https, the days left on the server's
certificate are read. Results go to <state_dir>/monitor.sqlite with a heartbeat per round: the
monthly uptime counts the time no heartbeat covers as unknown, not down.

Alerts (monitor.alerts: webhook, email) are sent on changes only: down after 2 failed probes in
a row, up on the first good probe after that, and once a day while the certificate has fewer
than monitor.tls_warn_days days left. A failing alert hook is logged on stderr, never fatal.

Without --once, rounds run every --interval seconds (default: the smallest monitor.interval_s
of the sites watched) until SIGTERM or SIGINT, then exit 0. With --once (for cron), one round;
pass cron's period as --interval so that the heartbeat covers the time until the next run.
Exit 1 after --once when a site's probe failed."""


def add_monitor_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "monitor",
        parents=[common],
        help="watch the sites' availability and TLS certificates, alert on changes",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sites", nargs="*", metavar="SITE", help="sites to watch (default: all)")
    parser.add_argument("--once", action="store_true", help="one round, then exit (for cron)")
    parser.add_argument(
        "--interval", type=_positive_seconds, help="seconds between rounds (promised heartbeat)"
    )
    parser.set_defaults(handler=monitor_command)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 1, got {text!r}")
    return value


def monitor_command(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    names = args.sites or sorted(inventory.sites)
    sites = [inventory.site(name) for name in names]
    if not sites:
        raise TmaError("no site to watch: the inventory has none")
    for site in sites:
        try:
            monitor_check(site)
        except ValueError as exc:
            raise TmaError(str(exc)) from exc
    interval = args.interval or min(site.monitor.interval_s for site in sites)
    with MonitorStore.in_state_dir(state_dir(args, inventory)) as store:
        if args.once:
            probes = run_once(sites, store, interval, _log)
            _print_round(args, probes)
            return EXIT_OK if all(probe.ok for probe in probes) else EXIT_WARNINGS
        if not args.json:
            say(f"watching {', '.join(names)} every {interval:g} s (SIGTERM or Ctrl-C stops)")
        run_forever(sites, store, interval, _log, lambda probes: _print_round(args, probes))
    if not args.json:
        say("monitor stopped")
    return EXIT_OK


def _print_round(args: argparse.Namespace, probes: list[ProbeResult]) -> None:
    for probe in probes:
        emit(args, probe.to_json(), describe_probe(probe))


def describe_probe(probe: ProbeResult) -> str:
    state = "up  " if probe.ok else "DOWN"
    tls = "" if probe.tls_days_left is None else f"  (certificate: {probe.tls_days_left} days left)"
    return f"{probe.at:%Y-%m-%d %H:%M:%S}Z  {probe.site}  {state}  {probe.detail}{tls}"


def _log(line: str) -> None:
    print(f"tma-ops monitor: {line}", file=sys.stderr, flush=True)

"""`tma-ops tickets SITE --month YYYY-MM`: plan consumption and response-time compliance of a
site's tickets for one calendar month; `month_report` gives the same to the report builder."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tma_ops.commands import emit, open_inventory
from tma_ops.errors import EXIT_ERROR, EXIT_OK, EXIT_WARNINGS, InventoryError, TmaError
from tma_ops.model import Site
from tma_ops.model_contract import Contract, effective_contract
from tma_ops.plan_consumption import Consumption, Month, month_consumption, month_tickets
from tma_ops.response_sla import Check, Compliance, compliance
from tma_ops.tickets import Ticket, TicketImportError, load_tickets

DEFAULT_TIMEZONE = "Europe/Paris"
DESCRIPTION = """Reads the site's ticket file (contract.tickets in the inventory: CSV or YAML,
relative to the inventory file) and shows, for the tickets opened in the month (in the client's
time zone):
  - plan consumption: corrective tickets and evolutive hours used against the contract's
    allowance (the tier's by default), with the previous month's unused allowance carried over
    when contract.carry_over allows it;
  - response compliance: each ticket's first response (and P0 resolution) against the priority
    matrix: P0 per the tier (critique: 2 h around the clock; business: 4 business hours;
    essentiel: 8 business hours), P1 8 business hours, P2 3 business days, P3 untimed.
    Tickets still unanswered are judged at --as-of (default: now, or the month's end if earlier).

Exit code 1 when a target was missed or the plan is over-consumed, 0 otherwise."""


@dataclass(frozen=True)
class TicketsMonth:
    """A site's tickets for one month, as the monthly report uses them."""

    site: str
    tier: str
    month: str
    timezone: str
    tickets_file: str
    as_of: datetime
    contract: Contract
    tickets: list[Ticket]
    consumption: Consumption
    compliance: Compliance

    @property
    def attention(self) -> bool:
        return self.consumption.over or bool(self.compliance.missed)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "tier": self.tier,
            "month": self.month,
            "timezone": self.timezone,
            "tickets_file": self.tickets_file,
            "as_of": self.as_of.isoformat(),
            "contract": self.contract.to_json(),
            "tickets": [ticket.to_json() for ticket in self.tickets],
            "consumption": self.consumption.to_json(),
            "compliance": self.compliance.to_json(),
        }


def client_timezone(site: Site) -> str:
    client = getattr(site, "client", None)
    return str(getattr(client, "timezone", None) or DEFAULT_TIMEZONE)


def zone_of(name: str, site: Site) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InventoryError(
            f"sites.{site.name}.client.timezone: unknown time zone {name!r}; "
            "expected an IANA name like Europe/Paris"
        ) from exc


def tickets_file(site: Site) -> Path:
    written = site.contract.tickets
    if not written:
        raise InventoryError(
            f"sites.{site.name}.contract.tickets: no ticket file; expected the path of the "
            "site's tickets (CSV or YAML), relative to the inventory file"
        )
    path = Path(written).expanduser()
    return path if path.is_absolute() else Path(site.source).parent / path


def month_report(site: Site, month: Month, as_of: datetime | None = None) -> TicketsMonth:
    """Consumption and compliance of the tickets opened in `month`. Open tickets are judged at
    `as_of` (default: now), never later than the month's end."""
    name = client_timezone(site)
    zone = zone_of(name, site)
    path = tickets_file(site)
    every = load_tickets(path, zone)
    contract = effective_contract(site.contract, site.tier)
    moment = min(as_of or datetime.now(UTC), month.end(zone))
    opened = sorted(month_tickets(every, month, zone), key=lambda t: (t.opened, t.id))
    hours = contract.business_hours
    return TicketsMonth(
        site=site.name,
        tier=site.tier,
        month=str(month),
        timezone=name,
        tickets_file=str(path),
        as_of=moment,
        contract=contract,
        tickets=opened,
        consumption=month_consumption(contract, every, month, zone),
        compliance=compliance(opened, contract.targets, hours, zone, moment),
    )


def add_tickets_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    parser = sub.add_parser(
        "tickets",
        parents=[common],
        help="plan consumption and response-time compliance of a site's tickets for a month",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("site")
    parser.add_argument("--month", required=True, metavar="YYYY-MM", help="calendar month")
    parser.add_argument(
        "--as-of",
        metavar="DATETIME",
        help="instant at which unanswered tickets are judged (ISO; default: now)",
    )
    parser.set_defaults(handler=tickets_command)


def tickets_command(args: argparse.Namespace) -> int:
    site = open_inventory(args).site(args.site)
    month = _month(args.month)
    as_of = _as_of(args.as_of) if args.as_of else None
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=zone_of(client_timezone(site), site))
    try:
        report = month_report(site, month, as_of)
    except TicketImportError as exc:
        for problem in exc.problems:
            print(f"tma-ops: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    emit(args, report.to_json(), "\n".join(report_lines(report)))
    return EXIT_WARNINGS if report.attention else EXIT_OK


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise TmaError(f"--month: {exc}") from exc


def _as_of(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise TmaError(
            f"--as-of: expected an ISO date-time like 2024-05-31T18:00; got {text!r}"
        ) from exc


def report_lines(report: TicketsMonth) -> list[str]:
    used = report.consumption
    lines = [
        f"{report.site}: tickets of {report.month} ({report.tier} tier, times in "
        f"{report.timezone}): {len(report.tickets)} opened, from {report.tickets_file}",
        "plan consumption",
        f"  corrective tickets  {used.corrective_used} used of {_allowance(used)}",
        f"  evolutive hours     {used.evolutive_used_hours:.2f} used of "
        f"{used.evolutive_available_hours:.2f}{_carried_hours(used)}",
        f"  over the plan: {_over(used)}",
    ]
    if report.tickets:
        lines += ["tickets (first response; resolution where timed)"]
        lines += ["  " + line for line in _table(_ticket_rows(report))]
    lines += [f"response compliance (first response, judged at {_local(report.as_of, report)})"]
    lines += ["  " + line for line in _table(_priority_rows(report.compliance))]
    return lines


def _allowance(used: Consumption) -> str:
    if used.corrective_available is None:
        return "unlimited"
    carried = f" ({used.corrective_allowance} + {used.corrective_carried} carried over)"
    return f"{used.corrective_available}{carried if used.corrective_carried else ''}"


def _carried_hours(used: Consumption) -> str:
    if not used.evolutive_carried_hours:
        return ""
    return (
        f" ({used.evolutive_allowance_hours:.2f} + {used.evolutive_carried_hours:.2f} carried over)"
    )


def _over(used: Consumption) -> str:
    parts = []
    if used.corrective_over:
        parts.append(f"{used.corrective_over} corrective ticket(s)")
    if used.evolutive_over_hours:
        parts.append(f"{used.evolutive_over_hours:.2f} evolutive hour(s)")
    return ", ".join(parts) if parts else "no"


def _ticket_rows(report: TicketsMonth) -> list[list[str]]:
    header = ["id", "priority", "kind", "opened", "first response", "resolution", "time", "status"]
    rows = [header]
    for result in report.compliance.tickets:
        ticket = result.ticket
        minutes = int(ticket.time_spent.total_seconds() // 60)
        rows.append(
            [
                ticket.id,
                ticket.priority,
                ticket.kind,
                _local(ticket.opened, report),
                _check(result.first_response),
                _check(result.resolution) if result.resolution else "-",
                f"{minutes // 60}h{minutes % 60:02d}",
                ticket.status or ("resolved" if ticket.resolved else "open"),
            ]
        )
    return rows


def _check(check: Check) -> str:
    if check.target is None:
        return "untimed"
    sign = "<=" if check.elapsed <= check.target else ">"
    return f"{check.status} ({_h(check.elapsed)} {sign} {_h(check.target)} {check.clock})"


def _h(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:.1f}h"


def _priority_rows(result: Compliance) -> list[list[str]]:
    rows = [["priority", "tickets", "met", "late", "pending", "untimed", "rate"]]
    for summary in result.priorities:
        rate = "-" if summary.rate is None else f"{summary.rate:.0%}"
        counts = (summary.tickets, summary.met, summary.late, summary.pending, summary.untimed)
        rows.append([summary.priority, *map(str, counts), rate])
    return rows


def _local(moment: datetime, report: TicketsMonth) -> str:
    return moment.astimezone(ZoneInfo(report.timezone)).strftime("%Y-%m-%d %H:%M")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]

"""`tma-ops report (SITE | --client C) --month YYYY-MM`: the monthly client report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tma_ops.commands import open_inventory, open_journal, state_dir
from tma_ops.config import Inventory
from tma_ops.errors import EXIT_ERROR, EXIT_OK, InventoryError, TmaError
from tma_ops.model import Site
from tma_ops.plan_consumption import Month
from tma_ops.report_data import build_report, client_sites
from tma_ops.report_render import FORMATS, Format, render
from tma_ops.report_text import LANGS
from tma_ops.tickets import TicketImportError

DESCRIPTION = """The monthly report for a client, in French or English, as HTML (self-contained,
print-friendly, SVG charts), PDF, Markdown or JSON (the document the others are laid out from).

Sections, per site: executive summary; tickets handled (the contract's ticket file); plan
consumption (gauges); updates done on production (from the journal: component from -> to);
availability (uptime of the month in the client's time zone, SLA target, incidents, a chart of
each day; from the monitor's database); backups and restore tests; alerts and recommendations
(from the 28-point audit, the SLA and the tickets); next month's plan (preventive updates by
tier, restore-test cadence, held updates, certificate expiry).

SITE reports one site; --client C reports every site whose client.name is C. The language
defaults to the client's (client.language in the inventory). Without --output the report is
written to standard output (a PDF needs --output)."""


def add_report_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "report",
        parents=[common],
        help="the monthly client report (html, pdf, md or json; French or English)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("site", nargs="?", help="the site to report on")
    parser.add_argument("--client", metavar="C", help="report every site whose client.name is C")
    parser.add_argument("--month", required=True, metavar="YYYY-MM", help="calendar month")
    parser.add_argument("--lang", choices=LANGS, help="language (default: the client's)")
    parser.add_argument("--format", choices=FORMATS, help="default: html (json with --json)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE")
    parser.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    month = _month(args.month)
    inventory = open_inventory(args)
    sites = chosen_sites(inventory, args.site, args.client)
    lang = args.lang or sites[0].client.language
    fmt: Format = args.format or ("json" if args.json else "html")
    if fmt == "pdf" and not args.output:
        raise TmaError("--format pdf: a PDF is not written to the terminal; pass --output FILE")
    directory = state_dir(args, inventory)
    try:
        with open_journal(directory, inventory) as journal:
            document = build_report(sites, month, lang, journal, directory)
    except TicketImportError as exc:
        for problem in exc.problems:
            print(f"tma-ops: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    content = render(document, fmt)
    if args.output:
        _write(Path(args.output), content)
        print(f"report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    return EXIT_OK


def chosen_sites(inventory: Inventory, site: str | None, client: str | None) -> list[Site]:
    if (site is None) == (client is None):
        raise TmaError("report: expected either a SITE or --client C, not both nor neither")
    if site is not None:
        return [inventory.site(site)]
    assert client is not None
    found = client_sites(inventory.sites, client)
    if not found:
        names = sorted({s.client.name or s.name for s in inventory.sites.values()})
        raise InventoryError(
            f"--client {client!r}: no site has this client.name; known clients: "
            f"{', '.join(names) or 'none'}"
        )
    return found


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise TmaError(f"--month: {exc}") from exc


def _write(path: Path, content: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(content)
        temporary.replace(path)
    except OSError as exc:
        raise TmaError(f"--output {path}: cannot write the report ({exc.strerror})") from exc

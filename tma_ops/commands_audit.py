"""`tma-ops audit SITE`: the 28-point maintenance checklist, the 10 warning signals and the rule
of the three criticals, scored from the journal, the store and the inventory's declarations."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tma_ops.audit import GREEN, RED, AuditResult, score
from tma_ops.audit_evidence import gather
from tma_ops.audit_points import AUDIT_NOW, PILLARS
from tma_ops.commands import open_inventory, open_journal, say, state_dir
from tma_ops.errors import EXIT_OK, EXIT_WARNINGS
from tma_ops.stores import open_store

DESCRIPTION = """Scores the site against the 28-point maintenance checklist (A security, B
supervision, C backups, D updates and staging, E organisation). Each point is pass or fail from
evidence (the journal: cycles, promotions, restore tests, rollbacks; the store: snapshots, where
they are; the inventory: smoke checks, monitor, contract), or declared-pass / declared-fail from
the site's `declarations` for what no machine can see, or unknown. Evidence wins over a
declaration; a disagreement is shown.

Then the 10 warning signals, the verdict (every critical point green for maintenance to be
sufficient; high points within 30 days) and the rule of the three criticals: no staging kept up
to date, no update for over 6 months and no tested backup raise the AUDIT NOW alert.

Declaring a point in the inventory:
  declarations:
    A5: {ok: true, note: "CDN with WAF rules", date: 2026-01-15}

Exit codes: 0 no critical point failed, 1 a critical point failed or the alert fired,
2 error, 3 invalid inventory."""

MARKS = {
    "pass": ("green", "pass"),
    "fail": ("red", "FAIL"),
    "unknown": ("yellow", "unknown"),
    "declared-pass": ("cyan", "declared pass"),
    "declared-fail": ("magenta", "declared FAIL"),
}
LABELS = {
    "en": {"point": "point", "status": "status", "evidence": "evidence", "signals": "Signals"},
    "fr": {"point": "point", "status": "statut", "evidence": "constat", "signals": "Signaux"},
}


def add_audit_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "audit",
        parents=[common],
        help="score a site against the 28-point maintenance checklist",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("site")
    parser.add_argument(
        "--lang", choices=("en", "fr"), default="en", help="language of the texts (default: en)"
    )
    parser.set_defaults(handler=audit_command)


def audit_command(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    site = inventory.site(args.site)
    directory = state_dir(args, inventory)
    with open_journal(directory, inventory) as journal:
        evidence = gather(site, journal, open_store(site.store), directory)
    result = score(evidence, site.declarations, datetime.now(UTC))
    if args.json:
        say(json.dumps(result.to_json(), ensure_ascii=False, sort_keys=True))
    else:
        render(result, args.lang, _console())
    return EXIT_WARNINGS if result.critical_failed or result.audit_now else EXIT_OK


def render(result: AuditResult, lang: str, console: Console) -> None:
    labels = LABELS[lang]
    for pillar, title in PILLARS.items():
        table = Table(title=title[lang], title_justify="left", expand=True)
        table.add_column(labels["point"], no_wrap=True)
        table.add_column(labels["status"], no_wrap=True, min_width=13)
        table.add_column(labels["evidence"], ratio=1)
        for row in (r for r in result.points if r.point.pillar == pillar):
            colour, mark = MARKS[row.status]
            conflict = f"\n[red]CONFLICT:[/] {escape(row.conflict)}" if row.conflict else ""
            table.add_row(
                f"{row.point.id} {row.point.priority}",
                f"[{colour}]{mark}[/]",
                f"[bold]{escape(row.point.text[lang])}[/]\n{escape(row.evidence)}{conflict}",
            )
        console.print(table)
    console.print(f"\n[bold]{labels['signals']}[/]")
    for signal in result.signals:
        mark = {"present": "[red]PRESENT[/]", "absent": "[green]absent[/]"}.get(
            signal.state, "[yellow]unknown[/]"
        )
        console.print(
            f"  {mark}  {signal.signal.text[lang]} ({signal.signal.level}; {signal.because})"
        )
    console.print()
    for key in ("overall", "high", "medium"):
        if key in result.verdict:
            console.print(result.verdict[key][lang], markup=False)
    if result.audit_now:
        console.print(f"\n[bold red]{AUDIT_NOW[lang]}[/]")
    _counts(result, console)


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:  # piped or captured: wide enough for one line of evidence
        console = Console(highlight=False, width=120)
    return console


def _counts(result: AuditResult, console: Console) -> None:
    green = sum(1 for r in result.points if r.status in GREEN)
    red = sum(1 for r in result.points if r.status in RED)
    unknown = len(result.points) - green - red
    console.print(
        f"{result.site}: {len(result.points)} points: {green} green, {red} failed, "
        f"{unknown} unknown",
        markup=False,
    )

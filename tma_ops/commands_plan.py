"""`tma-ops plan SITE`: every available update with its class, advisories, decision and reason."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from tma_ops.commands import emit, open_inventory
from tma_ops.errors import EXIT_OK, EXIT_WARNINGS
from tma_ops.steps.plan import compute_plan, plan_record
from tma_ops.update_policy import Plan, approvals

DESCRIPTION = """Asks the site's stack which updates exist for the components installed on an
environment (production by default), checks them against the OSV advisories named in
`updates.advisories`, and shows, per update: from, to, class (patch, minor, major), the
advisories it fixes, the decision (planned or held) and why. Nothing is changed.

Rules: a major is planned only when approved (--approve COMPONENT, or updates.approve in the
inventory); a security fix is planned despite holds, allowed classes and cooldowns; otherwise
the tier's defaults or the site's updates.allow, updates.hold and updates.cooldown decide.
Components that stay vulnerable after the plan are listed with the reason.

Exit code 1 when a component stays vulnerable, 0 otherwise."""

COLUMNS = ("component", "from", "to", "class", "advisories", "decision", "reason")


def add_approve_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--approve",
        action="append",
        default=[],
        metavar="COMPONENT",
        help="allow this component's major update in this run (repeatable; 'all' for every one)",
    )


def add_plan_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    plan = sub.add_parser(
        "plan",
        parents=[common],
        help="show the update plan of a site: what would be updated, what is held and why",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("site")
    plan.add_argument(
        "--env", default="production", help="environment to read (default: production)"
    )
    add_approve_option(plan)
    plan.set_defaults(handler=plan_command)


def plan_command(args: argparse.Namespace) -> int:
    site = open_inventory(args).site(args.site)
    approved = approvals(args.approve)
    plan = compute_plan(site, args.env, approved=approved, say=_progress(args))
    record = plan_record(plan, approved)
    emit(
        args,
        {"site": site.name, "environment": args.env, "tier": site.tier, **record},
        "\n".join(plan_lines(site.name, args.env, site.tier, plan)),
    )
    return EXIT_WARNINGS if plan.vulnerable else EXIT_OK


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    def tell(line: str) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"{args.site}: {line}", file=sys.stderr, flush=True)

    return tell


def plan_lines(site: str, env: str, tier: str, plan: Plan) -> list[str]:
    planned, held = len(plan.planned), len(plan.held)
    lines = [f"{site}: plan from {env} ({tier} tier): {planned} planned, {held} held"]
    lines += [
        f"  --approve {name}: no such component; nothing approved by it"
        for name in plan.unmatched_approvals
    ]
    if plan.entries:
        lines += ["  " + line for line in _table(plan)]
    else:
        lines.append("  no update available")
    if plan.vulnerable:
        lines.append(f"{site}: still vulnerable after this plan:")
    for item in plan.vulnerable:
        about = f" ({item.summary})" if item.summary else ""
        lines.append(f"  {item.component} {item.version}: {item.advisory}{about}: {item.reason}")
    return lines


def _table(plan: Plan) -> list[str]:
    rows = [
        [
            e.update.component,
            e.update.from_version,
            e.update.to_version,
            e.update.semver_class or "?",
            ", ".join(e.advisories) or "-",
            e.decision,
            e.reason,
        ]
        for e in plan.entries
    ]
    widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [list(COLUMNS), *rows]
    ]

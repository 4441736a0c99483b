"""`tma-ops verify`: re-read stored snapshots and name every missing or damaged object."""

from __future__ import annotations

import argparse
import secrets
import sys
from dataclasses import asdict
from typing import Any

from tma_ops.commands import emit, open_inventory, progress_for, say
from tma_ops.config import Site
from tma_ops.errors import TmaError
from tma_ops.stores import open_store
from tma_ops.units import human_size
from tma_ops.verify import (
    Problem,
    VerifyOptions,
    VerifyReport,
    parse_subset_percent,
    verify_site,
)

DESCRIPTION = """Re-read a site's stored snapshots and name every missing, truncated or corrupted
object. Three levels, from cheap to thorough:

  (default)                  structure: every manifest parses, every part it lists exists with
                             its recorded size, every increment's parents exist; objects of a
                             snapshot without a manifest are orphans (a warning)
  --read-data                also download every part and compare its SHA-256 and size with
                             the manifest (reads the whole store)
  --read-data-subset PERCENT also read a random share of the parts, about PERCENT of their
                             bytes (e.g. 10 or 10%); the seed is printed, --seed reads the same
                             parts again, and runs with other seeds cover every part over time

Only the stored bytes are read: encrypted parts are checked without their private key.
Exit 0 when clean, 1 when there are only orphans, 6 when anything is missing or damaged."""


def verify_command(args: argparse.Namespace) -> int:
    options = options_from(args)
    inventory = open_inventory(args)
    if args.all == bool(args.sites):
        raise TmaError("name the sites to verify, or pass --all (not both)")
    names = sorted(inventory.sites) if args.all else args.sites
    sites = [inventory.site(name) for name in names]
    if options.subset_percent is not None and not args.json:
        say(
            f"reading a random {options.subset_percent:g}% of the stored bytes "
            f"(seed {options.seed}; --seed {options.seed} reads the same parts)"
        )
    return max(_verify_one(args, site, options, keep_going=len(sites) > 1) for site in sites)


def options_from(args: argparse.Namespace) -> VerifyOptions:
    if args.read_data_subset is None:
        if args.seed is not None:
            raise TmaError("--seed only applies with --read-data-subset")
        return VerifyOptions(read_data=args.read_data)
    percent = parse_subset_percent(args.read_data_subset)
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
    return VerifyOptions(subset_percent=percent, seed=seed)


def _verify_one(
    args: argparse.Namespace, site: Site, options: VerifyOptions, *, keep_going: bool
) -> int:
    try:
        report = verify_site(open_store(site.store), site.name, options, progress_for(args))
    except TmaError as exc:
        if not keep_going:
            raise
        # One unreachable store must not hide what the other sites' stores hold.
        print(f"tma-ops: error: {site.name}: {exc}", file=sys.stderr)
        return exc.exit_code
    for problem in report.problems:
        emit(args, problem_record(site.name, problem), _problem_line(site.name, problem))
    emit(args, summary_record(report, options), _summary_line(report))
    return report.exit_code


def problem_record(site: str, problem: Problem) -> dict[str, Any]:
    return {
        "type": "problem",
        "site": site,
        **asdict(problem),
        "severity": "warning" if problem.is_warning else "error",
        "message": problem.describe(),
    }


def summary_record(report: VerifyReport, options: VerifyOptions) -> dict[str, Any]:
    return {
        "type": "summary",
        "site": report.site,
        "level": _level(options),
        "seed": options.seed if options.subset_percent is not None else None,
        "snapshots": report.snapshots,
        "parts": report.parts,
        "parts_read": report.parts_read,
        "bytes_read": report.bytes_read,
        "errors": len(report.errors),
        "warnings": len(report.warnings),
        "ok": not report.problems,
    }


def _level(options: VerifyOptions) -> str:
    if options.read_data:
        return "read-data"
    return "structure" if options.subset_percent is None else "read-data-subset"


def _problem_line(site: str, problem: Problem) -> str:
    severity = "warning" if problem.is_warning else "error"
    return f"{site}: {severity}: {problem.describe()}"


def _summary_line(report: VerifyReport) -> str:
    errors, warnings = len(report.errors), len(report.warnings)
    verdict = "ok" if not report.problems else f"{errors} error(s), {warnings} warning(s)"
    return (
        f"{report.site}: {report.snapshots} snapshot(s) checked, {report.parts} part(s), "
        f"{report.parts_read} read ({human_size(report.bytes_read)}): {verdict}"
    )

"""`tma-ops prune SITE... | --all [--dry-run]`: apply the retention, say what is kept and why."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from tma_ops.commands import emit, open_inventory, open_journal, say, state_dir
from tma_ops.config import Retention, Site
from tma_ops.errors import EXIT_OK, EXIT_WARNINGS, TmaError
from tma_ops.journal import Journal
from tma_ops.journal_heads import head_published_after
from tma_ops.prune_operation import prune_site
from tma_ops.pruning import PruneResult
from tma_ops.retention import as_utc
from tma_ops.stores import open_store

DESCRIPTION = """Delete the snapshots a site's retention no longer keeps, with restic's meaning
of `forget --keep-*`, times in UTC:

  keep_last N      the N newest snapshots
  keep_daily N     for the last N days that have snapshots, the newest of each day
  keep_weekly N    the same per ISO week (Monday to Sunday; a week can span new year)
  keep_monthly N   the same per calendar month
  keep_yearly N    the same per calendar year
  -1 keeps one for every period, 0 turns a rule off. A rule that has count left once every
  snapshot is counted also keeps the oldest one ("oldest daily", ...).

A snapshot is kept when any rule keeps it, and also when: it is needed by an incremental that
is kept (its whole chain is), a killed cycle run needs it to resume or roll back, or one of its
objects is under a retention lock (S3 Object Lock). Objects left in a snapshot directory without
a manifest (an interrupted snapshot) are deleted unless locked. A snapshot's manifest is deleted
first, so an interrupted prune never leaves a listed, partial snapshot.

Each kept snapshot is printed with its reasons. Exit 1 when the store refused a delete or the
snapshots need attention (an incremental whose parent is missing)."""


def prune(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    if args.all == bool(args.sites):
        raise TmaError("name the sites to prune, or pass --all (not both)")
    names = sorted(inventory.sites) if args.all else args.sites
    sites = [inventory.site(name) for name in names]
    directory = state_dir(args, inventory)
    codes = []
    with open_journal(directory, inventory) as journal:
        for site in sites:
            with head_published_after(
                journal, inventory, directory, site, enabled=not args.dry_run
            ):
                codes.append(_prune_one(args, site, journal, directory, keep_going=len(sites) > 1))
    return max(codes)


def _prune_one(
    args: argparse.Namespace, site: Site, journal: Journal, directory: Path, *, keep_going: bool
) -> int:
    try:
        result = prune_site(site, open_store(site.store), journal, directory, dry_run=args.dry_run)
    except TmaError as exc:
        if not keep_going:
            raise
        print(f"tma-ops: error: {exc}", file=sys.stderr)
        return exc.exit_code
    _print_result(args, site, result)
    return EXIT_OK if result.clean else EXIT_WARNINGS


def _print_result(args: argparse.Namespace, site: Site, result: PruneResult) -> None:
    if not args.json:
        say(f"{site.name}: {describe_policy(site.retention)}")
    _print_snapshots(args, result)
    _print_orphans(args, result)
    for line in result.refused:
        emit(args, {"site": result.site, "kind": "refused", "error": line}, f"  refused  {line}")
    for line in result.plan.warnings:
        emit(args, {"site": result.site, "kind": "warning", "message": line}, f"  warning  {line}")
    _print_summary(args, result)


def _print_snapshots(args: argparse.Namespace, result: PruneResult) -> None:
    for kept in result.plan.kept:
        emit(
            args,
            {
                **_snapshot_line(result, kept.snapshot_id, kept.created_at, "keep"),
                "reasons": list(kept.reasons),
            },
            f"  keep          {kept.snapshot_id}  {_when(kept.created_at)}  "
            + ", ".join(kept.reasons),
        )
    verb = _delete_verb(result)
    for deletion in result.plan.deleted:
        if not result.dry_run and deletion.snapshot_id not in result.deleted:
            continue  # refused: reported with the store's own words
        emit(
            args,
            _snapshot_line(result, deletion.snapshot_id, deletion.created_at, "delete"),
            f"  {verb:<13} {deletion.snapshot_id}  {_when(deletion.created_at)}",
        )


def _print_orphans(args: argparse.Namespace, result: PruneResult) -> None:
    deleted = result.plan.orphan_keys if result.dry_run else result.deleted_orphans
    verb = _delete_verb(result)
    for key in deleted:
        emit(
            args,
            {
                "site": result.site,
                "kind": "orphan",
                "key": key,
                "action": "delete",
                "dry_run": result.dry_run,
            },
            f"  {verb:<13} {key}  (no manifest: left by an interrupted snapshot)",
        )
    for kept in result.plan.kept_orphans:
        emit(
            args,
            {
                "site": result.site,
                "kind": "orphan",
                "key": kept.key,
                "action": "keep",
                "reasons": [kept.reason],
            },
            f"  keep          {kept.key}  (no manifest) {kept.reason}",
        )


def _print_summary(args: argparse.Namespace, result: PruneResult) -> None:
    if result.dry_run:
        snapshots, orphans = len(result.plan.deleted), len(result.plan.orphan_keys)
    else:
        snapshots, orphans = len(result.deleted), len(result.deleted_orphans)
    emit(
        args,
        {
            "site": result.site,
            "kind": "summary",
            "dry_run": result.dry_run,
            "kept": len(result.plan.kept),
            "deleted": snapshots,
            "orphans_deleted": orphans,
            "refused": len(result.refused),
            "warnings": len(result.plan.warnings),
        },
        f"{result.site}: {_delete_verb(result)} {snapshots} snapshot(s) and {orphans} orphan "
        f"object(s), kept {len(result.plan.kept)}"
        + (" (dry run: nothing deleted)" if result.dry_run else ""),
    )


def _snapshot_line(
    result: PruneResult, snapshot_id: str, created: datetime, action: str
) -> dict[str, object]:
    return {
        "site": result.site,
        "kind": "snapshot",
        "snapshot_id": snapshot_id,
        "created_at": as_utc(created).isoformat().replace("+00:00", "Z"),
        "action": action,
        "dry_run": result.dry_run,
    }


def describe_policy(policy: Retention) -> str:
    rules = []
    for name, count in policy.model_dump().items():
        if count != 0:
            rules.append(f"{name} {'all' if count == -1 else count}")
    return "retention " + ", ".join(rules)


def _delete_verb(result: PruneResult) -> str:
    return "would delete" if result.dry_run else "deleted"


def _when(created: datetime) -> str:
    return as_utc(created).strftime("%Y-%m-%d %H:%M UTC")

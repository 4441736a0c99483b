"""`tma-ops rollback SITE [--to RELEASE|SNAPSHOT] [--yes] [--break-glass]`: the emergency
rollback, from the store and the environment alone."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.checks.suite import build_checks, rollback_baselines, run_suite
from tma_ops.commands import emit, open_inventory, open_journal, progress_for, say, state_dir
from tma_ops.config import Site
from tma_ops.cycle import new_run_id
from tma_ops.errors import EXIT_OK, EXIT_ROLLBACK_FAILED, LockHeldError, TmaError, one_line
from tma_ops.journal import Journal
from tma_ops.journal_heads import head_published_after
from tma_ops.lock import LockOwner, SiteLock
from tma_ops.rollback import (
    RollbackDone,
    carry_out,
    choose_rollback,
    describe_data_loss,
    estimate_data_loss,
    release_tree,
)
from tma_ops.rollback_plan import RollbackPlan, plan_rollback
from tma_ops.snapshot import list_snapshots, load_manifest
from tma_ops.stores import Store, open_store

DESCRIPTION = """Put an environment (production by default) back as it was before its newest
promotion, or at a named release or snapshot, and run its smoke suite after.

  no --to          undo the newest promotion: switch the code back to the release before the
                   current one (releases), else restore the newest pre-promotion snapshot
  --to RELEASE     switch the code back to that release (id or unique prefix)
  --to SNAPSHOT    restore that snapshot's files and database (id, unique prefix or 'latest')

The database is restored only when the change being undone ran migrations (or when that is
unknown); before that, the rows visitors wrote since the snapshot in the site's user_data
tables are counted and shown. Releases marked bad are skipped.

Everything needed is read from the store and the environment: it works on a machine with no
local state. A site locked by a running cycle is refused; --break-glass goes on anyway and
journals who overrode which lock. The time to recovery (until the smoke suite passes) is
measured and printed. Exit 0 when the smoke suite passes after the rollback, 7 when it does
not (production needs attention)."""


def add_rollback_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "rollback",
        parents=[common],
        help="emergency rollback of a site (code, and the database when it must)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("site")
    parser.add_argument("--to", metavar="RELEASE|SNAPSHOT", help="what to go back to")
    parser.add_argument("--env", default="production", help="environment (default: production)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--break-glass",
        action="store_true",
        help="go on even if the site's lock is held by a running process (journaled)",
    )
    parser.set_defaults(handler=rollback_command)


def rollback_command(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    site = inventory.site(args.site)
    site.environment(args.env)
    store = open_store(site.store)
    plan = _plan(site, args.env, store, args.to)
    _show(args, site, plan, store)
    if not args.yes:
        _confirm(site, args.env)
    directory = state_dir(args, inventory)
    run_id = new_run_id()
    lock = SiteLock(directory, site.name)
    overridden = _take_lock(lock, run_id, break_glass=args.break_glass)
    try:
        with (
            open_journal(directory, inventory) as journal,
            head_published_after(journal, inventory, directory, site, run_id=run_id),
        ):
            return _roll_back(args, site, store, plan, journal, run_id, overridden, directory)
    finally:
        lock.release()


def _plan(site: Site, env_name: str, store: Store, to: str | None) -> RollbackPlan:
    tree = release_tree(site.environment(env_name))
    releases = tree.releases() if tree is not None else []
    if not any(release.is_current for release in releases):
        releases = []  # no release layout (yet): the snapshots are what there is
    manifests = list_snapshots(store, site.name)
    return plan_rollback(choose_rollback(releases, manifests, env_name, to))


def _show(args: argparse.Namespace, site: Site, plan: RollbackPlan, store: Store) -> None:
    if args.json:
        return
    say(f"{site.name} {args.env}: {plan.describe()}")
    for reason in plan.reasons:
        say(f"  - {reason}")
    if plan.restores_database and plan.snapshot_id:
        manifest = load_manifest(store, site.name, plan.snapshot_id)
        say(f"  - {describe_data_loss(estimate_data_loss(site, args.env, manifest))}")


def _confirm(site: Site, env_name: str) -> None:
    if not sys.stdin.isatty():
        raise TmaError("a rollback changes the environment: pass --yes when not on a terminal")
    answer = input(f"Roll back {site.name} {env_name}? Type the site name to confirm: ")
    if answer.strip() != site.name:
        raise TmaError(f"rollback cancelled: {env_name} was not touched")


def _take_lock(lock: SiteLock, run_id: str, *, break_glass: bool) -> LockOwner | None:
    """Take the site's lock; with break-glass, a lock held by a live process is overridden
    (its owner is returned, to be journaled) and a stale one is broken."""
    try:
        lock.acquire(run_id, break_stale=break_glass)
        return None
    except LockHeldError as exc:
        if not break_glass:
            raise LockHeldError(f"{exc}; in an emergency, rerun with --break-glass") from exc
        _, owner = lock.status()
        return owner or LockOwner(lock.site, "unknown", 0, "unknown", "unknown")


def _roll_back(
    args: argparse.Namespace,
    site: Site,
    store: Store,
    plan: RollbackPlan,
    journal: Journal,
    run_id: str,
    overridden: LockOwner | None,
    directory: Path,
) -> int:
    def record(step: str, status: str, data: dict[str, Any]) -> None:
        journal.append(run_id=run_id, site=site.name, step=step, status=status, data=data)

    start = time.monotonic()
    operator = f"{getpass.getuser()}@{socket.gethostname()}"
    if overridden is not None:
        record("lock", "overridden", {"owner": asdict(overridden), "by": operator})
        say(f"{site.name}: BREAK-GLASS: lock of {overridden.describe()} overridden")
    record(
        "emergency_rollback",
        "started",
        {"environment": args.env, "by": operator, "plan": plan.describe(), "to": args.to},
    )
    checks = build_checks(_target(site, args.env, directory, run_id))
    logs = rollback_baselines(checks, before={})
    try:
        done = carry_out(
            site,
            args.env,
            store,
            plan,
            progress=progress_for(args),
            say=lambda line: say(f"{site.name}: {line}"),
        )
    except BaseException as exc:
        record(
            "emergency_rollback",
            "failed",
            {"error": one_line(exc)},
        )
        raise
    record("emergency_rollback", "done", done.summary())
    results = run_suite(checks, logs)
    recovery = time.monotonic() - start
    return _finish(args, site, done, results, recovery, record)


Record = Callable[[str, str, dict[str, Any]], None]


def _finish(
    args: argparse.Namespace,
    site: Site,
    done: RollbackDone,
    results: list[CheckResult],
    recovery: float,
    record: Record,
) -> int:
    healthy = all(r.ok for r in results)
    record("smoke", "done", {"ok": healthy, "results": [asdict(r) for r in results]})
    summary = {
        "site": site.name,
        "environment": args.env,
        **done.summary(),
        "smoke_ok": healthy,
        "time_to_recovery_s": round(recovery, 3),
    }
    record("emergency_rollback", "finished", summary)
    for result in results:
        if not args.json:
            mark = "ok" if result.ok else "FAILED"
            say(f"{site.name}: smoke {mark} {result.name}: {result.detail}")
    verdict = (
        "smoke suite passes" if healthy else "smoke suite STILL FAILS: production needs attention"
    )
    emit(
        args,
        summary,
        f"{site.name}: rolled back in {done.seconds:.2f} s; {verdict}; "
        f"time to recovery {recovery:.2f} s",
    )
    return EXIT_OK if healthy else EXIT_ROLLBACK_FAILED


def _target(site: Site, env_name: str, directory: Path, run_id: str) -> CheckTarget:
    return CheckTarget(
        site=site.name,
        env_name=env_name,
        env=site.environment(env_name),
        artifacts=directory / "artifacts" / site.name / run_id / env_name,
    )

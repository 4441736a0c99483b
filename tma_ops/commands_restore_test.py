"""`tma-ops restore-test` and `tma-ops status`: prove backups restore, and show who is overdue."""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

from tma_ops.commands import emit, open_inventory, open_journal, progress_for, quiet, say, state_dir
from tma_ops.config import Inventory, Site
from tma_ops.errors import EXIT_OK, EXIT_WARNINGS, TmaError
from tma_ops.journal import Journal
from tma_ops.journal_heads import head_published_after
from tma_ops.model_sandbox import SANDBOX
from tma_ops.restore_cadence import cadence_days, is_due, passed_within_three_months
from tma_ops.restore_test import SnapshotChoice, run_restore_test
from tma_ops.restore_test_record import RestoreTestOutcome, last_passed_at, past_tests
from tma_ops.restore_test_status import site_status, status_line
from tma_ops.stores import open_store
from tma_ops.units import human_size

RESTORE_TEST_DESCRIPTION = """Restore a production snapshot from the site's off-site store into
its `sandbox` environment and prove it works: every part is fetched from the store and its
SHA-256 and size checked, decrypted, restored; the stack's reload and restore_test.start run, the
first http check is awaited, the sandbox's whole smoke suite runs. The sandbox is then torn down
(restore_test.stop, its files removed, its database emptied) whatever happened. Time to recovery
(start of the fetch to a passing smoke suite) and the snapshot's age are printed and journaled.

The snapshot: the newest production snapshot by default, --snapshot ID (an id or unique prefix),
or --random (a random production snapshot; the seed is printed, --seed repeats the choice).

--due tests only the sites whose cadence says so (every site when none is named) and says why the
others are not due. Cadence: the tier's verified-backup row (essentiel every 30 days, business 7,
critique 1) unless restore_test.cadence_days says otherwise; counted from the last passed test.

A sandbox must be an environment of its own: one marked production, or sharing production's or
staging's files or database, is refused before anything is touched.

Inventory: environments.sandbox (declared like staging, with its own root, database and smoke
checks) and optionally restore_test: {cadence_days, start, stop, teardown (default true: set
false to keep the restored copy for inspection), ready_timeout (seconds, default 60)}. start and
stop run with `sh` in the sandbox's code root. The parts are downloaded once, into a private
directory under <state_dir>/restore-test/, removed when the test ends.

Exit codes: 0 every test passed (or none was due), 2 a test failed (restore, start, smoke or
teardown; production is never touched), 3 invalid inventory or no sandbox, 4 the site is locked
by another run, 6 a damaged backup: a part missing, truncated, altered (SHA-256 mismatch) or not
decryptable with the identity file. With several sites, the highest code wins."""

STATUS_DESCRIPTION = """Per site: the newest production snapshot and its age, the last restore
test (passed or failed, when), whether the next one is due, and a flag for a site WITHOUT a
passing restore test in the last three calendar months (checklist C3).
Exit 0 when every site has one, 1 when any site is flagged."""


def add_restore_test_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "restore-test",
        parents=[common],
        help="restore a snapshot into the sandbox and smoke-test it; journal the proof",
        description=RESTORE_TEST_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sites", nargs="*", metavar="SITE")
    parser.add_argument("--all", action="store_true", help="every site of the inventory")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--snapshot", metavar="ID", help="snapshot id or unique id prefix")
    which.add_argument("--random", action="store_true", help="a random production snapshot")
    parser.add_argument("--seed", type=int, help="seed of --random (default: printed)")
    parser.add_argument("--due", action="store_true", help="only the sites whose cadence is up")
    parser.set_defaults(handler=restore_test_command)
    status = sub.add_parser(
        "status",
        parents=[common],
        help="newest snapshot, last restore test, due or not, sites without a recent one",
        description=STATUS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("sites", nargs="*", metavar="SITE")
    status.set_defaults(handler=status_command)


def restore_test_command(args: argparse.Namespace) -> int:
    choice = _choice(args)
    inventory = open_inventory(args)
    names = _site_names(args, inventory)
    directory = state_dir(args, inventory)
    codes = [EXIT_OK]
    with open_journal(directory, inventory) as journal:
        now = datetime.now(UTC)
        for name in names:
            site = inventory.site(name)
            if args.due and not _due(args, site, journal, now):
                continue
            codes.append(_test_one(args, inventory, site, journal, choice, len(names) > 1))
    return max(codes)


def _choice(args: argparse.Namespace) -> SnapshotChoice:
    if args.seed is not None and not args.random:
        raise TmaError("--seed only applies with --random")
    if args.snapshot:
        return SnapshotChoice("named", wanted=args.snapshot)
    if args.random:
        seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
        if not args.json:
            say(f"choosing a random production snapshot (seed {seed}; --seed {seed} repeats it)")
        return SnapshotChoice("random", seed=seed)
    return SnapshotChoice("latest")


def _site_names(args: argparse.Namespace, inventory: Inventory) -> list[str]:
    if args.all and args.sites:
        raise TmaError("name the sites to test, or pass --all (not both)")
    if args.all or (args.due and not args.sites):
        return sorted(inventory.sites)
    if not args.sites:
        raise TmaError("name the sites to test, or pass --all or --due")
    return list(args.sites)


def _due(args: argparse.Namespace, site: Site, journal: Journal, now: datetime) -> bool:
    """Whether --due tests this site; says why not when it does not."""
    if SANDBOX not in site.environments:
        emit(
            args,
            {"site": site.name, "due": None, "reason": "no sandbox environment"},
            f"{site.name}: not tested: no sandbox environment (add environments.sandbox)",
        )
        return False
    cadence = cadence_days(site.tier, site.restore_test.cadence_days)
    due = is_due(last_passed_at(past_tests(journal, site.name)), cadence, now)
    if not due.due:
        emit(
            args,
            {"site": site.name, "due": False, "reason": due.reason},
            f"{site.name}: not due: {due.reason}",
        )
    elif not args.json:
        say(f"{site.name}: due: {due.reason}")
    return due.due


def _test_one(
    args: argparse.Namespace,
    inventory: Inventory,
    site: Site,
    journal: Journal,
    choice: SnapshotChoice,
    keep_going: bool,
) -> int:
    directory = state_dir(args, inventory)
    try:
        with head_published_after(journal, inventory, directory, site):
            outcome = run_restore_test(
                site,
                open_store(site.store),
                journal,
                directory,
                choice=choice,
                progress=progress_for(args),
                say=quiet if args.json else say,
            )
    except TmaError as exc:
        if not keep_going:
            raise
        # One site that cannot be tested must not hide the others' results.
        print(f"tma-ops: error: {site.name}: {exc}", file=sys.stderr)
        return exc.exit_code
    emit(args, _record(outcome), _summary(outcome))
    return outcome.exit_code


def _record(outcome: RestoreTestOutcome) -> dict[str, Any]:
    return {
        "site": outcome.site,
        "run_id": outcome.run_id,
        "passed": outcome.passed,
        "chosen": outcome.chosen,
        **outcome.event_data(),
    }


def _summary(outcome: RestoreTestOutcome) -> str:
    age = f"{outcome.snapshot_age_s / 3600:.1f} h old"
    read = human_size(outcome.bytes_read)
    if outcome.passed:
        passed = sum(1 for check in outcome.smoke if check["ok"])
        return (
            f"{outcome.site}: restore test PASSED: snapshot {outcome.snapshot_id} ({age}, "
            f"{read} read) restored into the sandbox; smoke {passed}/{len(outcome.smoke)} ok; "
            f"time to recovery {outcome.time_to_recovery_s or 0:.1f} s; "
            f"teardown {outcome.teardown}"
        )
    return (
        f"{outcome.site}: restore test FAILED at {outcome.failed_stage}: {outcome.cause}; "
        f"snapshot {outcome.snapshot_id} ({age}); teardown {outcome.teardown}; "
        "production untouched"
    )


def status_command(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    names = args.sites or sorted(inventory.sites)
    sites = [inventory.site(name) for name in names]
    now = datetime.now(UTC)
    flagged = False
    with open_journal(state_dir(args, inventory), inventory) as journal:
        for site in sites:
            status = site_status(site, journal, now)
            flagged = flagged or not passed_within_three_months(status.last_passed_at, now)
            emit(args, status.as_record(), status_line(status))
    return EXIT_WARNINGS if flagged else EXIT_OK

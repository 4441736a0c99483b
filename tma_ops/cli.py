"""Command line: parse, call the library, render. Errors become one line and an exit code."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType

from tma_ops import (
    __version__,
    commands,
    commands_audit,
    commands_audit_log,
    commands_monitor,
    commands_plan,
    commands_prune,
    commands_releases,
    commands_report,
    commands_restore_test,
    commands_rollback,
    commands_tickets,
    commands_verify,
)
from tma_ops.errors import EXIT_ERROR, EXIT_INTERRUPTED, TmaError

EPILOG = """exit codes:
  0  ok                         1  finished with warnings
  2  error                      3  invalid inventory
  4  site lock held (or stale)  5  smoke test failed, change rolled back
  6  integrity failure          7  rollback failed: production needs attention
  130 interrupted

The inventory is read from --inventory, else $TMA_OPS_INVENTORY, else ./tma.yaml.
"""


class Interrupted(TmaError):
    exit_code = EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON object per line",
    )
    parser = argparse.ArgumentParser(
        prog="tma-ops",
        parents=[common],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Preventive maintenance of websites: snapshot production, refresh staging, "
        "test updates there, promote them or roll back; every step journaled.",
    )
    parser.add_argument("-i", "--inventory", help="inventory file or directory")
    parser.add_argument(
        "--state", help="state directory (journal, locks); default from the inventory's state_dir"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"tma-ops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_inventory(sub, common)
    _add_snapshots(sub, common)
    _add_verify(sub, common)
    _add_cycle(sub, common)
    commands_plan.add_plan_parser(sub, common)
    commands_rollback.add_rollback_parser(sub, common)
    commands_releases.add_releases_parser(sub, common)
    commands_restore_test.add_restore_test_parsers(sub, common)
    commands_audit_log.add_audit_log_parser(sub, common)
    commands_audit.add_audit_parser(sub, common)
    commands_tickets.add_tickets_parser(sub, common)
    commands_monitor.add_monitor_parser(sub, common)
    commands_report.add_report_parser(sub, common)
    _add_prune(sub, common)
    _add_lock(sub, common)
    _add_journal(sub, common)
    _add_demo(sub, common)
    _add_store(sub, common)
    return parser


def _add_inventory(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    inventory = sub.add_parser("inventory", help="inspect the inventory")
    inv_sub = inventory.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = inv_sub.add_parser("check", parents=[common], help="validate an inventory")
    check.add_argument("path", nargs="?", help="file or directory (default: --inventory)")
    check.set_defaults(handler=commands.inventory_check)


def _add_snapshots(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    snap = sub.add_parser(
        "snapshot",
        parents=[common],
        help="snapshot an environment (DB + files) to the site's store",
    )
    snap.add_argument("site")
    snap.add_argument("--env", default="production", help="environment (default: production)")
    snap.set_defaults(handler=commands.snapshot)
    snaps = sub.add_parser("snapshots", help="list snapshots")
    snaps_sub = snaps.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = snaps_sub.add_parser("list", parents=[common], help="list a site's snapshots")
    listing.add_argument("site")
    listing.set_defaults(handler=commands.snapshots_list)
    restore = sub.add_parser(
        "restore", parents=[common], help="restore a snapshot (DB + files) into an environment"
    )
    restore.add_argument("site")
    restore.add_argument("snapshot", help="snapshot id, unique id prefix, or 'latest'")
    restore.add_argument(
        "--to",
        required=True,
        dest="to_env",
        metavar="ENV",
        help="environment to overwrite (production or staging)",
    )
    restore.add_argument(
        "--yes",
        action="store_true",
        help="do not ask for confirmation before overwriting production",
    )
    restore.set_defaults(handler=commands.restore)


def _add_verify(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    verify = sub.add_parser(
        "verify",
        parents=[common],
        help="re-read stored snapshots; name missing, truncated or corrupted objects",
        description=commands_verify.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("sites", nargs="*", metavar="SITE", help="sites to verify")
    verify.add_argument("--all", action="store_true", help="every site of the inventory")
    level = verify.add_mutually_exclusive_group()
    level.add_argument(
        "--read-data", action="store_true", help="read every part and check its SHA-256"
    )
    level.add_argument(
        "--read-data-subset",
        metavar="PERCENT",
        help="read a random subset of the parts, about PERCENT of their bytes",
    )
    verify.add_argument("--seed", type=int, help="seed of the random subset (default: printed)")
    verify.set_defaults(handler=commands_verify.verify_command)


def _add_cycle(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cycle = sub.add_parser(
        "cycle",
        parents=[common],
        help="run the preventive cycle on sites",
        description="preflight, snapshot production, verify, refresh staging, plan, apply on "
        "staging, smoke staging, pre-promotion snapshot, promote, smoke production, "
        "roll back on failure. A killed run is resumed by the next one.",
    )
    cycle.add_argument("sites", nargs="*", metavar="SITE")
    cycle.add_argument("--all", action="store_true", help="every site of the inventory")
    cycle.add_argument(
        "--dry-run",
        action="store_true",
        help="print the update plan from production and change nothing",
    )
    cycle.add_argument(
        "--break-stale-lock",
        action="store_true",
        help="take over a lock left by a process that is gone",
    )
    commands_plan.add_approve_option(cycle)
    cycle.set_defaults(handler=commands.cycle)


def _add_prune(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    prune = sub.add_parser(
        "prune",
        parents=[common],
        help="delete the snapshots the retention no longer keeps; say why each one stays",
        description=commands_prune.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prune.add_argument("sites", nargs="*", metavar="SITE")
    prune.add_argument("--all", action="store_true", help="every site of the inventory")
    prune.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted and delete nothing"
    )
    prune.set_defaults(handler=commands_prune.prune)


def _add_lock(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    lock = sub.add_parser("lock", help="inspect or break site locks")
    lock_sub = lock.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = lock_sub.add_parser("status", parents=[common], help="lock state of sites")
    status.add_argument("sites", nargs="*", metavar="SITE")
    status.set_defaults(handler=commands.lock_status)
    brk = lock_sub.add_parser(
        "break", parents=[common], help="remove a stale lock (refused while its owner is alive)"
    )
    brk.add_argument("site")
    brk.set_defaults(handler=commands.lock_break)


def _add_journal(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from tma_ops import commands_journal

    journal = sub.add_parser("journal", help="read and verify the journal")
    j_sub = journal.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = j_sub.add_parser("show", parents=[common], help="print journal events")
    show.add_argument("--site")
    show.add_argument("--run")
    show.set_defaults(handler=commands.journal_show)
    verify = j_sub.add_parser(
        "verify",
        parents=[common],
        help="check the hash chain (and, with --against-store, the signed heads in the store)",
        description=commands_journal.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands_journal.add_verify_options(verify)
    verify.set_defaults(handler=commands_journal.journal_verify)


def _add_demo(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="build the demo workspace and run a full cycle on it",
        description="Builds two demo sites (production + staging each, served over HTTP on "
        "127.0.0.1), a channel with a good and a breaking update, and runs the "
        "cycle on both. No network, no root.",
    )
    demo.add_argument(
        "--workspace", default="tma-demo", help="directory to (re)build (default: ./tma-demo)"
    )
    demo.set_defaults(handler=commands.demo)
    demo_sub = demo.add_subparsers(dest="action", metavar="ACTION")
    serve = demo_sub.add_parser(
        "serve", parents=[common], help="serve a demo workspace's sites until interrupted"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8765)
    serve.set_defaults(handler=commands.demo_serve)


def _add_store(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from tma_ops.commands_store import add_store_parser

    add_store_parser(sub, common)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return int(args.handler(args))
    except TmaError as exc:
        return _report(args, exc, exc.exit_code)
    except KeyboardInterrupt as exc:
        return _report(args, Interrupted("interrupted"), EXIT_INTERRUPTED, exc)
    except Exception as exc:
        return _report(args, exc, EXIT_ERROR)


def _report(
    args: argparse.Namespace, exc: BaseException, code: int, cause: BaseException | None = None
) -> int:
    if args.debug:
        traceback.print_exception(cause or exc, file=sys.stderr)
    prefix = "error" if isinstance(exc, TmaError) else f"unexpected error ({type(exc).__name__})"
    print(f"tma-ops: {prefix}: {exc}", file=sys.stderr)
    if not isinstance(exc, TmaError) and not args.debug:
        print("tma-ops: rerun with --debug for the traceback", file=sys.stderr)
    sys.stderr.flush()
    os.environ.pop("TMA_OPS_PAUSE_AT", None)
    return code

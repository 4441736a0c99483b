"""`tma-ops audit-log export` and `tma-ops audit-log verify`: restore tests for an auditor."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tma_ops import audit_verifier
from tma_ops.audit_export import ExportInputs, HeadRecord, build_export, parse_range, read_heads
from tma_ops.audit_export_render import FORMATS, render
from tma_ops.commands import emit, open_inventory, open_journal, say, state_dir
from tma_ops.config import Inventory
from tma_ops.errors import EXIT_INTEGRITY, EXIT_OK, IntegrityError, TmaError
from tma_ops.journal_heads import signing_key_path, trusted_public_keys
from tma_ops.signing import load_or_create_signer
from tma_ops.stores import open_store

EXPORT_DESCRIPTION = """Export the restore tests that ended in a period, for an auditor: snapshot
id, every part's SHA-256 and size, time to recovery, snapshot age, smoke results, pass or fail
and cause. With them: the local journal's chain verification, the signed run heads found in the
sites' stores (verified with the journal's key) and, in json and html, a chain proof (the
exported events in full and the hashes linking them to the newest signed head that covers them;
events newer than every signed head are marked "not yet covered by a signed head").

Each file is signed with the journal's signing key (<state_dir>/journal-signing-key.pem, or the
inventory's journal.signing_key) and checked with its public half alone:
  python3 audit_verifier.py EXPORT --public-key journal-signing-key.pem.pub
(the verifier is the single file tma_ops/audit_verifier.py) or `tma-ops audit-log verify`.

--from and --to take a date (YYYY-MM-DD: --to includes that whole UTC day) or a UTC time
(2024-05-01T12:00:00Z). json and csv go to stdout unless --output is given; html is written to
--output or to tma-audit-<from>-<to>.html, whose name is printed.
Exit 0 when written; 6 when written but the journal's chain or a signed head shows a problem."""

VERIFY_DESCRIPTION = """Check an audit export (json, csv or html) with the journal's public key:
its signature and, for json and html, its chain proof (every exported event re-hashed, the
skeleton's links, the covering head's signature). Exit 0 when everything holds, 6 naming the
first problem otherwise. Same checks as `python3 audit_verifier.py EXPORT --public-key PEM`."""


def add_audit_log_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser(
        "audit-log", help="export restore tests with the journal's proof; verify an export"
    )
    audit_sub = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = audit_sub.add_parser(
        "export",
        parents=[common],
        help="signed export of the restore tests of a period (json, csv or html)",
        description=EXPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--from", dest="start", required=True, metavar="DATE", help="included")
    export.add_argument("--to", dest="end", required=True, metavar="DATE", help="included")
    export.add_argument("--site", help="only this site's restore tests (default: every site)")
    export.add_argument("--format", choices=FORMATS, default="json", help="default: json")
    export.add_argument("--output", "-o", metavar="FILE", help="file to write")
    export.set_defaults(handler=export_command)
    verify = audit_sub.add_parser(
        "verify",
        parents=[common],
        help="check an export's signature and chain proof with the public key",
        description=VERIFY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("export", metavar="EXPORT", help="the exported file")
    verify.add_argument(
        "--public-key",
        action="append",
        required=True,
        metavar="PEM",
        help="the journal's public key (<signing key>.pub); repeat for older keys",
    )
    verify.set_defaults(handler=verify_command)


def export_command(args: argparse.Namespace) -> int:
    period = parse_range(args.start, args.end)
    inventory = open_inventory(args)
    names = [inventory.site(args.site).name] if args.site else sorted(inventory.sites)
    state = state_dir(args, inventory)
    signer = load_or_create_signer(signing_key_path(state, inventory))
    trusted = trusted_public_keys(signer.public_pem, inventory)
    with open_journal(state, inventory) as journal:
        head = journal.head()
        events = [event for event in journal.events() if event.id <= head[0]]
        report = journal.verify()
        journal_id = journal.journal_id
    hashes = {event.id: event.hash for event in events}
    heads: list[HeadRecord] = []
    for url, spec in _distinct_stores(inventory, names).items():
        _progress(args, f"reading the signed heads of journal {journal_id} in {url}")
        heads.extend(read_heads(open_store(spec), journal_id, trusted, hashes))
    inputs = ExportInputs(
        journal_id, head, report, events, heads, period, args.site, datetime.now(UTC)
    )
    export = build_export(inputs)
    data = render(export, args.format, signer)
    target = _write(args, data)
    return _finish(args, export, target)


def _distinct_stores(inventory: Inventory, names: list[str]) -> dict[str, Any]:
    stores: dict[str, Any] = {}
    for name in names:
        spec = inventory.site(name).store
        stores.setdefault(spec.url, spec)
    return stores


def _progress(args: argparse.Namespace, line: str) -> None:
    if not args.json:
        print(line, file=sys.stderr, flush=True)


def _write(args: argparse.Namespace, data: bytes) -> Path | None:
    target = args.output
    if target is None and args.format == "html":
        start, end = (_file_safe(text) for text in (args.start, args.end))
        target = f"tma-audit-{start}-{end}.html"
    if target is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return None
    path = Path(target)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(data)
    temporary.replace(path)
    return path


def _file_safe(text: str) -> str:
    return "".join(char if char.isalnum() or char in "-_" else "-" for char in text.strip())


def _finish(args: argparse.Namespace, export: dict[str, Any], target: Path | None) -> int:
    problems = export_problems(export)
    if target is not None:
        tests = export["restore_tests"]
        failed = sum(1 for test in tests if test["status"] == "failed")
        emit(
            args,
            {
                "output": str(target),
                "format": args.format,
                "restore_tests": len(tests),
                "failed": failed,
                "problems": problems,
            },
            f"wrote {target}: {len(tests)} restore test(s), {failed} failed, {args.format}, signed",
        )
    for problem in problems:
        print(f"tma-ops: warning: {problem}", file=sys.stderr)
    return EXIT_INTEGRITY if problems else EXIT_OK


def export_problems(export: dict[str, Any]) -> list[str]:
    """What the export records as wrong with the journal or its signed heads."""
    problems = []
    if not export["journal"]["verify"]["ok"]:
        problems.append(f"journal chain: {export['journal']['verify']['reason']}")
    problems.extend(
        f"signed head {head['key']} in {head['store']}: {head['problem']}"
        for head in export["signed_heads"]
        if head["problem"]
    )
    return problems


def verify_command(args: argparse.Namespace) -> int:
    outcome = audit_verifier.Outcome()
    try:
        audit_verifier.verify_file(
            Path(args.export), [Path(key) for key in args.public_key], outcome
        )
    except audit_verifier.Unreadable as exc:
        raise TmaError(str(exc)) from None
    except audit_verifier.VerificationFailed as exc:
        _print_checks(args, outcome, ok=False, problem=str(exc))
        raise IntegrityError(f"{args.export}: {exc}") from None
    _print_checks(args, outcome, ok=True, problem=None)
    return EXIT_OK


def _print_checks(
    args: argparse.Namespace, outcome: audit_verifier.Outcome, *, ok: bool, problem: str | None
) -> None:
    if args.json:
        emit(
            args, {"export": args.export, "ok": ok, "checks": outcome.lines, "problem": problem}, ""
        )
        return
    for line in outcome.lines:
        say(line)
    if ok:
        say(f"ok: {args.export} verified")

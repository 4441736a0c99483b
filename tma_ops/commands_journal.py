"""`tma-ops journal verify [--against-store] [--site S] [--public-key PEM]`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tma_ops import commands
from tma_ops.commands import (
    emit,
    open_inventory,
    open_journal,
    require_journal,
    say,
    state_dir,
)
from tma_ops.config import Inventory, Site
from tma_ops.errors import EXIT_INTEGRITY, EXIT_OK, EXIT_WARNINGS, TmaError
from tma_ops.journal_heads import (
    AgainstStoreReport,
    check_against_heads,
    list_heads,
    read_public_key,
    trusted_public_keys,
)
from tma_ops.journal_heads import signing_key_path as default_signing_key_path
from tma_ops.signing import load_public_key, public_key_path
from tma_ops.stores import open_store

DESCRIPTION = """Check the journal's hash chain and head row; name the first broken event.

With --against-store, also compare the journal with the signed heads that every run copied to
the store (journal/<journal id>/heads/ in the store of each site, or of --site only; a store
shared by several sites is read once). This catches what the local check cannot: a journal
whose events were edited, deleted, reordered or cut off and whose chain and head row were then
recomputed. Each head's signature is checked with the public half of the journal signing key
(<signing key>.pub beside it) or with --public-key, the file to pass on another machine.

Exit 0 when all is intact, 1 when the store holds no head to compare with, 6 when anything is
caught (each fault named on its own line)."""


def add_verify_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--against-store",
        action="store_true",
        help="also compare with the signed run heads kept in the sites' stores",
    )
    parser.add_argument("--site", help="read the heads from this site's store only")
    parser.add_argument(
        "--public-key",
        metavar="PEM",
        action="append",
        help="public key of a journal signing key; repeat it for keys replaced since (default: "
        "the signing key's .pub and the inventory's journal.former_public_keys)",
    )


def journal_verify(args: argparse.Namespace) -> int:
    if not args.against_store:
        if args.site or args.public_key:
            raise TmaError("journal verify: --site and --public-key go with --against-store")
        return commands.journal_verify(args)
    return _verify_against_store(args)


def _verify_against_store(args: argparse.Namespace) -> int:
    inventory = open_inventory(args)
    directory = state_dir(args, inventory)
    require_journal(directory, inventory)
    public_pems = _public_keys(args, directory, inventory)
    sites = [inventory.site(args.site)] if args.site else list(inventory.sites.values())
    with open_journal(directory, inventory) as journal:
        journal_id, where = journal.journal_id, journal.description
        # Heads first: a run ending meanwhile then adds events, never a head beyond them.
        heads, stores = _heads_of(sites, journal_id, args.json)
        local = journal.verify()
        events = journal.events()
    report = check_against_heads(events, heads, public_pems, local=local, journal_id=journal_id)
    return _print_report(args, where, journal_id, stores, report)


def _public_keys(args: argparse.Namespace, directory: Path, inventory: Inventory) -> list[bytes]:
    if args.public_key:
        return [
            read_public_key(Path(path).expanduser(), "--public-key") for path in args.public_key
        ]
    where = public_key_path(default_signing_key_path(directory, inventory))
    try:
        current = where.read_bytes()
    except OSError as exc:
        raise TmaError(
            f"public key {where}: cannot read it ({exc.strerror}); on another machine, pass "
            "--public-key with the signing key's .pub"
        ) from exc
    load_public_key(current, source=f"public key {where}")
    return trusted_public_keys(current, inventory)


def _heads_of(
    sites: list[Site], journal_id: str, quiet: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """The heads of every distinct store of `sites`, each tagged with the store's URL."""
    heads: list[dict[str, Any]] = []
    seen: list[str] = []
    for site in sites:
        spec = site.store
        identity = f"{spec.endpoint_url or ''} {spec.url}"
        if identity in seen:
            continue
        seen.append(identity)
        store = open_store(spec)
        found = list_heads(store, journal_id)
        if not quiet:
            say(f"store {store.url}: {len(found)} head(s) of this journal")
        heads.extend({**head, "store": store.url} for head in found)
    return heads, [identity.strip() for identity in seen]


def _print_report(
    args: argparse.Namespace,
    where: str,
    journal_id: str,
    stores: list[str],
    report: AgainstStoreReport,
) -> int:
    code = EXIT_OK if report.ok else EXIT_INTEGRITY
    if report.ok and report.heads == 0 and report.local_end > 0:
        code = EXIT_WARNINGS
    if args.json:
        emit(
            args,
            {"journal": where, "journal_id": journal_id, "stores": stores, **asdict(report)},
            "",
        )
        return code
    for problem in report.problems:
        say(f"  FAILED: {problem}")
    if code == EXIT_INTEGRITY:
        print(
            f"tma-ops: error: journal {where}: {len(report.problems)} fault(s) against the "
            f"store: {report.problems[0]}",
            file=sys.stderr,
            flush=True,
        )
    elif code == EXIT_WARNINGS:
        say(
            f"journal {where}: chain intact ({report.local_end} events), but the store holds no "
            "signed head of this journal to compare with"
        )
    else:
        say(
            f"journal {where}: ok against the store: {report.local_end} events, chain intact, "
            f"{report.matching} signed head(s) match (newest: event {report.newest_matching})"
        )
    return code

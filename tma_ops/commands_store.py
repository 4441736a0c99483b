"""`tma-ops store init SITE... | --all`: prepare the sites' stores, say what was and was not set."""

from __future__ import annotations

import argparse

from tma_ops.commands import emit, open_inventory
from tma_ops.errors import EXIT_OK, EXIT_WARNINGS, TmaError

INIT_DESCRIPTION = """\
Prepare the store of each named site (or of every site) before its first snapshot.
Safe to run again: what is already in place is left as it is.

s3:// stores (the credentials need the bucket-level permissions for each step):
  bucket       created when missing; with Object Lock when the store sets object_lock
  versioning   enabled
  object lock  enabled when the store sets object_lock, without default retention:
               tma-ops sets the retention of every snapshot object itself
  lifecycle    a rule under the store's prefix aborting multipart uploads left
               incomplete (a killed run) after 7 days; existing rules are kept
file:// stores: the directory is created; Object Lock is not available there.

Each setting is reported as done, already, skipped (not asked for) or failed with the
reason. Exit 0 when nothing failed, 1 (warnings) when some setting could not be set:
the last lines name them."""


def add_store_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    store = sub.add_parser("store", help="prepare the sites' snapshot stores")
    store_sub = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = store_sub.add_parser(
        "init",
        parents=[common],
        help="create and configure the store of sites (bucket, versioning, Object Lock...)",
        description=INIT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("sites", nargs="*", metavar="SITE")
    init.add_argument("--all", action="store_true", help="every site of the inventory")
    init.set_defaults(handler=store_init)


def store_init(args: argparse.Namespace) -> int:
    from tma_ops.stores.s3_setup import init_store

    inventory = open_inventory(args)
    if args.all == bool(args.sites):
        raise TmaError("name the sites whose stores to prepare, or pass --all (not both)")
    names = sorted(inventory.sites) if args.all else args.sites
    prepared: dict[str, str] = {}  # store -> the first site that had it prepared
    unset: list[str] = []
    for name in names:
        site = inventory.site(name)
        spec = site.store
        identity = f"{spec.url} {spec.endpoint_url or ''}"
        if identity in prepared:
            emit(
                args,
                {"site": site.name, "store": spec.url, "same_as": prepared[identity]},
                f"{site.name}: {spec.url}: same store as {prepared[identity]}, prepared above",
            )
            continue
        prepared[identity] = site.name
        for result in init_store(spec):
            detail = f" ({result.detail})" if result.detail else ""
            emit(
                args,
                {"site": site.name, "store": spec.url, **vars(result)},
                f"{site.name}: {spec.url}: {result.setting}: {result.status}{detail}",
            )
            if result.status == "failed":
                unset.append(f"{site.name}: {spec.url}: {result.setting}")
    for line in unset:
        emit(args, {"could_not_set": line}, f"could not set {line}")
    return EXIT_WARNINGS if unset else EXIT_OK

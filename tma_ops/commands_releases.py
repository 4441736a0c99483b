"""`tma-ops releases list|adopt SITE`: the code releases kept on an environment."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any

from tma_ops.commands import emit, open_inventory, say
from tma_ops.config import Site
from tma_ops.cycle import new_run_id
from tma_ops.errors import EXIT_OK, TmaError
from tma_ops.releases import ReleaseTree
from tma_ops.rollback import release_tree

DESCRIPTION = """An environment that declares `releases:` keeps its code under root as
releases/<id>/ (one per promotion), shared/ (the declared shared paths, linked into every
release) and `current`, a link switched atomically to the live release. The web server serves
root/current. A rollback of code switches `current` back; releases marked bad are skipped.

  list    the releases of an environment, newest last, with their status and snapshot
  adopt   turn the plain tree at root into the first release (point the web server at
          root/current afterwards); the shared paths are moved to shared/ and linked"""


def add_releases_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    releases = sub.add_parser(
        "releases",
        help="list or adopt the code releases of an environment",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = releases.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="list an environment's releases")
    adopt = actions.add_parser(
        "adopt", parents=[common], help="make the plain tree at root the first release"
    )
    for parser in (listing, adopt):
        parser.add_argument("site")
        parser.add_argument("--env", default="production", help="environment (default: production)")
    adopt.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    listing.set_defaults(handler=releases_list)
    adopt.set_defaults(handler=releases_adopt)


def releases_list(args: argparse.Namespace) -> int:
    site = open_inventory(args).site(args.site)
    tree = _tree(site, args.env)
    if not tree.exists():
        raise TmaError(
            f"{site.name}/{args.env}: no releases yet under {site.environment(args.env).root}; "
            f"run `tma-ops releases adopt {site.name} --env {args.env}`"
        )
    for release in tree.releases():
        mark = "*" if release.is_current else " "
        snapshot = f" snapshot {release.snapshot_id}" if release.snapshot_id else ""
        emit(
            args,
            {"site": site.name, "environment": args.env, **asdict(release)},
            f"{mark} {release.id}  {release.status:<7}{snapshot}",
        )
    return EXIT_OK


def releases_adopt(args: argparse.Namespace) -> int:
    site = open_inventory(args).site(args.site)
    tree = _tree(site, args.env)
    if tree.exists():
        raise TmaError(f"{site.name}/{args.env}: already kept as releases (current is a release)")
    root = site.environment(args.env).root
    if not args.yes:
        if not sys.stdin.isatty():
            raise TmaError("adopt moves the tree at root: pass --yes when not on a terminal")
        answer = input(f"Move {root} into {root}/releases/ and link {root}/current? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise TmaError("adopt cancelled: nothing was moved")
    release = tree.adopt(new_run_id())
    say(f"{site.name}/{args.env}: {root} is now release {release.id}; serve {root}/current")
    return EXIT_OK


def _tree(site: Site, env_name: str) -> ReleaseTree:
    tree = release_tree(site.environment(env_name))
    if tree is None:
        raise TmaError(
            f"{site.name}/{env_name}: the inventory declares no `releases:` for this environment"
        )
    return tree

"""Rollback benchmark: a code-only rollback's time, and a full rollback against the raw restore.

    .venv/bin/python bench/rollback_bench.py [--size GIB] [--reps N] [--legs LEG,...]

On a working copy of the snapshot benchmark's cached site (generated once under --workdir: a
WordPress-like tree of --size GiB and a MariaDB database dumping to ~200 MB per GiB; the copy on
/dev/shm by default), kept as releases (adopted, then a second release with a plugin changed,
live and pending):

1. code: the code-only rollback (switch back to the first release, keep the database) planned
   and carried out in this process, median of --code-reps; then the whole
   `tma-ops rollback SITE --yes --json` (process start and smoke check included). Target < 1 s.
2. full: a snapshot (file:// store, zstd, age) restored whole by carry_out (files + database)
   against `mysql DB < dump.sql` + `tar -xf files.tar -C NEW` + the same swap, and against the
   same tools reading the stored parts through `age -d | zstd -d`; rotating order, medians,
   ratios. Target <= 1.2x the raw restore. The site's database user may create the restore's
   scratch databases (`<db>__tma_*`), unless --no-scratch-grant.

Needs root (the test harness runs mariadbd as the mysql user), age, zstd, mysql, mysqldump, tar.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import sys
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import rollbench  # noqa: F401 - bench/ and tests/ on sys.path
from rollbench import report
from rollbench.legs import CodeOnly, FullRollback, code_only_leg, full_leg
from rollbench.workcopy import (
    SmokeServer,
    grant_scratch_databases,
    keep_as_releases,
    rollback_inventory,
    user_data_problem,
    working_copy,
)
from snapbench.context import SITE, Bench
from snapbench.services import Services, terminating_on_signals
from snapshot_bench import age_key, ensure_site

from tma_ops.config import load_inventory
from tma_ops.stores import open_store

LEGS = ("code", "full")
TOOLS = ["age", "age-keygen", "zstd", "mysql", "mysqldump", "tar", "cp"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See bench/README.md for figures."
    )
    add = parser.add_argument
    add(
        "--size",
        type=float,
        default=1.0,
        help="GiB of site files (default 1; the DB scales with it: ~200 MB dump per GiB)",
    )
    add(
        "--reps",
        type=int,
        default=3,
        help="measured repetitions of the full leg (medians; default 3)",
    )
    add(
        "--code-reps",
        type=int,
        default=15,
        help="measured repetitions of the code-only leg (medians; default 15)",
    )
    add("--warmup", type=int, default=1, help="unmeasured rounds before each leg (default 1)")
    add("--legs", default=",".join(LEGS), help=f"comma-separated subset of {','.join(LEGS)}")
    add(
        "--workdir",
        type=Path,
        default=Path("/tmp/tma-snapshot-bench"),
        help="the snapshot benchmark's workdir: its site cache is reused (world-traversable)",
    )
    add(
        "--store-dir",
        type=Path,
        default=Path("/dev/shm"),
        help="where the file:// store and the raw copies go (default /dev/shm)",
    )
    add(
        "--site-dir",
        type=Path,
        default=Path("/dev/shm"),
        help="where the working copy of the site (tree + MariaDB data) goes (default /dev/shm: "
        "the disk out of the comparison; the workdir: on disk, the tree as hard links)",
    )
    add("--no-encryption", action="store_true", help="store parts without age encryption")
    add(
        "--skip-sealed",
        action="store_true",
        help="leave out the third side of the full leg (the raw tools reading the stored parts "
        "through age -d | zstd -d)",
    )
    add(
        "--against-tree",
        type=Path,
        help="a copy of the project at another version (e.g. before a change): its tma_ops "
        "restores too, as one more side of the full leg, for before/after figures side by side",
    )
    add(
        "--no-scratch-grant",
        action="store_true",
        help="leave the site's database user without the grant on its scratch databases "
        "(<db>__tma_*): the restore then loads the live database after the files instead of "
        "loading a shadow beside them (a shared host's case)",
    )
    add("--regenerate", action="store_true", help="rebuild the cached site")
    add(
        "--profile",
        action="store_true",
        help="profile one CLI rollback and each full rollback with cProfile (stats in --workdir)",
    )
    add("--results", type=Path, help="also write the measurements as JSON here")
    return parser


def parse_args() -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args()
    args.legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    unknown = set(args.legs) - set(LEGS)
    if unknown:
        parser.error(f"unknown legs: {', '.join(sorted(unknown))}; expected {', '.join(LEGS)}")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        parser.error(f"missing tools: {', '.join(missing)}")
    if args.against_tree and not (args.against_tree / "tma_ops" / "__init__.py").is_file():
        parser.error(f"--against-tree {args.against_tree}: expected a copy of the project")
    if os.geteuid() != 0:
        parser.error("run as root: MariaDB runs as the mysql user")
    return args


def store_spec(run_dir: Path, sink_dir: Path, encrypted: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": f"file://{sink_dir / 'store'}", "full_every": 1}
    if encrypted:
        recipient = age_key(run_dir)
        spec["encryption"] = {
            "recipients": [recipient],
            "identity_file": str(run_dir / "age-key.txt"),
        }
    return spec


def run_legs(args: argparse.Namespace, bench: Bench, inventory: Path) -> list[Any]:
    site = load_inventory(inventory).site(SITE)
    store = open_store(site.store, inventory.parent)
    bench.say("== keeping the site as releases (adopt, prepare a second one, switch)")
    pair = keep_as_releases(site)
    results: list[Any] = []
    for leg in args.legs:
        bench.say(f"== leg {leg}")
        try:
            if leg == "code":
                results.append(code_only_leg(bench, site, store, pair, inventory, args.code_reps))
            else:
                key_file = None if args.no_encryption else bench.run_dir / "age-key.txt"
                sealed = not args.skip_sealed
                against = args.against_tree
                results.append(full_leg(bench, site, store, inventory, key_file, sealed, against))
        except Exception as exc:  # one broken leg must not hide the other's figures
            bench.say(f"   leg {leg} failed: {type(exc).__name__}: {exc}")
            error = f"{type(exc).__name__}: {exc}"
            results.append(CodeOnly(error=error) if leg == "code" else FullRollback(error=error))
    return results


def conditions(bench: Bench, encrypted: bool) -> str:
    meta = bench.cache.meta()
    load = os.getloadavg()
    sealing = "zstd + age" if encrypted else "zstd, no encryption"
    return (
        f"site: {meta['bytes'] / 1e6:,.0f} MB in {meta['files']:,} files, database dump "
        f"{meta['dump_bytes'] / 1e6:,.0f} MB ({meta['posts']:,} posts), kept as 2 releases\n"
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"at the end; store: file:// on {bench.sink_dir.parent}, parts {sealing}"
        + "".join(f"\nnote: {note}" for note in bench.notes)
    )


def make_dirs(stack: ExitStack, *directories: Path) -> None:
    """Fresh, world-traversable directories (MariaDB runs as mysql), removed on every way out."""
    for directory in directories:
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        directory.mkdir(parents=True)
        directory.chmod(0o755)


def set_up(args: argparse.Namespace, stack: ExitStack, log: Path) -> tuple[Bench, Path]:
    """The working copy, its MariaDB and web server, the store, the inventory."""
    cache = ensure_site(args)
    pid = os.getpid()
    run_dir = args.workdir / f"run-{pid}"
    sink_dir = args.store_dir / f"tma-rollback-bench-{pid}"
    site_dir = args.site_dir / f"tma-rollback-site-{pid}"
    make_dirs(stack, run_dir, sink_dir, site_dir)
    work = working_copy(cache, site_dir)
    services = Services(stack)
    server = services.start_mariadb(work.db_base)
    if not args.no_scratch_grant:
        grant_scratch_databases(server)
    smoke = SmokeServer(work.root / "current")
    stack.callback(smoke.stop)
    spec = store_spec(run_dir, sink_dir, not args.no_encryption)
    bench = Bench(
        work, run_dir, sink_dir, services, "", ["-1"],
        args.reps, args.warmup, 0.0, args.profile, log,
    )  # fmt: skip
    inventory = rollback_inventory(bench, spec, smoke.url)
    problem = user_data_problem(load_inventory(inventory).site(SITE))
    if problem:
        bench.say(f"   user-data rows cannot be counted, left out of the inventory: {problem}")
        bench.notes.append(f"no user_data declared (counting its rows fails: {problem})")
        inventory = rollback_inventory(bench, spec, smoke.url, user_data=False)
    return bench, inventory


def main() -> int:
    args = parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.workdir.chmod(0o755)
    with open(args.workdir / ".lock", "w") as lock, terminating_on_signals(), ExitStack() as stack:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another benchmark is using {args.workdir}", file=sys.stderr)
            return 2
        log = args.workdir / "rollback-bench.log"
        log.write_text("")
        bench, inventory = set_up(args, stack, log)
        results = run_legs(args, bench, inventory)
        print()
        print(conditions(bench, not args.no_encryption))
        for result in results:
            table = report.code_table if isinstance(result, CodeOnly) else report.full_table
            print()
            print(table(result))
        if args.results:
            args.results.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)

"""Snapshot benchmark: tma-ops against the plain pipelines and restic, side by side in one run.

    .venv/bin/python bench/snapshot_bench.py [--size GIB] [--reps N] [--legs LEG,...]

Generates (once, cached under --workdir) a WordPress-like site of --size GiB of mixed files and a
MariaDB database dumping to ~200 MB per GiB, then measures, alternating the two sides of each pair:

1. pipeline: tma-ops' snapshot (zstd + age, file:// store on a local sink) against
   `mysqldump | zstd | age > sink` + `tar -cf - DIR | zstd | age > sink`: wall time, peak RSS;
2. end to end: the site over ssh:// (sshd on 127.0.0.1), the store s3:// on a local moto_server,
   against `ssh HOST 'tar ...' | zstd | age | aws s3 cp - s3://...`;
3. incremental: 1 % of the files rewritten, then an incremental tma-ops snapshot against
   `restic backup` of the same tree and dump (both after their full backups): bytes sent, time.

Prints one table per leg with the ratio tma-ops/other and the issue's targets. Needs root (the
test harness runs mariadbd as the mysql user), age, zstd, restic, /usr/bin/aws, sshd.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

import snapbench  # noqa: F401 - puts tests/ on sys.path for the harness
from snapbench import report, sitegen
from snapbench.context import AWS, Bench
from snapbench.legs import Comparison, e2e_leg, incremental_leg, pipeline_leg
from snapbench.services import Services, terminating_on_signals

LEGS = ("pipeline", "e2e", "incremental")
TOOLS = {
    "pipeline": ["age", "age-keygen", "zstd", "tar", "mysqldump"],
    "e2e": ["ssh", "/usr/sbin/sshd", AWS],
    "incremental": ["ssh", "/usr/sbin/sshd", "restic"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See bench/README.md for figures."
    )
    parser.add_argument(
        "--size",
        type=float,
        default=1.0,
        help="GiB of site files (default 1; the DB scales with it: ~200 MB dump per GiB)",
    )
    parser.add_argument(
        "--reps", type=int, default=5, help="measured repetitions per leg (medians; default 5)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured rounds before each of legs 1-2 (default 1)",
    )
    parser.add_argument(
        "--legs", default=",".join(LEGS), help=f"comma-separated subset of {','.join(LEGS)}"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/tma-snapshot-bench"),
        help="cache and scratch (world-traversable: MariaDB runs as mysql)",
    )
    parser.add_argument(
        "--sink-dir",
        type=Path,
        default=Path("/dev/shm"),
        help="where leg 1 writes (default /dev/shm: not the bottleneck)",
    )
    parser.add_argument(
        "--raw-zstd", default="-1", help="zstd options of the raw pipelines (default '-1')"
    )
    parser.add_argument(
        "--change",
        type=float,
        default=0.01,
        help="share of files rewritten before each increment (default 0.01)",
    )
    parser.add_argument("--regenerate", action="store_true", help="rebuild the cached site")
    parser.add_argument(
        "--drop-cache", action="store_true", help="delete the cached site at the end"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run each tma-ops snapshot under cProfile (stats in --workdir)",
    )
    parser.add_argument("--results", type=Path, help="also write the measurements as JSON here")
    args = parser.parse_args()  # fmt: skip
    args.legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    unknown = set(args.legs) - set(LEGS)
    if unknown:
        parser.error(f"unknown legs: {', '.join(sorted(unknown))}; expected {', '.join(LEGS)}")
    if os.geteuid() != 0:
        parser.error("run as root: MariaDB runs as the mysql user, sshd takes root logins")
    return args


def missing_tools(leg: str) -> list[str]:
    return [tool for tool in TOOLS[leg] if not shutil.which(tool)]


def s3_store_problem() -> str | None:
    """Why tma-ops cannot use an s3:// store yet, or None."""
    try:
        importlib.import_module("tma_ops.stores.s3")
    except Exception as exc:
        return f"tma_ops.stores.s3 cannot be imported ({type(exc).__name__}: {exc})"
    return None


def age_key(run_dir: Path) -> str:
    key = run_dir / "age-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    out = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True)
    return out.stdout.decode().strip()


def ensure_site(args: argparse.Namespace) -> sitegen.SiteCache:
    cache = sitegen.site_cache(args.workdir, args.size)
    if args.regenerate or not cache.ready():
        start = time.monotonic()
        sitegen.generate(cache, lambda message: print(message, file=sys.stderr, flush=True))
        print(f"site generated in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return cache


def run_legs(args: argparse.Namespace, bench: Bench, s3_problem: str | None) -> list[Comparison]:
    results = []
    for leg in args.legs:
        missing = missing_tools(leg)
        if missing:
            results.append(Comparison(leg, "-", error=f"missing tools: {', '.join(missing)}"))
            continue
        if leg == "e2e" and s3_problem:
            results.append(Comparison("e2e", "raw", error=s3_problem))
            continue
        bench.say(f"== leg {leg}")
        try:
            if leg == "pipeline":
                results.append(pipeline_leg(bench))
            elif leg == "e2e":
                results.append(e2e_leg(bench))
            else:
                results.append(incremental_leg(bench, s3_problem is None))
        except Exception as exc:  # one broken leg must not hide the others' figures
            bench.say(f"   leg {leg} failed: {exc}")
            results.append(Comparison(leg, "-", error=f"{type(exc).__name__}: {exc}"))
    return results


def conditions(args: argparse.Namespace, cache: sitegen.SiteCache) -> str:
    meta = cache.meta()
    load = os.getloadavg()
    return (
        f"site: {meta['bytes'] / 1e6:,.0f} MB in {meta['files']:,} files "
        f"(text {meta['text_files']:,}, "
        f"media {meta['media_files']:,}, large {meta['large_files']}), database dump "
        f"{meta['dump_bytes'] / 1e6:,.0f} MB\n"
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"at the end; raw zstd {args.raw_zstd}, tma-ops zstd level 3; age to 1 recipient"
    )


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
        (args.workdir / "bench.log").write_text("")
        cache = ensure_site(args)
        run_dir = args.workdir / f"run-{os.getpid()}"
        sink_dir = args.sink_dir / f"tma-bench-{os.getpid()}"
        for directory in (run_dir, sink_dir):
            stack.callback(shutil.rmtree, directory, ignore_errors=True)
            directory.mkdir(parents=True)
            directory.chmod(0o755)
        stack.callback(lambda: Path(f"{cache.root}.tma-tar-state").unlink(missing_ok=True))
        services = Services(stack)
        s3_problem = s3_store_problem()
        bench = Bench(
            cache, run_dir, sink_dir, services, age_key(run_dir), args.raw_zstd.split(),
            args.reps, args.warmup, args.change, args.profile, args.workdir / "bench.log",
        )  # fmt: skip
        services.start_mariadb(cache.db_base)
        if {"e2e", "incremental"} & set(args.legs):
            services.start_sshd(run_dir / "sshd")
            services.start_s3(run_dir / "moto")
        results = run_legs(args, bench, s3_problem)
        print()
        print(conditions(args, cache))
        for result in results:
            print()
            print(report.leg_table(result))
        if args.results:
            args.results.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str))
    if args.drop_cache:
        shutil.rmtree(sitegen.site_cache(args.workdir, args.size).base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)

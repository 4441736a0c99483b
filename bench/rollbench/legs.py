"""The two legs.

1. code-only: the live release (a plugin changed, pending, no migration) rolled back to the one
   before it: the plan (switch, keep the database) made and carried out in this process, timed
   apart from the resetting between repetitions; then the whole `tma-ops rollback --yes --json`.
2. full: a snapshot restored whole by `carry_out` (files and database, in a child process)
   against `mysql DB < dump.sql` and `tar -xf files.tar -C NEW` + the same swap, and against the
   same tools reading the stored parts through `age -d | zstd -d`, in rotating order.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapbench import sitegen
from snapbench.context import SITE, Bench, Side, side_from_parts
from snapbench.measure import measured

from rollbench.workcopy import ENV, ReleasePair, posts_in_database
from tma_ops.config import Site
from tma_ops.rollback import carry_out, choose_rollback
from tma_ops.rollback_plan import plan_rollback
from tma_ops.snapshot import create_snapshot, list_snapshots
from tma_ops.stores import Store

CHILD = Path(__file__).with_name("child.py")
SIDE_NAMES = {
    "ours": "tma-ops",
    "raw": "raw",
    "sealed": "raw from the stored parts",
    "before": "tma-ops of --against-tree",
}
TMA_OPS = str(Path(sys.executable).with_name("tma-ops"))


@dataclass
class CodeOnly:
    leg: str = "code"
    in_process: list[dict[str, float]] = field(default_factory=list)
    cli: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


# -- 1. code-only --------------------------------------------------------------------------------


def roll_back_code(site: Site, store: Store, pair: ReleasePair) -> dict[str, float]:
    """One code-only rollback in this process: planning and carry_out timed apart."""
    start = time.perf_counter()
    releases = pair.tree.releases()
    manifests = list_snapshots(store, site.name)
    plan = plan_rollback(choose_rollback(releases, manifests, ENV, None))
    planned = time.perf_counter()
    done = carry_out(site, ENV, store, plan, say=lambda _line: None)
    finished = time.perf_counter()
    if (plan.code, plan.database, plan.release) != ("switch", "keep", pair.first):
        raise RuntimeError(f"expected a switch back to {pair.first}, got: {plan.describe()}")
    check_rolled_back(pair)
    return {
        "planning": planned - start,
        "carry_out": finished - planned,
        "total": finished - start,
        "reported": done.seconds,
    }


def check_rolled_back(pair: ReleasePair) -> None:
    current, version = pair.tree.current_id(), pair.live_version()
    if current != pair.first or version != pair.versions[0]:
        raise RuntimeError(
            f"after the rollback current is {current} with {pair.plugin} {version}; "
            f"expected {pair.first} with {pair.versions[0]}"
        )
    marks = {release.id: release.status for release in pair.tree.releases()}
    if marks.get(pair.second) != "bad":
        raise RuntimeError(f"release {pair.second} is {marks.get(pair.second)}, expected bad")


def roll_back_cli(bench: Bench, inventory: Path, pair: ReleasePair) -> dict[str, Any]:
    """The whole `tma-ops rollback SITE --yes --json`: process start to exit."""
    argv = [TMA_OPS, "-i", str(inventory), "rollback", SITE, "--yes", "--json"]
    run = measured(argv, log=bench.log)
    summary = json.loads(run.output.strip().splitlines()[-1])
    if (summary["code"], summary["database"]) != ("switch", "keep") or not summary["smoke_ok"]:
        raise RuntimeError(f"unexpected rollback summary: {summary}")
    check_rolled_back(pair)
    imports = measured([sys.executable, "-c", "import tma_ops.cli"], log=bench.log)
    return {
        "imports": imports.seconds,
        "wall": run.seconds,
        "seconds": float(summary["seconds"]),
        "ttr": float(summary["time_to_recovery_s"]),
        "cpu": run.cpu,
        "tree_rss": run.tree_rss,
    }


def code_only_leg(
    bench: Bench, site: Site, store: Store, pair: ReleasePair, inventory: Path, reps: int
) -> CodeOnly:
    result = CodeOnly()
    result.notes.append(
        f"releases {pair.first} (target) and {pair.second} (live, pending, migrations []): "
        f"{pair.plugin} {pair.versions[1]} -> {pair.versions[0]}; reset between repetitions "
        "(switch to the second release, mark it pending again) outside the timed part"
    )
    for rep in range(bench.warmup + reps):
        in_process = roll_back_code(site, store, pair)
        pair.reset()
        cli = roll_back_cli(bench, inventory, pair)
        pair.reset()
        warm = rep < bench.warmup
        if not warm:
            result.in_process.append(in_process)
            result.cli.append(cli)
        tag = "warm-up" if warm else f"rep {rep - bench.warmup + 1}/{reps}"
        bench.say(
            f"  code-only {tag}: carry_out {in_process['carry_out'] * 1000:.0f} ms "
            f"(+ planning {in_process['planning'] * 1000:.0f} ms); CLI {cli['wall']:.2f} s, "
            f"time to recovery {cli['ttr']:.2f} s"
        )
    if bench.profile:
        profile_cli(bench, inventory, pair)
    return result


def profile_cli(bench: Bench, inventory: Path, pair: ReleasePair) -> None:
    """One more `tma-ops rollback` under cProfile (imports included), not measured."""
    stats = bench.run_dir.parent / "profile-rollback-cli.pstats"
    argv = [sys.executable, "-m", "cProfile", "-o", str(stats), TMA_OPS, "-i", str(inventory)]
    measured([*argv, "rollback", SITE, "--yes", "--json"], log=bench.log)
    pair.reset()
    bench.say(f"  code-only: profile of one CLI rollback in {stats}")


# -- 2. full rollback ----------------------------------------------------------------------------


@dataclass
class FullRollback:
    leg: str = "full"
    ours: list[Side] = field(default_factory=list)  # tma-ops: carry_out in a child process
    raw: list[Side] = field(default_factory=list)  # mysql < dump.sql, tar -xf files.tar
    sealed: list[Side] = field(default_factory=list)  # the same from the stored parts
    before: list[Side] = field(default_factory=list)  # tma-ops of another tree (--against-tree)
    before_tree: str | None = None
    unseal: str = "age -d | zstd -d"  # how the third side reads the stored parts
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class RawCommands:
    """One raw restore: a shell command loading the database, one extracting the files into
    the directory given as $1."""

    name: str
    load: str
    extract: str


def snapshot_and_raw_copies(
    bench: Bench, site: Site, store: Store, key_file: Path | None
) -> tuple[str, list[RawCommands], list[str]]:
    """A tma-ops snapshot of the site, mysqldump's and tar's plain copies of the same content,
    and the raw commands restoring each: from the plain copies, and from the stored parts."""
    bench.say("  full: snapshot of the site (files + database) ...")
    start = time.perf_counter()
    manifest = create_snapshot(site, ENV, store, reason="bench")
    bench.say(f"  full: snapshot {manifest.snapshot_id} in {time.perf_counter() - start:.1f} s")
    dump, tar = bench.sink_dir / "dump.sql", bench.sink_dir / "files.tar"
    bench.shell(f"{bench.dump_command()} > {shlex.quote(str(dump))}")
    bench.shell(f"{bench.tar_command()} > {shlex.quote(str(tar))}")
    load = shlex.join(["mysql", f"--defaults-extra-file={bench.db_options()}", sitegen.DB_NAME])
    stored = {
        name: [stored_path(site, o.key) for o in part.objects()]
        for name, part in manifest.parts.items()
    }
    unseal = {name: unseal_command(paths, key_file) for name, paths in stored.items()}
    commands = [
        RawCommands(
            "raw", f"{load} < {shlex.quote(str(dump))}", f'tar -xf {shlex.quote(str(tar))} -C "$1"'
        ),
        RawCommands("sealed", f"{unseal['db']} | {load}", f'{unseal["files"]} | tar -xf - -C "$1"'),
    ]
    sealing = "zstd + age" if key_file else "zstd"
    notes = [
        f"snapshot parts (plain): database {manifest.parts['db'].plain_size / 1e6:,.1f} MB, "
        f"files {manifest.parts['files'].plain_size / 1e6:,.1f} MB; stored "
        f"{manifest.total_size / 1e6:,.1f} MB ({sealing})",
        f"raw copies: dump.sql {dump.stat().st_size / 1e6:,.1f} MB, files.tar "
        f"{tar.stat().st_size / 1e6:,.1f} MB (same content, made right after the snapshot)",
    ]
    return manifest.snapshot_id, commands, notes


def stored_path(site: Site, key: str) -> Path:
    return Path(site.store.url.removeprefix("file://")) / key


def unseal_command(paths: list[Path], key_file: Path | None) -> str:
    """A part's objects opened in order: a dump's chunks are age files of their own (each
    decrypted apart), holding zstd frames that one zstd reads as a single stream."""
    quoted = shlex.join(str(path) for path in paths)
    if key_file is None:
        return f"cat {quoted} | zstd -dq"
    decrypt = f'age -d -i {shlex.quote(str(key_file))} "$part"'
    return f"for part in {quoted}; do {decrypt}; done | zstd -dq"


def tma_restore(bench: Bench, inventory: Path, snapshot_id: str, tree: Path | None = None) -> Side:
    """One restore by the child; with `tree`, tma_ops imported from that copy of the project."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    elif bench.profile:
        env["TMA_BENCH_PROFILE"] = str(bench.run_dir.parent / "profile-rollback-full.pstats")
    argv = [sys.executable, str(CHILD), str(inventory), SITE, ENV, snapshot_id]
    run = measured(argv, env=env, log=bench.log)
    data = json.loads(run.output.strip().splitlines()[-1])
    timers, transfers = data["timers"], data["transfers"]
    db_stage, files_stage = timers["db_stage"], timers["files_stage"]
    # Both parts staged side by side report one transfer; one after the other, two.
    staging = transfers.get("restore database and files", db_stage + files_stage)
    aside = timers.get("db_aside", 0.0)  # inside _stage_database's time, when the tree has it
    parts = {
        "staging": staging,
        "db_stage": db_stage - aside,
        "db_aside": aside,
        "db_commit": timers["db_commit"],
        "files": files_stage,
        "swap": timers["swap"],
        "data_loss": timers.get("data_loss", 0.0),
        "planning": data["planning"],
    }
    parts["other"] = data["seconds"] - sum(
        parts[key] for key in ("staging", "db_commit", "swap", "data_loss")
    )
    extra = {"in_process": data["seconds"] + data["planning"], "cpu": run.cpu}
    extra["database_path"] = "+".join(data.get("database_paths", [])) or "commit only"
    extra |= {"data_loss": data["data_loss"], "rss_timeline": run.timeline}
    return Side(run.seconds, parts, {}, int(data["self_max_rss"]), run.tree_rss, extra)


def raw_restore(bench: Bench, commands: RawCommands) -> Side:
    """In tma-ops' order: the files extracted beside the live tree, the database loaded, then
    the same swap (the live tree renamed away, the new one in, the old one removed)."""
    root = shlex.quote(str(bench.root))
    new, old = shlex.quote(f"{bench.root}.raw-new"), shlex.quote(f"{bench.root}.raw-old")
    extract = f"rm -rf {new} && mkdir {new} && set -- {new} && {commands.extract}"
    runs = {
        "files": bench.shell(extract),
        "db": bench.shell(commands.load),
        "swap": bench.shell(f"mv {root} {old} && mv {new} {root} && rm -rf {old}"),
    }
    return side_from_parts(runs, {})


def full_leg(
    bench: Bench,
    site: Site,
    store: Store,
    inventory: Path,
    key_file: Path | None,
    sealed: bool,
    before_tree: Path | None = None,
) -> FullRollback:
    result = FullRollback(unseal="age -d | zstd -d" if key_file else "zstd -d")
    result.before_tree = str(before_tree) if before_tree else None
    snapshot_id, commands, notes = snapshot_and_raw_copies(bench, site, store, key_file)
    posts = posts_in_database(bench)

    settled: list[float] = []

    def checked(restore: Callable[[], Side]) -> Callable[[], Side]:
        def run() -> Side:
            os.sync()  # each side starts with no dirty pages left by another one's writes
            settled.append(database_settled(bench))
            side = restore()
            current = bench.root / "current"
            if not current.is_symlink() or not current.resolve().is_dir():
                raise RuntimeError(f"after the restore {current} is not a link to a release")
            if posts_in_database(bench) != posts:
                raise RuntimeError(f"after the restore wp_posts does not hold {posts} rows")
            return side

        return run

    sides = {"ours": checked(lambda: tma_restore(bench, inventory, snapshot_id))}
    for raw in commands if sealed else commands[:1]:
        sides[raw.name] = checked(functools.partial(raw_restore, bench, raw))
    if before_tree is not None:
        sides["before"] = checked(lambda: tma_restore(bench, inventory, snapshot_id, before_tree))
    rotate(bench, result, sides)
    result.notes += notes
    result.notes.append(
        f"before each side, mariadbd's background work after the previous load (purge, page "
        f"flushing) was let finish: {sorted(settled)[len(settled) // 2]:.1f} s median wait, "
        f"{max(settled):.1f} s at most"
    )
    result.notes.append(
        f"store: {site.store.url}; site tree and MariaDB data under {bench.cache.base}; "
        "raw sides in tma-ops' order (extract beside, load the database, swap)"
    )
    return result


def database_settled(bench: Bench, quiet: float = 0.02, longest: float = 20.0) -> float:
    """Wait until mariadbd uses under `quiet` of a core over a quarter second; the seconds waited.

    After a load InnoDB purges and flushes for seconds: the next side would share the cores with
    it, and the one that needs both cores (tma-ops' pipeline) would pay more than `tar -x`.
    """
    assert bench.services.db is not None
    pid = bench.services.db.process.pid
    start = time.perf_counter()
    window = 0.25
    while time.perf_counter() - start < longest:
        before = process_cpu(pid)
        time.sleep(window)
        if process_cpu(pid) - before < quiet * window:
            break
    return time.perf_counter() - start - window


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rotate(bench: Bench, result: FullRollback, sides: dict[str, Callable[[], Side]]) -> None:
    """warmup + reps rounds; each round starts with the next side, so each goes first as often."""
    names = list(sides)
    for rep in range(bench.warmup + bench.reps):
        first = rep % len(names)
        got = {name: sides[name]() for name in names[first:] + names[:first]}
        warm = rep < bench.warmup
        if not warm:
            for name, side in got.items():
                getattr(result, name).append(side)
        tag = "warm-up" if warm else f"rep {rep - bench.warmup + 1}/{bench.reps}"
        times = ", ".join(f"{SIDE_NAMES[name]} {side.seconds:.2f} s" for name, side in got.items())
        bench.say(f"  full {tag}: {times}")

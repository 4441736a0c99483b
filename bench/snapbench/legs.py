"""The three legs. Each runs its two sides in alternation and returns every repetition.

1. pipeline: tma-ops (local:// site, file:// store) against `mysqldump | zstd | age > file` and
   `tar -cf - DIR | zstd | age > file`, both into the same local sink.
2. end to end: tma-ops (ssh:// site, s3:// store on moto) against `ssh HOST mysqldump|tar |
   zstd | age | aws s3 cp - s3://...` into the same server.
3. incremental: after a full backup on both sides, 1 % of the files are rewritten, then an
   incremental tma-ops snapshot against `restic backup` of the tree and of the dump (--stdin).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from snapbench import sitegen
from snapbench.context import AWS, Bench, Side, side_from_parts
from snapbench.services import delete_prefix, prefix_bytes, s3_client, s3_env

MAX_INCREMENTS = 6  # full_every 7: the 7th would be a full one


@dataclass
class Comparison:
    leg: str
    theirs_name: str
    ours: list[Side] = field(default_factory=list)
    theirs: list[Side] = field(default_factory=list)
    initial: tuple[Side, Side] | None = None  # incremental leg: the first, full backups
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def alternate(
    bench: Bench, result: Comparison, ours: Callable[[], Side], theirs: Callable[[], Side]
) -> None:
    """warmup + reps rounds, tma-ops first in even rounds, the other side first in odd ones."""
    for rep in range(bench.warmup + bench.reps):
        sides = [("ours", ours), ("theirs", theirs)]
        got = {name: run() for name, run in (sides if rep % 2 == 0 else sides[::-1])}
        warm = rep < bench.warmup
        if not warm:
            result.ours.append(got["ours"])
            result.theirs.append(got["theirs"])
        tag = "warm-up" if warm else f"rep {rep - bench.warmup + 1}/{bench.reps}"
        bench.say(
            f"  {result.leg} {tag}: tma-ops {got['ours'].seconds:.2f} s, "
            f"{result.theirs_name} {got['theirs'].seconds:.2f} s"
        )


def require_level(side: Side, level: int) -> Side:
    if side.extra["level"] != level:
        kind = "a full snapshot" if level == 0 else f"increment level {level}"
        raise RuntimeError(f"tma-ops made level {side.extra['level']}, expected {kind}")
    return side


# -- 1. pipeline ---------------------------------------------------------------------------------


def pipeline_leg(bench: Bench) -> Comparison:
    result = Comparison("pipeline", "raw")
    sink = bench.reset_dir(bench.sink_dir / "pipeline")
    store = sink / "store"
    spec = {"url": f"file://{store}", "encryption": bench.encryption(), "full_every": 1}
    inventory = bench.inventory("pipeline", "local://", spec)
    outputs = {"db": sink / "raw-db.sql.zst.age", "files": sink / "raw-files.tar.zst.age"}

    def ours() -> Side:
        bench.forget_state()
        shutil.rmtree(store, ignore_errors=True)
        side = require_level(bench.tma_snapshot(inventory, "pipeline"), 0)
        shutil.rmtree(store, ignore_errors=True)
        return side

    def theirs() -> Side:
        seal = bench.seal_command()
        runs = {
            "db": bench.shell(f"{bench.dump_command()} | {seal} > {outputs['db']}"),
            "files": bench.shell(f"{bench.tar_command()} | {seal} > {outputs['files']}"),
        }
        sizes = {name: path.stat().st_size for name, path in outputs.items()}
        for path in outputs.values():
            path.unlink()
        return side_from_parts(runs, sizes)

    result.notes.append(f"sink: {sink} (tma-ops: file:// store there; raw: plain files there)")
    alternate(bench, result, ours, theirs)
    shutil.rmtree(sink, ignore_errors=True)
    return result


# -- 2. end to end -------------------------------------------------------------------------------


def e2e_leg(bench: Bench) -> Comparison:
    result = Comparison("e2e", "raw")
    services = bench.services
    endpoint, bucket, ssh = services.s3_endpoint, services.bucket, services.ssh
    assert endpoint is not None and ssh is not None
    inventory = bench.inventory("e2e", bench.ssh_executor(), bench.s3_store("e2e-tma", 1))
    client = ssh.ssh_argv()
    env = s3_env(endpoint)

    def upload(key: str) -> str:
        target = f"s3://{bucket}/e2e-raw/{key}"
        return shlex.join(
            [AWS, "s3", "cp", "-", target, "--endpoint-url", endpoint, "--only-show-errors"]
        )

    def ours() -> Side:
        bench.forget_state()
        side = require_level(bench.tma_snapshot(inventory, "e2e"), 0)
        delete_prefix(endpoint, bucket, "e2e-tma/")
        return side

    def theirs() -> Side:
        seal = bench.seal_command()
        remote_dump = shlex.join([*client, bench.dump_command()])
        remote_tar = shlex.join([*client, bench.tar_command()])
        runs = {
            "db": bench.shell(f"{remote_dump} | {seal} | {upload('db.sql.zst.age')}", env),
            "files": bench.shell(f"{remote_tar} | {seal} | {upload('files.tar.zst.age')}", env),
        }
        s3 = s3_client(endpoint)
        sizes = {
            name: int(s3.head_object(Bucket=bucket, Key=f"e2e-raw/{key}")["ContentLength"])
            for name, key in (("db", "db.sql.zst.age"), ("files", "files.tar.zst.age"))
        }
        delete_prefix(endpoint, bucket, "e2e-raw/")
        return side_from_parts(runs, sizes)

    result.notes.append(
        f"site over ssh://root@127.0.0.1:{ssh.port}; S3 API: moto_server {endpoint}"
    )
    alternate(bench, result, ours, theirs)
    return result


# -- 3. incremental ------------------------------------------------------------------------------


class Restic:
    """restic run on the "host" through the same SSH server, as tma-ops reaches it."""

    def __init__(self, bench: Bench, repository: str, s3: bool) -> None:
        self.bench = bench
        self.repository = repository
        self.s3 = s3
        env = {
            "RESTIC_REPOSITORY": repository,
            "RESTIC_PASSWORD": "bench-restic-password",
            "RESTIC_CACHE_DIR": str(bench.run_dir / "restic-cache"),
        }
        if s3:
            aws = s3_env(bench.services.s3_endpoint or "")
            env |= {key: aws[key] for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        self.env = "env " + " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())

    def remote(self, command: str) -> str:
        ssh = self.bench.services.ssh
        assert ssh is not None
        inner = shlex.join(["bash", "-c", f"set -o pipefail; {command}"])
        return shlex.join([*ssh.ssh_argv(), inner])

    def init(self) -> None:
        self.bench.shell(self.remote(f"{self.env} restic init --repository-version 2"))

    def stored(self) -> int:
        if self.s3:
            services = self.bench.services
            prefix = self.repository.split(f"/{services.bucket}/", 1)[1] + "/"
            return prefix_bytes(services.s3_endpoint or "", services.bucket, prefix)[1]
        return dir_bytes(Path(self.repository))

    def backup(self) -> Side:
        backup = f"{self.env} restic backup --json --host bench"
        commands = {
            "db": f"{self.bench.dump_command()} | {backup} --stdin --stdin-filename site.sql",
            "files": f"{backup} {shlex.quote(str(self.bench.root))}",
        }
        runs, added, grown = {}, {}, {}
        for name, command in commands.items():
            before = self.stored()
            runs[name] = self.bench.shell(self.remote(command))
            grown[name] = self.stored() - before
            added[name] = int(summary(runs[name].output)["data_added"])
        side = side_from_parts(runs, added)
        side.extra["stored"] = grown
        side.extra["summaries"] = {name: summary(run.output) for name, run in runs.items()}
        return side


def summary(output: str) -> dict[str, object]:
    for line in reversed(output.strip().splitlines()):
        if '"message_type":"summary"' in line.replace(" ", ""):
            data: dict[str, object] = json.loads(line)
            return data
    raise RuntimeError(f"restic printed no summary: {output[-500:]}")


def dir_bytes(path: Path) -> int:
    return sum(
        (Path(directory) / name).stat().st_size
        for directory, _, names in os.walk(path)
        for name in names
    )


def incremental_leg(bench: Bench, s3_ready: bool) -> Comparison:
    result = Comparison("incremental", "restic")
    services = bench.services
    endpoint, bucket = services.s3_endpoint, services.bucket
    if s3_ready and endpoint:
        store = bench.s3_store("inc-tma", 7)
        restic = Restic(bench, f"s3:{endpoint}/{bucket}/inc-restic", s3=True)
        tma_stored: Callable[[], int] = lambda: prefix_bytes(endpoint, bucket, "inc-tma/")[1]  # noqa: E731
        result.notes.append(f"both repositories on the S3 API server (moto) {endpoint}")
    else:
        local = bench.reset_dir(bench.run_dir / "incremental")
        store = {
            "url": f"file://{local / 'store'}",
            "encryption": bench.encryption(),
            "full_every": 7,
        }
        restic = Restic(bench, str(local / "restic"), s3=False)
        tma_stored = lambda: dir_bytes(local / "store")  # noqa: E731
        result.notes.append(f"S3 not available: both repositories on local disk under {local}")
    inventory = bench.inventory("incremental", bench.ssh_executor(), store)
    result.notes.append(
        "bytes sent: tma-ops = its parts' sizes in the manifest (zstd + age); restic = data_added "
        "of its --json summary (restic 0.14 counts it before compression); store growth = bytes "
        "of the objects added to the repository (restic: packs, index, snapshot)"
    )

    def ours(level: int) -> Side:
        before = tma_stored()
        side = require_level(bench.tma_snapshot(inventory, f"incremental-{level}"), level)
        side.extra["stored"] = tma_stored() - before
        return side

    restic.init()
    bench.forget_state()
    bench.say("  incremental: initial full backups")
    result.initial = (ours(0), restic.backup())
    rounds = min(bench.reps, MAX_INCREMENTS)
    for number in range(1, rounds + 1):
        files, changed = sitegen.rewrite_share(bench.root, bench.change, number)
        sides = [("ours", lambda n=number: ours(n)), ("theirs", restic.backup)]
        got = {name: run() for name, run in (sides if number % 2 else sides[::-1])}
        got["ours"].extra["changed"] = (files, changed)
        result.ours.append(got["ours"])
        result.theirs.append(got["theirs"])
        bench.say(
            f"  incremental {number}/{rounds}: {files} files ({changed / 1e6:.1f} MB) rewritten; "
            f"tma-ops {got['ours'].seconds:.2f} s, restic {got['theirs'].seconds:.2f} s"
        )
    if bench.reps > MAX_INCREMENTS:
        result.notes.append(f"incremental rounds capped at {MAX_INCREMENTS} (full_every 7)")
    return result

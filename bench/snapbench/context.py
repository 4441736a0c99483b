"""What every leg shares: paths, keys, servers, inventories, and the two sides' commands."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from snapbench import sitegen
from snapbench.measure import Run, measured
from snapbench.services import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, Services
from tma_ops.dbs.mysql import DUMP_FLAGS

CHILD = Path(__file__).with_name("child.py")
SITE = "bench"
AWS = "/usr/bin/aws"  # Debian's awscli
# The flags tma-ops' MariaDB engine gives mysqldump, for the raw side too.
MYSQLDUMP_FLAGS = DUMP_FLAGS


@dataclass
class Side:
    """One repetition of one side (tma-ops, raw pipeline or restic) of a comparison."""

    seconds: float
    parts: dict[str, float]  # seconds per part: db, files
    sizes: dict[str, int]  # bytes sent/stored per part
    max_rss: int  # bytes: the tma-ops process's own peak (VmHWM); raw sides: as tree_rss
    tree_rss: int  # bytes: summed over the process tree (sampled)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bench:
    cache: sitegen.SiteCache
    run_dir: Path
    sink_dir: Path
    services: Services
    recipient: str
    raw_zstd: list[str]
    reps: int
    warmup: int
    change: float
    profile: bool
    log: Path
    notes: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.cache.root

    def say(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # -- the tma-ops side ------------------------------------------------------------------

    def inventory(self, name: str, executor: Any, store: dict[str, Any]) -> Path:
        """An inventory with one site, `bench`, whose production is the generated site."""
        db = self.services.db
        assert db is not None
        database = {
            "engine": "mariadb",
            "name": sitegen.DB_NAME,
            "user": sitegen.DB_USER,
            "password": sitegen.DB_PASSWORD,
            "host": "127.0.0.1",
            "port": db.port,
        }
        staging = self.run_dir / "staging-www"
        environment = {
            "executor": executor,
            "root": str(self.root),
            "database": database,
            "smoke": [{"url": "http://127.0.0.1:9/"}],
        }
        document = {
            "version": 1,
            "state_dir": str(self.run_dir / "state"),
            "sites": {
                SITE: {
                    "tier": "business",
                    "store": store,
                    "stack": {
                        "kind": "archive",
                        "channel": str(self.run_dir / "channel"),
                        "components_dir": sitegen.COMPONENTS_DIR,
                    },
                    "environments": {
                        "production": environment,
                        "staging": {**environment, "root": str(staging)},
                    },
                }
            },
        }
        (self.run_dir / "channel").mkdir(exist_ok=True)
        path = self.run_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def encryption(self) -> dict[str, Any]:
        return {"recipients": [self.recipient]}

    def s3_store(self, prefix: str, full_every: int) -> dict[str, Any]:
        return {
            "url": f"s3://{self.services.bucket}/{prefix}",
            "endpoint_url": self.services.s3_endpoint,
            "region": S3_REGION,
            "access_key_id": S3_ACCESS_KEY,
            "secret_access_key": S3_SECRET_KEY,
            "encryption": self.encryption(),
            "full_every": full_every,
        }

    def ssh_executor(self) -> dict[str, Any]:
        ssh = self.services.ssh
        assert ssh is not None
        return {
            "url": ssh.url,
            "identity_file": str(ssh.identity),
            "known_hosts": str(ssh.known_hosts),
            "python": "/usr/bin/python3",
        }

    def forget_state(self) -> None:
        """Remove the environment's tar state file: the next snapshot's files part is full."""
        Path(f"{self.root}.tma-tar-state").unlink(missing_ok=True)

    def tma_snapshot(self, inventory: Path, label: str) -> Side:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        if self.profile:
            env["TMA_BENCH_PROFILE"] = str(self.run_dir.parent / f"profile-{label}.pstats")
        argv = [sys.executable, str(CHILD), str(inventory), SITE, "production"]
        run = measured(argv, env=env, log=self.log)
        data = json.loads(run.output.strip().splitlines()[-1])
        parts = {
            ("db" if key.startswith("upload db.") else "files"): seconds
            for key, seconds in data["part_seconds"].items()
        }
        sizes = {name: int(part["size"]) for name, part in data["parts"].items()}
        extra = {"level": data["level"], "in_process": data["seconds"]}
        extra["rss_timeline"] = run.timeline
        extra["cpu"] = run.cpu
        extra["plain"] = {name: int(part["plain_size"]) for name, part in data["parts"].items()}
        return Side(run.seconds, parts, sizes, int(data["self_max_rss"]), run.tree_rss, extra)

    # -- the raw side ----------------------------------------------------------------------

    def db_options(self) -> Path:
        """A private [client] option file for mysqldump (the same machine is the "host")."""
        path = self.run_dir / "client.cnf"
        if not path.exists():
            db = self.services.db
            assert db is not None
            path.write_text(
                f'[client]\nuser="{sitegen.DB_USER}"\npassword="{sitegen.DB_PASSWORD}"\n'
                f"host=127.0.0.1\nport={db.port}\n"
            )
            path.chmod(0o600)
        return path

    def dump_command(self) -> str:
        options = f"--defaults-extra-file={self.db_options()}"
        return shlex.join(["mysqldump", options, *MYSQLDUMP_FLAGS, "--", sitegen.DB_NAME])

    def tar_command(self) -> str:
        return shlex.join(["tar", "-C", str(self.root), "-cf", "-", "."])

    def seal_command(self) -> str:
        return f"{shlex.join(['zstd', '-q', *self.raw_zstd])} | age -r {self.recipient}"

    def shell(self, pipeline: str, env: dict[str, str] | None = None) -> Run:
        return measured(["bash", "-c", f"set -o pipefail; {pipeline}"], env=env, log=self.log)

    def reset_dir(self, path: Path) -> Path:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


def side_from_parts(runs: dict[str, Run], sizes: dict[str, int]) -> Side:
    """A raw side made of one measured command per part, run one after the other."""
    return Side(
        seconds=sum(run.seconds for run in runs.values()),
        parts={name: run.seconds for name, run in runs.items()},
        sizes=sizes,
        max_rss=max(run.tree_rss for run in runs.values()),
        tree_rss=max(run.tree_rss for run in runs.values()),
        extra={"cpu": sum(run.cpu for run in runs.values())},
    )

"""Demo sites on separate SSH hosts (network namespaces) with MariaDB or PostgreSQL.

Each host runs its own sshd, database servers and the demo CMS (listening on its address), and
keeps its sites under its own directory. The controller side (inventory, channel, store, state)
lives in a directory of the test's. The database password is read from the environment by the
inventory, as a real one would be, so the tests can look for it where it must never be.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml
from e2e_support import CliRunner
from harness import mariadb, postgres
from harness.netns import netns_argv
from harness.sshd import SshServer

from tma_ops.demo.workspace import (
    CHANNEL,
    SITES,
    STAGING_AGE_DAYS,
    build_component_archive,
    build_environment_files,
    bundled_plugin_source,
    content_sql,
)

APP_PORT = 8080
DB_USER = "tma_site"
PASSWORD_VARIABLE = "TMA_E2E_DB_PASSWORD"
# One per test session: the database account on a host's servers outlives a single test.
SESSION_PASSWORD = "pw-" + secrets.token_urlsafe(12)


@dataclass
class HostServices:
    """What runs on one host: sshd (from the harness fixtures), DB servers, the demo CMS."""

    ssh: SshServer
    mariadb: mariadb.MariaDbServer | None = None
    postgres: postgres.PostgresServer | None = None
    app: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None

    @property
    def sites_root(self) -> Path:
        return self.ssh.host.base / "sites"

    def start_databases(self) -> None:
        host = self.ssh.host
        # The servers run as their own users: their files cannot live in pytest's private dirs.
        base = self.data_dir = Path(tempfile.mkdtemp(prefix=f"tma-{host.name}-db-"))
        base.chmod(0o755)
        if self.mariadb is None:
            self.mariadb = mariadb.start_mariadb(base / "mariadb", host.address, 3306, host.netns)
        if self.postgres is None:
            self.postgres = postgres.start_postgres(
                base / "postgres", host.address, 5432, host.netns
            )

    def start_app(self) -> None:
        if self.app is not None:
            return
        self.sites_root.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "tma_ops",
            "demo",
            "--workspace",
            str(self.ssh.host.base),
            "serve",
            "--host",
            self.ssh.host.address,
            "--port",
            str(APP_PORT),
        ]
        self.app = subprocess.Popen(netns_argv(self.ssh.host, argv), stdout=subprocess.DEVNULL)
        wait_http(f"http://{self.ssh.host.address}:{APP_PORT}/", self.app)

    def stop(self) -> None:
        if self.app is not None:
            self.app.terminate()
            self.app.wait(10)
        if self.mariadb is not None:
            mariadb.stop_mariadb(self.mariadb)
        if self.postgres is not None:
            postgres.stop_postgres(self.postgres)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo CMS exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers: a 404 for the bare root is fine
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the demo CMS did not answer at {url}")


@dataclass
class RemoteFleet(CliRunner):
    """The controller's side: inventory, channel, store and state for the remote sites."""

    root: Path
    password: str
    sites: dict[str, str] = field(default_factory=dict)  # site name -> engine
    cli_timeout = 900

    @property
    def inventory_file(self) -> Path:
        return self.root / "tma.yaml"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, PASSWORD_VARIABLE: self.password, "TMA_OPS_PAUSE_AT": ""}


def new_fleet(root: Path) -> RemoteFleet:
    root.mkdir(parents=True, exist_ok=True)
    for name, version, fmt in CHANNEL:
        build_component_archive(
            root / "channel", name, version, bundled_plugin_source(name, version), fmt
        )
    return RemoteFleet(root, SESSION_PASSWORD)


def add_site(
    fleet: RemoteFleet,
    kind: str,
    engine: str,
    prod: HostServices,
    staging: HostServices,
    name: str = "",
) -> str:
    """Site `name` (default `<kind>-<engine>`; kind: blog or shop) on both hosts."""
    name = name or f"{kind}-{engine}"
    environments = {}
    for env, services, cutoff in (("production", prod, 0), ("staging", staging, STAGING_AGE_DAYS)):
        env_dir = services.sites_root / name / env
        options, posts = build_environment_files(env_dir, SITES[kind], date.today(), cutoff)
        database = f"{name.replace('-', '_')}_{env}"
        _load_database(
            services,
            engine,
            database,
            fleet.password,
            content_sql(options, posts, mysql=engine == "mariadb"),
        )
        settings = _database_settings(services, engine, database, fleet.password)
        (env_dir / "database.json").write_text(json.dumps(settings))
        marker = SITES[kind].title.split(" — ")[0]
        environments[env] = _environment(services, env_dir, name, env, settings, marker)
    fleet.sites[name] = engine
    _write_inventory(fleet, name, kind, environments)
    return name


def _load_database(services: HostServices, engine: str, name: str, password: str, sql: str) -> None:
    if engine == "mariadb":
        assert services.mariadb is not None
        mariadb.create_database(services.mariadb, name, DB_USER, password)
        mariadb.run_sql(services.mariadb, sql, name)
    else:
        assert services.postgres is not None
        postgres.create_database(services.postgres, name, DB_USER, password)
        postgres.run_sql(services.postgres, sql, name, DB_USER)


def _database_settings(
    services: HostServices, engine: str, name: str, password: str
) -> dict[str, object]:
    server = services.mariadb if engine == "mariadb" else services.postgres
    assert server is not None
    return {
        "engine": engine,
        "name": name,
        "user": DB_USER,
        "password": password,
        "host": server.address,
        "port": server.port,
    }


def _environment(
    services: HostServices,
    env_dir: Path,
    site: str,
    env: str,
    settings: dict[str, object],
    marker: str,
) -> dict[str, object]:
    ssh = services.ssh
    url = f"http://{ssh.host.address}:{APP_PORT}/{site}/{env}/"
    database = {k: v for k, v in settings.items() if k != "password"}
    return {
        "executor": {
            "url": ssh.url,
            "identity_file": str(ssh.identity_file),
            "known_hosts": str(ssh.known_hosts),
            "connect_timeout": 10,
            "python": "/usr/bin/python3",
        },
        "root": str(env_dir / "www"),
        "persistent": ["uploads"],
        "database": {**database, "password": "${" + PASSWORD_VARIABLE + "}"},
        "smoke": [
            {
                "url": url,
                "contains": marker,
                "max_latency_ms": 5000,
            }
        ],
    }


def _write_inventory(
    fleet: RemoteFleet, name: str, kind: str, environments: dict[str, object]
) -> None:
    document = (
        yaml.safe_load(fleet.inventory_file.read_text())
        if fleet.inventory_file.exists()
        else {
            "version": 1,
            "state_dir": "state",
            "defaults": {
                "store": "file://./store",
                "stack": {"kind": "archive", "channel": "channel", "components_dir": "plugins"},
            },
            "sites": {},
        }
    )
    document["sites"][name] = {
        "tier": "business" if kind == "blog" else "critique",
        "environments": environments,
    }
    if kind == "shop":  # its plan holds a major release of payments, approved for the site
        document["sites"][name]["updates"] = {"approve": {"payments": "4"}}
    fleet.inventory_file.write_text(yaml.safe_dump(document, sort_keys=False))

"""Docker-based demo sites: the database in a MariaDB container, the files on the Docker host.

One container of the harness's Debian site image runs mariadbd and holds every site's databases
(`<kind>_production`, `<kind>_staging`). tma-ops reaches them through its `docker://` executor
(the database's own `executor` in the inventory): the client tools run inside the container and
log in as `tma_site` over 127.0.0.1 with the password the inventory reads from the environment.
Each environment's files live in a directory of this machine, the Docker host (`local://`),
served by the demo CMS on 127.0.0.1, which reads the content with `docker exec ... mysql` as the
container's root (socket authentication: no password in its `database.json`).

The controller's side (inventory, channel, store, state) is remote_support's RemoteFleet.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from harness.docker_engine import DockerEngine
from harness.docker_fixtures import Container, remove_container, run_container
from harness.mariadb import free_port
from remote_support import PASSWORD_VARIABLE, RemoteFleet, _write_inventory, wait_http

from tma_ops.demo.workspace import SITES, STAGING_AGE_DAYS, build_environment_files, content_sql
from tma_ops.executors.docker import DockerExecutor

DB_CONTAINER = "tma-e2e-site-db"
DATADIR = "/var/lib/tma-site-db"
SOCKET = "/run/mysqld/mysqld.sock"  # the clients' default: `docker exec ... mysql` finds it
DB_ADDRESS, DB_PORT = "127.0.0.1", 3306  # inside the container (network "none": loopback only)
DB_USER = "tma_site"
ENGINE = "docker"  # site names: <kind>-docker


@dataclass
class DbContainer:
    """mariadbd in a container, administered as its root through the socket."""

    container: Container
    executor: DockerExecutor

    @property
    def url(self) -> str:
        return self.container.url

    @property
    def docker_host(self) -> str:
        return self.container.docker_host

    def sql(self, sql: str, database: str | None = None) -> str:
        """Run SQL (fed on stdin, so no secret shows in a process listing) as root; return the
        tab-separated rows."""
        argv = ["mysql", "--batch", "--skip-column-names", "--default-character-set=utf8mb4"]
        argv += [database] if database else []
        return self.executor.stream_in(argv, io.BytesIO(sql.encode())).out

    def create_database(self, name: str, user: str, password: str) -> None:
        """A database and an account allowed from any host with all privileges on it."""
        account = f"{_string(user)}@'%'"
        self.sql(
            f"CREATE DATABASE {_ident(name)} CHARACTER SET utf8mb4;"
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {_string(password)};"
            f"GRANT ALL PRIVILEGES ON {_ident(name)}.* TO {account};"
        )

    def count(self, database: str, table: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) FROM {_ident(table)};", database).strip())

    def private_dirs(self) -> list[str]:
        """What tma-ops left in the container's /tmp (its option files live in tma-* dirs)."""
        found = self.executor.run(["sh", "-c", "ls -d /tmp/tma-* 2>/dev/null || true"]).out
        return found.split()


def start_db_container(engine: DockerEngine, image: str, host_dir: Path) -> DbContainer:
    """A fresh container of `image` running mariadbd on its socket and on 127.0.0.1:3306."""
    container = run_container(engine, image, DB_CONTAINER, host_dir, "/srv/dumps")
    db = DbContainer(container, DockerExecutor(container.spec))
    db.executor.run(["install", "-d", "-o", "mysql", "-g", "mysql", "/run/mysqld", DATADIR])
    install = ["mariadb-install-db", "--user=mysql", f"--datadir={DATADIR}", "--skip-test-db"]
    db.executor.run([*install, "--auth-root-authentication-method=socket"], timeout=120)
    start = (
        'mariadbd --no-defaults --user=mysql --datadir="$1" --socket="$2" --port="$3" '
        '--bind-address="$4" --skip-name-resolve --innodb-buffer-pool-size=64M'
    )
    args = ["sh", DATADIR, SOCKET, str(DB_PORT), DB_ADDRESS]
    db.executor.run(["sh", "-c", f"{start} </dev/null >/tmp/mariadbd.log 2>&1 &", *args])
    deadline = time.monotonic() + 60
    while not db.executor.run(["mysqladmin", f"--socket={SOCKET}", "ping"], check=False).ok:
        if time.monotonic() > deadline:
            log = db.executor.run(["tail", "-5", "/tmp/mariadbd.log"], check=False).out
            raise RuntimeError(f"mariadbd in {DB_CONTAINER} did not answer within 60 s: {log}")
        time.sleep(0.2)
    db.sql("DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;")
    return db


def stop_db_container(engine: DockerEngine) -> None:
    remove_container(engine, DB_CONTAINER)


@dataclass
class DockerSites:
    """The Docker host's side: the sites' files under `workspace`, served by the demo CMS."""

    workspace: Path
    db: DbContainer
    port: int = 0
    app: subprocess.Popen[bytes] | None = None
    sites: list[str] = field(default_factory=list)

    @property
    def sites_root(self) -> Path:
        return self.workspace / "sites"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start_app(self) -> None:
        self.sites_root.mkdir(parents=True, exist_ok=True)
        self.port = free_port("127.0.0.1")
        argv = [sys.executable, "-m", "tma_ops", "demo", "--workspace", str(self.workspace)]
        argv += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.app = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_http(self.base_url, self.app)

    def stop(self) -> None:
        if self.app is not None:
            self.app.terminate()
            self.app.wait(10)


def add_site(fleet: RemoteFleet, kind: str, sites: DockerSites) -> str:
    """Site `<kind>-docker` (kind: blog or shop), both environments; returns its name."""
    name = f"{kind}-{ENGINE}"
    environments: dict[str, object] = {}
    for env, cutoff in (("production", 0), ("staging", STAGING_AGE_DAYS)):
        env_dir = sites.sites_root / name / env
        options, posts = build_environment_files(env_dir, SITES[kind], date.today(), cutoff)
        database = f"{kind}_{env}"
        sites.db.create_database(database, DB_USER, fleet.password)
        sites.db.sql(content_sql(options, posts, mysql=True), database)
        demo_settings = {
            "engine": "mariadb",
            "name": database,
            "container": sites.db.container.name,
            "docker_host": sites.db.docker_host,
        }
        (env_dir / "database.json").write_text(json.dumps(demo_settings))
        environments[env] = _environment(sites, env_dir, name, env, database)
    fleet.sites[name] = "mariadb"
    sites.sites.append(name)
    _write_inventory(fleet, name, kind, environments)
    return name


def _environment(
    sites: DockerSites, env_dir: Path, site: str, env: str, database: str
) -> dict[str, object]:
    return {
        "executor": "local://",
        "root": str(env_dir / "www"),
        "persistent": ["uploads"],
        "database": {
            "engine": "mariadb",
            "name": database,
            "user": DB_USER,
            "password": "${" + PASSWORD_VARIABLE + "}",
            "host": DB_ADDRESS,
            "port": DB_PORT,
            "executor": {"url": sites.db.url, "docker_host": sites.db.docker_host},
        },
        "smoke": [
            {
                "url": f"{sites.base_url}{site}/{env}/",
                "contains": SITES[site.split("-")[0]].title.split(" — ")[0],
                "max_latency_ms": 5000,
            }
        ],
    }


def versions(www: Path) -> dict[str, str]:
    """The installed plugin versions of an environment's `www/`."""
    return {
        d.name: (d / "VERSION").read_text().strip()
        for d in (www / "plugins").iterdir()
        if not d.name.startswith(".")
    }


def files_holding(top: Path, secrets: list[bytes], prefix: str = "") -> list[str]:
    """Files under `top` (or under its entries whose names start with `prefix`) whose bytes
    contain a secret."""
    roots = [p for p in top.iterdir() if p.name.startswith(prefix)] if prefix else [top]
    found = []
    for root in roots:
        for path in (p for p in [root, *root.rglob("*")] if p.is_file() and not p.is_symlink()):
            data = path.read_bytes()
            found += [str(path) for secret in secrets if secret in data]
    return found


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"

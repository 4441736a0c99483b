"""A private PostgreSQL server for integration tests: its own cluster, socket directory and port.

The cluster belongs to the `postgres` user (initdb refuses root). TCP connections authenticate by
password (SCRAM), the socket trusts everyone: the harness administers through it as `postgres`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "postgres"
BIN_DIR = Path("/usr/lib/postgresql/15/bin")
BINARIES = ("initdb", "postgres", "pg_isready", "psql")

HBA = """\
local all all trust
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
"""


@dataclass
class PostgresServer:
    address: str
    port: int
    socket_dir: Path
    datadir: Path
    process: subprocess.Popen[bytes]
    log: Path


def missing_requirements() -> str | None:
    """Why this machine cannot run the harness, or None when it can."""
    if os.geteuid() != 0:
        return "the PostgreSQL harness needs root (it runs the server as the postgres user)"
    missing = [name for name in BINARIES if not _binary(name)]
    if missing:
        return f"PostgreSQL binaries not found: {', '.join(missing)} (apt-get install postgresql)"
    return None


def start_postgres(
    base: Path, address: str = "127.0.0.1", port: int = 0, netns: str | None = None
) -> PostgresServer:
    datadir, socket_dir, log = base / "data", base / "sock", base / "postgres.log"
    for directory in (base, socket_dir):
        directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(directory, SERVICE_USER, SERVICE_USER)
    _as_service_user(["test", "-w", str(base)], f"{base} is not writable by {SERVICE_USER}")
    _as_service_user(
        [_binary("initdb"), "-D", str(datadir), "--auth=trust", "-U", "postgres", "--no-sync"],
        "initdb failed",
    )
    (datadir / "pg_hba.conf").write_text(HBA)
    port = port or free_port(address)
    argv = ["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--init-groups"]
    argv += [_binary("postgres"), "-D", str(datadir), "-p", str(port), "-k", str(socket_dir)]
    argv += ["-c", f"listen_addresses={address}", "-c", "fsync=off"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {key: value for key, value in os.environ.items() if key != "TMPDIR"}
    with open(log, "ab") as sink:
        process = subprocess.Popen(argv, cwd=base, stdin=subprocess.DEVNULL, stderr=sink, env=env)
    server = PostgresServer(address, port, socket_dir, datadir, process, log)
    _wait_ready(server)
    return server


def create_database(server: PostgresServer, name: str, user: str, password: str) -> None:
    """A database owned by a login role with a SCRAM password (an existing role is kept)."""
    create = f"CREATE ROLE {_ident(user)} LOGIN PASSWORD {_string(password)}"
    run_sql(
        server,
        f"SELECT {_string(create)} "
        f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_string(user)}) \\gexec",
    )
    run_sql(server, f"CREATE DATABASE {_ident(name)} OWNER {_ident(user)};")


def drop_database(server: PostgresServer, name: str) -> None:
    run_sql(server, f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE);")


def client_argv(
    server: PostgresServer, database: str = "postgres", user: str = "postgres"
) -> list[str]:
    """A `psql` command line through the socket (trusted), stopping at the first error."""
    argv = [_binary("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-U", user]
    return [*argv, "-h", str(server.socket_dir), "-p", str(server.port), "-d", database]


def run_sql(
    server: PostgresServer, sql: str, database: str = "postgres", user: str = "postgres"
) -> str:
    """Run SQL (fed on stdin) as `user`; return the unaligned output."""
    argv = client_argv(server, database, user)
    proc = subprocess.run(argv, input=sql.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"postgres SQL failed: {proc.stderr.decode().strip()}")
    return proc.stdout.decode()


def stop_postgres(server: PostgresServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()  # SIGTERM: smart shutdown; our clients are gone by now
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def _wait_ready(server: PostgresServer, timeout: float = 60.0) -> None:
    probe = [_binary("pg_isready"), "-q", "-h", str(server.socket_dir), "-p", str(server.port)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited {server.process.returncode}: {_tail(server.log)}")
        if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    stop_postgres(server)
    raise RuntimeError(f"postgres not ready after {timeout}s: {_tail(server.log)}")


def _as_service_user(argv: list[str], failure: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "TMPDIR"}
    argv = ["runuser", "-u", SERVICE_USER, "--", *argv]
    proc = subprocess.run(argv, capture_output=True, check=False, cwd="/", env=env)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(
            f"{failure}: {detail or 'no error output'} (a parent directory may be private to "
            "root: give the harness a base directory under /tmp)"
        )


def _binary(name: str) -> str:
    path = BIN_DIR / name
    if os.access(path, os.X_OK):
        return str(path)
    return shutil.which(name) or ""


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    except OSError:
        return "no log"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

"""A private MariaDB server for integration tests: its own data directory, socket and port.

The server runs as the `mysql` user (mariadbd drops root itself), bound to one address, in a
network namespace when one is given. Administration goes through the socket as the database's
root account (unix_socket authentication: the test process is root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "mysql"
BINARIES = ("mariadb-install-db", "mariadbd", "mariadb", "mariadb-admin")


@dataclass
class MariaDbServer:
    address: str
    port: int
    socket: Path
    datadir: Path
    process: subprocess.Popen[bytes]
    log: Path


def missing_requirements() -> str | None:
    """Why this machine cannot run the harness, or None when it can."""
    if os.geteuid() != 0:
        return "the MariaDB harness needs root (it runs mariadbd as the mysql user)"
    missing = [name for name in BINARIES if not _which(name)]
    if missing:
        return f"MariaDB binaries not found: {', '.join(missing)} (apt-get install mariadb-server)"
    return None


def start_mariadb(
    base: Path, address: str = "127.0.0.1", port: int = 0, netns: str | None = None
) -> MariaDbServer:
    """A fresh server with its files under `base` (created, given to the mysql user)."""
    datadir, tmpdir = base / "data", base / "tmp"
    for directory in (base, tmpdir):
        directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(directory, SERVICE_USER, SERVICE_USER)
    _require_reachable(base)
    env = {**os.environ, "TMPDIR": str(tmpdir)}  # not the caller's: mysqld must write there
    _install(datadir, env)
    port = port or free_port(address)
    sock, log = base / "mysqld.sock", base / "error.log"
    argv = [
        _which("mariadbd"),
        "--no-defaults",
        f"--user={SERVICE_USER}",
        f"--datadir={datadir}",
        f"--socket={sock}",
        f"--port={port}",
        f"--bind-address={address}",
        f"--pid-file={base / 'mysqld.pid'}",
        f"--log-error={log}",
        f"--tmpdir={tmpdir}",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=64M",
    ]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    with open(log, "ab") as sink:  # early warnings, before mariadbd opens its own log
        process = subprocess.Popen(
            argv, cwd=base, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=env
        )
    server = MariaDbServer(address, port, sock, datadir, process, log)
    _wait_ready(server)
    run_sql(server, "DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;")
    return server


def _install(datadir: Path, env: dict[str, str]) -> None:
    argv = [_which("mariadb-install-db"), "--no-defaults", f"--user={SERVICE_USER}"]
    argv += [f"--datadir={datadir}", "--auth-root-authentication-method=socket", "--skip-test-db"]
    proc = subprocess.run(argv, capture_output=True, check=False, cwd=datadir.parent, env=env)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        raise RuntimeError(f"mariadb-install-db failed: {output[-2000:]}")


def create_database(server: MariaDbServer, name: str, user: str, password: str) -> None:
    """A database and an account allowed from any host with all privileges on it (an existing
    account keeps its password and gains the new database)."""
    account = f"{_string(user)}@'%'"
    run_sql(
        server,
        f"CREATE DATABASE {_ident(name)} CHARACTER SET utf8mb4;"
        f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {_string(password)};"
        f"GRANT ALL PRIVILEGES ON {_ident(name)}.* TO {account};",
    )


def drop_database(server: MariaDbServer, name: str) -> None:
    run_sql(server, f"DROP DATABASE IF EXISTS {_ident(name)};")


def client_argv(
    server: MariaDbServer,
    database: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> list[str]:
    """A `mariadb` command line: as root through the socket, or as `user` over TCP with the
    password in an option file (never on the command line)."""
    argv = [_which("mariadb"), "--no-defaults", f"--socket={server.socket}", "-uroot"]
    if user is not None:
        options = server.datadir.parent / f"client-{user}.cnf"
        partial = options.with_suffix(f".{os.getpid()}.{threading.get_ident()}")
        partial.write_text(f"[client]\nuser={_quoted(user)}\npassword={_quoted(password or '')}\n")
        partial.chmod(0o600)
        partial.replace(options)  # atomic: a client starting meanwhile reads the whole file
        argv = [_which("mariadb"), f"--defaults-file={options}", "-h", server.address]
        argv.append(f"--port={server.port}")
    argv += ["--batch", "--skip-column-names", "--default-character-set=utf8mb4"]
    return [*argv, database] if database else argv


def run_sql(
    server: MariaDbServer,
    sql: str,
    database: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> str:
    """Run SQL (fed on stdin) as root or as `user`; return the tab-separated output."""
    argv = client_argv(server, database, user, password)
    proc = subprocess.run(argv, input=sql.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"mariadb SQL failed: {proc.stderr.decode().strip()}")
    return proc.stdout.decode()


def stop_mariadb(server: MariaDbServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def _wait_ready(server: MariaDbServer, timeout: float = 60.0) -> None:
    ping = [_which("mariadb-admin"), "--no-defaults", f"--socket={server.socket}", "-uroot"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"mariadbd exited {server.process.returncode}: {_tail(server.log)}")
        if subprocess.run([*ping, "ping"], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    stop_mariadb(server)
    raise RuntimeError(f"mariadbd not ready after {timeout}s: {_tail(server.log)}")


def _require_reachable(base: Path) -> None:
    probe = ["runuser", "-u", SERVICE_USER, "--", "test", "-w", str(base)]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        raise RuntimeError(
            f"{base} is not writable by the {SERVICE_USER} user (a parent directory may be "
            "private to root): give the harness a base directory under /tmp"
        )


def _which(name: str) -> str:
    for directory in ("/usr/sbin", "/usr/bin"):
        if os.access(f"{directory}/{name}", os.X_OK):
            return f"{directory}/{name}"
    return shutil.which(name) or ""


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    except OSError:
        return "no log"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _quoted(value: str) -> str:
    """An option-file value: double-quoted, with the escapes the client undoes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

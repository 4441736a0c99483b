"""Servers the benchmark starts, and stops on every way out (Ctrl-C and SIGTERM included).

- MariaDB: the test harness's private server (tests/harness/mariadb.py) on the cached data dir.
- sshd on 127.0.0.1:<free port>, root login with a generated ed25519 key: the "remote" host.
- moto_server on 127.0.0.1:<free port>: the S3 API server, with one bucket.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import mariadb

from snapbench import REPO

SSHD = "/usr/sbin/sshd"
S3_ACCESS_KEY = "bench-access-key"
S3_SECRET_KEY = "bench-secret-key"
S3_REGION = "us-east-1"


@contextmanager
def terminating_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every `finally` stops what it started."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def free_port() -> int:
    return mariadb.free_port("127.0.0.1")


def descendants(pid: int) -> list[int]:
    """Every process below pid (children first listed, then theirs), via /proc's children."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        for task in _tasks(current):
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                found += [int(child) for child in children]
                queue += [int(child) for child in children]
    return found


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def kill_tree(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """TERM the process and everything below it, then KILL what is left; reap the process."""
    if process.poll() is not None:
        return
    victims = [*descendants(process.pid), process.pid]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


@dataclass
class SshHost:
    port: int
    identity: Path
    known_hosts: Path
    process: subprocess.Popen[bytes]
    user: str = "root"
    address: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.address}:{self.port}"

    def ssh_argv(self) -> list[str]:
        """OpenSSH client argv reaching this host (the raw pipelines' side)."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.identity),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-p",
            str(self.port),
            f"{self.user}@{self.address}",
        ]


def _keypair(path: Path) -> str:
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    fields = path.with_name(path.name + ".pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def start_sshd(directory: Path) -> SshHost:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    host_key = _keypair(directory / "host_ed25519")
    client_key = _keypair(directory / "id_ed25519")
    (directory / "authorized_keys").write_text(client_key + "\n")
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1:{port}\n"
        f"HostKey {directory / 'host_ed25519'}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPrintMotd no\n"
        "MaxStartups 50\nMaxSessions 50\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = open(directory / "sshd.log", "ab")  # noqa: SIM115 - handed to the process
    with log:
        process = subprocess.Popen(
            _clean_shell([SSHD, "-D", "-e", "-f", str(config)], directory),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    host = SshHost(port, directory / "id_ed25519", known_hosts, process)
    _wait_port(port, process, "sshd")
    return host


def _clean_shell(argv: list[str], directory: Path) -> list[str]:
    """argv in a private mount namespace where root's ~/.bashrc is empty.

    bash sources ~/.bashrc for every command sshd runs; on these machines it runs `pyenv init`
    (~0.2 s), which a web host does not: it would add that to each of tma-ops' many short
    remote commands. The bind mount is seen only by sshd and what it starts.
    """
    bashrc = Path(pwd.getpwnam("root").pw_dir) / ".bashrc"
    if not bashrc.exists() or not shutil.which("unshare"):
        return argv
    empty = directory / "empty-bashrc"
    empty.write_text("")
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    unshare = ["unshare", "--mount", "--propagation", "private"]
    return [*unshare, "sh", "-c", script, "sh", str(empty), str(bashrc), *argv]


def start_moto(directory: Path) -> tuple[str, subprocess.Popen[bytes]]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    binary = Path(sys.executable).with_name("moto_server")
    with open(directory / "moto.log", "ab") as log:
        process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    _wait_port(port, process, "moto_server")
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"moto_server does not answer at {endpoint}") from None
            time.sleep(0.1)
    return endpoint, process


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on 127.0.0.1:{port} after 30 s")


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name=S3_REGION,
    )


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for the aws CLI and restic to reach the S3 API server."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def prefix_bytes(endpoint: str, bucket: str, prefix: str) -> tuple[int, int]:
    """(objects, bytes) stored under prefix."""
    client = s3_client(endpoint)
    count = total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            count += 1
            total += int(item["Size"])
    return count, total


def delete_prefix(endpoint: str, bucket: str, prefix: str) -> None:
    client = s3_client(endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@dataclass
class Services:
    """What is running; `stack` stops it all."""

    stack: ExitStack
    db: mariadb.MariaDbServer | None = None
    ssh: SshHost | None = None
    s3_endpoint: str | None = None
    bucket: str = "tma-bench"

    def start_mariadb(self, base: Path) -> mariadb.MariaDbServer:
        self.db = mariadb.start_mariadb(base)
        self.stack.callback(mariadb.stop_mariadb, self.db)
        return self.db

    def start_sshd(self, directory: Path) -> SshHost:
        self.ssh = start_sshd(directory)
        self.stack.callback(kill_tree, self.ssh.process)
        return self.ssh

    def start_s3(self, directory: Path) -> str:
        endpoint, process = start_moto(directory)
        self.stack.callback(kill_tree, process)
        s3_client(endpoint).create_bucket(Bucket=self.bucket)
        self.s3_endpoint = endpoint
        return endpoint


def repo_python() -> str:
    return str(REPO / ".venv" / "bin" / "python")

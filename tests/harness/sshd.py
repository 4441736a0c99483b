"""A private OpenSSH server on a harness host: its own host key, client keys and config.

`start_sshd(host)` runs `sshd -D -e -f <config>` inside the host's namespace on port 22 and returns
an `SshServer` carrying everything a client needs (user, key, known_hosts, url). Helpers add login
users (with or without sudo) and make the wrong key / wrong host key for negative tests.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.netns import (
    HarnessUnavailable,
    Host,
    kill_netns_processes,
    netns_argv,
    require_root_and_tools,
)
from tma_ops.model import ExecutorSpec

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
PACKAGES = {"sshd": "openssh-server", "ssh-keygen": "openssh-client", "sudo": "sudo"}


@dataclass
class SshServer:
    host: Host
    port: int
    user: str
    identity_file: Path
    known_hosts: Path
    host_public_key: str  # "ssh-ed25519 AAAA..."
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.host.address}:{self.port}"

    @property
    def directory(self) -> Path:
        return self.host.base / "sshd"

    def spec(self, **settings: Any) -> ExecutorSpec:
        """Executor settings that reach this server as `user` with strict host key checking."""
        values: dict[str, Any] = {
            "url": self.url,
            "identity_file": str(self.identity_file),
            "known_hosts": str(self.known_hosts),
            "connect_timeout": 5,
        }
        return ExecutorSpec(**(values | settings))

    def as_user(self, user: str, identity_file: Path) -> SshServer:
        return dataclasses.replace(self, user=user, identity_file=identity_file)


def ensure_tools(*tools: str) -> None:
    """Install the Debian package of each missing tool (as root), or raise HarnessUnavailable."""
    require_root_and_tools()
    for tool in tools:
        if shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists():
            continue
        package = PACKAGES.get(tool, tool)
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-qq", package],
            capture_output=True,
            text=True,
            env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise HarnessUnavailable(
                f"{tool} missing and `apt-get install {package}` failed: {tail}"
            )


def start_sshd(host: Host, user: str = "root") -> SshServer:
    """sshd on host.address:22 accepting a fresh ed25519 key for `user` (root by default)."""
    ensure_tools("sshd", "ssh-keygen")
    directory = host.base / "sshd"
    (directory / "authorized_keys").mkdir(parents=True, exist_ok=True)
    host_key = new_keypair(directory / "ssh_host_ed25519_key")
    identity = new_keypair(directory / f"id_ed25519_{user}")
    _authorize(directory, user, identity)
    config = _write_config(directory, host.address, 22)
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(known_hosts_line(host.address, 22, _public(host_key)))
    server = SshServer(
        host=host,
        port=22,
        user=user,
        identity_file=identity,
        known_hosts=known_hosts,
        host_public_key=_public(host_key),
        process=_launch(host, config),
    )
    _wait_listening(server)
    return server


def stop_sshd(server: SshServer) -> None:
    """Stop the listener and every session sshd of the host (sessions outlive the listener)."""
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    kill_netns_processes(server.host.netns, program="sshd")


def kill_sshd(server: SshServer) -> None:
    """SIGKILL the listener and all session processes at once, like a crashed or rebooted host."""
    kill_netns_processes(server.host.netns, program="sshd")
    server.process.wait()


def restart_sshd(server: SshServer) -> None:
    """Start sshd again with the same keys and config; `server` is updated in place."""
    stop_sshd(server)
    server.process = _launch(server.host, server.directory / "sshd_config")
    _wait_listening(server)


def new_keypair(path: Path) -> Path:
    """A fresh passphrase-less ed25519 key at `path` (public half at path.pub)."""
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    """The known_hosts form OpenSSH and paramiko both look up: plain host on port 22."""
    name = address if port == 22 else f"[{address}]:{port}"
    return f"{name} {public_key}\n"


def wrong_identity(server: SshServer) -> Path:
    """A valid client key that the server does not authorize."""
    return new_keypair(server.directory / "id_ed25519_unauthorized")


def wrong_known_hosts(server: SshServer) -> Path:
    """A known_hosts that pins another ed25519 key for the server's address."""
    other = new_keypair(server.directory / "impostor_host_key")
    path = server.directory / "known_hosts.wrong"
    path.write_text(known_hosts_line(server.host.address, server.port, _public(other)))
    return path


def add_login_user(
    server: SshServer,
    name: str,
    *,
    sudo: Literal["nopasswd", "password"] | None = None,
    password: str | None = None,
) -> SshServer:
    """An OS user `name` who may log in with a fresh key, optionally with a sudoers drop-in;
    returns the server as seen by that user. Users are machine-wide: remove with remove_user."""
    if sudo:
        ensure_tools("sudo")
    remove_user(name)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
    if password is not None:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    else:  # "!" would lock the account, and sshd without PAM refuses locked accounts
        subprocess.run(["usermod", "--password", "*", name], check=True)
    identity = new_keypair(server.directory / f"id_ed25519_{name}")
    _authorize(server.directory, name, identity)
    if sudo:
        rule = "NOPASSWD: ALL" if sudo == "nopasswd" else "ALL"
        sudoers = Path(f"/etc/sudoers.d/tma-harness-{name}")
        sudoers.write_text(f"{name} ALL=(ALL:ALL) {rule}\n")
        sudoers.chmod(0o440)
    return server.as_user(name, identity)


def remove_user(name: str) -> None:
    Path(f"/etc/sudoers.d/tma-harness-{name}").unlink(missing_ok=True)
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", "--force", "--remove", name], capture_output=True, check=False)


def _authorize(directory: Path, user: str, identity: Path) -> None:
    """sshd reads a user's keys with that user's rights: keep them world-readable, outside any
    private temporary directory (root's go in the server directory)."""
    public = identity.with_name(identity.name + ".pub").read_text()
    if user == "root":
        (directory / "authorized_keys" / "root").write_text(public)
        return
    account = pwd.getpwnam(user)
    ssh_dir = Path(account.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, account.pw_uid, account.pw_gid)


def _write_config(directory: Path, address: str, port: int) -> Path:
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress {address}:{port}\n"
        f"HostKey {directory / 'ssh_host_ed25519_key'}\n"
        f"PidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}/%u .ssh/authorized_keys\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PrintMotd no\n"
        "LogLevel INFO\n"
        f"Subsystem sftp {SFTP_SERVER}\n"
    )
    return config


def _launch(host: Host, config: Path) -> subprocess.Popen[bytes]:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"sshd rejects {config}: {check.stderr.strip()}")
    with open(config.with_name("sshd.log"), "ab") as log:
        return subprocess.Popen(
            netns_argv(host, [SSHD, "-D", "-e", "-f", str(config)]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def _wait_listening(server: SshServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = (server.directory / "sshd.log").read_text(errors="replace").strip()
            raise RuntimeError(f"sshd on {server.host.name} exited: {log[-500:]}")
        try:
            with socket.create_connection((server.host.address, server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd on {server.host.address}:{server.port} not listening in {timeout}s")


def _public(private_key: Path) -> str:
    """ "ssh-ed25519 AAAA..." without the comment."""
    fields = private_key.with_name(private_key.name + ".pub").read_text().split()
    return f"{fields[0]} {fields[1]}"

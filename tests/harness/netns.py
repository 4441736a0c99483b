"""Separate hosts for tests: one network namespace each, reachable from the root namespace.

Every host gets a veth pair whose root end is enslaved to the bridge `tma-br0` (10.77.0.1/24);
inside, `eth0` carries the host's 10.77.0.x/24 address and `lo` is up. Hosts can also reach each
other through the bridge. Namespaces share the filesystem, so each host keeps its files (site,
database data, sshd config) under its own `base` directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "tma-br0"
GATEWAY = "10.77.0.1"
NETWORK = ipaddress.ip_network("10.77.0.0/24")
LOCK_DIR = Path("/run/lock")
_HELD: set[str] = set()  # hosts this process holds the lock of


class HarnessUnavailable(Exception):
    """The machine cannot run this part of the harness (not root, a tool missing)."""


@dataclass
class Host:
    name: str
    address: str
    netns: str
    base: Path


def require_root_and_tools(*tools: str) -> None:
    """Raise HarnessUnavailable naming what is missing: root, or one of `tools` on PATH."""
    if os.geteuid() != 0:
        raise HarnessUnavailable("separate test hosts need root (network namespaces)")
    missing = [tool for tool in ("ip", *tools) if _which(tool) is None]
    if missing:
        raise HarnessUnavailable(f"missing on this machine: {', '.join(missing)}")


def create_host(name: str, address: str, base: Path) -> Host:
    """A fresh namespace `name` at `address`; leftovers of a crashed run of that name go first."""
    _check_address(address)
    require_root_and_tools()
    destroy_host(Host(name, address, name, base), keep_bridge=True)
    host = Host(name=name, address=address, netns=name, base=base)
    try:
        _ensure_bridge()
        _plug(name, address)
    except BaseException:
        destroy_host(host)
        raise
    base.mkdir(parents=True, exist_ok=True)
    return host


def destroy_host(host: Host, *, keep_bridge: bool = False) -> None:
    """Kill what runs in the namespace, delete it and its veth; the bridge goes with the last."""
    kill_netns_processes(host.netns)
    subprocess.run(["ip", "netns", "delete", host.netns], capture_output=True, check=False)
    subprocess.run(["ip", "link", "delete", _veth_names(host.name)[0]], capture_output=True)
    if not keep_bridge and not _bridge_ports():
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)


def netns_argv(host: Host, argv: list[str]) -> list[str]:
    """`argv` run inside the host's namespace."""
    return ["ip", "netns", "exec", host.netns, *argv]


def netns_pids(netns: str) -> list[int]:
    proc = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(pid) for pid in proc.stdout.split()] if proc.returncode == 0 else []


def kill_netns_processes(netns: str, program: str | None = None) -> None:
    """SIGKILL every process in the namespace (or only those named `program`) and wait for them."""
    victims = [pid for pid in netns_pids(netns) if program is None or _comm(pid) == program]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in victims):
        time.sleep(0.02)


@contextlib.contextmanager
def host_lock(name: str, timeout: float = 1800) -> Iterator[None]:
    """Exclusive use of host `name` on this machine: two test sessions would tear down each
    other's namespaces. Waits up to `timeout` seconds for another session to finish."""
    if name in _HELD:
        raise RuntimeError(f"host {name} is already in use by this test session")
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_DIR / f"tma-ops-harness-{name}.lock", "w") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HarnessUnavailable(
                        f"host {name} is held by another test session for over {timeout}s"
                    ) from None
                time.sleep(0.5)
        _HELD.add(name)
        try:
            yield
        finally:
            _HELD.discard(name)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _plug(name: str, address: str) -> None:
    outer, inner = _veth_names(name)
    _ip("netns", "add", name)
    _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
    _ip("link", "set", inner, "netns", name)
    _ip("link", "set", outer, "master", BRIDGE, "up")
    _ip("-n", name, "link", "set", "lo", "up")
    _ip("-n", name, "link", "set", inner, "name", "eth0")
    _ip("-n", name, "addr", "add", f"{address}/{NETWORK.prefixlen}", "dev", "eth0")
    _ip("-n", name, "link", "set", "eth0", "up")
    _ip("-n", name, "route", "add", "default", "via", GATEWAY)


def _check_address(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    if parsed not in NETWORK or str(parsed) in (GATEWAY, str(NETWORK.broadcast_address)):
        raise ValueError(f"expected a host address in {NETWORK} other than {GATEWAY}: {address}")


def _ensure_bridge() -> None:
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0:
        _ip("link", "add", BRIDGE, "type", "bridge")
    addresses = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", BRIDGE], capture_output=True, text=True
    ).stdout
    if f" {GATEWAY}/" not in addresses:
        _ip("addr", "add", f"{GATEWAY}/{NETWORK.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def _bridge_ports() -> list[str]:
    proc = subprocess.run(
        ["ip", "-o", "link", "show", "master", BRIDGE], capture_output=True, text=True
    )
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _veth_names(name: str) -> tuple[str, str]:
    """Interface names are at most 15 characters: derive short, stable ones from the host name."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"tmav{digest}", f"tmap{digest}"


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is as good as gone

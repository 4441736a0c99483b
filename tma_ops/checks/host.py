"""Host smoke check: services and processes running, ports listening, free disk space, and the
days left on the TLS certificates the site serves.

Services, processes, ports and disks are looked at on the host itself through testinfra, over
the environment's own executor (`testinfra_backend`). Certificates are fetched from this machine,
as visitors get them. Each item answers yes, no or "cannot tell"; "cannot tell" fails like "no",
so a host that cannot be read never passes.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from cryptography import x509
from testinfra.host import Host
from testinfra.modules.service import SysvService

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.checks.testinfra_backend import ExecutorBackend, executor_host
from tma_ops.errors import TmaError
from tma_ops.executors import open_executor, telling_line
from tma_ops.model_checks import HostCheck, TlsTarget

TLS_TIMEOUT = 10.0  # seconds to connect and complete a handshake
COMM_BYTES = 15  # the kernel keeps this much of a command name (TASK_COMM_LEN - 1)
# `cat` of every process's stat: one command, any Linux (no procps needed), the state included
# so that zombies do not count as running. The test tells an unreadable /proc from no match.
PROC_STAT = "cat /proc/[0-9]*/stat 2>/dev/null; test -r /proc/self/stat"
SERVICE_MANAGERS = {
    "SystemdService": "systemd",
    "UpstartService": "upstart",
    "OpenRCService": "openrc",
    "SysvService": "sysv",
}


@dataclass(frozen=True)
class Outcome:
    item: str  # "port tcp://0.0.0.0:8080"
    ok: bool
    detail: str  # a phrase that starts with the item
    measured: dict[str, Any] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        return {"item": self.item, "ok": self.ok, "detail": self.detail, **self.measured}


Probe = Callable[[Host], Outcome]


class HostChecks:
    def __init__(self, spec: HostCheck, target: CheckTarget) -> None:
        self.spec = spec
        self.target = target
        self.name = spec.name

    def baseline(self) -> dict[str, Any]:
        return {}

    def check(self, baseline: dict[str, Any] | None = None) -> CheckResult:
        outcomes = self._host_outcomes() + [tls_outcome(target) for target in self.spec.tls]
        return summarize(self.name, outcomes)

    def _probes(self) -> list[tuple[str, Probe]]:
        spec, root = self.spec, self.target.env.root
        probes: list[tuple[str, Probe]] = []
        probes += [
            (f"service {name}", partial(service_outcome, name=name)) for name in spec.services
        ]
        probes += [
            (f"process {name}", partial(process_outcome, name=name)) for name in spec.processes
        ]
        probes += [(f"port {port}", partial(port_outcome, text=port)) for port in spec.ports]
        for path, minimum in spec.disk_free.items():
            on_host = posixpath.join(root, path)  # an absolute path stays as it is
            probe = partial(disk_outcome, path=on_host, minimum_text=minimum)
            probes.append((f"disk {on_host}", probe))
        return probes

    def _host_outcomes(self) -> list[Outcome]:
        probes = self._probes()
        if not probes:
            return []
        executor = open_executor(self.target.env.executor)
        try:
            host = executor_host(executor)
            try:
                host.run("true")  # one clear reason when the host cannot be reached at all
            except TmaError as exc:
                unreached = Outcome("host", False, f"host not reached: {exc}")
                return [unreached] + [
                    Outcome(item, False, f"{item} not checked") for item, _ in probes
                ]
            return [guarded(item, probe, host) for item, probe in probes]
        finally:
            close = getattr(executor, "close", None)
            if close is not None:
                close()


def guarded(item: str, probe: Probe, host: Host) -> Outcome:
    """The probe's outcome; any error while probing is a failed "cannot tell" naming why."""
    try:
        return probe(host)
    except Exception as exc:  # a broken probe must not hide the other items' verdicts
        return Outcome(item, False, f"{item}: cannot tell ({_reason(exc, host)})")


def _reason(exc: Exception, host: Host) -> str:
    if isinstance(exc, AssertionError):
        return _last_command(host)  # testinfra asserts on exit codes: the command tells why
    return str(exc) or type(exc).__name__


def _last_command(host: Host) -> str:
    backend = host.backend
    return backend.describe_last() if isinstance(backend, ExecutorBackend) else "no command ran"


def summarize(name: str, outcomes: list[Outcome]) -> CheckResult:
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        detail = "; ".join(outcome.detail for outcome in failed)
    else:
        detail = f"{len(outcomes)} items passed: " + ", ".join(o.item for o in outcomes)
    data = {"items": [outcome.as_data() for outcome in outcomes], "failed": len(failed)}
    return CheckResult(name=name, ok=not failed, detail=detail, data=data, kind="host")


# -- services ------------------------------------------------------------------------------------


def service_outcome(host: Host, name: str) -> Outcome:
    item = f"service {name}"
    manager, service = _service(host, name)
    if service.is_running:
        return Outcome(item, True, f"{item} running ({manager})", {"manager": manager})
    status = _last_command(host)
    if manager in ("sysv", "openrc") and not host.file(f"/etc/init.d/{name}").exists:
        detail = (
            f"{item}: cannot tell whether it runs: no systemd running and no init script "
            f"/etc/init.d/{name} (a daemon started otherwise is checked as a process)"
        )
        return Outcome(item, False, detail, {"manager": manager})
    return Outcome(item, False, f"{item} not running ({manager}: {status})", {"manager": manager})


def _service(host: Host, name: str) -> tuple[str, Any]:
    """The service manager that can answer, and testinfra's view of the service through it."""
    service = host.service(name)
    kind = type(service).__name__
    if kind == "SystemdService" and not host.file("/run/systemd/system/").is_directory:
        # systemd installed but not running (a container, a host booted otherwise): systemctl
        # cannot answer there, the init scripts can.
        return "sysv", type("SysvService", (SysvService,), {"_host": host})(name)
    return SERVICE_MANAGERS.get(kind, kind.removesuffix("Service").lower()), service


# -- processes, ports, disks ---------------------------------------------------------------------


def process_outcome(host: Host, name: str) -> Outcome:
    item = f"process {name}"
    listing = host.run(PROC_STAT)
    if listing.rc != 0:
        return Outcome(item, False, f"{item}: cannot tell (/proc is not readable on the host)")
    comm = name.encode()[:COMM_BYTES].decode(errors="ignore")
    matching = [entry for entry in parse_proc_stat(listing.stdout) if entry.comm == comm]
    alive = [entry.pid for entry in matching if entry.state not in ("Z", "X")]
    defunct = len(matching) - len(alive)
    measured = {"count": len(alive), "pids": alive[:10], "defunct": defunct}
    if alive:
        return Outcome(item, True, f"{item}: {len(alive)} running", measured)
    extra = f" ({defunct} defunct)" if defunct else ""
    return Outcome(item, False, f"{item} not running{extra}", measured)


def port_outcome(host: Host, text: str) -> Outcome:
    item = f"port {text}"
    wanted = parse_port_spec(text)
    sockets: list[str] = host.socket.get_listening_sockets()
    serving = [listening for listening in sockets if listening_serves(listening, wanted)]
    if serving:
        return Outcome(item, True, f"{item} listening", {"listening": serving[:10]})
    elsewhere = [listening for listening in sockets if same_port(listening, wanted)]
    hint = f" (listening on {', '.join(elsewhere[:3])} only)" if elsewhere else ""
    return Outcome(item, False, f"{item} not listening{hint}", {"listening": elsewhere[:10]})


def disk_outcome(host: Host, path: str, minimum_text: str) -> Outcome:
    item = f"disk {path}"
    minimum = parse_min_free(minimum_text)
    df = host.run("df -Pk -- %s", path)
    if df.rc != 0:
        return Outcome(item, False, f"{item}: cannot measure ({telling_line(df.stderr)})")
    usage = parse_df(df.stdout)
    measured = {
        "free_bytes": usage.free,
        "size_bytes": usage.free + usage.used,
        "free_percent": round(usage.free_percent, 2),
        "minimum": minimum_text,
    }
    shortfall = describe_shortfall(usage, minimum)
    if shortfall:
        return Outcome(item, False, f"{item}: {shortfall}", measured)
    summary = f"{item}: {format_bytes(usage.free)} free ({usage.free_percent:.0f}%)"
    return Outcome(item, True, summary, measured)


# -- TLS -----------------------------------------------------------------------------------------


def tls_outcome(target: TlsTarget, now: datetime | None = None) -> Outcome:
    item = f"tls {target.host}:{target.port}"
    try:
        der = fetch_certificate(target)
        not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    except OSError as exc:  # ssl.SSLError included
        return Outcome(item, False, f"{item}: {describe_tls_failure(exc, target)}")
    except ValueError as exc:
        return Outcome(item, False, f"{item}: unreadable certificate ({exc})")
    days = days_left(not_after, now or datetime.now(UTC))
    measured = {"days_left": days, "not_after": not_after.isoformat(), "min_days": target.min_days}
    expiry = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if days < 0:
        return Outcome(item, False, f"{item}: certificate expired on {expiry}", measured)
    if days < target.min_days:
        detail = (
            f"{item}: certificate expires in {_days(days)} ({expiry}) < {_days(target.min_days)}"
        )
        return Outcome(item, False, detail, measured)
    return Outcome(item, True, f"{item}: certificate expires in {_days(days)} ({expiry})", measured)


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


def fetch_certificate(target: TlsTarget) -> bytes:
    """The DER certificate the server presents. Not verified: its dates are what is judged, and
    an untrusted or mismatched certificate still has them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sni = target.server_name or target.host
    with (
        socket.create_connection((target.host, target.port), timeout=TLS_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return der


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until `not_after`: 4 days and 23 hours count as 4; negative once expired."""
    return math.floor((not_after - now) / timedelta(days=1))


def describe_tls_failure(exc: OSError, target: TlsTarget) -> str:
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or (exc.args[-1] if exc.args else type(exc).__name__)
        return f"TLS handshake failed: {reason}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no TLS handshake within {TLS_TIMEOUT:g} s (timed out)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {target.host}: {exc.strerror or exc}"
    if isinstance(exc, ConnectionError):
        return f"connection failed during the TLS handshake: {exc.strerror or type(exc).__name__}"
    return f"cannot connect: {exc.strerror or exc}"


# -- pure parts: the syntax of items, the output of the host's commands ------------------------


SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT])(?:i?B)?", re.IGNORECASE)
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
# `df -P`: filesystem (may hold spaces), 1024-blocks, used, available, capacity, mount point
DF_LINE = re.compile(r".*?\s+\d+\s+(?P<used>\d+)\s+(?P<free>\d+)\s+(?:\d+%|-)\s+/.*")


@dataclass(frozen=True)
class MinFree:
    bytes: int | None = None
    percent: float | None = None

    def __str__(self) -> str:
        if self.percent is not None:
            return f"{self.percent:g}%"
        return format_bytes(self.bytes or 0)


def parse_min_free(text: str) -> MinFree:
    """'2G', '500M', '1.5T' (binary units, B or iB optional) or '10%' of the filesystem."""
    value = text.strip()
    if match := PERCENT.fullmatch(value):
        if 0 < float(match[1]) <= 100:
            return MinFree(percent=float(match[1]))
    elif match := SIZE.fullmatch(value):
        exponent = "KMGT".index(match[2].upper()) + 1
        return MinFree(bytes=round(float(match[1]) * 1024**exponent))
    raise ValueError(f"expected a minimum free space like 2G, 500M or 10%, got {text!r}")


def format_bytes(count: int) -> str:
    """Binary units, rounded DOWN to one decimal: a free space shown is never more than the real
    one, so "1.9 GiB free < 2 GiB" holds even for 1.99 GiB."""
    exponent = 0
    while exponent < len(UNITS) - 1 and count >= 1024 ** (exponent + 1):
        exponent += 1
    value = math.floor(count * 10 / 1024**exponent) / 10
    return f"{value:.1f}".removesuffix(".0") + f" {UNITS[exponent]}"


@dataclass(frozen=True)
class DiskUsage:
    free: int  # bytes available to unprivileged users (what df calls Available)
    used: int

    @property
    def free_percent(self) -> float:
        """Free share of what users can fill (used + available), as df's Capacity counts it."""
        usable = self.free + self.used
        return 100.0 * self.free / usable if usable else 0.0


def parse_df(output: str) -> DiskUsage:
    """The filesystem line of `df -Pk PATH` (POSIX format: one line each, sizes in KiB)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    match = DF_LINE.fullmatch(lines[-1]) if len(lines) >= 2 else None
    if match is None:
        raise ValueError(f"unexpected df output: {output.strip()[:120]!r}")
    return DiskUsage(free=int(match["free"]) * 1024, used=int(match["used"]) * 1024)


def describe_shortfall(usage: DiskUsage, minimum: MinFree) -> str | None:
    """How the free space falls short of the minimum, or None when it is enough."""
    if minimum.percent is not None:
        if usage.free_percent >= minimum.percent:
            return None
        return f"{math.floor(usage.free_percent * 10) / 10:.1f}% free < {minimum}"
    if minimum.bytes is None or usage.free >= minimum.bytes:
        return None
    return f"{format_bytes(usage.free)} free < {minimum}"


@dataclass(frozen=True)
class PortSpec:
    protocol: str  # tcp, udp or unix
    address: str | None  # an IP address, a unix socket's path, or None: any address
    port: int | None = None


def parse_port_spec(text: str) -> PortSpec:
    """'8080' (tcp on any address), 'tcp://0.0.0.0:443', 'tcp://[::]:443' (or testinfra's
    'tcp://:::443'), 'udp://127.0.0.1:53', 'unix:///run/php/php-fpm.sock'."""
    protocol, scheme, rest = text.partition("://")
    if not scheme:
        protocol, rest = "tcp", text
    if protocol == "unix" and rest.startswith("/"):
        return PortSpec("unix", rest)
    address, colon, port = rest.rpartition(":")
    address = address.removeprefix("[").removesuffix("]")
    if protocol in ("tcp", "udp") and port.isdigit() and 0 < int(port) < 65536:
        if not colon:
            return PortSpec(protocol, None, int(port))
        if _ip(address) is not None:
            return PortSpec(protocol, address, int(port))
    raise ValueError(
        "expected a port like 8080, tcp://0.0.0.0:443, tcp://[::]:443, udp://127.0.0.1:53 or "
        f"unix:///run/app.sock, got {text!r}"
    )


def listening_serves(listening: str, wanted: PortSpec) -> bool:
    """Whether a listening socket as testinfra lists it ('tcp://0.0.0.0:22', 'tcp://:::22',
    'unix:///run/x.sock') serves `wanted`. A wildcard serves its own IP family only: ss lists a
    dual-stack socket under both wildcards, an IPv6-only one under '::' alone."""
    protocol, _, rest = listening.partition("://")
    if protocol != wanted.protocol:
        return False
    if protocol == "unix":
        return rest == wanted.address
    address, _, port = rest.rpartition(":")
    if not port.isdigit() or int(port) != wanted.port:
        return False
    if wanted.address is None:
        return True
    have, want = _ip(address), _ip(wanted.address)
    if have is None or want is None or have.version != want.version:
        return False
    return have == want or have.is_unspecified


def same_port(listening: str, wanted: PortSpec) -> bool:
    """Listening on the wanted protocol and port, whatever the address."""
    if wanted.port is None:
        return False
    return listening_serves(listening, PortSpec(wanted.protocol, None, wanted.port))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%")[0])  # 127.0.0.53%lo: scoped to a device
    except ValueError:
        return None


@dataclass(frozen=True)
class ProcessEntry:
    pid: int
    comm: str
    state: str  # R, S, D, ...; Z (zombie) and X (dead) are not running


def parse_proc_stat(output: str) -> list[ProcessEntry]:
    """Lines 'pid (comm) state ...' of /proc/PID/stat. A command name may hold spaces and
    parentheses: it ends at the LAST ') '."""
    entries = []
    for line in output.splitlines():
        head, closing, tail = line.rpartition(") ")
        pid, opening, comm = head.partition(" (")
        if closing and opening and pid.isdigit() and tail:
            entries.append(ProcessEntry(int(pid), comm, tail[0]))
    return entries

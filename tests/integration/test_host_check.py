"""The host check on real hosts: this machine (local://), an sshd host in its own network
namespace (ssh://) and a container of the Debian site image (docker://), each reached through
its executor; and real TLS servers with certificates made for the test."""

from __future__ import annotations

import io
import json
import shlex
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness.mariadb import free_port
from harness.sshd import SshServer

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.checks.host import HostChecks
from tma_ops.checks.suite import build_checks
from tma_ops.executors import Executor, open_executor
from tma_ops.model import Environment, ExecutorSpec

if TYPE_CHECKING:
    from harness.docker_fixtures import Container

pytestmark = pytest.mark.integration

WEB = "tma-probe-web"  # command name of the web servers the tests start (python under a link)


def host_check(executor: str | ExecutorSpec, root: str, **items: Any) -> CheckResult:
    """Run a host check of `items` on the environment, built as the cycle builds it."""
    environment = Environment(
        executor=executor,
        root=root,
        database={"engine": "sqlite", "path": f"{root}/site.sqlite"},
        smoke=[{"check": "host", **items}],
    )
    target = CheckTarget("shop", "production", environment, Path(root) / "artifacts")
    [check] = build_checks(target)
    assert isinstance(check, HostChecks)
    assert check.baseline() == {}
    result = check.check(None)
    assert result.kind == "host"
    json.dumps(result.data)  # journaled as JSON
    assert "\n" not in result.detail
    return result


def items(result: CheckResult) -> dict[str, dict[str, Any]]:
    return {item["item"]: item for item in result.data["items"]}


def wait_listening(address: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{WEB} exited {process.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex((address, port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{WEB} not listening on {address}:{port}")


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Programs under names of their own, which become their processes' command names."""
    directory = tmp_path_factory.mktemp("bin")
    (directory / WEB).symlink_to(sys.executable)
    (directory / "tma-probe-gone").symlink_to("/bin/true")
    return directory


@pytest.fixture(scope="module")
def web_port(links: Path) -> Iterator[int]:
    """`python -m http.server` on 127.0.0.1, running as tma-probe-web."""
    port = free_port("127.0.0.1")
    argv = [str(links / WEB), "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening("127.0.0.1", port, process)
        yield port
    finally:
        process.terminate()
        process.wait()


# -- local:// ------------------------------------------------------------------------------------


def test_a_running_server_passes_process_port_and_disk(web_port: int, tmp_path: Path) -> None:
    result = host_check(
        "local://",
        str(tmp_path),
        processes=[WEB],
        ports=[str(web_port), f"tcp://127.0.0.1:{web_port}"],
        disk_free={str(tmp_path): "1M", "/": "1%"},
    )
    assert result.ok, result.detail
    assert result.detail == (
        f"5 items passed: process {WEB}, port {web_port}, port tcp://127.0.0.1:{web_port}, "
        f"disk {tmp_path}, disk /"
    )
    found = items(result)
    assert found[f"process {WEB}"]["count"] == 1
    assert found[f"port {web_port}"]["listening"] == [f"tcp://127.0.0.1:{web_port}"]
    assert found[f"disk {tmp_path}"]["free_bytes"] > 1 << 20


def test_ports_nobody_listens_on_fail_naming_them(web_port: int, tmp_path: Path) -> None:
    unused = free_port("127.0.0.1")
    result = host_check(
        "local://", str(tmp_path), ports=[str(unused), f"tcp://0.0.0.0:{web_port}", str(web_port)]
    )
    assert not result.ok
    assert result.detail == (
        f"port {unused} not listening; port tcp://0.0.0.0:{web_port} not listening "
        f"(listening on tcp://127.0.0.1:{web_port} only)"
    )
    assert items(result)[f"port {web_port}"]["ok"]


def test_a_process_that_is_not_running_fails_even_as_a_zombie(links: Path, tmp_path: Path) -> None:
    exited = subprocess.Popen([str(links / "tma-probe-gone")])  # not waited for: a zombie
    try:
        stat = Path(f"/proc/{exited.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().split(") ")[-1][0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        result = host_check("local://", str(tmp_path), processes=["tma-probe-gone", "tma-none"])
    finally:
        exited.wait()
    assert not result.ok
    assert result.detail == (
        "process tma-probe-gone not running (1 defunct); process tma-none not running"
    )


def test_disk_free_fails_under_an_absurd_minimum_and_names_what_it_measured(
    tmp_path: Path,
) -> None:
    (tmp_path / "uploads").mkdir()
    result = host_check(
        "local://",
        str(tmp_path),
        disk_free={"uploads": "100000G", "/": "100%", "/tma-no-such-dir": "1M"},
    )
    assert not result.ok
    failures = result.detail.split("; ")
    assert failures[0].startswith(f"disk {tmp_path}/uploads: ")  # relative to the root
    assert failures[0].endswith(" free < 97.6 TiB")
    assert failures[1].startswith("disk /: ") and failures[1].endswith("% free < 100%")
    assert failures[2] == (
        "disk /tma-no-such-dir: cannot measure (df: /tma-no-such-dir: No such file or directory)"
    )
    measured = items(result)[f"disk {tmp_path}/uploads"]
    assert 0 < measured["free_bytes"] < measured["size_bytes"]


def test_a_service_unknown_to_the_host_is_never_taken_as_running(tmp_path: Path) -> None:
    result = host_check("local://", str(tmp_path), services=["tma-no-such-service"])
    assert not result.ok
    if Path("/run/systemd/system").is_dir():  # a host booted with systemd
        assert result.detail.startswith("service tma-no-such-service not running (systemd: ")
    else:
        assert result.detail == (
            "service tma-no-such-service: cannot tell whether it runs: no systemd running and "
            "no init script /etc/init.d/tma-no-such-service (a daemon started otherwise is "
            "checked as a process)"
        )


# -- TLS -------------------------------------------------------------------------------------


def certificate(directory: Path, not_after: datetime) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.org")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsServer:
    """Accepts TLS connections on 127.0.0.1, completes the handshake, notes the SNI name."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.server_names: list[str | None] = []
        self.context.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except OSError:
                conn.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    not_after = datetime.now(UTC) + timedelta(days=5, hours=1)
    server = TlsServer(*certificate(tmp_path_factory.mktemp("tls"), not_after))
    try:
        yield server
    finally:
        server.close()


def test_a_certificate_expiring_in_5_days_fails_a_14_day_minimum(
    tls_port: TlsServer, tmp_path: Path
) -> None:
    target = {"host": "127.0.0.1", "port": tls_port.port, "min_days": 14}
    result = host_check("local://", str(tmp_path), tls=[target])
    assert not result.ok
    expiry = (datetime.now(UTC) + timedelta(days=5, hours=1)).strftime("%Y-%m-%d")
    assert result.detail.startswith(
        f"tls 127.0.0.1:{tls_port.port}: certificate expires in 5 days ({expiry} "
    )
    assert result.detail.endswith(" UTC) < 14 days")
    assert items(result)[f"tls 127.0.0.1:{tls_port.port}"]["days_left"] == 5


def test_the_same_certificate_passes_a_3_day_minimum_and_sends_the_server_name(
    tls_port: TlsServer, tmp_path: Path
) -> None:
    target = {"host": "127.0.0.1", "port": tls_port.port, "min_days": 3}
    named = {**target, "server_name": "shop.example.org"}
    result = host_check("local://", str(tmp_path), tls=[target, named])
    assert result.ok, result.detail
    passed = items(result)[f"tls 127.0.0.1:{tls_port.port}"]
    assert passed["detail"].startswith(
        f"tls 127.0.0.1:{tls_port.port}: certificate expires in 5 days ("
    )
    assert passed["days_left"] == 5
    assert "shop.example.org" in tls_port.server_names


def test_a_port_without_tls_fails_with_the_handshake_error(web_port: int, tmp_path: Path) -> None:
    refused = free_port("127.0.0.1")
    targets = [{"host": "127.0.0.1", "port": web_port}, {"host": "127.0.0.1", "port": refused}]
    result = host_check("local://", str(tmp_path), tls=targets)
    assert not result.ok
    assert result.detail == (
        f"tls 127.0.0.1:{web_port}: TLS handshake failed: WRONG_VERSION_NUMBER; "
        f"tls 127.0.0.1:{refused}: connection refused"
    )


# -- ssh:// --------------------------------------------------------------------------------------


def test_through_ssh_the_host_s_own_sshd_port_and_disk_are_seen(ssh_host: SshServer) -> None:
    address = ssh_host.host.address
    result = host_check(
        ssh_host.spec(),
        "/srv/shop",
        processes=["sshd"],
        ports=["22", f"tcp://{address}:22"],  # only the host's own network namespace has it
        disk_free={"/": "1M"},
    )
    assert result.ok, result.detail
    assert items(result)["port 22"]["listening"] == [f"tcp://{address}:22"]
    failing = host_check(ssh_host.spec(), "/srv/shop", ports=["2222"], disk_free={"/": "100000G"})
    assert not failing.ok
    assert failing.detail.startswith("port 2222 not listening; disk /: ")


def test_an_unreachable_host_fails_every_item_with_one_reason(ssh_host: SshServer) -> None:
    spec = ssh_host.spec(url=f"ssh://root@{ssh_host.host.address}:2200", connect_timeout=1)
    result = host_check(spec, "/srv/shop", processes=["sshd"], disk_free={"/": "1M"})
    assert not result.ok
    assert result.detail == (
        f"host not reached: {spec.url}: connection refused by {ssh_host.host.address}:2200: no "
        "SSH server there; process sshd not checked; disk / not checked"
    )


# -- docker:// -----------------------------------------------------------------------------------

INIT_SCRIPT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          tma-probe
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: web server of the host check tests
### END INIT INFO
PIDFILE=/run/tma-probe.pid
case "$1" in
  start) exec start-stop-daemon --start --background --make-pidfile --pidfile $PIDFILE \\
           --startas /usr/local/bin/tma-probe-web -- -m http.server --bind 127.0.0.1 {port} \\
           </dev/null >/dev/null 2>&1 ;;
  stop) exec start-stop-daemon --stop --pidfile $PIDFILE --remove-pidfile --retry 5 ;;
  status) exec start-stop-daemon --status --pidfile $PIDFILE ;;
  *) echo "Usage: $0 {{start|stop|status}}" >&2; exit 3 ;;
esac
"""
# LSB status 4: the init script cannot tell whether its daemon runs
UNSURE_SCRIPT = """#!/bin/sh
[ "$1" = status ] && { echo "cannot read /run/tma-unsure.pid: permission denied" >&2; exit 4; }
exit 0
"""


def sh(executor: Executor, script: str) -> str:
    return executor.run(["sh", "-c", script]).out.strip()


@pytest.fixture
def container_service(site_container: Container) -> Iterator[tuple[Executor, int]]:
    """A sysv service in the site container: an init script that runs tma-probe-web."""
    executor = open_executor(site_container.spec)
    bind = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
    port = int(sh(executor, f"python3 -c {shlex.quote(bind)}"))
    sh(executor, f"ln -sf /usr/bin/python3 /usr/local/bin/{WEB}")
    executor.put("/etc/init.d/tma-probe", io.BytesIO(INIT_SCRIPT.format(port=port).encode()))
    executor.put("/etc/init.d/tma-unsure", io.BytesIO(UNSURE_SCRIPT.encode()))
    sh(executor, "chmod 755 /etc/init.d/tma-* && service tma-probe start")
    try:
        yield executor, port
    finally:
        executor.run(["sh", "-c", "service tma-probe stop"], check=False)
        sh(executor, f"rm -f /etc/init.d/tma-* /usr/local/bin/{WEB} /run/tma-probe.pid")


def test_in_a_container_a_sysv_service_its_process_and_port(
    container_service: tuple[Executor, int], site_container: Container
) -> None:
    executor, port = container_service
    spec = site_container.spec
    deadline = time.monotonic() + 15
    check = {"services": ["tma-probe"], "processes": [WEB], "ports": [f"tcp://127.0.0.1:{port}"]}
    result = host_check(spec, "/srv/site", **check)
    while not result.ok and time.monotonic() < deadline:  # the daemon starts in the background
        time.sleep(0.2)
        result = host_check(spec, "/srv/site", **check)
    assert result.ok, result.detail
    assert items(result)["service tma-probe"]["manager"] == "sysv"
    pid = int(sh(executor, "cat /run/tma-probe.pid"))
    assert items(result)[f"process {WEB}"]["pids"] == [pid]

    unsure = host_check(spec, "/srv/site", services=["tma-unsure"])
    assert unsure.detail == (
        "service tma-unsure: cannot tell (`/usr/sbin/service tma-unsure status` exited 4: "
        "cannot read /run/tma-unsure.pid: permission denied)"
    )

    # killed behind the init script's back: its pid file stays, the service is not running
    sh(executor, f"kill -KILL {pid}; while [ -e /proc/{pid} ]; do sleep 0.05; done")
    result = host_check(spec, "/srv/site", **check)
    assert not result.ok
    assert result.detail == (
        "service tma-probe not running (sysv: `/usr/sbin/service tma-probe status` exited 1: "
        f"no output); process {WEB} not running; port tcp://127.0.0.1:{port} not listening"
    )

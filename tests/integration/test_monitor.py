"""`tma-ops monitor` against real servers: HTTP sites up, failing and stopped, an HTTPS site with a
certificate about to expire, a webhook receiver and an SMTP server taking the alerts, and the
daemon as a real process stopped by SIGTERM."""

from __future__ import annotations

import email
import ipaddress
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tma_ops.cli import main
from tma_ops.config import load_inventory
from tma_ops.monitor_store import MonitorStore, site_month_uptime
from tma_ops.uptime import month_bounds

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hook-token-4f9c2e7a1b"


class Site(BaseHTTPRequestHandler):
    """Answers GET with the server's current status and a page."""

    def do_GET(self) -> None:
        status = self.server.status  # type: ignore[attr-defined]
        body = "<h1>Bienvenue</h1>" if status == 200 else "Fatal error: database gone"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        return None


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.received.append((self.path, json.loads(self.rfile.read(length))))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def serve(
    handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None = None, **attrs: Any
) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    for name, value in attrs.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def certificates(directory: Path, days: float) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate for 127.0.0.1 it signed, valid `days` more: (ca, cert, key)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "monitor test CA")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        _pem(directory / "ca.pem", ca.public_bytes(pem)),
        _pem(directory / "cert.pem", leaf.public_bytes(pem)),
        _pem(directory / "key.pem", key_pem),
    )


SITE = """
  {name}:
    tier: business
    client: {{timezone: Europe/Paris, language: {language}}}
    monitor:
      url: {url}
      interval_s: 60
      timeout_s: 5
      alerts:
        webhook: {webhook}
        email: {{to: [ops@example.org], from: monitor@example.org, smtp_host: 127.0.0.1,
                 smtp_port: {smtp_port}{login}}}
    environments:
      production:
        executor: local://
        root: sites/{name}/production
        database: {{engine: sqlite, path: sites/{name}/production.sqlite}}
        smoke: [{{url: "{url}"}}]
      staging:
        executor: local://
        root: sites/{name}/staging
        database: {{engine: sqlite, path: sites/{name}/staging.sqlite}}
        smoke: [{{url: "{url}"}}]
"""


def write_inventory(
    directory: Path, urls: dict[str, str], webhook: str, smtp_port: int, login: str = ""
) -> Path:
    head = (
        "version: 1\nstate_dir: state\ndefaults:\n  store: file://./store\n"
        "  stack: {kind: archive, channel: channel, components_dir: plugins, "
        "version_file: VERSION}\nsites:"
    )
    sites = "".join(
        SITE.format(
            name=name,
            url=url,
            webhook=webhook,
            smtp_port=smtp_port,
            login=login,
            language="en" if name == "secure" else "fr",
        )
        for name, url in urls.items()
    )
    path = directory / "tma.yaml"
    path.write_text(head + sites)
    return path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("tls")
    ca, cert, key = certificates(directory, days=5 + 1 / 24)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    up, broken = serve(Site, status=200), serve(Site, status=500)
    secure = serve(Site, context, status=200)
    hook = serve(Hook, received=[])
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        yield {
            "urls": {
                "up": f"http://127.0.0.1:{up.server_port}/",
                "broken": f"http://127.0.0.1:{broken.server_port}/",
                "gone": f"http://127.0.0.1:{free_port()}/",
                "secure": f"https://127.0.0.1:{secure.server_port}/",
            },
            "broken": broken,
            "hook": hook,
            "mailbox": mailbox,
            "smtp_port": smtp.port,
            "ca": ca,
        }
    finally:
        smtp.stop()
        for server in (up, broken, secure, hook):
            server.shutdown()
            server.server_close()


def cli(*argv: str) -> int:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        return main(list(argv))
    finally:
        signal.signal(signal.SIGTERM, previous)


def json_lines(text: str) -> dict[str, dict[str, Any]]:
    return {item["site"]: item for item in map(json.loads, text.splitlines())}


def alerts_of(servers: dict[str, Any]) -> list[tuple[str, str]]:
    received = servers["hook"].received
    found = [(body["site"], body["kind"]) for _path, body in received]
    received.clear()
    return found


def subjects_of(servers: dict[str, Any]) -> list[str]:
    messages = servers["mailbox"].messages
    found = sorted(str(message["Subject"]) for message in messages)
    messages.clear()
    return found


def test_once_stores_probes_and_alerts_on_transitions_by_webhook_and_email(
    servers: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(servers["ca"]))
    hook_url = f"http://127.0.0.1:{servers['hook'].server_port}/hook/{TOKEN}"
    inventory = write_inventory(tmp_path, servers["urls"], hook_url, servers["smtp_port"])

    # First round: one failure is not yet an outage; the certificate is told at once.
    assert cli("-i", str(inventory), "monitor", "--once", "--json") == 1
    first = json_lines(capsys.readouterr().out)
    assert {site: item["ok"] for site, item in first.items()} == {
        "broken": False,
        "gone": False,
        "secure": True,
        "up": True,
    }
    assert first["broken"]["status"] == 500
    assert "forbidden marker 'Fatal error'" in first["broken"]["detail"]
    assert first["gone"]["detail"] == "connection refused"
    assert first["secure"]["tls_days_left"] == 5 and first["up"]["tls_days_left"] is None
    assert alerts_of(servers) == [("secure", "cert")]
    assert subjects_of(servers) == ["secure: TLS certificate expires in 5 days"]

    # Second round: two failures in a row make an outage; the certificate was told today.
    assert cli("-i", str(inventory), "monitor", "--once") == 1
    out = capsys.readouterr().out
    assert "broken  DOWN  expected status 200, got 500" in out
    assert sorted(alerts_of(servers)) == [("broken", "down"), ("gone", "down")]
    assert subjects_of(servers) == ["broken est inaccessible", "gone est inaccessible"]

    # Third round: the failing site recovers, the stopped one stays down and is not told again.
    servers["broken"].status = 200
    try:
        assert cli("-i", str(inventory), "monitor", "--once", "broken", "gone") == 1
    finally:
        servers["broken"].status = 500
    assert alerts_of(servers) == [("broken", "up")]
    assert subjects_of(servers) == ["broken est de nouveau accessible"]
    assert TOKEN not in capsys.readouterr().err

    with MonitorStore.in_state_dir(tmp_path / "state") as store:
        start = datetime.now(UTC) - timedelta(hours=1)
        assert [p.ok for p in store.probes("broken", start, start + timedelta(hours=2))] == [
            False,
            False,
            True,
        ]
        assert len(store.heartbeats(start, start + timedelta(hours=2))) == 3
        assert store.alert_state("gone").state == "down"


def test_failing_hooks_are_one_logged_line_each_and_never_stop_the_round(
    servers: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "smtp-password").write_text("smtp-pass-8c1d\n")
    login = f", username: monitor, password_file: {tmp_path / 'smtp-password'}"
    dead_hook = f"http://127.0.0.1:{free_port()}/hook/{TOKEN}"
    urls = {"gone": servers["urls"]["gone"], "up": servers["urls"]["up"]}
    inventory = write_inventory(tmp_path, urls, dead_hook, free_port(), login)
    for _round in range(2):
        assert cli("-i", str(inventory), "monitor", "--once") == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert [line.split(": ")[1:3] for line in lines if "not sent" in line] == [
        ["gone", "down alert not sent by webhook"],
        ["gone", "down alert not sent by email"],
    ]
    assert all("refused" in line for line in lines if "not sent" in line)
    assert "up  " in captured.out  # the other site was still probed and printed
    assert TOKEN not in captured.err + captured.out and "smtp-pass" not in captured.err


def test_the_daemon_stops_cleanly_on_sigterm_and_its_downtime_is_unknown(
    servers: dict[str, Any], tmp_path: Path
) -> None:
    hook_url = f"http://127.0.0.1:{servers['hook'].server_port}/hook/daemon"
    inventory = write_inventory(
        tmp_path, {"up": servers["urls"]["up"]}, hook_url, servers["smtp_port"]
    )
    store_path = tmp_path / "state" / "monitor.sqlite"
    for _run in range(2):
        run_daemon(inventory, store_path, rounds=3)
        time.sleep(3)  # the monitor is stopped: its last heartbeat covers 2 s of this
    site = load_inventory(inventory).site("up")
    with MonitorStore(store_path) as store:
        beats = store.heartbeats(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
        month = beats[0].at.astimezone(site.client.zone).strftime("%Y-%m")
        start, end = month_bounds(month, site.client.zone)
        coverage = store.coverage(start, end)
        uptime = site_month_uptime(store, site, month)
    assert len(coverage) == 2, coverage
    gap = (coverage[1][0] - coverage[0][1]).total_seconds()
    assert gap >= 0.5
    covered = sum((high - low).total_seconds() for low, high in coverage)
    assert uptime.down_s == 0 and uptime.uptime_percent == 100
    assert abs(uptime.up_s - covered) <= 2
    assert uptime.unknown_s == uptime.total_s - uptime.up_s - uptime.maintenance_s


def run_daemon(inventory: Path, store_path: Path, rounds: int) -> None:
    """`tma-ops monitor` as its own process, every second, until it wrote `rounds` heartbeats."""
    before = heartbeat_count(store_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "tma_ops", "-i", str(inventory), "monitor", "--interval", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        deadline = time.monotonic() + 60
        while heartbeat_count(store_path) < before + rounds:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the monitor wrote no heartbeats"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out.splitlines()[-1] == "monitor stopped" and err == ""


def heartbeat_count(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM heartbeats").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # the monitor is creating its tables

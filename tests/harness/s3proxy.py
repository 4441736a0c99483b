"""A small HTTP(S) proxy in front of an S3 API server, to inject the faults real networks have.

`FaultProxy(upstream)` forwards every request and records (method, path, status). Told to, it
- answers 503 SlowDown (S3's throttling answer) to the next N requests of a method, then
  forwards again (`fail_next`);
- flips one byte in the body of the next response to a method (`corrupt_next`), as a faulty
  disk or network would;
- speaks TLS with a self-signed certificate for 127.0.0.1 (`tls=True`; `ca_file` is that
  certificate, to give as the store's ca_bundle).
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}


@dataclass
class FaultProxy:
    upstream: str  # host:port of the plain-HTTP server behind
    tls_dir: Path | None = None  # serve HTTPS with a certificate written there
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    _failures: dict[str, int] = field(default_factory=dict)
    _corrupt: set[str] = field(default_factory=set)
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls_dir else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_file(self) -> Path:
        assert self.tls_dir is not None
        return self.tls_dir / "cert.pem"

    def fail_next(self, count: int, method: str) -> None:
        with self._mutex:
            self._failures[method] = count

    def corrupt_next(self, method: str) -> None:
        with self._mutex:
            self._corrupt.add(method)

    def take_failure(self, method: str) -> bool:
        with self._mutex:
            left = self._failures.get(method, 0)
            if left > 0:
                self._failures[method] = left - 1
            return left > 0

    def take_corruption(self, method: str) -> bool:
        with self._mutex:
            if method in self._corrupt:
                self._corrupt.discard(method)
                return True
            return False

    def record(self, method: str, path: str, status: int) -> None:
        with self._mutex:
            self.seen.append((method, path, status))

    def start(self) -> FaultProxy:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        server.daemon_threads = True
        server.proxy = self  # type: ignore[attr-defined]
        if self.tls_dir is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*write_self_signed(self.tls_dir))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self._read_body()
        if proxy.take_failure(self.command):
            proxy.record(self.command, self.path, 503)
            self._answer(503, [("Content-Type", "application/xml")], SLOW_DOWN)
            return
        status, headers, data = self._forward(proxy.upstream, body)
        if data and proxy.take_corruption(self.command):
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        proxy.record(self.command, self.path, status)
        self._answer(status, headers, data)

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _read_body(self) -> bytes:
        """The request body, without HTTP chunked framing (botocore streams over HTTPS so)."""
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        pieces = []
        while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
            pieces.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailer fields, up to the empty line
            pass
        return b"".join(pieces)

    def _forward(self, upstream: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = upstream.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    connection.putheader(name, value)
            if body or self.headers.get("Content-Length"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)
            response = connection.getresponse()
            data = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, headers, data
        finally:
            connection.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response_only(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            self.send_header(name, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 signed by its own key: (cert.pem, key.pem) in directory."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tma-ops test S3")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tma_ops.checks.http import HttpSmokeCheck
from tma_ops.config import HttpCheck

pytestmark = pytest.mark.integration

ROUTES: dict[str, tuple[int, bytes, float]] = {  # path -> status, body, delay in seconds
    "/": (200, "<h1>Bienvenue chez Café Martin</h1>".encode(), 0.0),
    "/broken": (500, b"<h1>Internal Server Error</h1>", 0.0),
    "/slow": (200, b"<h1>Bienvenue</h1>", 0.3),
    "/maintenance": (200, b"<h1>Site en maintenance</h1>", 0.0),
    "/hang": (200, b"too late", 1.5),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, body, delay = ROUTES.get(self.path, (404, b"not found", 0.0))
        time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run(url: str, **spec: object) -> tuple[bool, str, dict[str, object]]:
    result = HttpSmokeCheck(HttpCheck(url=url, **spec)).check()  # type: ignore[arg-type]
    assert result.name == url
    return result.ok, result.detail, result.data


def test_ok_page(base_url: str) -> None:
    ok, detail, data = run(base_url + "/", contains="Café Martin")
    assert ok, detail
    assert data["status"] == 200
    assert data["bytes"] == len(ROUTES["/"][1])
    assert isinstance(data["latency_ms"], int)
    assert detail.startswith("status 200 in ")


def test_error_status_is_a_result(base_url: str) -> None:
    ok, detail, data = run(base_url + "/broken")
    assert not ok
    assert detail == "expected status 200, got 500"
    assert data["status"] == 500
    assert data["bytes"] == len(ROUTES["/broken"][1])


def test_expected_error_status_passes(base_url: str) -> None:
    ok, detail, _ = run(base_url + "/nope", status=404)
    assert ok, detail


def test_slow_page(base_url: str) -> None:
    ok, detail, data = run(base_url + "/slow", max_latency_ms=100)
    assert not ok
    assert isinstance(data["latency_ms"], int)
    assert data["latency_ms"] >= 300
    assert detail == f"latency {data['latency_ms']} ms > 100 ms"


def test_missing_marker(base_url: str) -> None:
    ok, detail, _ = run(base_url + "/maintenance", contains="Bienvenue")
    assert not ok
    assert detail == "marker 'Bienvenue' not found in body"


def test_redirect_followed_by_default(base_url: str) -> None:
    ok, detail, _ = run(base_url + "/old", contains="Café Martin")
    assert ok, detail


def test_redirect_checked_when_expected(base_url: str) -> None:
    ok, detail, data = run(base_url + "/old", status=301)
    assert ok, detail
    assert data["status"] == 301


def test_timeout_is_a_result(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HttpSmokeCheck, "timeout", property(lambda self: 0.3))
    ok, detail, data = run(base_url + "/hang")
    assert not ok
    assert detail == "no response within 0.3 s (timed out)"
    assert data["status"] is None


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        ok, detail, data = run(f"http://127.0.0.1:{port}/")
    assert not ok
    assert detail == "connection refused"
    assert data["status"] is None
    assert data["bytes"] == 0

from __future__ import annotations

import pytest

from tma_ops.checks.http import HttpSmokeCheck, evaluate
from tma_ops.config import HttpCheck

pytestmark = pytest.mark.unit

URL = "https://example.test/"
PLAIN = HttpCheck(url=URL, max_latency_ms=2000)
MARKED = HttpCheck(url=URL, contains="Welcome", max_latency_ms=2000)
REDIRECT = HttpCheck(url=URL, status=301)


@pytest.mark.parametrize(
    ("spec", "status", "body", "latency_ms", "ok", "detail"),
    [
        (PLAIN, 200, b"hello", 120, True, "status 200 in 120 ms, 5 bytes"),
        (PLAIN, 500, b"oops", 120, False, "expected status 200, got 500"),
        (PLAIN, 200, b"", 2300, False, "latency 2300 ms > 2000 ms"),
        (PLAIN, 200, b"", 2000, True, "status 200 in 2000 ms, 0 bytes"),  # limit is inclusive
        (MARKED, 200, b"<h1>Welcome</h1>", 50, True, "status 200 in 50 ms, 16 bytes"),
        (MARKED, 200, b"<h1>Maintenance</h1>", 50, False, "marker 'Welcome' not found in body"),
        (MARKED, 200, b"<h1>welcome</h1>", 50, False, "marker 'Welcome' not found in body"),
        (
            MARKED,
            503,
            b"down",
            2500,
            False,
            "expected status 200, got 503; marker 'Welcome' not found in body; "
            "latency 2500 ms > 2000 ms",
        ),
        (REDIRECT, 301, b"", 10, True, "status 301 in 10 ms, 0 bytes"),
        (REDIRECT, 200, b"", 10, False, "expected status 301, got 200"),
    ],
)
def test_evaluate(
    spec: HttpCheck, status: int, body: bytes, latency_ms: int, ok: bool, detail: str
) -> None:
    result = evaluate(spec, status, body, latency_ms)
    assert (result.ok, result.detail) == (ok, detail)
    assert result.name == URL
    assert result.data == {"status": status, "latency_ms": latency_ms, "bytes": len(body)}


@pytest.mark.parametrize(
    ("body", "charset", "ok"),
    [
        ("Café ouvert".encode(), "utf-8", True),
        ("Café ouvert".encode("latin-1"), "iso-8859-1", True),
        ("Café ouvert".encode(), "no-such-charset", True),  # falls back to UTF-8
        (b"\xff\xfe broken", "utf-8", False),  # undecodable bytes do not raise
    ],
)
def test_evaluate_decodes_body(body: bytes, charset: str, ok: bool) -> None:
    spec = HttpCheck(url=URL, contains="Café")
    assert evaluate(spec, 200, body, 1, charset).ok is ok


@pytest.mark.parametrize(("max_latency_ms", "timeout"), [(100, 5.0), (2500, 5.0), (4000, 8.0)])
def test_timeout_is_twice_the_latency_budget_but_at_least_5_s(
    max_latency_ms: int, timeout: float
) -> None:
    assert HttpSmokeCheck(HttpCheck(url=URL, max_latency_ms=max_latency_ms)).timeout == timeout

"""HTTP smoke check: one GET, judged on status, a body marker, forbidden markers and latency."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.model_checks import HttpCheck


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx response itself becomes the result


class HttpSmokeCheck:
    def __init__(self, spec: HttpCheck, target: CheckTarget | None = None) -> None:
        self.spec = spec
        self.name = spec.url

    def baseline(self) -> dict[str, Any]:
        return {}

    @property
    def timeout(self) -> float:
        return max(5.0, 2 * self.spec.max_latency_ms / 1000)

    def check(self, baseline: dict[str, Any] | None = None) -> CheckResult:
        start = time.monotonic()
        try:
            status, body, charset = self._fetch()
        except (OSError, http.client.HTTPException) as exc:
            latency_ms = _elapsed_ms(start)
            return CheckResult(
                name=self.spec.url,
                ok=False,
                detail=describe_failure(exc, self.timeout),
                data={"status": None, "latency_ms": latency_ms, "bytes": 0},
            )
        return evaluate(self.spec, status, body, _elapsed_ms(start), charset)

    def _fetch(self) -> tuple[int, bytes, str]:
        # A check that expects a redirect must see it rather than the page it points to.
        handlers = [NoRedirect()] if 300 <= self.spec.status < 400 else []
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(self.spec.url, headers={"User-Agent": "tma-ops-smoke"})
        try:
            with opener.open(request, timeout=self.timeout) as response:
                charset = response.headers.get_content_charset() or "utf-8"
                return response.status, response.read(), charset
        except urllib.error.HTTPError as exc:
            with exc:
                charset = exc.headers.get_content_charset() or "utf-8"
                return exc.code, exc.read(), charset


def evaluate(
    spec: HttpCheck, status: int, body: bytes, latency_ms: int, charset: str = "utf-8"
) -> CheckResult:
    """Judge one response against the spec; every failed criterion is named in `detail`."""
    text = decode_body(body, charset)
    contains = [spec.contains] if spec.contains is not None else []
    failures = judge_response(status, text, latency_ms, spec.status, contains, spec.forbidden)
    if latency_ms > spec.max_latency_ms:
        failures.append(f"latency {latency_ms} ms > {spec.max_latency_ms} ms")
    summary = f"status {status} in {latency_ms} ms, {len(body)} bytes"
    return CheckResult(
        name=spec.url,
        ok=not failures,
        detail="; ".join(failures) or summary,
        data={"status": status, "latency_ms": latency_ms, "bytes": len(body)},
    )


def judge_response(
    status: int,
    text: str,
    latency_ms: int,
    expected_status: int,
    contains: list[str],
    forbidden: list[str],
) -> list[str]:
    """What is wrong with a response, one phrase per failed criterion (latency aside)."""
    failures = []
    if status != expected_status:
        failures.append(f"expected status {expected_status}, got {status}")
    failures += [
        f"marker {marker!r} not found in body" for marker in contains if marker not in text
    ]
    failures += [
        f"forbidden marker {marker!r} found in body" for marker in forbidden if marker in text
    ]
    return failures


def decode_body(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # unknown charset announced by the server
        return body.decode("utf-8", errors="replace")


def describe_failure(exc: BaseException, timeout: float) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no response within {timeout:g} s (timed out)"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve host: {reason.strerror or reason}"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error: {reason.reason or reason}"
    if isinstance(reason, ConnectionError):
        return f"connection failed: {reason.strerror or type(reason).__name__}"
    if isinstance(reason, http.client.HTTPException):
        return f"invalid HTTP response: {type(reason).__name__}"
    return f"request failed: {reason}"


def _elapsed_ms(start: float) -> int:
    return round((time.monotonic() - start) * 1000)

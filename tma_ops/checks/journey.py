"""Journey check: requests made in order by one visitor, judged step by step.

One cookie jar serves the whole journey, redirects included, so a form's token bound to a session
cookie is posted back with that cookie. A step may extract values from its body (`extract`) that
later steps write as `{name}` in their url or form values. The journey stops at the first failing
step, and `detail` names it by number, method and URL. Form values and extracted values are never
shown: they may hold personal data or session tokens.
"""

from __future__ import annotations

import html
import http.client
import http.cookiejar
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.checks.http import NoRedirect, decode_body, describe_failure, judge_response
from tma_ops.model_checks import PLACEHOLDER, JourneyCheck, JourneyStep

USER_AGENT = "tma-ops-smoke"


class MissingValue(Exception):
    """A step names a value `{name}` that no earlier step extracted."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def substitute(template: str, values: Mapping[str, str]) -> str:
    """`template` with each `{name}` replaced by its value; `{{` and `}}` stand for braces."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        if name not in values:
            raise MissingValue(name)
        return values[name]

    return PLACEHOLDER.sub(replace, template)


def resolve_url(url: str, previous: str | None) -> str:
    """A step's URL: a path starting with "/" is taken on the previous step's (final) URL."""
    if url.startswith("/") and previous is not None:
        return urljoin(previous, url)
    return url


def extract_values(text: str, patterns: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The first group of each pattern's first match (HTML entities decoded), and the names of
    the patterns that matched nothing."""
    values, missing = {}, []
    for name, pattern in patterns.items():
        found = re.search(pattern, text)
        if found is None:
            missing.append(name)
        else:
            values[name] = html.unescape(found.group(1))
    return values, missing


@dataclass(frozen=True)
class Response:
    status: int
    text: str
    url: str  # after redirects
    latency_ms: int


class Visitor:
    """One browser-like visitor: a cookie jar shared by every request, redirects or not."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar()
        cookie_handler = urllib.request.HTTPCookieProcessor(self.cookies)
        self._following = urllib.request.build_opener(cookie_handler)
        self._staying = urllib.request.build_opener(cookie_handler, NoRedirect())

    def send(
        self, method: str, url: str, form: Mapping[str, str], *, follow: bool, timeout: float
    ) -> Response:
        data = urlencode(dict(form)).encode() if method == "POST" else None
        headers = {"User-Agent": USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        opener = self._following if follow else self._staying
        start = time.monotonic()
        try:
            with opener.open(request, timeout=timeout) as answer:
                status, body, final = answer.status, answer.read(), answer.geturl()
                charset = answer.headers.get_content_charset() or "utf-8"
        except urllib.error.HTTPError as error:
            with error:
                status, body, final = error.code, error.read(), error.geturl() or url
                charset = error.headers.get_content_charset() or "utf-8"
        latency_ms = round((time.monotonic() - start) * 1000)
        return Response(status, decode_body(body, charset), final, latency_ms)


class JourneyCheckRunner:
    def __init__(self, spec: JourneyCheck, target: CheckTarget | None = None) -> None:
        self.spec = spec
        self.name = spec.name

    def baseline(self) -> dict[str, Any]:
        return {}

    def check(self, baseline: dict[str, Any] | None = None) -> CheckResult:
        visitor = Visitor()
        values: dict[str, str] = {}
        previous: str | None = None
        measured: list[dict[str, Any]] = []
        total = len(self.spec.steps)
        for number, step in enumerate(self.spec.steps, 1):
            shown = resolve_url(step.url, previous)  # placeholders left as written
            failure, response = self._run_step(visitor, step, values, previous)
            if response is not None:
                measured.append(_measure(step, response))
                previous = response.url
            if failure:
                where = f"step {number}/{total} {step.method} {shown}"
                return self._result(False, f"{where}: {failure}", measured, failed_step=number)
        latency = sum(step["latency_ms"] for step in measured)
        return self._result(True, f"{total} steps passed in {latency} ms", measured)

    def _run_step(
        self, visitor: Visitor, step: JourneyStep, values: dict[str, str], previous: str | None
    ) -> tuple[str | None, Response | None]:
        """Why the step failed (None when it passed) and the response it got, if any."""
        try:
            url = resolve_url(substitute(step.url, values), previous)
            form = {key: substitute(value, values) for key, value in step.form.items()}
        except MissingValue as missing:
            return f"no value for {{{missing.name}}}: no earlier step extracted it", None
        if urlsplit(url).scheme not in ("http", "https"):
            return "the URL it was given is not an http:// or https:// URL", None
        timeout = max(5.0, 2 * step.max_latency_ms / 1000)
        follow = not 300 <= step.status < 400
        try:
            response = visitor.send(step.method, url, form, follow=follow, timeout=timeout)
        except (OSError, http.client.HTTPException) as exc:
            return describe_failure(exc, timeout), None
        return self._judge(step, response, values), response

    @staticmethod
    def _judge(step: JourneyStep, response: Response, values: dict[str, str]) -> str | None:
        failures = judge_response(
            response.status,
            response.text,
            response.latency_ms,
            step.status,
            step.contains,
            step.forbidden,
        )
        if response.latency_ms > step.max_latency_ms:
            failures.append(f"latency {response.latency_ms} ms > {step.max_latency_ms} ms")
        if not failures:
            found, missing = extract_values(response.text, step.extract)
            values.update(found)
            failures += [f"nothing in the body matched extract {name!r}" for name in missing]
        return "; ".join(failures) or None

    def _result(
        self, ok: bool, detail: str, measured: list[dict[str, Any]], failed_step: int | None = None
    ) -> CheckResult:
        data: dict[str, Any] = {"steps": measured}
        if failed_step is not None:
            data["failed_step"] = failed_step
        return CheckResult(name=self.name, ok=ok, detail=detail, data=data, kind="journey")


def _measure(step: JourneyStep, response: Response) -> dict[str, Any]:
    return {"method": step.method, "status": response.status, "latency_ms": response.latency_ms}

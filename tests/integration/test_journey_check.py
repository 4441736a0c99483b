"""The journey check on a real WordPress site with a contact form (harness.wp_contact): the form's
token is bound to a session cookie and the confirmation to a cookie set by the post's redirect."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.mariadb import free_port
from harness.wordpress import WordPressSite, fetch, session_lab
from harness.wp_contact import (
    BROKEN_VERSION,
    CONFIRMATION,
    CONTACT_PATH,
    EXPIRED,
    TOKEN_PATTERN,
    WORKING_VERSION,
    contact_journey,
    count_entries,
    entries,
    install_contact_plugin,
)
from wordpress_stack_support import wordpress_environment

from tma_ops.checks import CheckResult, CheckTarget
from tma_ops.checks.journey import JourneyCheckRunner
from tma_ops.checks.suite import build_checks, run_suite, take_baselines
from tma_ops.model import Environment
from tma_ops.model_checks import JourneyCheck

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def contact_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WordPressSite]:
    """A served copy of the template site with the working contact form."""
    site = session_lab(request).new_site(tmp_path_factory.mktemp("journey") / "site")
    install_contact_plugin(site, WORKING_VERSION)
    site.serve()
    try:
        yield site
    finally:
        site.stop()


def run_journey(spec: dict[str, Any]) -> CheckResult:
    return JourneyCheckRunner(JourneyCheck.model_validate(spec)).check()


def test_contact_journey_passes_and_stores_the_entry(contact_site: WordPressSite) -> None:
    before = count_entries(contact_site)
    spec = contact_journey(contact_site.url, "claire@example.invalid", "Bonjour, journey 1")
    result = run_journey(spec)
    assert result.ok, result.detail
    assert re.fullmatch(r"2 steps passed in \d+ ms", result.detail)
    assert result.kind == "journey"
    assert result.name == "contact form"
    assert [(s["method"], s["status"]) for s in result.data["steps"]] == [
        ("GET", 200),
        ("POST", 200),  # the 303 after the post was followed to the confirmation
    ]
    assert count_entries(contact_site) == before + 1
    assert entries(contact_site)[-1] == ("claire@example.invalid", "Bonjour, journey 1")


def test_without_cookies_the_same_requests_are_refused(contact_site: WordPressSite) -> None:
    """What the journey passes only because it keeps cookies: a client that drops them gets the
    token but cannot post it, and never sees the confirmation."""
    before = count_entries(contact_site)
    status, page = fetch(contact_site.url + CONTACT_PATH)
    token = re.search(TOKEN_PATTERN, page)
    assert status == 200 and token
    form = {"email": "sans@example.invalid", "message": "sans cookie", "tma_token": token[1]}
    request = urllib.request.Request(
        contact_site.url + CONTACT_PATH, data=urllib.parse.urlencode(form).encode()
    )
    status, body = post_without_cookies(request)
    assert status == 403
    assert EXPIRED in body and CONFIRMATION not in body
    assert count_entries(contact_site) == before
    status, body = fetch(contact_site.url + CONTACT_PATH + "&sent=1")  # no flash cookie
    assert status == 200 and CONFIRMATION not in body


def post_without_cookies(request: urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def test_a_step_expecting_the_redirect_sees_it_and_keeps_its_cookie(
    contact_site: WordPressSite,
) -> None:
    spec = contact_journey(contact_site.url, "paul@example.invalid", "Bonjour, journey 3")
    post = spec["steps"][1]
    post["status"] = 303
    post.pop("contains")
    spec["steps"].append({"url": CONTACT_PATH + "&sent=1", "contains": CONFIRMATION})
    result = run_journey(spec)
    assert result.ok, result.detail
    assert [s["status"] for s in result.data["steps"]] == [200, 303, 200]


def test_an_extract_that_matches_nothing_stops_the_journey(contact_site: WordPressSite) -> None:
    before = count_entries(contact_site)
    spec = contact_journey(contact_site.url)
    spec["steps"][0]["extract"] = {"token": r'name="csrf" value="(\w+)"'}
    result = run_journey(spec)
    assert not result.ok
    url = contact_site.url + CONTACT_PATH
    assert result.detail == f"step 1/2 GET {url}: nothing in the body matched extract 'token'"
    assert result.data["failed_step"] == 1
    assert len(result.data["steps"]) == 1  # the post was never sent
    assert count_entries(contact_site) == before


def test_an_unreachable_site_is_named() -> None:
    url = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    result = run_journey(contact_journey(url))
    assert not result.ok
    assert result.detail == f"step 1/2 GET {url}{CONTACT_PATH}: connection refused"
    assert result.data["steps"] == []


def test_broken_release_fails_naming_the_step_and_no_personal_data(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    site = session_lab(request).new_site(tmp_path / "site")
    install_contact_plugin(site, WORKING_VERSION)
    site.serve()
    try:
        journey = contact_journey(site.url, "lea.martin@example.invalid", "Mon numéro: 0612")
        assert run_journey(journey).ok
        install_contact_plugin(site, BROKEN_VERSION)  # the update, on the running site
        result = run_journey(journey)
    finally:
        site.stop()
    assert not result.ok
    assert result.detail == (
        f"step 2/2 POST {site.url}{CONTACT_PATH}: marker {CONFIRMATION!r} not found in body"
    )
    assert result.data["failed_step"] == 2
    assert [s["status"] for s in result.data["steps"]] == [200, 200]
    assert count_entries(site) == 1  # the post made before the update only
    shown = result.detail + repr(result.data)
    assert "lea.martin" not in shown and "0612" not in shown


def test_the_suite_builds_and_runs_a_declared_journey(contact_site: WordPressSite) -> None:
    declared = wordpress_environment(contact_site).model_dump()
    declared["smoke"] = [contact_journey(contact_site.url, "suite@example.invalid", "Suite")]
    env = Environment.model_validate(declared)
    target = CheckTarget("atelier", "staging", env, contact_site.base / "artifacts")
    checks = build_checks(target)
    assert [type(check) for check in checks] == [JourneyCheckRunner]
    assert take_baselines(checks) == {}  # a journey needs no memory of the site
    [result] = run_suite(checks, None)
    assert result.ok, result.detail
    assert entries(contact_site)[-1] == ("suite@example.invalid", "Suite")

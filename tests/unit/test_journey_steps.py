from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tma_ops.checks.journey import MissingValue, extract_values, resolve_url, substitute
from tma_ops.model_checks import JourneyCheck

pytestmark = pytest.mark.unit

VALUES = {"nonce": "a1b2c3", "id": "42"}


@pytest.mark.parametrize(
    ("template", "result"),
    [
        ("https://example.test/contact", "https://example.test/contact"),
        ("{nonce}", "a1b2c3"),
        ("/confirm?id={id}&n={nonce}", "/confirm?id=42&n=a1b2c3"),
        ("{{nonce}}", "{nonce}"),  # doubled braces are literal
        ("{{ not a placeholder }}", "{ not a placeholder }"),
        ("{ spaced }", "{ spaced }"),  # not a name: left as written
        ("", ""),
    ],
)
def test_substitute(template: str, result: str) -> None:
    assert substitute(template, VALUES) == result


def test_substitute_names_the_missing_value() -> None:
    with pytest.raises(MissingValue) as missing:
        substitute("/order/{order_id}?n={nonce}", VALUES)
    assert missing.value.name == "order_id"


@pytest.mark.parametrize(
    ("url", "previous", "result"),
    [
        ("/contact", "https://example.test/shop/cart?x=1", "https://example.test/contact"),
        ("/contact?sent=1", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/contact?sent=1"),
        ("https://other.test/", "https://example.test/a", "https://other.test/"),
        ("/contact", None, "/contact"),  # nothing to join to: the check says it is no URL
    ],
)
def test_resolve_url(url: str, previous: str | None, result: str) -> None:
    assert resolve_url(url, previous) == result


def test_extract_values_decodes_html_and_lists_what_matched_nothing() -> None:
    body = '<input name="_token" value="x&amp;y"><a href="/next?a=1&amp;b=2">go</a>'
    values, missing = extract_values(
        body,
        {"token": r'name="_token" value="([^"]*)"', "next": r'href="([^"]*)"', "nonce": r"n=(\d+)"},
    )
    assert values == {"token": "x&y", "next": "/next?a=1&b=2"}
    assert missing == ["nonce"]


def journey(*steps: dict[str, Any]) -> JourneyCheck:
    return JourneyCheck.model_validate({"check": "journey", "name": "contact", "steps": steps})


def refused(*steps: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        journey(*steps)
    return str(caught.value.errors()[0]["msg"])


def test_a_valid_journey() -> None:
    check = journey(
        {"url": "https://example.test/contact", "extract": {"nonce": r'nonce" value="(\w+)"'}},
        {"url": "/contact", "method": "POST", "form": {"nonce": "{nonce}", "m": "{{hi}}"}},
        {"url": "{nonce}"},  # a URL given by an earlier page
    )
    assert [step.method for step in check.steps] == ["GET", "POST", "GET"]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"url": "/contact"}], "step 1: expected an http:// or https:// URL, got '/contact'"),
        (
            [{"url": "https://a.test/"}, {"url": "ftp://a.test/x"}],
            "step 2: expected an http:// or https:// URL, or a path starting with / on the "
            "previous host, got 'ftp://a.test/x'",
        ),
        (
            [{"url": "https://a.test/", "method": "POST", "form": {"m": "{nonce}"}}],
            "step 1: {nonce} is not extracted by an earlier step",
        ),
        (
            [{"url": "https://a.test/{id}", "extract": {"id": "(x)"}}],
            "step 1: {id} is not extracted by an earlier step",  # only EARLIER steps count
        ),
        (
            [{"url": "https://a.test/", "form": {"email": "a@b.fr"}}],
            "step 1: form is sent only by a POST step (method: POST)",
        ),
        (
            [{"url": "https://a.test/", "extract": {"my-token": "(x)"}}],
            "extract: expected a name of letters, digits or _, got 'my-token'",
        ),
        (
            [{"url": "https://a.test/", "extract": {"token": "x"}}],
            "extract.token: expected a regex with one group, got 'x'",
        ),
    ],
)
def test_refused_journeys(steps: list[dict[str, Any]], message: str) -> None:
    assert message in refused(*steps)

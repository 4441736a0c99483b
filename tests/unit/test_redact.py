from __future__ import annotations

from typing import Any

import pytest

from tma_ops.redact import REDACTED, is_secret_key, redact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("DB_PASSWORD", True),
        ("dbPassword", True),
        ("db-passwd", True),
        ("passphrase", True),
        ("client_secret", True),
        ("aws_secret_access_key", True),
        ("token", True),
        ("accessToken", True),
        ("refresh_tokens", True),
        ("credentials", True),
        ("Authorization", True),
        ("basic_auth", True),
        ("Set-Cookie", True),
        ("api_key", True),
        ("apikey", True),
        ("X-ApiKey", True),
        ("APIKey", True),
        ("private_key", True),
        ("ssh_keys", True),
        ("license_key_v2", True),
        ("access_key", True),
        ("key", False),
        ("keys", False),
        ("keep_last", False),
        ("author", False),
        ("monkey", False),
        ("keyboard", False),
        ("secretary", False),
        ("public_key", False),
        ("host_key", False),
        ("object_key", False),
        ("cache_key", False),
        ("private_key_path", False),
        ("AWS_ACCESS_KEY_ID", False),
        ("key_name", False),
        ("site", False),
        ("", False),
    ],
)
def test_is_secret_key(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


@pytest.mark.parametrize(
    ("data", "secrets", "expected"),
    [
        ({"password": "hunter2"}, (), {"password": REDACTED}),
        ({"auth": {"user": "bob", "pass": "x"}}, (), {"auth": REDACTED}),
        ({"token": 12345}, (), {"token": REDACTED}),
        ({"keep_last": 3, "key": "site/a"}, (), {"keep_last": 3, "key": "site/a"}),
        ({"out": "login hunter22 ok"}, ["hunter22"], {"out": "login *** ok"}),
        ({"out": "abc"}, ["abc"], {"out": "abc"}),
        ("abcdef", ["abcd", "cdef"], REDACTED),
        ("x-s3cr3t-s3cr3t", ["s3cr3t"], "x-***-***"),
        (["a", ("s3cr3t", 1)], ["s3cr3t"], ["a", [REDACTED, 1]]),
        ({"s3cr3t-name": 1}, ["s3cr3t"], {"***-name": 1}),
        (
            {"dsn": "mysql://bob:hunter2@db:3306/shop"},
            (),
            {"dsn": "mysql://bob:***@db:3306/shop"},
        ),
        ("redis://:pw@cache/0", (), "redis://:***@cache/0"),
        ("mysql://bob:p@ss@db/x", (), "mysql://bob:***@db/x"),
        (
            "ssh://deploy@host:22 and https://host:8443/a",
            (),
            "ssh://deploy@host:22 and https://host:8443/a",
        ),
        ("https://example.org/?next=a:b@c", (), "https://example.org/?next=a:b@c"),
        (
            {"steps": [{"cmd": "curl https://u:tok@h/x", "n": None, "ok": True, "f": 1.5}]},
            (),
            {"steps": [{"cmd": "curl https://u:***@h/x", "n": None, "ok": True, "f": 1.5}]},
        ),
    ],
)
def test_redact(data: Any, secrets: list[str], expected: Any) -> None:
    assert redact(data, secrets) == expected


def test_redact_returns_a_deep_copy() -> None:
    data = {"nested": {"list": [1, {"password": "x"}]}}
    result = redact(data)
    assert data == {"nested": {"list": [1, {"password": "x"}]}}
    assert result["nested"]["list"] is not data["nested"]["list"]


def test_secrets_may_be_a_one_shot_iterable() -> None:
    assert redact(["aaaa", "bbbb"], iter(["aaaa", "bbbb"])) == [REDACTED, REDACTED]

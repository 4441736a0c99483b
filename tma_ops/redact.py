"""Redaction of secrets from JSON-like data before it is written anywhere (journal, reports).

Three rules, applied to a deep copy:

1. The value of a dict key whose *name* looks secret becomes ``"***"`` (whatever its type).
2. Every occurrence of a known secret string (4 characters or more) inside a string becomes
   ``"***"``; this also covers dict keys.
3. The password of a URL (``scheme://user:pass@host``) becomes ``***``.

Key names are split into lower-case words (``dbPassword``, ``DB-PASSWORD`` and ``db_password``
all give ``db password``) and judged word by word, never by raw substring, so ``author``,
``keep_last``, ``monkey`` or a plain ``key`` stay visible. A key name is secret when

- a word ends with password, passwd, passphrase, secret(s), token(s), credential(s), apikey,
  privatekey, accesskey or secretkey (``client_secret``, ``accessToken``, ``dbpassword``);
- a word is auth, oauth, authentication, authorization, bearer or cookie(s);
- a word "key" follows another word (``api_key``, ``ssh_key``, ``license_key_v2``), unless that
  word marks public material or an identifier (``public_key``, ``object_key``, ``cache_key``) or
  the next word shows the value only points at the key (``private_key_path``, ``access_key_id``).

The rule errs towards hiding: ``token_count`` or ``auth_method`` are redacted too, a small loss
next to a leaked credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
MIN_SECRET_LENGTH = 4

# A word that ends with one of these makes the key secret ("dbpassword", "accesstoken").
_SECRET_WORD_ENDINGS = (
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "tokens",
    "credential",
    "credentials",
    "apikey",
    "privatekey",
    "privkey",
    "accesskey",
    "secretkey",
)
# Words that are secret only as a whole word ("auth" yes, "author" no).
_SECRET_WORDS = frozenset(
    {"auth", "oauth", "authentication", "authorization", "bearer", "cookie", "cookies"}
)
# "<qualifier>_key" is secret (api_key, ssh_key, license_key) unless the qualifier says the key
# is an identifier or public material.
_PUBLIC_KEY_QUALIFIERS = frozenset(
    {
        "public",
        "pub",
        "host",
        "object",
        "s3",
        "store",
        "cache",
        "sort",
        "primary",
        "foreign",
        "partition",
        "lookup",
        "idempotency",
        "dedup",
        "group",
        "index",
        "map",
        "row",
    }
)
# "<qualifier>_key_<word>" stays secret (api_key_v2, api_key_prod) unless the word says the value
# only points at or describes the key.
_KEY_REFERENCE_WORDS = frozenset(
    {"path", "file", "filename", "dir", "id", "name", "fingerprint", "type", "bits", "size"}
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# The password may itself contain "@" (badly encoded), so it runs to the last "@" of the authority.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*):(?P<password>[^\s/?#]+)@"
)


def key_words(name: str) -> list[str]:
    """Split a key name into lower-case words: ``"X-ApiKey_v2"`` -> ``x api key v2``."""
    spaced = _CAMEL_BOUNDARY.sub(" ", name).lower()
    return [word for word in _NON_ALNUM.split(spaced) if word]


def is_secret_key(name: str) -> bool:
    """Whether a dict key's name says its value is a secret."""
    words = key_words(name)
    if any(word in _SECRET_WORDS or word.endswith(_SECRET_WORD_ENDINGS) for word in words):
        return True
    return any(_is_secret_key_word(words, index) for index in range(1, len(words)))


def _is_secret_key_word(words: list[str], index: int) -> bool:
    """Whether words[index] is "key" qualified as a secret one ("api key", not "public key")."""
    if words[index] not in ("key", "keys") or words[index - 1] in _PUBLIC_KEY_QUALIFIERS:
        return False
    following = words[index + 1] if index + 1 < len(words) else None
    return following not in _KEY_REFERENCE_WORDS


def redact_url_passwords(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", text)


class Redactor:
    """`redact` with the secret strings prepared once (the journal keeps one per instance)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        usable = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        self._secrets = tuple(sorted(usable, key=len, reverse=True))

    def __call__(self, data: Any) -> Any:
        if isinstance(data, dict):
            return {self.text(str(k)): self._value(str(k), v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self(item) for item in data]
        if isinstance(data, str):
            return self.text(data)
        # Numbers, booleans and None carry no secret; other objects are not JSON and are left for
        # the caller to reject.
        return data

    def _value(self, key: str, value: Any) -> Any:
        return REDACTED if is_secret_key(key) else self(value)

    def text(self, value: str) -> str:
        """Mask URL passwords and every known secret occurring in `value`."""
        return self._mask_secrets(redact_url_passwords(value))

    def _mask_secrets(self, value: str) -> str:
        spans = _merged(_occurrences(value, self._secrets))
        if not spans:
            return value
        parts: list[str] = []
        cursor = 0
        for start, end in spans:
            parts += [value[cursor:start], REDACTED]
            cursor = end
        parts.append(value[cursor:])
        return "".join(parts)


def _occurrences(value: str, secrets: tuple[str, ...]) -> list[tuple[int, int]]:
    # Overlapping occurrences are all collected, so two overlapping secrets leave no fragment.
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        start = value.find(secret)
        while start != -1:
            spans.append((start, start + len(secret)))
            start = value.find(secret, start + 1)
    return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def redact(data: Any, secrets: Iterable[str] = ()) -> Any:
    """Return a redacted deep copy of JSON-like `data` (tuples become lists)."""
    return Redactor(secrets)(data)

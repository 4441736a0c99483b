"""Key rules and retention-lock semantics every store implementation shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from tma_ops.errors import ObjectLocked, ObjectNotFound, StoreError
from tma_ops.streams import CHUNK, Readable

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_key(key: str) -> str:
    """Return key if it is a clean relative '/'-path, else raise StoreError naming it."""
    problem = _key_problem(key)
    if problem is not None:
        raise StoreError(f"invalid store key {key!r}: {problem}")
    return key


def check_prefix(prefix: str) -> str:
    """Return prefix if some valid key could start with it, else raise StoreError naming it."""
    # Appending a character turns a prefix ending in '/' or mid-component into a candidate key.
    problem = _key_problem(prefix + "x")
    if problem is not None:
        raise StoreError(f"invalid list prefix {prefix!r}: {problem}")
    return prefix


def _key_problem(key: str) -> str | None:
    if not key:
        return "empty key"
    if "\\" in key:
        return "backslash in key (use '/')"
    if "\x00" in key:
        return "NUL byte in key"
    if key.startswith("/"):
        return "absolute key (keys are relative to the store root)"
    for part in key.split("/"):
        if not part:
            return "empty path component"
        if part == "..":
            return "'..' component"
        if part.startswith("."):
            return "component starting with '.' (reserved for store metadata)"
    return None


def aware_utc(key: str, until: datetime) -> datetime:
    if until.tzinfo is None or until.utcoffset() is None:
        raise StoreError(f"lock {key!r}: until {until.isoformat()} has no timezone; pass UTC")
    return until.astimezone(UTC)


def active_lock(until: datetime | None, now: datetime) -> datetime | None:
    """A lock holds while now < until; an expired one is as good as none."""
    return until if until is not None and now < until else None


def not_found(url: str, key: str) -> ObjectNotFound:
    return ObjectNotFound(f"store {url}: no object {key!r}")


def locked(url: str, key: str, until: datetime) -> ObjectLocked:
    return ObjectLocked(f"store {url}: {key!r} is locked until {until.isoformat()}")


def refuse_shortening(url: str, key: str, current: datetime | None, until: datetime) -> None:
    if current is not None and until < current:
        raise ObjectLocked(
            f"store {url}: {key!r} is locked until {current.isoformat()}; "
            f"refusing to shorten the lock to {until.isoformat()}"
        )


def read_chunks(source: Readable) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk

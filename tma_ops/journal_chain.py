"""The journal's chain, whatever database holds it: events, hashes, checks and verification.

Each event's hash is ``sha256_hex(prev_hash + canonical_json(event without hash))``; the first
event's ``prev_hash`` is 64 zeros. A storage backend (SQLite in `tma_ops.journal`, PostgreSQL in
`tma_ops.journal_postgres`) keeps the rows and a one-row head (last id, last hash) written in the
same transaction as each append; everything decided about the chain is decided here, so both
backends chain, redact and verify identically.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from tma_ops.errors import IntegrityError
from tma_ops.redact import Redactor

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("id", "time", "run_id", "site", "step", "status", "data", "prev_hash")
COLUMNS = (*HASHED_FIELDS, "hash")


@dataclass(frozen=True)
class Event:
    id: int
    time: str  # UTC, ISO-8601 with a trailing "Z"
    run_id: str
    site: str
    step: str
    status: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of `Journal.verify`.

    `count` is the number of events found intact before the first break (all of them when ok).
    `first_broken_id` is the first event that is edited, or follows a gap, or (for a truncated
    journal) the first id that is missing. `reason` is one line naming that event.
    """

    ok: bool
    count: int
    first_broken_id: int | None
    reason: str

    def raise_if_broken(self) -> None:
        if not self.ok:
            raise IntegrityError(self.reason)


class Row(Protocol):
    """A stored row read by column name (sqlite3.Row, a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


class JournalLike(Protocol):
    """What callers may rely on, whichever database holds the journal."""

    journal_id: str

    @property
    def description(self) -> str:
        """Where the journal is, for messages (never with a password)."""
        ...

    def append(
        self,
        *,
        run_id: str,
        site: str,
        step: str,
        status: str,
        data: dict[str, Any] | None = None,
    ) -> Event: ...

    def events(self, *, site: str | None = None, run_id: str | None = None) -> list[Event]: ...

    def runs(self, site: str | None = None) -> list[str]: ...

    def verify(self) -> VerifyReport: ...

    def head(self) -> tuple[int, str]: ...

    def close(self) -> None: ...

    def __enter__(self) -> JournalLike: ...

    def __exit__(self, *exc_info: object) -> None: ...


class JournalStorage(Protocol):
    """Where a journal's rows live: the part that differs between databases."""

    description: str
    journal_id: str

    def append(self, build: Callable[[int, str], Event]) -> Event:
        """Lock the head, insert `build(last_id + 1, last_hash)`, move the head, commit."""
        ...

    def head(self) -> tuple[int, str]: ...

    def select_events(self, site: str | None, run_id: str | None) -> list[Row]: ...

    def select_runs(self, site: str | None) -> list[str]: ...

    def verify(self) -> VerifyReport:
        """`verify_rows` over one consistent snapshot of the rows and the head."""
        ...

    def close(self) -> None: ...


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def event_hash(fields: dict[str, Any]) -> str:
    """Hash of an event given all its fields but ``hash`` (``prev_hash`` included)."""
    payload = fields["prev_hash"] + canonical_json(fields)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def check_json_data(value: Any, where: str = "data") -> None:
    """Raise TypeError naming the first part of `value` that JSON cannot represent exactly."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"journal event {where} is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json_data(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"journal event {where} has a {type(key).__name__} key; use str")
            check_json_data(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"journal event {where} is a {type(value).__name__}, not JSON-serialisable; "
        "convert it to str, number, bool, None, list or dict"
    )


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def checked_fields(
    redact: Redactor, fields: dict[str, Any], data: Any
) -> tuple[dict[str, str], dict[str, Any]]:
    """The event's text fields and its redacted data, refused (TypeError) before any write."""
    for name, value in fields.items():
        if not isinstance(value, str):
            raise TypeError(f"journal event {name} must be str, not {type(value).__name__}")
    if not isinstance(data, dict | None):
        raise TypeError(f"journal event data must be a dict, not {type(data).__name__}")
    check_json_data(data or {})
    # Canonical JSON of the redacted copy is both what is hashed and what is stored.
    clean: dict[str, Any] = json.loads(canonical_json(redact(data or {})))
    return fields, clean


def chained_event(id_: int, prev_hash: str, fields: dict[str, str], data: Any) -> Event:
    unhashed = {"id": id_, "time": utc_now(), **fields, "data": data, "prev_hash": prev_hash}
    return Event(**unhashed, hash=event_hash(unhashed))


def row_values(event: Event) -> tuple[Any, ...]:
    """The event as stored, in `COLUMNS` order (data as its canonical JSON text)."""
    return (
        event.id,
        event.time,
        event.run_id,
        event.site,
        event.step,
        event.status,
        canonical_json(event.data),
        event.prev_hash,
        event.hash,
    )


def event_from_row(row: Row) -> Event:
    values = {name: row[name] for name in COLUMNS}
    return Event(**(values | {"data": json.loads(row["data"])}))


def equal_filters(placeholder: str, **equal: str | None) -> tuple[str, list[str]]:
    """A WHERE clause (or nothing) testing each given column for equality, and its values."""
    wanted = {column: value for column, value in equal.items() if value is not None}
    if not wanted:
        return "", []
    clause = " AND ".join(f"{column} = {placeholder}" for column in wanted)
    return " WHERE " + clause, list(wanted.values())


def verify_rows(rows: Iterable[Row], head: tuple[int, str] | None) -> VerifyReport:
    """Walk rows in id order against the head row's (last id, last hash)."""
    prev_id, prev_hash, count = 0, GENESIS_HASH, 0
    for row in rows:
        problem = row_problem(row, prev_id, prev_hash)
        if problem:
            return VerifyReport(False, count, row["id"], problem)
        prev_id, prev_hash, count = row["id"], row["hash"], count + 1
    if head is None:
        return VerifyReport(False, count, prev_id + 1, "journal head is missing")
    head_id, head_hash = head
    if head_id > prev_id:
        reason = f"journal truncated: head says event {head_id}, last found is {prev_id}"
        return VerifyReport(False, count, prev_id + 1, reason)
    if head_id < prev_id or head_hash != prev_hash:
        reason = (
            f"journal head does not match: head says event {head_id}, last found is {prev_id} "
            "(events written around the journal or head altered)"
        )
        return VerifyReport(False, count, head_id + 1 if head_id < prev_id else prev_id, reason)
    return VerifyReport(True, count, None, f"ok: {count} events, chain intact")


def row_problem(row: Row, prev_id: int, prev_hash: str) -> str | None:
    """What is wrong with one row, given the previous intact row; None if nothing."""
    event_id = row["id"]
    try:
        data = json.loads(row["data"])
    except (TypeError, ValueError):
        return f"event {event_id}: data is not valid JSON (the event was edited)"
    if not isinstance(data, dict) or canonical_json(data) != row["data"]:
        return f"event {event_id}: data is not in canonical form (the event was edited)"
    fields = {key: row[key] for key in HASHED_FIELDS}
    fields["data"] = data
    if not isinstance(row["prev_hash"], str) or event_hash(fields) != row["hash"]:
        return f"event {event_id}: hash does not match its content (the event was edited)"
    if event_id != prev_id + 1 or row["prev_hash"] != prev_hash:
        after = f"after event {prev_id}" if prev_id else "at the start of the journal"
        return f"event {event_id}: previous event missing or altered (chain broken {after})"
    return None

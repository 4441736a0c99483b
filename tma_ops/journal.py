"""The journal: an append-only, hash-chained SQLite log of every step of every run.

Each event's hash is ``sha256_hex(prev_hash + canonical_json(event without hash))``; the first
event's ``prev_hash`` is 64 zeros. A one-row ``head`` table (last id, last hash), written in the
same transaction as each append, lets `Journal.verify` notice that the *last* events were deleted,
which the chain alone cannot show. Triggers refuse UPDATE and DELETE on events; they guard
against accidents only: whoever drops them is still caught by `verify`. Whoever also rewrites
the head is caught only against an off-site copy of it (see DESIGN.md, "Journal").
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tma_ops.errors import IntegrityError, TmaError
from tma_ops.redact import Redactor

GENESIS_HASH = "0" * 64
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        run_id TEXT NOT NULL,
        site TEXT NOT NULL,
        step TEXT NOT NULL,
        status TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_site ON events (site, id)",
    "CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id)",
    """CREATE TABLE IF NOT EXISTS head (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        last_id INTEGER NOT NULL,
        last_hash TEXT NOT NULL
    )""",
    f"INSERT OR IGNORE INTO head (singleton, last_id, last_hash) VALUES (1, 0, '{GENESIS_HASH}')",
    """CREATE TABLE IF NOT EXISTS meta (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        journal_id TEXT NOT NULL
    )""",
    """CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'journal events are append-only: UPDATE refused'); END""",
    """CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'journal events are append-only: DELETE refused'); END""",
)

_HASHED_FIELDS = ("id", "time", "run_id", "site", "step", "status", "data", "prev_hash")
_COLUMNS = ", ".join((*_HASHED_FIELDS, "hash"))


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


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        time=row["time"],
        run_id=row["run_id"],
        site=row["site"],
        step=row["step"],
        status=row["status"],
        data=json.loads(row["data"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class Journal:
    """One SQLite journal file, shared safely by several processes on one machine."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self._redact = Redactor(secrets)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._sqlite_errors():
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # An audit log: a committed event must survive a power cut, not only a crash.
            self._conn.execute("PRAGMA synchronous = FULL")
            with self._transaction(immediate=True):
                for statement in _SCHEMA:
                    self._conn.execute(statement)
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (singleton, journal_id) VALUES (1, ?)",
                    (uuid.uuid4().hex,),
                )
                row = self._conn.execute("SELECT journal_id FROM meta").fetchone()
        self.journal_id: str = row["journal_id"]

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(
        self,
        *,
        run_id: str,
        site: str,
        step: str,
        status: str,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """Redact `data`, chain the event to the current head and write both in one transaction."""
        fields = {"run_id": run_id, "site": site, "step": step, "status": status}
        for name, value in fields.items():
            if not isinstance(value, str):
                raise TypeError(f"journal event {name} must be str, not {type(value).__name__}")
        if not isinstance(data, dict | None):
            raise TypeError(f"journal event data must be a dict, not {type(data).__name__}")
        check_json_data(data or {})
        # Canonical JSON of the redacted copy is both what is hashed and what is stored.
        clean = json.loads(canonical_json(self._redact(data or {})))
        with self._sqlite_errors(), self._transaction(immediate=True):
            head = self._conn.execute(
                "SELECT last_id, last_hash FROM head WHERE singleton = 1"
            ).fetchone()
            if head is None:
                raise IntegrityError(f"journal {self.path}: head is missing, the file was altered")
            event = self._chained(head["last_id"] + 1, head["last_hash"], fields, clean)
            self._insert(event)
        return event

    def _chained(self, id_: int, prev_hash: str, fields: dict[str, str], data: Any) -> Event:
        unhashed = {"id": id_, "time": _utc_now(), **fields, "data": data, "prev_hash": prev_hash}
        return Event(**unhashed, hash=event_hash(unhashed))

    def _insert(self, event: Event) -> None:
        self._conn.execute(
            f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.time,
                event.run_id,
                event.site,
                event.step,
                event.status,
                canonical_json(event.data),
                event.prev_hash,
                event.hash,
            ),
        )
        self._conn.execute(
            "UPDATE head SET last_id = ?, last_hash = ? WHERE singleton = 1",
            (event.id, event.hash),
        )

    def head(self) -> tuple[int, str]:
        """The last event's id and hash, as the head row records them (0 and zeros if empty)."""
        with self._sqlite_errors():
            row = self._conn.execute(
                "SELECT last_id, last_hash FROM head WHERE singleton = 1"
            ).fetchone()
        if row is None:
            raise IntegrityError(f"journal {self.path}: head is missing, the file was altered")
        return int(row["last_id"]), str(row["last_hash"])

    def events(self, *, site: str | None = None, run_id: str | None = None) -> list[Event]:
        """Events in id order, optionally only those of one site and/or one run."""
        clauses, params = _filters(site=site, run_id=run_id)
        sql = f"SELECT {_COLUMNS} FROM events{clauses} ORDER BY id"
        with self._sqlite_errors():
            return [_event_from_row(row) for row in self._conn.execute(sql, params)]

    def runs(self, site: str | None = None) -> list[str]:
        """Run ids, oldest (first event) first."""
        clauses, params = _filters(site=site)
        sql = f"SELECT run_id FROM events{clauses} GROUP BY run_id ORDER BY MIN(id)"
        with self._sqlite_errors():
            return [row["run_id"] for row in self._conn.execute(sql, params)]

    def verify(self) -> VerifyReport:
        """Walk the whole chain in id order and report the first broken event."""
        with self._sqlite_errors(), self._transaction():
            # One read transaction: concurrent appends cannot make head and rows disagree.
            head = self._conn.execute(
                "SELECT last_id, last_hash FROM head WHERE singleton = 1"
            ).fetchone()
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY id")
            return _verify_rows(rows, head)

    def close(self) -> None:
        self._conn.close()  # idempotent

    @contextmanager
    def _transaction(self, *, immediate: bool = False) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock before the head is read, so two appending
        # processes serialise and never chain to the same previous event.
        self._conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:  # SQLite may already have rolled back on its own
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise IntegrityError(f"journal {self.path}: damaged database ({exc})") from exc
            raise TmaError(f"journal {self.path}: {exc}") from exc


def _filters(**equal: str | None) -> tuple[str, list[str]]:
    wanted = {column: value for column, value in equal.items() if value is not None}
    if not wanted:
        return "", []
    return " WHERE " + " AND ".join(f"{column} = ?" for column in wanted), list(wanted.values())


def _verify_rows(rows: Iterable[sqlite3.Row], head: sqlite3.Row | None) -> VerifyReport:
    prev_id, prev_hash, count = 0, GENESIS_HASH, 0
    for row in rows:
        problem = _row_problem(row, prev_id, prev_hash)
        if problem:
            return VerifyReport(False, count, row["id"], problem)
        prev_id, prev_hash, count = row["id"], row["hash"], count + 1
    if head is None:
        return VerifyReport(False, count, prev_id + 1, "journal head is missing")
    head_id, head_hash = head["last_id"], head["last_hash"]
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


def _row_problem(row: sqlite3.Row, prev_id: int, prev_hash: str) -> str | None:
    """What is wrong with one row, given the previous intact row; None if nothing."""
    event_id = row["id"]
    try:
        data = json.loads(row["data"])
    except (TypeError, ValueError):
        return f"event {event_id}: data is not valid JSON (the event was edited)"
    if not isinstance(data, dict) or canonical_json(data) != row["data"]:
        return f"event {event_id}: data is not in canonical form (the event was edited)"
    fields = {key: row[key] for key in _HASHED_FIELDS}
    fields["data"] = data
    if not isinstance(row["prev_hash"], str) or event_hash(fields) != row["hash"]:
        return f"event {event_id}: hash does not match its content (the event was edited)"
    if event_id != prev_id + 1 or row["prev_hash"] != prev_hash:
        after = f"after event {prev_id}" if prev_id else "at the start of the journal"
        return f"event {event_id}: previous event missing or altered (chain broken {after})"
    return None

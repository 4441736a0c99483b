"""The journal: an append-only, hash-chained log of every step of every run.

`Journal(path)` opens the SQLite journal file of one machine; `tma_ops.journal_postgres`'s
`PostgresJournal` (a `Journal` too) holds it in PostgreSQL for a team. The chain itself (hashes,
redaction, verification) lives in `tma_ops.journal_chain` and is the same for both. A one-row
``head`` table (last id, last hash), written in the same transaction as each append, lets
`Journal.verify` notice that the *last* events were deleted, which the chain alone cannot show.
Triggers refuse UPDATE and DELETE on events; they guard against accidents only: whoever drops them
is still caught by `verify`. Whoever also rewrites the head is caught only against an off-site
copy of it (see DESIGN.md, "Journal").
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tma_ops.errors import IntegrityError, TmaError
from tma_ops.journal_chain import (
    COLUMNS,
    GENESIS_HASH,
    HASHED_FIELDS,
    Event,
    JournalLike,
    JournalStorage,
    Row,
    VerifyReport,
    canonical_json,
    chained_event,
    check_json_data,
    checked_fields,
    equal_filters,
    event_from_row,
    event_hash,
    row_values,
    verify_rows,
)
from tma_ops.redact import Redactor

__all__ = [
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "Event",
    "Journal",
    "JournalLike",
    "SqliteStorage",
    "VerifyReport",
    "canonical_json",
    "check_json_data",
    "event_hash",
]

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
_COLUMN_LIST = ", ".join(COLUMNS)
_HEAD_QUERY = "SELECT last_id, last_hash FROM head WHERE singleton = 1"


class Journal:
    """A journal on its storage. `Journal(path)` is the SQLite file, shared safely by several
    processes on one machine."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self._attach(SqliteStorage(self.path), secrets)

    def _attach(self, storage: JournalStorage, secrets: Iterable[str]) -> None:
        self._redact = Redactor(secrets)
        self._storage = storage
        self.journal_id: str = storage.journal_id

    @property
    def description(self) -> str:
        """Where the journal is, for messages (never with a password)."""
        return self._storage.description

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
        fields, clean = checked_fields(
            self._redact, {"run_id": run_id, "site": site, "step": step, "status": status}, data
        )
        return self._storage.append(
            lambda id_, prev_hash: chained_event(id_, prev_hash, fields, clean)
        )

    def head(self) -> tuple[int, str]:
        """The last event's id and hash, as the head row records them (0 and zeros if empty)."""
        return self._storage.head()

    def events(self, *, site: str | None = None, run_id: str | None = None) -> list[Event]:
        """Events in id order, optionally only those of one site and/or one run."""
        return [event_from_row(row) for row in self._storage.select_events(site, run_id)]

    def runs(self, site: str | None = None) -> list[str]:
        """Run ids, oldest (first event) first."""
        return self._storage.select_runs(site)

    def verify(self) -> VerifyReport:
        """Walk the whole chain in id order and report the first broken event."""
        return self._storage.verify()

    def close(self) -> None:
        self._storage.close()  # idempotent


class SqliteStorage:
    """The journal's rows in one SQLite file (WAL, full sync)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TmaError(f"journal {path}: cannot create its directory: {exc.strerror}") from exc
        with self._sqlite_errors():
            self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
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

    def append(self, build: Callable[[int, str], Event]) -> Event:
        with self._sqlite_errors(), self._transaction(immediate=True):
            last_id, last_hash = self._head_row()
            event = build(last_id + 1, last_hash)
            placeholders = ", ".join("?" for _ in COLUMNS)
            self._conn.execute(
                f"INSERT INTO events ({_COLUMN_LIST}) VALUES ({placeholders})", row_values(event)
            )
            self._conn.execute(
                "UPDATE head SET last_id = ?, last_hash = ? WHERE singleton = 1",
                (event.id, event.hash),
            )
        return event

    def head(self) -> tuple[int, str]:
        with self._sqlite_errors():
            return self._head_row()

    def _head_row(self) -> tuple[int, str]:
        row = self._conn.execute(_HEAD_QUERY).fetchone()
        if row is None:
            raise IntegrityError(f"journal {self.path}: head is missing, the file was altered")
        return int(row["last_id"]), str(row["last_hash"])

    def select_events(self, site: str | None, run_id: str | None) -> list[Row]:
        clauses, params = equal_filters("?", site=site, run_id=run_id)
        sql = f"SELECT {_COLUMN_LIST} FROM events{clauses} ORDER BY id"
        with self._sqlite_errors():
            return list(self._conn.execute(sql, params))

    def select_runs(self, site: str | None) -> list[str]:
        clauses, params = equal_filters("?", site=site)
        sql = f"SELECT run_id FROM events{clauses} GROUP BY run_id ORDER BY MIN(id)"
        with self._sqlite_errors():
            return [row["run_id"] for row in self._conn.execute(sql, params)]

    def verify(self) -> VerifyReport:
        with self._sqlite_errors(), self._transaction():
            # One read transaction: concurrent appends cannot make head and rows disagree.
            head = self._conn.execute(_HEAD_QUERY).fetchone()
            rows = self._conn.execute(f"SELECT {_COLUMN_LIST} FROM events ORDER BY id")
            return verify_rows(rows, (head["last_id"], head["last_hash"]) if head else None)

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

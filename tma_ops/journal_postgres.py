"""The journal in PostgreSQL, shared by a team's machines: same chain, same columns as SQLite.

Tables live in their own schema (``tma_journal``) so that the journal can share a database. An
append locks the head row (``SELECT ... FOR UPDATE``) in the transaction that inserts the event
and moves the head, so appends from several machines serialise and never chain to the same
previous event. Triggers refuse UPDATE, DELETE and TRUNCATE on events; like SQLite's, they guard
against accidents, and `verify` catches whoever goes around them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from tma_ops.errors import IntegrityError, TmaError
from tma_ops.journal import Journal
from tma_ops.journal_chain import (
    COLUMNS,
    GENESIS_HASH,
    Event,
    Row,
    VerifyReport,
    equal_filters,
    row_values,
    verify_rows,
)
from tma_ops.redact import Redactor

SCHEMA = "tma_journal"
CONNECT_TIMEOUT_S = 10
# Serialises the creation of the schema by processes opening a new journal at the same time.
_SCHEMA_LOCK_KEY = 0x746D615F6A6E6C  # "tma_jnl"
_TRIGGERS = {
    "events_no_update": "BEFORE UPDATE ON {s}.events FOR EACH ROW",
    "events_no_delete": "BEFORE DELETE ON {s}.events FOR EACH ROW",
    "events_no_truncate": "BEFORE TRUNCATE ON {s}.events FOR EACH STATEMENT",
}
_TABLES = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.events (
        id BIGINT PRIMARY KEY,
        time TEXT NOT NULL,
        run_id TEXT NOT NULL,
        site TEXT NOT NULL,
        step TEXT NOT NULL,
        status TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS events_by_site ON {SCHEMA}.events (site, id)",
    f"CREATE INDEX IF NOT EXISTS events_by_run ON {SCHEMA}.events (run_id, id)",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.head (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        last_id BIGINT NOT NULL,
        last_hash TEXT NOT NULL
    )""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.meta (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        journal_id TEXT NOT NULL
    )""",
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'journal events are append-only: % refused', TG_OP;
    END $$""",
)
_COLUMN_LIST = ", ".join(COLUMNS)
_HEAD_QUERY = f"SELECT last_id, last_hash FROM {SCHEMA}.head WHERE singleton = 1"


class PostgresJournal(Journal):
    """The journal in a PostgreSQL database named by a ``postgresql://user@host:port/db`` URL.

    The password is given apart from the URL (when None, libpq looks in PGPASSWORD and
    ~/.pgpass); it is hidden from events like the other `secrets`."""

    def __init__(
        self, url: str, *, password: str | None = None, secrets: Iterable[str] = ()
    ) -> None:
        hidden = [*secrets, *([password] if password else [])]
        self._attach(PostgresStorage(url, password), hidden)


class PostgresStorage:
    """The journal's rows in PostgreSQL, one connection per journal opened."""

    def __init__(self, url: str, password: str | None) -> None:
        self.description = without_password(url)
        self._password = password
        self._conn = self._connect(url, password)
        try:
            self.journal_id: str = self._prepare()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self, url: str, password: str | None) -> psycopg.Connection[dict[str, Any]]:
        try:
            options = conninfo_to_dict(url)
            options.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
            options.setdefault("application_name", "tma-ops journal")
            return psycopg.connect(
                make_conninfo("", **options),
                password=password,
                autocommit=True,
                row_factory=dict_row,
            )
        except psycopg.Error as exc:
            raise TmaError(
                f"journal {self.description}: cannot connect to PostgreSQL "
                f"({connection_target(url)}): {self._one_line(exc)}"
            ) from exc

    def _prepare(self) -> str:
        """Create what is missing (schema, tables, triggers, head, id); return the journal id."""
        with self._pg_errors("cannot open"), self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            present = self._present_triggers()
            if present is None or len(present) < len(_TRIGGERS):
                for statement in _TABLES:
                    self._conn.execute(statement)
                for name in sorted(set(_TRIGGERS) - (present or set())):
                    when = _TRIGGERS[name].format(s=SCHEMA)
                    self._conn.execute(
                        f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION {SCHEMA}.refuse_change()"
                    )
            self._conn.execute(
                f"INSERT INTO {SCHEMA}.head VALUES (1, 0, %s) ON CONFLICT DO NOTHING",
                (GENESIS_HASH,),
            )
            self._conn.execute(
                f"INSERT INTO {SCHEMA}.meta VALUES (1, %s) ON CONFLICT DO NOTHING",
                (uuid.uuid4().hex,),
            )
            row = self._conn.execute(f"SELECT journal_id FROM {SCHEMA}.meta").fetchone()
        assert row is not None  # inserted just above when missing
        return str(row["journal_id"])

    def _present_triggers(self) -> set[str] | None:
        """Names of the guard triggers on events; None when a table is missing."""
        tables = self._conn.execute(
            "SELECT to_regclass(%s) AS events, to_regclass(%s) AS head, to_regclass(%s) AS meta",
            (f"{SCHEMA}.events", f"{SCHEMA}.head", f"{SCHEMA}.meta"),
        ).fetchone()
        if tables is None or None in tables.values():
            return None
        rows = self._conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = ANY(%s)",
            (f"{SCHEMA}.events", list(_TRIGGERS)),
        )
        return {row["tgname"] for row in rows}

    def append(self, build: Callable[[int, str], Event]) -> Event:
        with self._pg_errors("cannot append"), self._conn.transaction():
            last_id, last_hash = self._head_row(f"{_HEAD_QUERY} FOR UPDATE")
            event = build(last_id + 1, last_hash)
            placeholders = ", ".join("%s" for _ in COLUMNS)
            self._conn.execute(
                f"INSERT INTO {SCHEMA}.events ({_COLUMN_LIST}) VALUES ({placeholders})",
                row_values(event),
            )
            self._conn.execute(
                f"UPDATE {SCHEMA}.head SET last_id = %s, last_hash = %s WHERE singleton = 1",
                (event.id, event.hash),
            )
        return event

    def head(self) -> tuple[int, str]:
        with self._pg_errors("cannot read"):
            return self._head_row(_HEAD_QUERY)

    def _head_row(self, query: str) -> tuple[int, str]:
        row = self._conn.execute(query).fetchone()
        if row is None:
            raise IntegrityError(f"journal {self.description}: head is missing, it was altered")
        return int(row["last_id"]), str(row["last_hash"])

    def select_events(self, site: str | None, run_id: str | None) -> list[Row]:
        clauses, params = equal_filters("%s", site=site, run_id=run_id)
        sql = f"SELECT {_COLUMN_LIST} FROM {SCHEMA}.events{clauses} ORDER BY id"
        with self._pg_errors("cannot read"):
            return list(self._conn.execute(sql, params))

    def select_runs(self, site: str | None) -> list[str]:
        clauses, params = equal_filters("%s", site=site)
        sql = f"SELECT run_id FROM {SCHEMA}.events{clauses} GROUP BY run_id ORDER BY MIN(id)"
        with self._pg_errors("cannot read"):
            return [row["run_id"] for row in self._conn.execute(sql, params)]

    def verify(self) -> VerifyReport:
        with self._pg_errors("cannot verify"), self._conn.transaction():
            # One snapshot for head and rows: concurrent appends cannot make them disagree.
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            head = self._conn.execute(_HEAD_QUERY).fetchone()
            with self._conn.cursor(name=f"journal_verify_{os.getpid()}") as rows:
                rows.itersize = 2000  # streamed: a long journal need not fit in memory
                rows.execute(f"SELECT {_COLUMN_LIST} FROM {SCHEMA}.events ORDER BY id")
                return verify_rows(rows, (head["last_id"], head["last_hash"]) if head else None)

    def close(self) -> None:
        self._conn.close()  # idempotent

    @contextmanager
    def _pg_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise TmaError(f"journal {self.description}: {doing}: {self._one_line(exc)}") from exc

    def _one_line(self, exc: psycopg.Error) -> str:
        # The server's primary message, without the statement excerpt and caret that follow.
        primary = exc.diag.message_primary if exc.diag else None
        text = primary or " ".join(str(exc).split()) or type(exc).__name__
        return str(Redactor([self._password] if self._password else [])(text))


def without_password(url: str) -> str:
    """The URL as messages may show it: a password written in it is masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def connection_target(url: str) -> str:
    """Host, port, database and user a URL names (libpq's defaults when left out)."""
    try:
        options = conninfo_to_dict(url)
    except psycopg.Error:
        return "unreadable URL"
    host = options.get("host") or os.environ.get("PGHOST") or "local socket"
    port = options.get("port") or os.environ.get("PGPORT") or "5432"
    user = options.get("user") or os.environ.get("PGUSER") or "the login user"
    database = options.get("dbname") or user
    return f"host {host}, port {port}, database {database}, user {user}"

"""`count_rows` of the three database engines against real SQLite, MariaDB and PostgreSQL (servers
from tests/harness): whole tables, rows later than a moment for date/time and unix epoch columns
(with time zones that would mislead a naive comparison), quoting, missing tables and columns,
and identifiers refused before any query runs. Secrets stay out of every message."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest
from harness import mariadb as maria
from harness import postgres as pg

from tma_ops.dbs import DatabaseEngine, open_database
from tma_ops.dbs.sqlite import SqliteEngine
from tma_ops.errors import ExecutorError, InventoryError, TmaError
from tma_ops.executors.local import LocalExecutor
from tma_ops.model import ServerDatabase

pytestmark = pytest.mark.integration

PASSWORD = "c0unt 'pa\"ss' $HOME"
USER = "tma_counter"
_names = count(1)

# The same five rows in every engine: four instants (UTC) and a row of NULLs.
#   1: 2026-01-01 00:00:00   2: 2026-01-02 00:00:00   3: 2026-01-02 00:00:00.5
#   4: 2026-01-03 12:00:00   5: NULL
# `stamp` is stored through a +02:00 session or with offsets: the same instants, other wall times.
MYSQL_SCHEMA = """
CREATE TABLE comments (id INT PRIMARY KEY, created DATETIME(6) NULL,
  stamp TIMESTAMP(6) NULL DEFAULT NULL, epoch BIGINT NULL, day DATE NULL, label VARCHAR(20));
SET time_zone = '+02:00';
INSERT INTO comments VALUES
 (1, '2026-01-01 00:00:00', '2026-01-01 02:00:00', 1767225600, '2026-01-01', 'a'),
 (2, '2026-01-02 00:00:00', '2026-01-02 02:00:00', 1767312000, '2026-01-02', 'b'),
 (3, '2026-01-02 00:00:00.5', '2026-01-02 02:00:00.5', 1767312001, '2026-01-02', 'c'),
 (4, '2026-01-03 12:00:00', '2026-01-03 14:00:00', 1767441600, '2026-01-03', 'd'),
 (5, NULL, NULL, NULL, NULL, 'e');
CREATE TABLE `order` (id INT);
INSERT INTO `order` VALUES (1), (2), (3);
"""

POSTGRES_SCHEMA = """
CREATE TABLE comments (id int PRIMARY KEY, created timestamp, stamp timestamptz, epoch bigint,
  day date, label text);
INSERT INTO comments VALUES
 (1, '2026-01-01 00:00:00', '2026-01-01 02:00:00+02', 1767225600, '2026-01-01', 'a'),
 (2, '2026-01-02 00:00:00', '2026-01-02 02:00:00+02', 1767312000, '2026-01-02', 'b'),
 (3, '2026-01-02 00:00:00.5', '2026-01-02 02:00:00.5+02', 1767312001, '2026-01-02', 'c'),
 (4, '2026-01-03 12:00:00', '2026-01-03 14:00:00+02', 1767441600, '2026-01-03', 'd'),
 (5, NULL, NULL, NULL, NULL, 'e');
CREATE TABLE "order" (id int);
INSERT INTO "order" VALUES (1), (2), (3);
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id int, placed timestamptz);
INSERT INTO shop.orders VALUES (1, '2026-01-01 00:00:00Z'), (2, '2026-01-05 00:00:00Z');
"""

# SQLite stores whatever text or number it is given: every form a site may have written, and a
# `mixed` column holding text dates and epoch numbers side by side.
SQLITE_ROWS = [
    (1, "2026-01-01 00:00:00", "2026-01-01T02:00:00+02:00", 1767225600, "2026-01-01", "a",
     "2026-01-01 00:00:00"),
    (2, "2026-01-02 00:00:00", "2026-01-02T00:00:00Z", 1767312000, "2026-01-02", "b", 1767312000),
    (3, "2026-01-02 00:00:00.500000", "2026-01-02T02:00:00.5+02:00", 1767312001, "2026-01-02", "c",
     1767312000.5),
    (4, "2026-01-03T12:00:00", "2026-01-03T12:00:00.000Z", 1767441600, "2026-01-03", "d",
     "2026-01-03 12:00"),
    (5, None, None, None, None, "e", None),
]  # fmt: skip

SINCE = [  # (since, rows later than it in created, stamp and epoch; in day)
    ("2026-01-02T00:00:00Z", 2, 1),
    ("2026-01-02T02:00:00+02:00", 2, 1),  # the same instant with an offset
    ("2026-01-02 00:00:00", 2, 1),  # no offset: UTC
    ("2026-01-01T12:00:00Z", 3, 3),
    ("2025-12-31", 4, 4),
    ("2027-01-01T00:00:00Z", 0, 0),
]


@dataclass
class Counted:
    """An engine over a database holding the rows above, and its quirks."""

    name: str
    engine: DatabaseEngine
    executor: LocalExecutor
    sql: Callable[[str], str]  # runs SQL as the site's user
    qualified: bool = False  # schema.table names


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The TMPDIR the client tools run with: their private credential files must not outlive a
    count, whatever it ends with."""
    path = tmp_path / "environment-tmp"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    yield path
    assert list(path.iterdir()) == []


def sqlite_counted(request: pytest.FixtureRequest) -> Counted:
    return sqlite_database(request.getfixturevalue("tmp_path") / "site.sqlite3")


def sqlite_database(path: Path) -> Counted:
    columns = "id INTEGER PRIMARY KEY, created, stamp, epoch, day, label, mixed"
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE comments ({columns})")
        con.executemany("INSERT INTO comments VALUES (?, ?, ?, ?, ?, ?, ?)", SQLITE_ROWS)
        con.execute('CREATE TABLE "order" (id INTEGER)')
        con.executemany('INSERT INTO "order" VALUES (?)', [(1,), (2,), (3,)])
    con.close()

    def sql(statement: str) -> str:
        with sqlite3.connect(path) as connection:
            rows = connection.execute(statement).fetchall()
        connection.close()
        return "\n".join("\t".join(map(str, row)) for row in rows)

    return Counted("sqlite", SqliteEngine(str(path)), LocalExecutor(), sql)


def mariadb_counted(request: pytest.FixtureRequest) -> Counted:
    server: maria.MariaDbServer = request.getfixturevalue("mariadb_server")
    name = f"count_{next(_names)}"
    maria.create_database(server, name, USER, PASSWORD)
    maria.run_sql(server, MYSQL_SCHEMA, name, USER, PASSWORD)
    spec = ServerDatabase(
        engine="mariadb",
        name=name,
        user=USER,
        password=PASSWORD,
        host="127.0.0.1",
        port=server.port,
    )

    def sql(statement: str) -> str:
        return maria.run_sql(server, statement, name, USER, PASSWORD)

    return Counted("mariadb", open_database(spec), LocalExecutor(), sql)


def postgres_counted(request: pytest.FixtureRequest) -> Counted:
    server: pg.PostgresServer = request.getfixturevalue("postgres_server")
    name = f"count_{next(_names)}"
    pg.create_database(server, name, USER, PASSWORD)
    pg.run_sql(server, POSTGRES_SCHEMA, name, USER)
    spec = ServerDatabase(
        engine="postgresql",
        name=name,
        user=USER,
        password=PASSWORD,
        host="127.0.0.1",
        port=server.port,
    )

    def sql(statement: str) -> str:
        return pg.run_sql(server, statement, name, USER)

    return Counted("postgresql", open_database(spec), LocalExecutor(), sql, qualified=True)


FACTORIES = {"sqlite": sqlite_counted, "mariadb": mariadb_counted, "postgresql": postgres_counted}


@pytest.fixture(params=list(FACTORIES))
def counted(request: pytest.FixtureRequest) -> Counted:
    return FACTORIES[request.param](request)


def failure(
    counted: Counted,
    kind: type[TmaError],
    table: str,
    since_column: str | None = None,
    since: str | None = None,
) -> str:
    """The one-line message of the error a count raises, checked to hold no secret."""
    with pytest.raises(kind) as caught:
        counted.engine.count_rows(counted.executor, table, since_column, since)
    message = str(caught.value)
    assert "\n" not in message and PASSWORD not in message and 'pa"ss' not in message
    return message


def test_whole_tables(counted: Counted) -> None:
    assert counted.engine.count_rows(counted.executor, "comments") == 5
    assert counted.engine.count_rows(counted.executor, "order") == 3  # a reserved word, quoted
    counted.sql("DELETE FROM comments WHERE id = 5")
    assert counted.engine.count_rows(counted.executor, "comments") == 4


@pytest.mark.parametrize(("since", "later", "later_days"), SINCE)
def test_rows_later_than_a_moment(
    counted: Counted, since: str, later: int, later_days: int
) -> None:
    engine, executor = counted.engine, counted.executor
    for column in ("created", "stamp", "epoch"):
        assert engine.count_rows(executor, "comments", column, since) == later, column
    assert engine.count_rows(executor, "comments", "day", since) == later_days


@pytest.mark.parametrize(("since", "later", "_"), SINCE)
def test_sqlite_compares_numbers_and_text_in_one_column(
    tmp_path: Path, since: str, later: int, _: int
) -> None:
    counted = sqlite_database(tmp_path / "site.sqlite3")
    assert counted.engine.count_rows(counted.executor, "comments", "mixed", since) == later


def test_postgresql_schema_qualified_tables(request: pytest.FixtureRequest) -> None:
    counted = postgres_counted(request)
    engine, executor = counted.engine, counted.executor
    assert engine.count_rows(executor, "shop.orders") == 2
    assert engine.count_rows(executor, "shop.orders", "placed", "2026-01-02T00:00:00Z") == 1
    assert engine.count_rows(executor, "public.comments") == 5
    message = failure(counted, ExecutorError, "shop.comments")
    assert "table 'shop.comments' not found" in message


def test_a_missing_table_or_column_is_named(counted: Counted) -> None:
    message = failure(counted, ExecutorError, "wp_orders")
    assert message.startswith("local://: ") and "table 'wp_orders' not found" in message
    message = failure(counted, ExecutorError, "comments", "placed_at", "2026-01-01T00:00:00Z")
    assert "column 'placed_at' of table 'comments' not found" in message


def test_a_column_that_holds_no_time_is_refused(counted: Counted) -> None:
    if counted.name == "sqlite":  # columns without a type: text that is no date never counts
        assert counted.engine.count_rows(counted.executor, "comments", "label", "2020-01-01") == 0
        return
    message = failure(counted, ExecutorError, "comments", "label", "2026-01-01T00:00:00Z")
    assert "column 'label' of table 'comments' is" in message
    assert "expected a date, time or unix epoch" in message


@pytest.mark.parametrize(
    ("table", "since_column", "since", "problem"),
    [
        ("comments; DROP TABLE comments", None, None, "table name 'comments; DROP TABLE"),
        ("comments`", None, None, "table name 'comments`' is not valid"),
        ('comments"', None, None, "is not valid"),
        ("1comments", None, None, "table name '1comments' is not valid"),
        ("", None, None, "table name '' is not valid"),
        ("a.b.c", None, None, "table name 'a.b.c' is not valid"),
        ("comments", "created) OR (1=1", "2026-01-01", "column name 'created) OR (1=1'"),
        ("comments", "created", "yesterday", "since 'yesterday' is not valid: expected an ISO"),
        ("comments", "created", "2026-01-01'; DROP TABLE comments; --", "is not valid"),
        ("comments", "created", None, "needs both since_column and since"),
        ("comments", None, "2026-01-01", "needs both since_column and since"),
    ],
)
def test_bad_identifiers_and_moments_are_refused_before_any_query(
    counted: Counted, table: str, since_column: str | None, since: str | None, problem: str
) -> None:
    message = failure(counted, InventoryError, table, since_column, since)
    assert problem in message
    assert counted.engine.count_rows(counted.executor, "comments") == 5


def test_a_schema_qualified_name_is_only_for_postgresql(counted: Counted) -> None:
    if counted.qualified:
        assert counted.engine.count_rows(counted.executor, "public.order") == 3
    else:
        message = failure(counted, InventoryError, "main.comments")
        assert "(schema.table only on PostgreSQL)" in message

"""`wipe`, the teardown of a sandbox database, on SQLite and real MariaDB and PostgreSQL servers:
the database is emptied, the server's other databases are left exactly as they were."""

from __future__ import annotations

import secrets
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from harness import mariadb as maria
from harness import postgres as pg

from tma_ops.dbs import open_database
from tma_ops.executors.local import LocalExecutor
from tma_ops.model import ServerDatabase, SqliteDatabase

pytestmark = pytest.mark.integration

USER = "tma_wipe"
PASSWORD = "pw-" + secrets.token_urlsafe(12)

MARIADB_SCHEMA = """
CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT,
  FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB;
INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1);
CREATE VIEW both_ids AS SELECT p.id FROM parent p JOIN child c ON c.parent_id = p.id;
CREATE PROCEDURE count_parents() SELECT COUNT(*) FROM parent;
"""
MARIADB_OBJECTS = """
SELECT CONCAT(TABLE_TYPE, ' ', TABLE_NAME) FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('ROUTINE ', ROUTINE_NAME) FROM information_schema.ROUTINES
 WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 1;
"""
POSTGRES_SCHEMA = """
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1);
CREATE VIEW both_ids AS SELECT p.id FROM parent p JOIN child c ON c.parent_id = p.id;
CREATE SCHEMA extra; CREATE TABLE extra.t (a int);
"""
POSTGRES_OBJECTS = """
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1;
"""


def test_sqlite_wipe_deletes_the_file_and_its_journals(tmp_path: Path) -> None:
    sandbox, other = tmp_path / "sandbox.sqlite", tmp_path / "other.sqlite"
    for path in (sandbox, other):
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute("CREATE TABLE t (a)")
    (tmp_path / "sandbox.sqlite-wal").write_bytes(b"")
    before = other.read_bytes()

    open_database(SqliteDatabase(engine="sqlite", path=str(sandbox))).wipe(LocalExecutor())

    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]
    assert other.read_bytes() == before
    # Wiping what is already gone is not an error: a teardown may run twice.
    open_database(SqliteDatabase(engine="sqlite", path=str(sandbox))).wipe(LocalExecutor())


def test_mariadb_wipe_empties_one_database_only(mariadb_server: maria.MariaDbServer) -> None:
    names = [f"wipe_{secrets.token_hex(3)}" for _ in range(2)]
    for name in names:
        maria.create_database(mariadb_server, name, USER, PASSWORD)
        maria.run_sql(mariadb_server, MARIADB_SCHEMA, name)
    sandbox, other = names
    kept = maria.run_sql(mariadb_server, MARIADB_OBJECTS, other)
    spec = ServerDatabase(
        engine="mariadb",
        name=sandbox,
        user=USER,
        password=PASSWORD,
        host=mariadb_server.address,
        port=mariadb_server.port,
    )
    try:
        open_database(spec).wipe(LocalExecutor())
        assert maria.run_sql(mariadb_server, MARIADB_OBJECTS, sandbox) == ""
        assert maria.run_sql(mariadb_server, MARIADB_OBJECTS, other) == kept
        assert "ROUTINE count_parents" in kept and "VIEW both_ids" in kept
        open_database(spec).wipe(LocalExecutor())  # an empty database stays empty
    finally:
        for name in names:
            maria.drop_database(mariadb_server, name)


def test_postgresql_wipe_empties_one_database_only(postgres_server: pg.PostgresServer) -> None:
    names = [f"wipe_{secrets.token_hex(3)}" for _ in range(2)]
    for name in names:
        pg.create_database(postgres_server, name, USER, PASSWORD)
        pg.run_sql(postgres_server, POSTGRES_SCHEMA, name, USER)
    sandbox, other = names
    kept = pg.run_sql(postgres_server, POSTGRES_OBJECTS, other, USER)
    spec = ServerDatabase(
        engine="postgresql",
        name=sandbox,
        user=USER,
        password=PASSWORD,
        host=postgres_server.address,
        port=postgres_server.port,
    )
    try:
        open_database(spec).wipe(LocalExecutor())
        assert pg.run_sql(postgres_server, POSTGRES_OBJECTS, sandbox, USER) == ""
        schemas = "SELECT nspname FROM pg_namespace WHERE nspname IN ('public', 'extra')"
        assert pg.run_sql(postgres_server, schemas, sandbox, USER).split() == ["public"]
        assert pg.run_sql(postgres_server, POSTGRES_OBJECTS, other, USER) == kept
        assert "extra.t" in kept and "public.both_ids" in kept
    finally:
        for name in names:
            pg.drop_database(postgres_server, name)

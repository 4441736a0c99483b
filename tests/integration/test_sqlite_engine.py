"""SqliteEngine against real SQLite files, through a LocalExecutor."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tma_ops.dbs.sqlite import SqliteEngine
from tma_ops.errors import ExecutorError, IntegrityError
from tma_ops.executors.local import LocalExecutor

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, data BLOB);
CREATE INDEX items_name ON items(name);
CREATE TABLE tags(tag TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
CREATE TABLE log(message);
CREATE TABLE meta(batches INTEGER NOT NULL);
INSERT INTO meta VALUES (0);
"""

BATCH = 10

# Commits BATCH rows and a batch counter per transaction, as fast as it can, until killed.
WRITER = f"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
while True:
    con.execute("BEGIN IMMEDIATE")
    con.executemany(
        "INSERT INTO items(name, price, data) VALUES ('w', 1.5, zeroblob(200))",
        [()] * {BATCH},
    )
    con.execute("UPDATE meta SET batches = batches + 1")
    con.execute("COMMIT")
"""


@pytest.fixture
def executor() -> LocalExecutor:
    return LocalExecutor()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp dir the helpers run with (they inherit our environment)."""
    path = tmp_path / "helper-tmp"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    return path


def make_db(path: Path, *, journal_mode: str = "wal", rows: int = 200, seed: str = "a") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA journal_mode={journal_mode}")
    con.executescript(SCHEMA)
    con.executemany(
        "INSERT INTO items(name, price, data) VALUES (?, ?, ?)",
        [(f"{seed}-{i}", i / 4, bytes([i % 256]) * 300) for i in range(rows)],
    )
    con.executemany("INSERT INTO tags VALUES (?, ?)", [(f"tag-{seed}-{i}", i) for i in range(20)])
    con.executemany("INSERT INTO log VALUES (?)", [("1",), (b"1",), (1,), (1.0,), (None,)])
    con.commit()
    con.close()
    return path


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    # A loaded machine can keep the writer's lock for seconds: wait rather than fail.
    con = sqlite3.connect(path, timeout=60)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def iterdump(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def restore(source: SqliteEngine, target: SqliteEngine, executor: LocalExecutor) -> None:
    with source.dump(executor) as stream:
        token = target.prepare(executor, stream)
    target.commit(executor, token)


def dump_to_file(engine: SqliteEngine, executor: LocalExecutor, path: Path) -> Path:
    with engine.dump(executor) as stream:
        path.write_bytes(stream.read())
    return path


def test_round_trip_into_a_new_database(tmp_path: Path, executor: LocalExecutor) -> None:
    source = SqliteEngine(str(make_db(tmp_path / "source.db")))
    live = tmp_path / "not" / "yet" / "live.db"
    target = SqliteEngine(str(live))
    restore(source, target, executor)
    assert target.fingerprint(executor) == source.fingerprint(executor)
    assert iterdump(live) == iterdump(Path(source.path))
    assert not Path(target.staging_path).exists()


def test_round_trip_replaces_existing_content(tmp_path: Path, executor: LocalExecutor) -> None:
    source = SqliteEngine(str(make_db(tmp_path / "source.db", rows=50, seed="new")))
    live = make_db(tmp_path / "live.db", rows=500, seed="old", journal_mode="delete")
    target = SqliteEngine(str(live))
    restore(source, target, executor)
    assert target.fingerprint(executor) == source.fingerprint(executor)
    assert iterdump(live) == iterdump(Path(source.path))
    assert query(live, "PRAGMA journal_mode") == [("delete",)]


@pytest.fixture
def busy_db(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A database with a writer process committing batches into it continuously."""
    path = make_db(tmp_path / "busy.db", journal_mode=request.param, rows=20_000)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    try:
        wait_for_batches(path, 3)
        yield path
        assert writer.poll() is None, "the writer died during the test"
    finally:
        writer.kill()
        writer.wait()


def batches(path: Path) -> int:
    return int(query(path, "SELECT batches FROM meta")[0][0])


def wait_for_batches(path: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if batches(path) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"the writer did not commit {count} batches")


@pytest.mark.parametrize("busy_db", ["wal", "delete"], indirect=True)
def test_dump_is_consistent_while_written(
    busy_db: Path, tmp_path: Path, executor: LocalExecutor
) -> None:
    engine = SqliteEngine(str(busy_db))
    for attempt in range(3):
        before = batches(busy_db)
        dump = dump_to_file(engine, executor, tmp_path / f"dump-{attempt}.sqlite")
        assert query(dump, "PRAGMA integrity_check") == [("ok",)]
        ((count, committed),) = query(dump, "SELECT count(*), batches FROM items, meta")
        assert count == 20_000 + BATCH * committed
        assert committed >= before
        wait_for_batches(busy_db, before + 1)  # the writer kept committing around the dump


def test_commit_into_wal_database_with_open_readers(
    tmp_path: Path, executor: LocalExecutor
) -> None:
    source = SqliteEngine(str(make_db(tmp_path / "source.db", rows=30, seed="new")))
    live = make_db(tmp_path / "live.db", rows=300, seed="old")
    idle = sqlite3.connect(live)
    reading = sqlite3.connect(live, isolation_level=None)
    try:
        reading.execute("BEGIN")
        assert reading.execute("SELECT count(*) FROM items").fetchone() == (300,)
        target = SqliteEngine(str(live))
        restore(source, target, executor)
        assert reading.execute("SELECT count(*) FROM items").fetchone() == (300,)
        reading.execute("COMMIT")
        assert reading.execute("SELECT count(*) FROM items").fetchone() == (30,)
        assert idle.execute("SELECT min(name) FROM items").fetchone() == ("new-0",)
    finally:
        idle.close()
        reading.close()
    assert target.fingerprint(executor) == source.fingerprint(executor)
    assert query(live, "PRAGMA journal_mode") == [("wal",)]
    assert query(live, "PRAGMA integrity_check") == [("ok",)]


def corrupted_dump(kind: str, good: bytes) -> bytes:
    if kind == "garbage":
        return b"not a database at all\n" * 1000
    if kind == "empty":
        return b""
    if kind == "truncated":
        return good[: len(good) // 2]
    damaged = bytearray(good)
    damaged[4096 * 3 : 4096 * 4] = bytes(4096)  # a zeroed b-tree page
    return bytes(damaged)


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "damaged page"])
def test_prepare_rejects_an_invalid_dump(
    tmp_path: Path, executor: LocalExecutor, kind: str
) -> None:
    good = dump_to_file(
        SqliteEngine(str(make_db(tmp_path / "source.db", rows=2000))),
        executor,
        tmp_path / "good.sqlite",
    ).read_bytes()
    live = make_db(tmp_path / "live.db", journal_mode="delete")
    before = live.read_bytes()
    target = SqliteEngine(str(live))
    with pytest.raises(IntegrityError, match="is not valid"):
        target.prepare(executor, io.BytesIO(corrupted_dump(kind, good)))
    assert live.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.sqlite", "live.db", "source.db"]


def test_discard_removes_the_staged_file(tmp_path: Path, executor: LocalExecutor) -> None:
    source = SqliteEngine(str(make_db(tmp_path / "source.db")))
    live = make_db(tmp_path / "live.db", seed="old", journal_mode="delete")
    before = live.read_bytes()
    target = SqliteEngine(str(live))
    with source.dump(executor) as stream:
        token = target.prepare(executor, stream)
    assert Path(token).is_file()
    target.discard(executor, token)
    assert not Path(token).exists()
    target.discard(executor, token)  # nothing left to remove is fine
    assert live.read_bytes() == before


def test_fingerprint_follows_content(tmp_path: Path, executor: LocalExecutor) -> None:
    live = make_db(tmp_path / "live.db")
    engine = SqliteEngine(str(live))
    original = engine.fingerprint(executor)
    assert SqliteEngine(str(make_db(tmp_path / "twin.db"))).fingerprint(executor) == original
    changes = [
        ("UPDATE items SET price = 99 WHERE id = 7", "UPDATE items SET price = 1.5 WHERE id = 7"),
        ("UPDATE tags SET n = 5 WHERE n = 4", "UPDATE tags SET n = 4 WHERE tag = 'tag-a-4'"),
        (
            "UPDATE log SET message = X'31' WHERE message = '1'",
            "UPDATE log SET message = '1' WHERE rowid = 1",
        ),
    ]
    for change, undo in changes:
        execute(live, change)
        assert engine.fingerprint(executor) != original, change
        execute(live, undo)
        assert engine.fingerprint(executor) == original, undo
    execute(live, "VACUUM")
    assert engine.fingerprint(executor) == original


def execute(path: Path, sql: str) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute(sql)
        con.commit()
    finally:
        con.close()


def test_missing_database_is_reported(tmp_path: Path, executor: LocalExecutor) -> None:
    missing = tmp_path / "gone.db"
    engine = SqliteEngine(str(missing))
    with pytest.raises(ExecutorError) as caught, engine.dump(executor):
        pass
    assert str(caught.value) == f"local://: database not found: {missing}"
    with pytest.raises(ExecutorError, match="database not found"):
        engine.fingerprint(executor)
    assert not missing.exists()


class ConsumerFailed(Exception):
    pass


def test_dump_leaves_no_temporary_file(
    tmp_path: Path, executor: LocalExecutor, private_tmp: Path
) -> None:
    engine = SqliteEngine(str(make_db(tmp_path / "site.db", rows=20_000)))
    dump_to_file(engine, executor, tmp_path / "dump.sqlite")
    with pytest.raises(ConsumerFailed), engine.dump(executor) as stream:
        stream.read(4096)
        raise ConsumerFailed
    (tmp_path / "broken.db").write_bytes(b"garbage " * 1000)
    with pytest.raises(ExecutorError, match="cannot dump"):
        dump_to_file(SqliteEngine(str(tmp_path / "broken.db")), executor, tmp_path / "x")
    assert list(private_tmp.iterdir()) == []

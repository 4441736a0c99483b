"""The journal's contract, held by every storage: each test runs on SQLite and on PostgreSQL.

Tampering goes around the guard triggers the way a determined editor would: SQLite's are dropped
on a plain connection, PostgreSQL's are skipped by a superuser (session_replication_role).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import postgres as pg

from tma_ops.errors import IntegrityError, TmaError
from tma_ops.journal import GENESIS_HASH, Journal, canonical_json, event_hash
from tma_ops.journal_postgres import PostgresJournal

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Pa55word"
KEY_SECRET = "key-based-value-9f8e"
PG_USER = "tma_journal"
PG_PASSWORD = "pg-journal-Pa55-7c1d"
_databases = itertools.count(1)

# What opens a journal, picklable so that spawned processes open the same one.
Spec = tuple[str, str, str | None]  # kind, path or URL, password


def open_spec(spec: Spec, secrets: Iterable[str] = ()) -> Journal:
    kind, location, password = spec
    if kind == "sqlite":
        return Journal(Path(location), secrets=secrets)
    return PostgresJournal(location, password=password, secrets=secrets)


@dataclass
class Backend:
    name: str
    spec: Spec
    events: str  # the events table as SQL names it
    head: str
    tamper: Callable[[str], None]  # SQL run around the guard triggers
    plain: Callable[[str], None]  # SQL run by an ordinary client: the triggers are in force
    refused: type[Exception]  # what `plain` raises when a trigger refuses
    empty_table: str  # the statement that empties the events table at once
    stored: Callable[[], bytes]  # everything the storage holds, as bytes
    damage: Callable[[], None]  # breaks the storage so that opening or reading fails
    damaged: type[Exception]

    def open(self, secrets: Iterable[str] = ()) -> Journal:
        return open_spec(self.spec, secrets)


def sqlite_backend(path: Path) -> Backend:
    def tamper(sql: str) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("DROP TRIGGER IF EXISTS events_no_update")
            conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
            conn.executescript(sql)
        finally:
            conn.close()

    def plain(sql: str) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(sql)
        finally:
            conn.close()

    def stored() -> bytes:
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        return b"".join(p.read_bytes() for p in files)

    def damage() -> None:
        for leftover in path.parent.glob(f"{path.name}-*"):
            leftover.unlink()
        path.write_bytes(b"this is not sqlite at all" * 100)

    return Backend(
        "sqlite",
        ("sqlite", str(path), None),
        "events",
        "head",
        tamper,
        plain,
        sqlite3.DatabaseError,
        "DELETE FROM events",
        stored,
        damage,
        IntegrityError,
    )


def postgres_backend(server: pg.PostgresServer, database: str) -> Backend:
    url = f"postgresql://{PG_USER}@{server.address}:{server.port}/{database}"

    def tamper(sql: str) -> None:
        pg.run_sql(server, f"SET session_replication_role = replica;\n{sql};", database)

    def plain(sql: str) -> None:
        pg.run_sql(server, f"{sql};", database, user=PG_USER)

    def stored() -> bytes:
        tables = ("events", "head", "meta")
        query = "".join(f"SELECT t::text FROM tma_journal.{t} AS t;\n" for t in tables)
        return pg.run_sql(server, query, database).encode()

    def damage() -> None:
        pg.run_sql(server, "ALTER TABLE tma_journal.events DROP COLUMN data;", database)

    return Backend(
        "postgresql",
        ("postgresql", url, PG_PASSWORD),
        "tma_journal.events",
        "tma_journal.head",
        tamper,
        plain,
        RuntimeError,
        "TRUNCATE tma_journal.events",
        stored,
        damage,
        TmaError,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield sqlite_backend(tmp_path / "state" / "journal.sqlite")
        return
    server: pg.PostgresServer = request.getfixturevalue("postgres_server")
    database = f"journal_{os.getpid()}_{next(_databases)}"
    pg.create_database(server, database, PG_USER, PG_PASSWORD)
    try:
        yield postgres_backend(server, database)
    finally:
        pg.drop_database(server, database)


@pytest.fixture
def journal(backend: Backend) -> Iterator[Journal]:
    with backend.open(secrets=[SECRET]) as j:
        yield j


def fill(journal: Journal, count: int = 5) -> None:
    for i in range(count):
        site = "shop" if i % 2 == 0 else "blog"
        journal.append(
            run_id=f"run-{i // 2}", site=site, step=f"step{i}", status="ok", data={"i": i}
        )


def test_append_returns_chained_event(journal: Journal) -> None:
    first = journal.append(run_id="r1", site="shop", step="snapshot", status="ok", data={"n": 1})
    second = journal.append(run_id="r1", site="shop", step="verify", status="ok")
    assert (first.id, second.id) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first.time)
    assert second.data == {}
    fields = {k: v for k, v in vars(first).items() if k != "hash"}
    assert first.hash == event_hash(fields)
    assert journal.events() == [first, second]
    assert journal.head() == (2, second.hash)


def test_events_filters_and_runs(journal: Journal) -> None:
    fill(journal, 6)
    assert [e.id for e in journal.events(site="shop")] == [1, 3, 5]
    assert [e.id for e in journal.events(run_id="run-1")] == [3, 4]
    assert [e.id for e in journal.events(site="blog", run_id="run-1")] == [4]
    assert journal.events(site="nowhere") == []
    assert journal.runs() == ["run-0", "run-1", "run-2"]
    journal.append(run_id="run-0", site="blog", step="late", status="ok")
    assert journal.runs(site="blog") == ["run-0", "run-1", "run-2"]
    assert journal.runs(site="nowhere") == []


def test_chain_head_and_id_survive_reopen(backend: Backend, journal: Journal) -> None:
    assert journal.verify().ok and journal.verify().count == 0
    assert journal.head() == (0, GENESIS_HASH)
    journal_id = journal.journal_id
    assert re.fullmatch(r"[0-9a-f]{32}", journal_id)
    fill(journal, 3)
    head = journal.head()
    journal.close()
    journal.close()  # closing twice is harmless
    with backend.open() as again:
        assert (again.journal_id, again.head()) == (journal_id, head)
        again.append(run_id="r", site="shop", step="after-reopen", status="ok")
        report = again.verify()
    assert (report.ok, report.count, report.first_broken_id) == (True, 4, None)
    report.raise_if_broken()


def test_triggers_refuse_update_delete_and_emptying(backend: Backend, journal: Journal) -> None:
    fill(journal, 2)
    statements = [
        f"UPDATE {backend.events} SET status = 'failed' WHERE id = 1",
        f"DELETE FROM {backend.events} WHERE id = 2",
        backend.empty_table,
    ]
    for statement in statements:
        with pytest.raises(backend.refused, match="append-only"):
            backend.plain(statement)
    assert journal.verify().ok and len(journal.events()) == 2


def test_edited_row_is_named(backend: Backend, journal: Journal) -> None:
    fill(journal, 5)
    backend.tamper(f"""UPDATE {backend.events} SET data = '{{"i":99}}' WHERE id = 3""")
    report = journal.verify()
    assert (report.ok, report.first_broken_id, report.count) == (False, 3, 2)
    assert report.reason.startswith("event 3:") and "edited" in report.reason
    with pytest.raises(IntegrityError, match="event 3"):
        report.raise_if_broken()


def test_edit_with_recomputed_hash_breaks_the_next_link(backend: Backend, journal: Journal) -> None:
    fill(journal, 4)
    target = journal.events()[1]
    fields = {k: v for k, v in vars(target).items() if k != "hash"} | {"status": "failed"}
    backend.tamper(
        f"UPDATE {backend.events} SET status = 'failed', hash = '{event_hash(fields)}' WHERE id = 2"
    )
    report = journal.verify()
    assert report.first_broken_id == 3
    assert report.reason == (
        "event 3: previous event missing or altered (chain broken after event 2)"
    )


def test_non_canonical_data_text_is_an_edit(backend: Backend, journal: Journal) -> None:
    fill(journal, 2)
    backend.tamper(f"""UPDATE {backend.events} SET data = '{{"i": 1}}' WHERE id = 2""")
    assert journal.verify().first_broken_id == 2


def test_deleted_middle_row_is_located(backend: Backend, journal: Journal) -> None:
    fill(journal, 5)
    backend.tamper(f"DELETE FROM {backend.events} WHERE id = 3")
    report = journal.verify()
    assert (report.ok, report.first_broken_id, report.count) == (False, 4, 2)
    assert report.reason == (
        "event 4: previous event missing or altered (chain broken after event 2)"
    )


def test_deleted_first_row_is_located(backend: Backend, journal: Journal) -> None:
    fill(journal, 3)
    backend.tamper(f"DELETE FROM {backend.events} WHERE id = 1")
    report = journal.verify()
    assert report.first_broken_id == 2 and "start of the journal" in report.reason


def test_deleted_last_rows_are_detected(backend: Backend, journal: Journal) -> None:
    fill(journal, 5)
    backend.tamper(f"DELETE FROM {backend.events} WHERE id >= 4")
    report = journal.verify()
    assert (report.ok, report.first_broken_id, report.count) == (False, 4, 3)
    assert report.reason == "journal truncated: head says event 5, last found is 3"
    # Appending continues from the head, so the gap stays visible.
    assert journal.append(run_id="r", site="shop", step="s", status="ok").id == 6
    assert journal.verify().first_broken_id == 6


def test_reordered_events_are_detected(backend: Backend, journal: Journal) -> None:
    fill(journal, 4)
    # Swap the ids of events 2 and 3 (through a free id: the primary key forbids a clash).
    backend.tamper(
        f"UPDATE {backend.events} SET id = 0 WHERE id = 2;\n"
        f"UPDATE {backend.events} SET id = 2 WHERE id = 3;\n"
        f"UPDATE {backend.events} SET id = 3 WHERE id = 0"
    )
    assert [e.step for e in journal.events()] == ["step0", "step2", "step1", "step3"]
    report = journal.verify()
    assert (report.ok, report.first_broken_id, report.count) == (False, 2, 1)
    assert report.reason.startswith("event 2: hash does not match")


def test_row_inserted_around_the_journal_is_detected(backend: Backend, journal: Journal) -> None:
    fill(journal, 2)
    last = journal.events()[-1]
    fields: dict[str, Any] = {
        "id": 3,
        "time": last.time,
        "run_id": "forged",
        "site": "shop",
        "step": "smoke",
        "status": "ok",
        "data": {},
        "prev_hash": last.hash,
    }
    values = [*fields.values(), event_hash(fields)]
    values[6] = canonical_json(values[6])
    literals = ", ".join(str(v) if isinstance(v, int) else f"'{v}'" for v in values)
    backend.tamper(f"INSERT INTO {backend.events} VALUES ({literals})")
    report = journal.verify()
    assert not report.ok and report.first_broken_id == 3
    assert report.reason.startswith("journal head does not match: head says event 2")


def test_head_row_deleted_is_refused_then_reported(backend: Backend, journal: Journal) -> None:
    fill(journal, 3)
    backend.tamper(f"DELETE FROM {backend.head}")
    with pytest.raises(IntegrityError, match="head is missing"):
        journal.head()
    with pytest.raises(IntegrityError, match="head is missing"):
        journal.append(run_id="r", site="shop", step="s", status="ok")
    assert journal.verify().reason == "journal head is missing"
    journal.close()
    with backend.open() as again:  # opening makes an empty head: the mismatch stays visible
        report = again.verify()
    assert not report.ok and report.reason.startswith("journal head does not match")


def test_secrets_never_reach_the_storage(backend: Backend) -> None:
    with backend.open(secrets=[SECRET]) as journal:
        event = journal.append(
            run_id="r",
            site="shop",
            step="snapshot",
            status="ok",
            data={
                "cmd": f"mysqldump --password={SECRET} shop",
                "db": {"user": "shop", "db_password": KEY_SECRET},
                "dsn": "mysql://shop:hunter2hunter@db/shop",
                # The journal's own database password is hidden without being named.
                "journal": f"opened with {backend.spec[2]}",
            },
        )
        assert event.data["db"] == {"user": "shop", "db_password": "***"}
        assert journal.events()[0].data == event.data
        assert journal.verify().ok
    stored = backend.stored()
    assert b"mysqldump --password=*** shop" in stored
    for secret in (SECRET, KEY_SECRET, "hunter2hunter", backend.spec[2] or SECRET):
        assert secret.encode() not in stored


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"when": Path("/x")}, r"data\['when'\] is a PosixPath"),
        ({"a": [1, {2, 3}]}, r"data\['a'\]\[1\] is a set"),
        ({"x": float("nan")}, "JSON cannot represent"),
        ({1: "int key"}, "int key"),
        (["not", "a", "dict"], "must be a dict"),
    ],
)
def test_non_json_data_is_refused_before_writing(journal: Journal, data: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        journal.append(run_id="r", site="shop", step="s", status="ok", data=data)
    with pytest.raises(TypeError, match="site must be str"):
        journal.append(run_id="r", site=None, step="s", status="ok")  # type: ignore[arg-type]
    assert journal.events() == [] and journal.head() == (0, GENESIS_HASH)


def test_damaged_storage_is_one_clear_error(backend: Backend) -> None:
    with backend.open() as journal:
        fill(journal, 2)
    backend.damage()
    with pytest.raises(backend.damaged) as caught, backend.open() as journal:
        journal.events()
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"journal {backend.spec[1]}")


def test_unreachable_storage_is_one_clear_error(backend: Backend, tmp_path: Path) -> None:
    kind, location, password = backend.spec
    if kind == "sqlite":
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file where the state directory should be")
        location, expected = str(blocker / "journal.sqlite"), "cannot create its directory"
    else:
        closed = pg.free_port("127.0.0.1")
        location = re.sub(r":\d+/", f":{closed}/", location)
        expected = rf"cannot connect to PostgreSQL \(host 127.0.0.1, port {closed}, database "
    with pytest.raises(TmaError, match=expected) as caught:
        open_spec((kind, location, password))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"journal {location}")
    assert password is None or password not in message


def _append_many(spec: Spec, writer: str, count: int, barrier: Any) -> None:
    with open_spec(spec) as journal:
        barrier.wait()  # both connections open: the appends below really contend
        for i in range(count):
            journal.append(run_id=writer, site="shop", step="step", status="ok", data={"i": i})


def test_two_processes_keep_one_chain(backend: Backend) -> None:
    backend.open().close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_append_many, args=(backend.spec, name, 50, barrier)) for name in "ab"
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    with backend.open() as journal:
        report = journal.verify()
        events = journal.events()
    assert (report.ok, report.count) == (True, 100), report.reason
    assert [e.id for e in events] == list(range(1, 101))
    for name in "ab":
        assert [e.data["i"] for e in events if e.run_id == name] == list(range(50))

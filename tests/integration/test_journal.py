from __future__ import annotations

import multiprocessing
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tma_ops.errors import IntegrityError
from tma_ops.journal import GENESIS_HASH, Journal, canonical_json, event_hash

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Pa55word"
KEY_SECRET = "key-based-value-9f8e"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite"


@pytest.fixture
def journal(db: Path) -> Iterator[Journal]:
    with Journal(db, secrets=[SECRET]) as j:
        yield j


def fill(journal: Journal, count: int = 5) -> None:
    for i in range(count):
        site = "shop" if i % 2 == 0 else "blog"
        journal.append(
            run_id=f"run-{i // 2}", site=site, step=f"step{i}", status="ok", data={"i": i}
        )


@contextmanager
def raw(db: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection, as a determined editor would open it: guard triggers dropped."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("DROP TRIGGER events_no_delete")
        yield conn
    finally:
        conn.close()


def test_append_returns_chained_event(journal: Journal, db: Path) -> None:
    first = journal.append(run_id="r1", site="shop", step="snapshot", status="ok", data={"n": 1})
    second = journal.append(run_id="r1", site="shop", step="verify", status="ok")
    assert db.parent.is_dir()
    assert (first.id, second.id) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first.time)
    assert second.data == {}
    fields = {k: v for k, v in vars(first).items() if k != "hash"}
    assert first.hash == event_hash(fields)
    assert journal.events() == [first, second]


def test_events_filters_and_runs(journal: Journal) -> None:
    fill(journal, 6)
    assert [e.id for e in journal.events(site="shop")] == [1, 3, 5]
    assert [e.id for e in journal.events(run_id="run-1")] == [3, 4]
    assert [e.id for e in journal.events(site="blog", run_id="run-1")] == [4]
    assert journal.events(site="nowhere") == []
    assert journal.runs() == ["run-0", "run-1", "run-2"]
    journal.append(run_id="run-0", site="blog", step="late", status="ok")
    assert journal.runs(site="blog") == ["run-0", "run-1", "run-2"]


def test_chain_verifies_and_survives_reopen(journal: Journal, db: Path) -> None:
    assert journal.verify().ok and journal.verify().count == 0
    fill(journal, 3)
    journal.close()
    with Journal(db) as again:
        again.append(run_id="r", site="shop", step="after-reopen", status="ok")
        report = again.verify()
    assert (report.ok, report.count, report.first_broken_id) == (True, 4, None)
    report.raise_if_broken()


def test_triggers_refuse_update_and_delete(journal: Journal, db: Path) -> None:
    fill(journal, 2)
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET status = 'failed' WHERE id = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events WHERE id = 2")
    conn.close()
    assert journal.verify().ok


def test_edited_row_is_named(journal: Journal, db: Path) -> None:
    fill(journal, 5)
    with raw(db) as conn:
        conn.execute("""UPDATE events SET data = '{"i":99}' WHERE id = 3""")
    report = journal.verify()
    assert (report.ok, report.first_broken_id, report.count) == (False, 3, 2)
    assert report.reason.startswith("event 3:") and "edited" in report.reason
    with pytest.raises(IntegrityError, match="event 3"):
        report.raise_if_broken()


def test_edit_with_recomputed_hash_breaks_the_next_link(journal: Journal, db: Path) -> None:
    fill(journal, 4)
    target = journal.events()[1]
    fields = {k: v for k, v in vars(target).items() if k != "hash"} | {"status": "failed"}
    with raw(db) as conn:
        conn.execute(
            "UPDATE events SET status = 'failed', hash = ? WHERE id = 2", (event_hash(fields),)
        )
    report = journal.verify()
    assert report.first_broken_id == 3
    assert report.reason == (
        "event 3: previous event missing or altered (chain broken after event 2)"
    )


def test_non_canonical_data_text_is_an_edit(journal: Journal, db: Path) -> None:
    fill(journal, 2)
    with raw(db) as conn:
        conn.execute("""UPDATE events SET data = '{"i": 1}' WHERE id = 2""")
    assert journal.verify().first_broken_id == 2


def test_deleted_middle_row_is_located(journal: Journal, db: Path) -> None:
    fill(journal, 5)
    with raw(db) as conn:
        conn.execute("DELETE FROM events WHERE id = 3")
    report = journal.verify()
    assert (report.ok, report.first_broken_id, report.count) == (False, 4, 2)
    assert report.reason == (
        "event 4: previous event missing or altered (chain broken after event 2)"
    )


def test_deleted_first_row_is_located(journal: Journal, db: Path) -> None:
    fill(journal, 3)
    with raw(db) as conn:
        conn.execute("DELETE FROM events WHERE id = 1")
    report = journal.verify()
    assert report.first_broken_id == 2 and "start of the journal" in report.reason


def test_deleted_last_rows_are_detected(journal: Journal, db: Path) -> None:
    fill(journal, 5)
    with raw(db) as conn:
        conn.execute("DELETE FROM events WHERE id >= 4")
    report = journal.verify()
    assert (report.ok, report.first_broken_id, report.count) == (False, 4, 3)
    assert report.reason == "journal truncated: head says event 5, last found is 3"
    # Appending continues from the head, so the gap stays visible.
    assert journal.append(run_id="r", site="shop", step="s", status="ok").id == 6
    assert journal.verify().first_broken_id == 6


def test_row_inserted_around_the_journal_is_detected(journal: Journal, db: Path) -> None:
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
    row = [*fields.values(), event_hash(fields)]
    row[6] = canonical_json(row[6])
    with raw(db) as conn:
        conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    report = journal.verify()
    assert not report.ok and report.first_broken_id == 3
    assert report.reason.startswith("journal head does not match: head says event 2")


def test_secrets_never_reach_the_file(db: Path) -> None:
    with Journal(db, secrets=[SECRET]) as journal:
        event = journal.append(
            run_id="r",
            site="shop",
            step="snapshot",
            status="ok",
            data={
                "cmd": f"mysqldump --password={SECRET} shop",
                "db": {"user": "shop", "db_password": KEY_SECRET},
                "dsn": "mysql://shop:hunter2hunter@db/shop",
            },
        )
        assert event.data["db"] == {"user": "shop", "db_password": "***"}
        assert journal.events()[0].data == event.data
        assert journal.verify().ok
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    raw_bytes = b"".join(p.read_bytes() for p in files)
    assert b"mysqldump --password=*** shop" in raw_bytes
    for secret in (SECRET, KEY_SECRET, "hunter2hunter"):
        assert secret.encode() not in raw_bytes


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
    assert journal.events() == []


def test_canonical_json_is_compact_sorted_and_unicode() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_not_a_database_is_an_integrity_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(IntegrityError, match="damaged"):
        Journal(path)


def _append_many(path: str, writer: str, count: int, barrier: Any) -> None:
    with Journal(Path(path)) as journal:
        barrier.wait()  # both connections open: the appends below really contend
        for i in range(count):
            journal.append(run_id=writer, site="shop", step="step", status="ok", data={"i": i})


def test_two_processes_keep_one_chain(db: Path) -> None:
    Journal(db).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [ctx.Process(target=_append_many, args=(str(db), name, 50, barrier)) for name in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    with Journal(db) as journal:
        report = journal.verify()
        events = journal.events()
    assert (report.ok, report.count) == (True, 100), report.reason
    assert [e.id for e in events] == list(range(1, 101))
    for name in "ab":
        assert [e.data["i"] for e in events if e.run_id == name] == list(range(50))

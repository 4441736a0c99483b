"""MysqlEngine and PostgresEngine against real MariaDB and PostgreSQL servers (tests/harness),
through a LocalExecutor: round trips, exact restores, dumps under writes, damaged dumps, and
credentials that never reach a command line, an error message or a leftover file."""

from __future__ import annotations

import io
import itertools
import stat
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from harness import mariadb as maria
from harness import postgres as pg

from tma_ops.dbs import DatabaseEngine, open_database
from tma_ops.dbs.mysql import MysqlEngine
from tma_ops.dbs.postgresql import PostgresEngine
from tma_ops.errors import ExecutorError, IntegrityError, TmaError
from tma_ops.executors import Result
from tma_ops.executors.local import LocalExecutor
from tma_ops.model import ServerDatabase
from tma_ops.streams import Readable

pytestmark = pytest.mark.integration

# Characters that an option file or a password file must escape and that a shell would expand.
PASSWORD = "S3cr#t \"pa'ss\\wo:rd $HOME `id`"
USER = "tma_site"
ROWS = 300
_names = itertools.count(1)


@dataclass(frozen=True)
class Dialect:
    schema: str
    text: Callable[[str], str]
    blob: Callable[[bytes], str]
    filler: str  # ~2.5 MB of poorly compressible rows, so that a slow reader holds the dump open
    write: str  # one transaction of the writer: both counters and a log row
    intrude: str  # changes the exact restore must undo
    inventory: str  # every object name, sorted


_COMMON_DATA = """
INSERT INTO a_counter VALUES (1, 0);
INSERT INTO z_counter VALUES (1, 0);
CREATE VIEW expensive AS SELECT id, name FROM items WHERE price > 10;
"""

MYSQL = Dialect(
    schema="""
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL, price DOUBLE,
  data BLOB, note TEXT) ENGINE=InnoDB;
CREATE TABLE tags (item_id INT NOT NULL, tag VARCHAR(50) NOT NULL, PRIMARY KEY (item_id, tag),
  FOREIGN KEY (item_id) REFERENCES items (id)) ENGINE=InnoDB;
CREATE TABLE notes (body TEXT) ENGINE=InnoDB;
CREATE TABLE a_counter (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB;
CREATE TABLE z_counter (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB;
CREATE TABLE m_filler (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB;
CREATE TABLE m_log (id INT AUTO_INCREMENT PRIMARY KEY, at_n INT NOT NULL) ENGINE=InnoDB;
CREATE TRIGGER tag_lower BEFORE INSERT ON tags FOR EACH ROW SET NEW.tag = LOWER(NEW.tag);
CREATE PROCEDURE item_count() SELECT COUNT(*) FROM items;
CREATE EVENT purge_notes ON SCHEDULE EVERY 1 DAY DO DELETE FROM notes WHERE body IS NULL;
""",
    text=lambda value: "'" + value.replace("\\", "\\\\").replace("'", "''") + "'",
    blob=lambda value: f"X'{value.hex()}'",
    filler="""SET SESSION max_recursive_iterations = 100000;
INSERT INTO m_filler (body) SELECT CONCAT(MD5(RAND()), MD5(RAND()), MD5(RAND()))
FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 25000)
SELECT i FROM s) AS numbers;""",
    write="START TRANSACTION; UPDATE a_counter SET n = n + 1; "
    "INSERT INTO m_log (at_n) SELECT n FROM a_counter; UPDATE z_counter SET n = n + 1; COMMIT;\n",
    intrude="""UPDATE items SET name = 'changed' WHERE id = 2; DELETE FROM notes; DROP TABLE tags;
CREATE TABLE intruder (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO intruder VALUES (1);
CREATE VIEW intruder_view AS SELECT 1 AS one; CREATE PROCEDURE intruder_proc() SELECT 1;""",
    inventory="""
SELECT CONCAT('table ', TABLE_NAME) AS item FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('routine ', ROUTINE_NAME) FROM information_schema.ROUTINES
 WHERE ROUTINE_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS
 WHERE TRIGGER_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS
 WHERE EVENT_SCHEMA = DATABASE()
ORDER BY item;""",
)

_PG_USER = "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"

POSTGRES = Dialect(
    schema="""
CREATE TABLE items (id serial PRIMARY KEY, name varchar(200) NOT NULL, price double precision,
  data bytea, note text);
CREATE TABLE tags (item_id int NOT NULL REFERENCES items (id), tag varchar(50) NOT NULL,
  PRIMARY KEY (item_id, tag));
CREATE TABLE notes (body text);
CREATE TABLE a_counter (id int PRIMARY KEY, n int NOT NULL);
CREATE TABLE z_counter (id int PRIMARY KEY, n int NOT NULL);
CREATE TABLE m_filler (id serial PRIMARY KEY, body text);
CREATE TABLE m_log (id serial PRIMARY KEY, at_n int NOT NULL);
CREATE FUNCTION tag_lower() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN NEW.tag := lower(NEW.tag); RETURN NEW; END $$;
CREATE TRIGGER tag_lower BEFORE INSERT ON tags FOR EACH ROW EXECUTE FUNCTION tag_lower();
""",
    text=lambda value: "'" + value.replace("'", "''") + "'",
    blob=lambda value: f"decode('{value.hex()}', 'hex')",
    filler="""INSERT INTO m_filler (body)
SELECT md5(random()::text) || md5(random()::text) || md5(random()::text)
FROM generate_series(1, 25000);""",
    write="BEGIN; UPDATE a_counter SET n = n + 1; "
    "INSERT INTO m_log (at_n) SELECT n FROM a_counter; UPDATE z_counter SET n = n + 1; COMMIT;\n",
    intrude="""UPDATE items SET name = 'changed' WHERE id = 2; DELETE FROM notes; DROP TABLE tags;
CREATE TABLE intruder (id int PRIMARY KEY); INSERT INTO intruder VALUES (1);
CREATE SCHEMA intruder_schema; CREATE TABLE intruder_schema.t (a int);
CREATE FUNCTION intruder_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
SELECT lo_from_bytea(0, 'intruder');""",
    inventory=f"""
SELECT 'schema ' || n.nspname AS item FROM pg_namespace n WHERE {_PG_USER}
UNION ALL SELECT 'relation ' || n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_PG_USER}
UNION ALL SELECT 'routine ' || p.oid::regprocedure FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_PG_USER}
UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
UNION ALL SELECT 'large object' FROM pg_largeobject_metadata
ORDER BY item;""",
)


def seed_sql(dialect: Dialect) -> str:
    """Schema and rows with the awkward values: quotes, backslashes, tabs, newlines, non-ASCII,
    every byte value, NULL next to the string 'NULL', a table without a primary key."""
    items = []
    for i in range(ROWS):
        name = dialect.text(f"item {i} café ☕ 'q' \\ tab\there\nline")
        price = "NULL" if i % 7 == 0 else repr(i * 1.25)
        data = dialect.blob(bytes((i * 64 + k) % 256 for k in range(64)))
        note = "NULL" if i % 5 == 0 else dialect.text("NULL" if i % 5 == 1 else f"note {i}")
        items.append(f"({name}, {price}, {data}, {note})")
    tags = [f"({i}, 'TAG-A'), ({i}, 'tag-b')" for i in range(1, ROWS // 3)]
    return (
        dialect.schema
        + f"INSERT INTO items (name, price, data, note) VALUES {', '.join(items)};\n"
        + f"INSERT INTO tags VALUES {', '.join(tags)};\n"
        + "INSERT INTO notes VALUES ('dup'), ('dup'), (NULL), ('x');\n"
        + _COMMON_DATA
    )


@dataclass
class Backend:
    engine_name: str
    dialect: Dialect
    server: Any  # maria.MariaDbServer | pg.PostgresServer

    @property
    def is_mysql(self) -> bool:
        return self.dialect is MYSQL

    def spec(self, name: str, **changes: Any) -> ServerDatabase:
        fields = dict(engine=self.engine_name, name=name, user=USER, password=PASSWORD)
        fields |= dict(host="127.0.0.1", port=self.server.port)
        return ServerDatabase(**(fields | changes))

    def new_database(self, seed: bool = True) -> ServerDatabase:
        name = f"site_{next(_names)}"
        harness = maria if self.is_mysql else pg
        harness.create_database(self.server, name, USER, PASSWORD)
        spec = self.spec(name)
        if seed:
            self.sql(spec, seed_sql(self.dialect))
        return spec

    def client(self, spec: ServerDatabase) -> list[str]:
        if self.is_mysql:
            return maria.client_argv(self.server, spec.name, USER, PASSWORD)
        return pg.client_argv(self.server, spec.name, USER)

    def sql(self, spec: ServerDatabase, sql: str) -> str:
        if self.is_mysql:
            return maria.run_sql(self.server, sql, spec.name, USER, PASSWORD)
        return pg.run_sql(self.server, sql, spec.name, USER)

    def number(self, spec: ServerDatabase, sql: str) -> int:
        return int(self.sql(spec, sql).strip())

    def inventory(self, spec: ServerDatabase) -> list[str]:
        return self.sql(spec, self.dialect.inventory).splitlines()


@pytest.fixture(params=["mariadb", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "mariadb":
        return Backend("mariadb", MYSQL, request.getfixturevalue("mariadb_server"))
    return Backend("postgresql", POSTGRES, request.getfixturevalue("postgres_server"))


@pytest.fixture
def executor() -> LocalExecutor:
    return LocalExecutor()


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The TMPDIR the client tools run with (they inherit our environment)."""
    path = tmp_path / "environment-tmp"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    return path


class RecordingExecutor:
    """A LocalExecutor that keeps every command line and the modes of the files it chmods."""

    def __init__(self) -> None:
        self.inner = LocalExecutor()
        self.url, self.python = self.inner.url, self.inner.python
        self.argvs: list[list[str]] = []
        self.modes: dict[str, tuple[int, int]] = {}

    def run(self, argv: list[str], *, timeout: float | None = None, check: bool = True) -> Result:
        self.argvs.append(list(argv))
        result = self.inner.run(argv, timeout=timeout, check=check)
        if argv[0] == "chmod":
            path = Path(argv[-1])
            modes = (path.stat().st_mode, path.parent.stat().st_mode)
            self.modes[str(path)] = (stat.S_IMODE(modes[0]), stat.S_IMODE(modes[1]))
        return result

    def stream_out(self, argv: list[str]) -> AbstractContextManager[BinaryIO]:
        self.argvs.append(list(argv))
        return self.inner.stream_out(argv)

    def stream_in(self, argv: list[str], source: Readable) -> Result:
        self.argvs.append(list(argv))
        return self.inner.stream_in(argv, source)

    def put(self, path: str, source: Readable) -> None:
        self.inner.put(path, source)

    def get(self, path: str) -> AbstractContextManager[BinaryIO]:
        return self.inner.get(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)


class SlowReader:
    """Reads a stream in small steps, so that the dump stays open while the site writes."""

    def __init__(self, stream: BinaryIO, delay: float = 0.04) -> None:
        self.stream, self.delay = stream, delay

    def read(self, size: int = -1, /) -> bytes:
        time.sleep(self.delay)
        return self.stream.read(65536 if size < 0 else min(size, 65536))


class Writer:
    """One client session committing the same transaction over and over until closed."""

    def __init__(self, argv: list[str], transaction: str) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._feed, args=(transaction.encode(),))
        self.thread.start()

    def _feed(self, transaction: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            while not self.stopping.is_set():
                self.proc.stdin.write(transaction * 5)
                self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        err = self.proc.stderr.read()
        assert self.proc.wait(timeout=120) == 0, err.decode()


def engine_for(spec: ServerDatabase) -> DatabaseEngine:
    return open_database(spec)


def dump_bytes(engine: DatabaseEngine, executor: LocalExecutor) -> bytes:
    with engine.dump(executor) as stream:
        return stream.read()


def restore(engine: DatabaseEngine, executor: LocalExecutor, data: bytes) -> None:
    engine.commit(executor, engine.prepare(executor, io.BytesIO(data)))


def error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    ("engine_name", "kind", "extension"),
    [
        ("mysql", MysqlEngine, "sql"),
        ("mariadb", MysqlEngine, "sql"),
        ("postgresql", PostgresEngine, "pgdump"),
    ],
)
def test_open_database_picks_the_engine(engine_name: str, kind: type, extension: str) -> None:
    spec = ServerDatabase.model_validate({"engine": engine_name, "name": "site", "password": "pw"})
    engine = open_database(spec)
    assert isinstance(engine, kind)
    assert engine.extension == extension


def test_round_trip_into_another_database_gives_the_same_fingerprint(
    backend: Backend, executor: LocalExecutor, private_tmp: Path
) -> None:
    source, target = backend.new_database(), backend.new_database(seed=False)
    with engine_for(source).dump(executor) as stream:
        token = engine_for(target).prepare(executor, stream)
    engine_for(target).commit(executor, token)

    assert engine_for(target).fingerprint(executor) == engine_for(source).fingerprint(executor)
    assert backend.inventory(target) == backend.inventory(source)
    name_query = "SELECT name FROM items WHERE id = 4"
    assert backend.sql(target, name_query) == backend.sql(source, name_query)
    assert not executor.exists(token)
    assert list(private_tmp.iterdir()) == []


def test_restore_over_a_changed_database_makes_it_exactly_the_dump(
    backend: Backend, executor: LocalExecutor
) -> None:
    live = backend.new_database()
    engine = engine_for(live)
    data, fingerprint, inventory = (
        dump_bytes(engine, executor),
        engine.fingerprint(executor),
        backend.inventory(live),
    )
    backend.sql(live, backend.dialect.intrude)
    assert engine.fingerprint(executor) != fingerprint

    restore(engine, executor, data)

    assert engine.fingerprint(executor) == fingerprint
    assert backend.inventory(live) == inventory  # the intruders are gone, the dropped table back
    assert not [item for item in inventory if "intruder" in item]


def test_load_aside_declined_leaves_the_commit_to_restore_exactly(
    backend: Backend, executor: LocalExecutor, private_tmp: Path
) -> None:
    """PostgreSQL has nothing to do ahead; on MariaDB this dump holds views, triggers, routines
    and foreign keys, and the user may not create databases: the commit loads the live one."""
    live = backend.new_database()
    engine = engine_for(live)
    data, fingerprint = dump_bytes(engine, executor), engine.fingerprint(executor)
    backend.sql(live, backend.dialect.intrude)
    staged = engine.prepare(executor, io.BytesIO(data))

    assert engine.load_aside(executor, staged) == staged
    engine.commit(executor, staged)

    assert engine.fingerprint(executor) == fingerprint
    assert list(private_tmp.iterdir()) == []


def test_a_dump_taken_while_the_site_writes_is_consistent(
    backend: Backend, executor: LocalExecutor
) -> None:
    source, copy = backend.new_database(), backend.new_database(seed=False)
    backend.sql(source, backend.dialect.filler)
    count = "SELECT n FROM a_counter"
    writer = Writer(backend.client(source), backend.dialect.write)
    try:
        deadline = time.monotonic() + 30
        while backend.number(source, count) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        with engine_for(source).dump(executor) as stream:
            token = engine_for(copy).prepare(executor, SlowReader(stream))
        after_dump = backend.number(source, count)
    finally:
        writer.close()
    engine_for(copy).commit(executor, token)

    first, last = backend.number(copy, count), backend.number(copy, "SELECT n FROM z_counter")
    logged = backend.number(copy, "SELECT COUNT(*) FROM m_log")
    assert first == last == logged  # one snapshot: both ends of every transaction, or neither
    assert 10 <= first < after_dump  # the writer kept committing while the dump was read


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_dump_is_refused_at_prepare_and_the_database_is_untouched(
    backend: Backend, executor: LocalExecutor, private_tmp: Path, damage: str
) -> None:
    live = backend.new_database()
    engine = engine_for(live)
    data = dump_bytes(engine, executor)
    before = engine.fingerprint(executor)
    damaged = {"truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 64, "empty": b""}

    with pytest.raises(IntegrityError, match="staged dump"):
        engine.prepare(executor, io.BytesIO(damaged[damage]))

    assert engine.fingerprint(executor) == before
    assert list(private_tmp.iterdir()) == []


def test_a_dump_cut_inside_its_data_is_refused(backend: Backend, executor: LocalExecutor) -> None:
    live = backend.new_database()
    backend.sql(live, backend.dialect.filler)
    engine = engine_for(live)
    data = dump_bytes(engine, executor)
    with pytest.raises(IntegrityError):
        engine.prepare(executor, io.BytesIO(data[: len(data) - 4096]))


def test_a_wrong_password_gives_a_clear_error_without_the_password(
    backend: Backend, executor: LocalExecutor
) -> None:
    live = backend.new_database(seed=False)
    wrong = "Not-The-Pa55word-4f9c"
    engine = engine_for(backend.spec(live.name, password=wrong))

    def dump(executor: LocalExecutor) -> None:
        with engine.dump(executor):
            pass

    for action in (engine.check, engine.fingerprint, dump):
        with pytest.raises(TmaError, match="password") as caught:
            action(executor)
        assert wrong not in error_text(caught.value)
        assert live.name in str(caught.value)


def test_an_error_that_quotes_the_password_is_scrubbed(backend: Backend) -> None:
    live = backend.new_database(seed=False)

    class Leaky(LocalExecutor):
        def run(
            self, argv: list[str], *, timeout: float | None = None, check: bool = True
        ) -> Result:
            if "mysql" in argv or "psql" in argv:
                raise ExecutorError(f"client said: bad password {PASSWORD!s} for {USER}")
            return super().run(argv, timeout=timeout, check=check)

    with pytest.raises(ExecutorError, match=r"bad password \*\*\* for") as caught:
        engine_for(live).check(Leaky())
    assert PASSWORD not in error_text(caught.value)


def test_credentials_stay_out_of_command_lines_and_leave_no_files(
    backend: Backend, private_tmp: Path
) -> None:
    recorder = RecordingExecutor()
    source, target = backend.new_database(), backend.new_database(seed=False)
    engine_for(source).check(recorder)
    with engine_for(source).dump(recorder) as stream:
        token = engine_for(target).prepare(recorder, stream)
    engine_for(target).commit(recorder, token)
    assert engine_for(target).fingerprint(recorder) == engine_for(source).fingerprint(recorder)

    assert len(recorder.argvs) > 10
    for argv in recorder.argvs:
        assert not any("S3cr#t" in arg for arg in argv), argv
    assert recorder.modes, "no credentials file was written"
    assert set(recorder.modes.values()) == {(0o600, 0o700)}
    assert list(private_tmp.iterdir()) == []


def test_check_names_an_unknown_database(backend: Backend, executor: LocalExecutor) -> None:
    backend.new_database(seed=False)  # the account exists
    with pytest.raises(TmaError, match="does not exist") as caught:
        engine_for(backend.spec("no_such_site")).check(executor)
    assert "no_such_site" in str(caught.value)


def test_check_says_when_the_server_is_unreachable(
    backend: Backend, executor: LocalExecutor
) -> None:
    closed_port = maria.free_port("127.0.0.1")
    with pytest.raises(TmaError, match="unreachable"):
        engine_for(backend.spec("site", port=closed_port)).check(executor)


def test_the_password_may_come_from_a_file(
    backend: Backend, executor: LocalExecutor, tmp_path: Path
) -> None:
    live = backend.new_database(seed=False)
    secret = tmp_path / "db-password"
    secret.write_text(PASSWORD + "\n")
    engine_for(backend.spec(live.name, password=None, password_file=str(secret))).check(executor)


def test_the_fingerprint_follows_every_row_change(
    backend: Backend, executor: LocalExecutor
) -> None:
    live = backend.new_database()
    engine = engine_for(live)
    first = engine.fingerprint(executor)
    assert engine.fingerprint(executor) == first

    backend.sql(live, "UPDATE items SET price = price + 1 WHERE id = 3")
    assert engine.fingerprint(executor) != first
    backend.sql(live, "UPDATE items SET price = price - 1 WHERE id = 3")
    assert engine.fingerprint(executor) == first
    backend.sql(live, "UPDATE items SET note = 'NULL' WHERE id = 1")  # was NULL
    assert engine.fingerprint(executor) != first


def test_postgres_restore_is_exact_when_public_belongs_to_another_role(
    postgres_server: pg.PostgresServer, executor: LocalExecutor
) -> None:
    """The layout before PostgreSQL 15: `public` belongs to a superuser, the site owns the rest."""
    backend = Backend("postgresql", POSTGRES, postgres_server)
    live = backend.new_database(seed=False)
    pg.run_sql(
        postgres_server,
        f"ALTER SCHEMA public OWNER TO postgres; GRANT ALL ON SCHEMA public TO {USER};",
        live.name,
    )
    backend.sql(live, seed_sql(POSTGRES))
    engine = engine_for(live)
    data, fingerprint, inventory = (
        dump_bytes(engine, executor),
        engine.fingerprint(executor),
        backend.inventory(live),
    )
    backend.sql(live, POSTGRES.intrude)

    restore(engine, executor, data)

    assert engine.fingerprint(executor) == fingerprint
    assert backend.inventory(live) == inventory
    owner = "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'public'"
    assert backend.sql(live, owner).strip() == "postgres"


def test_a_failed_postgres_restore_changes_nothing(
    postgres_server: pg.PostgresServer, executor: LocalExecutor
) -> None:
    """Prologue and restore share one transaction: a failure halfway leaves the old content."""
    backend = Backend("postgresql", POSTGRES, postgres_server)
    live = backend.new_database()
    engine = engine_for(live)
    data = dump_bytes(engine, executor)
    backend.sql(live, POSTGRES.intrude)
    before = engine.fingerprint(executor)
    token = engine.prepare(executor, io.BytesIO(data))
    owner = f"ALTER DATABASE {live.name} OWNER TO"  # the site may no longer create schemas
    pg.run_sql(postgres_server, f"CREATE ROLE tma_blocker; {owner} tma_blocker;")
    try:
        with pytest.raises(TmaError, match=r"rolled back: .*permission denied"):
            engine.commit(executor, token)
    finally:
        pg.run_sql(postgres_server, f"{owner} {USER}; DROP ROLE tma_blocker;")
    assert engine.fingerprint(executor) == before
    engine.discard(executor, token)


@pytest.mark.parametrize("kept", [0.5, 0.9, -4096])
def test_a_postgres_archive_damaged_after_prepare_rolls_back(
    postgres_server: pg.PostgresServer, executor: LocalExecutor, kept: float
) -> None:
    """pg_restore dies partway through its output (inside a table's data or after it): no
    COMMIT reaches psql, nothing changes, and the archive is named as the cause."""
    backend = Backend("postgresql", POSTGRES, postgres_server)
    live = backend.new_database()
    backend.sql(live, POSTGRES.filler)
    engine = engine_for(live)
    data = dump_bytes(engine, executor)
    backend.sql(live, POSTGRES.intrude)
    before = engine.fingerprint(executor)
    token = engine.prepare(executor, io.BytesIO(data))
    cut = int(len(data) * kept) if kept > 0 else len(data) + int(kept)
    Path(token).write_bytes(data[:cut])

    with pytest.raises(IntegrityError, match="rolled back: pg_restore could not read"):
        engine.commit(executor, token)

    assert engine.fingerprint(executor) == before
    engine.discard(executor, token)
    assert not executor.exists(token)

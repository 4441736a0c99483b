"""The MariaDB restore through a shadow database, against the real server (tests/harness): the
dump loaded beside the live database, then swapped in by one RENAME TABLE. The result equals a
fresh load of the dump (rows, definitions, AUTO_INCREMENT, collations); every way out (a fallback,
a discard, a failure, a rerun after an interruption) leaves no scratch database behind."""

from __future__ import annotations

import io
import itertools
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import mariadb as maria

import tma_ops.dbs.mysql
import tma_ops.restore
from tma_ops.config import Site, load_inventory
from tma_ops.dbs.mysql import LOADED_NAME, MysqlEngine
from tma_ops.errors import ExecutorError, IntegrityError
from tma_ops.executors import Result
from tma_ops.executors.local import LocalExecutor
from tma_ops.model import ServerDatabase
from tma_ops.parts import Part
from tma_ops.restore import restore_snapshot
from tma_ops.snapshot import create_snapshot
from tma_ops.stores.file import FileStore

pytestmark = pytest.mark.integration

PASSWORD = "pw-" + secrets.token_urlsafe(12)
RUN = secrets.token_hex(2)  # database names of this module, apart from other modules' on the server
USERS = {
    "pattern": f"tma_shadow_{RUN}",  # its databases and their `<name>__tma_%` scratch names
    "global": f"tma_global_{RUN}",  # every database of the server
    "own": f"tma_own_{RUN}",  # its own databases only: no CREATE DATABASE
}
_numbers = itertools.count(1)

SCHEMA = """
CREATE TABLE posts (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL,
  body MEDIUMTEXT, data BLOB) ENGINE=InnoDB AUTO_INCREMENT=1000 DEFAULT CHARSET=utf8mb4
  COLLATE=utf8mb4_unicode_ci;
CREATE TABLE options (name VARCHAR(191) PRIMARY KEY, value TEXT)
  ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_german1_ci;
CREATE TABLE `odd ``name`` é` (v TEXT) ENGINE=MyISAM;
CREATE TABLE counters (id INT AUTO_INCREMENT PRIMARY KEY, n INT) ENGINE=InnoDB;
INSERT INTO posts (title, body, data) VALUES
  ('café ☕ ''q'' \\\\ tab\\there', 'line\\nline', X'00ff10'),
  ('second', NULL, NULL), ('NULL', 'NULL', X'');
INSERT INTO options VALUES ('blogname', 'Größe'), ('tagline', NULL);
INSERT INTO `odd ``name`` é` VALUES ('dup'), ('dup'), (NULL);
INSERT INTO counters (n) VALUES (1), (2), (3), (4), (5);
DELETE FROM counters WHERE id > 3;
"""

# Changes the restore must undo: rows, a table gone, tables added (with foreign keys, one into a
# dumped table), and a view, a trigger, routines and an event the dump does not hold.
INTRUDE = """
UPDATE posts SET title = 'changed' WHERE id = 1001; DELETE FROM options; DROP TABLE counters;
INSERT INTO posts (title) VALUES ('added');
CREATE TABLE intruder (id INT PRIMARY KEY, parent INT,
  FOREIGN KEY (parent) REFERENCES intruder (id));
CREATE TABLE child (post INT, FOREIGN KEY (post) REFERENCES posts (id)) ENGINE=InnoDB;
INSERT INTO child VALUES (1000);
CREATE VIEW intruder_view AS SELECT id FROM posts;
CREATE TRIGGER intruder_trigger BEFORE INSERT ON posts FOR EACH ROW
  SET NEW.title = LOWER(NEW.title);
CREATE PROCEDURE intruder_proc() SELECT 1;
CREATE FUNCTION intruder_fn() RETURNS INT RETURN 1;
CREATE EVENT intruder_event ON SCHEDULE EVERY 1 DAY DO DELETE FROM posts WHERE id < 0;
"""

# What keeps a dump off the shadow path, one at a time.
NOT_ONLY_TABLES = {
    "view": "CREATE VIEW recent AS SELECT id, title FROM posts WHERE id > 1000;",
    "trigger": "CREATE TRIGGER lower_title BEFORE INSERT ON posts FOR EACH ROW "
    "SET NEW.title = LOWER(NEW.title);",
    "foreign key": "CREATE TABLE tags (post INT NOT NULL, tag VARCHAR(20), "
    "FOREIGN KEY (post) REFERENCES posts (id)) ENGINE=InnoDB; INSERT INTO tags VALUES (1000, 'a');",
    "procedure": "CREATE PROCEDURE post_count() SELECT COUNT(*) FROM posts;",
    "event": "CREATE EVENT purge_old ON SCHEDULE EVERY 1 DAY DO DELETE FROM posts WHERE id < 0;",
}

INVENTORY = """
SELECT CONCAT(TABLE_TYPE, ' ', TABLE_NAME, ' ', IFNULL(ENGINE, ''), ' ',
  IFNULL(TABLE_COLLATION, ''), ' ', IFNULL(AUTO_INCREMENT, '')) AS item
 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('routine ', ROUTINE_NAME) FROM information_schema.ROUTINES
 WHERE ROUTINE_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS
 WHERE TRIGGER_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS
 WHERE EVENT_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('foreign key ', CONSTRAINT_NAME)
 FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()
UNION ALL SELECT CONCAT('defaults ', DEFAULT_CHARACTER_SET_NAME, ' ', DEFAULT_COLLATION_NAME)
 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()
ORDER BY item;"""  # fmt: skip


@dataclass
class Maria:
    server: maria.MariaDbServer

    def root(self, sql: str, database: str | None = None) -> str:
        return maria.run_sql(self.server, sql, database)

    def new_database(self, grant: str = "pattern", length: int = 0) -> ServerDatabase:
        """An empty database (latin1, a collation other than the charset's default) that
        USERS[grant] may use."""
        name = f"shadow_{RUN}_{next(_numbers)}"
        name += "x" * max(0, length - len(name))
        user = USERS[grant]
        on = "*.*" if grant == "global" else f"{_ident(name)}.*"
        sql = f"CREATE DATABASE {_ident(name)} CHARACTER SET latin1 COLLATE latin1_german1_ci;"
        sql += f"GRANT ALL PRIVILEGES ON {on} TO '{user}'@'%';"
        if grant == "pattern":
            scratch = name.replace("_", "\\_") + "\\_\\_tma\\_%"
            sql += f"GRANT ALL PRIVILEGES ON {_ident(scratch)}.* TO '{user}'@'%';"
        self.root(sql)
        return ServerDatabase(
            engine="mariadb",
            name=name,
            user=user,
            password=PASSWORD,
            host=self.server.address,
            port=self.server.port,
        )

    def as_user(self, spec: ServerDatabase, sql: str) -> str:
        """SQL run by the database's own user (the definer of the views and routines it makes)."""
        return maria.run_sql(self.server, sql, spec.name, spec.user, PASSWORD)

    def seeded(self, grant: str = "pattern", extra: str = "") -> ServerDatabase:
        spec = self.new_database(grant)
        self.as_user(spec, SCHEMA + extra)
        return spec

    def inventory(self, spec: ServerDatabase) -> list[str]:
        return self.root(INVENTORY, spec.name).splitlines()

    def scratch(self, spec: ServerDatabase) -> list[str]:
        """The scratch databases of spec's database present on the server."""
        names = self.root("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA;").split()
        return [name for name in names if name.startswith(spec.name + "__tma_")]


class RecordingExecutor(LocalExecutor):
    """A LocalExecutor that keeps every command line it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.argvs: list[list[str]] = []

    def run(self, argv: list[str], *, timeout: float | None = None, check: bool = True) -> Result:
        self.argvs.append(list(argv))
        return super().run(argv, timeout=timeout, check=check)

    def tried_create_database(self) -> bool:
        return any("CREATE DATABASE" in arg for argv in self.argvs for arg in argv)


@pytest.fixture(scope="module")
def db(mariadb_server: maria.MariaDbServer) -> Maria:
    for user in USERS.values():
        maria.run_sql(mariadb_server, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}';")
    return Maria(mariadb_server)


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The TMPDIR of the client tools: a restore leaves nothing in it."""
    path = tmp_path / "environment-tmp"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    return path


@pytest.fixture
def executor() -> RecordingExecutor:
    return RecordingExecutor()


def dump_of(spec: ServerDatabase, executor: LocalExecutor) -> bytes:
    with MysqlEngine(spec).dump(executor) as stream:
        return stream.read()


def fresh_load(db: Maria, data: bytes, executor: LocalExecutor) -> ServerDatabase:
    """The dump loaded the long-standing way (one session into the live database), into a new
    database: what every restore must equal."""
    spec = db.new_database("own")
    engine = MysqlEngine(spec)
    engine.commit(executor, engine.prepare(executor, io.BytesIO(data)))
    return spec


def assert_same_content(db: Maria, got: ServerDatabase, expected: ServerDatabase) -> None:
    executor = LocalExecutor()
    assert db.inventory(got) == db.inventory(expected)
    assert MysqlEngine(got).fingerprint(executor) == MysqlEngine(expected).fingerprint(executor)


# -- the shadow path --------------------------------------------------------------------------


@pytest.mark.parametrize("grant", ["pattern", "global"])
def test_the_shadow_swapped_in_makes_the_live_database_exactly_a_fresh_load(
    db: Maria, executor: RecordingExecutor, private_tmp: Path, grant: str
) -> None:
    live = db.seeded(grant)
    engine = MysqlEngine(live)
    data = dump_of(live, executor)
    reference = fresh_load(db, data, executor)
    db.as_user(live, INTRUDE)
    intruded = engine.fingerprint(executor)

    staged = engine.prepare(executor, io.BytesIO(data))
    token = engine.load_aside(executor, staged)

    assert token == str(Path(staged).with_name(LOADED_NAME))
    assert len(db.scratch(live)) == 2  # the loaded shadow, and where the live tables go
    assert engine.fingerprint(executor) == intruded  # nothing live changed yet
    assert not Path(staged).exists()  # the dump is in the shadow now

    engine.commit(executor, token)

    assert_same_content(db, live, reference)
    assert db.scratch(live) == []
    assert list(private_tmp.iterdir()) == []


def test_the_result_keeps_auto_increment_counters_and_collations(
    db: Maria, executor: RecordingExecutor
) -> None:
    live = db.seeded()
    data = dump_of(live, executor)
    expected = db.inventory(live)
    db.as_user(live, INTRUDE)
    engine = MysqlEngine(live)

    engine.commit(executor, engine.load_aside(executor, engine.prepare(executor, io.BytesIO(data))))

    got = db.inventory(live)
    assert got == expected
    assert "BASE TABLE posts InnoDB utf8mb4_unicode_ci 1003" in got  # not 1004: a row was added
    assert "BASE TABLE counters InnoDB latin1_german1_ci 6" in got  # rows 4 and 5 deleted
    assert "BASE TABLE options InnoDB latin1_german1_ci " in got
    assert "defaults latin1 latin1_german1_ci" in got


def test_an_empty_dump_empties_the_live_database(db: Maria, executor: RecordingExecutor) -> None:
    empty = db.new_database()
    data = dump_of(empty, executor)
    live = db.seeded()
    engine = MysqlEngine(live)

    token = engine.load_aside(executor, engine.prepare(executor, io.BytesIO(data)))
    assert token.endswith(LOADED_NAME)
    engine.commit(executor, token)

    assert db.inventory(live) == db.inventory(empty)
    assert db.scratch(live) == []


# -- the fallbacks: the live database loaded, exactly as well ---------------------------------


@pytest.mark.parametrize("quick_look", [True, False], ids=["quick look", "shadow checked"])
@pytest.mark.parametrize("kind", sorted(NOT_ONLY_TABLES))
def test_a_dump_with_more_than_plain_tables_is_loaded_into_the_live_database(
    db: Maria,
    executor: RecordingExecutor,
    monkeypatch: pytest.MonkeyPatch,
    private_tmp: Path,
    kind: str,
    quick_look: bool,
) -> None:
    if not quick_look:  # the dump's statements pass: the loaded shadow's content decides
        monkeypatch.setattr(tma_ops.dbs.mysql, "holds_more_than_tables", lambda *_: False)
    live = db.seeded(extra=NOT_ONLY_TABLES[kind])
    engine = MysqlEngine(live)
    data = dump_of(live, executor)
    expected = (db.inventory(live), engine.fingerprint(executor))
    db.as_user(live, INTRUDE)

    staged = engine.prepare(executor, io.BytesIO(data))
    token = engine.load_aside(executor, staged)

    assert token == staged
    assert executor.tried_create_database() is not quick_look
    assert db.scratch(live) == []
    engine.commit(executor, token)
    assert (db.inventory(live), engine.fingerprint(executor)) == expected
    assert list(private_tmp.iterdir()) == []


def test_a_user_without_create_database_restores_through_the_live_database(
    db: Maria, executor: RecordingExecutor
) -> None:
    live = db.seeded("own")
    engine = MysqlEngine(live)
    data = dump_of(live, executor)
    reference = fresh_load(db, data, executor)
    db.as_user(live, INTRUDE)

    staged = engine.prepare(executor, io.BytesIO(data))
    token = engine.load_aside(executor, staged)

    assert token == staged
    assert executor.tried_create_database()  # refused by the server, not skipped
    assert db.scratch(live) == []
    engine.commit(executor, token)
    assert_same_content(db, live, reference)


def test_a_name_too_long_for_the_scratch_names_restores_through_the_live_database(
    db: Maria, executor: RecordingExecutor
) -> None:
    live = db.new_database("global", length=60)
    db.as_user(live, SCHEMA)
    engine = MysqlEngine(live)
    data = dump_of(live, executor)
    expected = engine.fingerprint(executor)
    db.as_user(live, INTRUDE)

    staged = engine.prepare(executor, io.BytesIO(data))
    assert engine.load_aside(executor, staged) == staged
    engine.commit(executor, staged)

    assert engine.fingerprint(executor) == expected
    assert not executor.tried_create_database()


# -- every way out leaves no scratch database -------------------------------------------------


def test_discard_after_load_aside_drops_the_shadow_and_changes_nothing(
    db: Maria, executor: RecordingExecutor, private_tmp: Path
) -> None:
    live = db.seeded()
    engine = MysqlEngine(live)
    data = dump_of(live, executor)
    db.as_user(live, INTRUDE)
    before = (db.inventory(live), engine.fingerprint(executor))
    token = engine.load_aside(executor, engine.prepare(executor, io.BytesIO(data)))
    assert db.scratch(live) != []

    engine.discard(executor, token)

    assert db.scratch(live) == []
    assert (db.inventory(live), engine.fingerprint(executor)) == before
    assert list(private_tmp.iterdir()) == []
    engine.discard(executor, token)  # nothing left to drop is fine


def test_a_dump_that_does_not_load_is_refused_before_the_live_database_is_touched(
    db: Maria, executor: RecordingExecutor, private_tmp: Path
) -> None:
    live = db.seeded()
    engine = MysqlEngine(live)
    data = dump_of(live, executor)
    db.as_user(live, INTRUDE)
    before = engine.fingerprint(executor)
    staged = engine.prepare(executor, io.BytesIO(data))
    # Damaged after its checks: a statement the server rejects, the trailer still in place.
    broken = data.replace(b"CREATE TABLE `posts`", b"CREATE TABLE `posts` oops", 1)
    Path(staged).write_bytes(broken)

    with pytest.raises(ExecutorError, match=r"does not load .*the live one is untouched"):
        engine.load_aside(executor, staged)

    assert engine.fingerprint(executor) == before
    assert db.scratch(live) == []
    engine.discard(executor, staged)
    assert list(private_tmp.iterdir()) == []


def test_a_shadow_gone_before_the_commit_is_refused_and_nothing_changes(
    db: Maria, executor: RecordingExecutor
) -> None:
    live = db.seeded()
    engine = MysqlEngine(live)
    data = dump_of(live, executor)
    db.as_user(live, INTRUDE)
    before = engine.fingerprint(executor)
    token = engine.load_aside(executor, engine.prepare(executor, io.BytesIO(data)))
    for name in db.scratch(live):
        db.root(f"DROP DATABASE {_ident(name)};")

    with pytest.raises(IntegrityError, match="is gone; nothing was changed"):
        engine.commit(executor, token)

    assert engine.fingerprint(executor) == before
    assert db.scratch(live) == []


def test_a_rerun_after_an_interrupted_restore_drops_its_leftovers(
    db: Maria, executor: RecordingExecutor
) -> None:
    live = db.seeded()
    engine = MysqlEngine(live)
    data = dump_of(live, executor)
    reference = fresh_load(db, data, executor)
    db.as_user(live, INTRUDE)
    # Killed after the load aside (its token lost), and after a swap, before the drops.
    engine.load_aside(executor, engine.prepare(executor, io.BytesIO(data)))
    swapped = f"{live.name}__tma_k1lledaft3_old"
    db.root(f"CREATE DATABASE {_ident(swapped)}; CREATE TABLE {_ident(swapped)}.posts (id INT);")
    other = db.seeded()  # another database's scratch names are not ours to drop
    other_scratch = f"{other.name}__tma_0therrestor"
    db.root(f"CREATE DATABASE {_ident(other_scratch)};")
    assert len(db.scratch(live)) == 3

    engine.commit(executor, engine.load_aside(executor, engine.prepare(executor, io.BytesIO(data))))

    assert_same_content(db, live, reference)
    assert db.scratch(live) == []
    assert db.scratch(other) == [other_scratch]
    db.root(f"DROP DATABASE {_ident(other_scratch)};")


# -- through restore_snapshot: both parts side by side ----------------------------------------


@dataclass
class MariaSite:
    site: Site
    store: FileStore
    production: ServerDatabase
    staging: ServerDatabase


@pytest.fixture
def maria_site(db: Maria, tmp_path: Path) -> MariaSite:
    """A site whose production and staging databases are on the MariaDB server, with a small
    tree each, and a file:// store."""
    production, staging = db.seeded(), db.seeded()
    db.as_user(staging, INTRUDE)
    environments = {}
    for env, spec in (("production", production), ("staging", staging)):
        root = tmp_path / env / "www"
        (root / "uploads").mkdir(parents=True)
        (root / "plugins" / "cache").mkdir(parents=True)
        (root / "plugins" / "cache" / "VERSION").write_text("1.0.0\n")
        (root / "index.php").write_text(f"<?php echo '{env}';\n")
        (root / "uploads" / "a.bin").write_bytes(secrets.token_bytes(300_000))
        database = {"engine": "mariadb", "name": spec.name, "user": spec.user}
        database |= {"password": PASSWORD, "host": spec.host, "port": spec.port}
        environments[env] = {"executor": "local://", "root": str(root), "database": database}
        environments[env]["smoke"] = [{"url": "http://127.0.0.1:9/"}]  # never run here
    (tmp_path / "channel").mkdir()
    document: dict[str, Any] = {
        "version": 1,
        "state_dir": str(tmp_path / "state"),
        "sites": {
            "shop": {
                "tier": "business",
                "store": f"file://{tmp_path / 'store'}",
                "stack": {
                    "kind": "archive",
                    "channel": str(tmp_path / "channel"),
                    "components_dir": "plugins",
                },
                "environments": environments,
            }
        },
    }
    inventory = tmp_path / "tma.yaml"
    inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    site = load_inventory(inventory).site("shop")
    return MariaSite(site, FileStore(tmp_path / "store"), production, staging)


class LoadAsideSpy:
    """Records what MysqlEngine.load_aside returned (the real one runs), and can make the files
    side wait for it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tokens: list[str] = []
        self.done = threading.Event()
        real = MysqlEngine.load_aside

        def load_aside(engine: MysqlEngine, executor: Any, token: str) -> str:
            try:
                self.tokens.append(real(engine, executor, token))
                return self.tokens[-1]
            finally:
                self.done.set()

        monkeypatch.setattr(MysqlEngine, "load_aside", load_aside)


def test_a_site_restore_loads_the_dump_aside_and_swaps_it_in(
    db: Maria, maria_site: MariaSite, monkeypatch: pytest.MonkeyPatch, private_tmp: Path
) -> None:
    spy = LoadAsideSpy(monkeypatch)
    manifest = create_snapshot(maria_site.site, "production", maria_site.store)

    restore_snapshot(maria_site.site, manifest, "staging", maria_site.store)

    assert [Path(token).name for token in spy.tokens] == [LOADED_NAME]
    assert_same_content(db, maria_site.staging, maria_site.production)
    staging_root = Path(maria_site.site.environment("staging").root)
    assert (staging_root / "index.php").read_text() == "<?php echo 'production';\n"
    assert db.scratch(maria_site.staging) == []
    assert list(private_tmp.iterdir()) == []


def test_a_digest_failure_never_creates_a_scratch_database(
    db: Maria, maria_site: MariaSite, monkeypatch: pytest.MonkeyPatch, private_tmp: Path
) -> None:
    spy = LoadAsideSpy(monkeypatch)
    manifest = create_snapshot(maria_site.site, "production", maria_site.store)
    objects = stored_objects(maria_site.store, manifest.parts["db"])
    stored = objects[len(objects) // 2]
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    stored.write_bytes(bytes(damaged))
    before = MysqlEngine(maria_site.staging).fingerprint(LocalExecutor())

    with pytest.raises(IntegrityError):
        restore_snapshot(maria_site.site, manifest, "staging", maria_site.store)

    assert spy.tokens == [] and not spy.done.is_set()
    assert db.scratch(maria_site.staging) == []
    assert MysqlEngine(maria_site.staging).fingerprint(LocalExecutor()) == before
    assert list(private_tmp.iterdir()) == []


def test_a_files_failure_after_the_load_aside_drops_the_shadow(
    db: Maria, maria_site: MariaSite, monkeypatch: pytest.MonkeyPatch, private_tmp: Path
) -> None:
    spy = LoadAsideSpy(monkeypatch)
    manifest = create_snapshot(maria_site.site, "production", maria_site.store)
    stored = stored_objects(maria_site.store, manifest.parts["files"])[-1]
    stored.write_bytes(stored.read_bytes()[:-64])  # its digest fails at the very end
    real_stage_files = tma_ops.restore._stage_files

    def stage_files_once_loaded(*args: Any, **kwargs: Any) -> None:
        assert spy.done.wait(120), "the database side never finished"
        real_stage_files(*args, **kwargs)

    monkeypatch.setattr(tma_ops.restore, "_stage_files", stage_files_once_loaded)
    before = MysqlEngine(maria_site.staging).fingerprint(LocalExecutor())

    with pytest.raises(IntegrityError, match=manifest.parts["files"].key):
        restore_snapshot(maria_site.site, manifest, "staging", maria_site.store)

    assert [Path(token).name for token in spy.tokens] == [LOADED_NAME]
    assert db.scratch(maria_site.staging) == []
    assert MysqlEngine(maria_site.staging).fingerprint(LocalExecutor()) == before
    assert list(private_tmp.iterdir()) == []


def stored_objects(store: FileStore, part: Part) -> list[Path]:
    """The files of a part's stored objects (one, or a chunked part's chunks), in order."""
    objects = part.objects() if hasattr(part, "objects") else (part,)
    return [store.root / stored.key for stored in objects]


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"

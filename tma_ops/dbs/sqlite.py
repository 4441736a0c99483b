"""SQLite engine. Every read and write of the database runs as a stdlib-only Python helper on the
environment, through the executor, so the same code works locally and over SSH or in Docker.

Dumps and restores use SQLite's online backup API: a dump is one read transaction (a consistent
state even while the site writes), a restore is one write transaction on the live database (safe
with WAL and with open readers, which see either the old or the new content).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from tma_ops.dbs.rows import check_identifier, since_bound
from tma_ops.errors import ExecutorError, IntegrityError
from tma_ops.executors import Executor, Result
from tma_ops.streams import Readable

# Helpers run as `python -c BOOT SCRIPT ARGS...`: executors quote the first three argv items in
# their error messages, so passing the multi-line script fourth keeps those messages to one line.
_BOOT = "import sys; exec(sys.argv.pop(1))"

_COMMON = """
import os, sqlite3, sys, urllib.parse

def connect(path, **kwargs):
    # mode=rw: never create a missing database as a side effect of opening it
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=rw"
    return sqlite3.connect(uri, uri=True, **kwargs)

def require(path, what="database"):
    if not os.path.isfile(path):
        sys.exit(what + " not found: " + path)
"""

_DUMP = (
    _COMMON
    + """
import shutil, tempfile
path = sys.argv[1]
require(path)
fd, tmp = tempfile.mkstemp(prefix="tma-dump-", suffix=".sqlite")
os.close(fd)
try:
    src, dst = connect(path, timeout=60), sqlite3.connect(tmp)
    src.backup(dst)  # all pages in one step: a single read transaction, one consistent state
    dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file even from a WAL database
    dst.close()
    src.close()
    with open(tmp, "rb") as copy:
        os.unlink(tmp)  # the open handle keeps the bytes; nothing is left if we are killed now
        shutil.copyfileobj(copy, sys.stdout.buffer, 1 << 20)
except sqlite3.Error as exc:
    sys.exit("cannot dump " + path + ": " + str(exc))
finally:
    if os.path.exists(tmp):
        os.unlink(tmp)
"""
)

_INVALID = 3  # exit code of _CHECK when the staged file is not a sound SQLite database

_CHECK = (
    _COMMON
    + """
path = sys.argv[1]
for suffix in ("-journal", "-wal", "-shm"):
    if os.path.exists(path + suffix):  # left by an earlier attempt: would be replayed into it
        os.unlink(path + suffix)
with open(path, "rb") as staged:
    if staged.read(16) != b"SQLite format 3\\x00":
        print("not an SQLite database")
        sys.exit(3)
try:
    con = connect(path)
    rows = con.execute("PRAGMA integrity_check").fetchall()
    con.close()
except sqlite3.DatabaseError as exc:
    print(exc)
    sys.exit(3)
if rows != [("ok",)]:
    print("; ".join(str(row[0]) for row in rows[:3]))
    sys.exit(3)
"""
)

_COMMIT = (
    _COMMON
    + """
staged, live = sys.argv[1:3]
require(staged, "staged database")
os.makedirs(os.path.dirname(os.path.abspath(live)), exist_ok=True)
try:
    src, dst = connect(staged), sqlite3.connect(live, timeout=60)
    src.backup(dst)  # one write transaction on the live database
    dst.close()
    src.close()
except sqlite3.Error as exc:
    sys.exit("cannot restore " + staged + " into " + live + ": " + str(exc))
os.unlink(staged)
"""
)

_DISCARD = """
import os, sys
for suffix in ("", "-journal", "-wal", "-shm"):
    try:
        os.unlink(sys.argv[1] + suffix)
    except FileNotFoundError:
        pass
"""

_FINGERPRINT = (
    _COMMON
    + """
import hashlib

class Text(bytes):
    pass  # TEXT values as bytes (any encoding), yet distinct from BLOBs

def row_order(con, quoted):
    columns = [row[1].lower() for row in con.execute("PRAGMA table_info(" + quoted + ")")]
    for alias in ("rowid", "_rowid_", "oid"):
        if alias in columns:
            continue
        try:
            con.execute("SELECT " + alias + " FROM " + quoted + " LIMIT 0")
            return alias
        except sqlite3.OperationalError:
            break  # WITHOUT ROWID: its primary key is among the columns
    return ", ".join(str(i + 1) for i in range(len(columns)))

path = sys.argv[1]
require(path)
con = connect(path, timeout=60)
con.execute("BEGIN")  # one read transaction: every table from the same state
digest = hashlib.sha256()
schema = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
tables = []
for kind, name, sql in schema:
    digest.update(repr((kind, name, sql)).encode() + b"\\n")
    if kind == "table" and not (sql or "").upper().startswith("CREATE VIRTUAL"):
        quoted = '"' + name.replace('"', '""') + '"'
        tables.append((quoted, row_order(con, quoted)))
con.text_factory = Text
for quoted, order in tables:
    digest.update(quoted.encode() + b"\\n")
    for row in con.execute("SELECT * FROM " + quoted + " ORDER BY " + order):
        values = tuple(("text", bytes(v)) if isinstance(v, Text) else v for v in row)
        digest.update(repr(values).encode() + b"\\n")
print(digest.hexdigest())
"""
)

# Text dates of any form SQLite reads (ISO with or without 'T', offset or 'Z') compare through
# julianday(); integer or real values are taken as unix epoch seconds.
_COUNT = (
    _COMMON
    + """
path, table, column, moment, epoch = sys.argv[1:6]
require(path)
con = connect(path, timeout=60)
names = con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
if table.lower() not in {name.lower() for (name,) in names}:
    sys.exit("table '" + table + "' not found in database " + path)
sql, values = 'SELECT COUNT(*) FROM "' + table + '"', ()
if column:
    columns = con.execute('PRAGMA table_info("' + table + '")').fetchall()
    if column.lower() not in {row[1].lower() for row in columns}:
        sys.exit("column '" + column + "' of table '" + table + "' not found in " + path)
    quoted = '"' + column + '"'
    sql += (" WHERE CASE WHEN typeof(" + quoted + ") IN ('integer', 'real') THEN " + quoted
            + " > ? ELSE julianday(" + quoted + ") > julianday(?) END")
    values = (float(epoch), moment)
print(con.execute(sql, values).fetchone()[0])
"""
)


class SqliteEngine:
    name = "sqlite"
    extension = "sqlite"

    def __init__(self, path: str, *, commit_timeout: float = 900.0) -> None:
        self.path = path
        self.staging_path = path + ".tma-restore"
        self.commit_timeout = commit_timeout

    def check(self, executor: Executor) -> None:
        if not executor.exists(self.path):
            raise ExecutorError(f"{executor.url}: database not found: {self.path}")

    @contextmanager
    def dump(self, executor: Executor) -> Iterator[BinaryIO]:
        # Checked up front so that a consumer never stores an empty stream for a missing database.
        self.check(executor)
        with executor.stream_out(_argv(executor, _DUMP, self.path)) as stream:
            yield stream

    def prepare(self, executor: Executor, source: Readable) -> str:
        executor.put(self.staging_path, source)
        result = executor.run(_argv(executor, _CHECK, self.staging_path), check=False)
        if result.ok:
            return self.staging_path
        self.discard(executor, self.staging_path)
        if result.rc == _INVALID:
            raise IntegrityError(
                f"{executor.url}: staged database {self.staging_path} is not valid: "
                f"{_last_line(result.out)}"
            )
        raise _helper_failed(executor, result)

    def load_aside(self, executor: Executor, token: str) -> str:
        """Nothing to do ahead: the commit is one backup-API copy of the staged file."""
        self._check_token(token)
        return token

    def commit(self, executor: Executor, token: str) -> None:
        self._check_token(token)
        argv = _argv(executor, _COMMIT, token, self.path)
        result = executor.run(argv, timeout=self.commit_timeout, check=False)
        if not result.ok:
            raise _helper_failed(executor, result)

    def discard(self, executor: Executor, token: str) -> None:
        self._check_token(token)
        result = executor.run(_argv(executor, _DISCARD, token), check=False)
        if not result.ok:
            raise _helper_failed(executor, result)

    def wipe(self, executor: Executor) -> None:
        result = executor.run(_argv(executor, _DISCARD, self.path), check=False)
        if not result.ok:
            raise _helper_failed(executor, result)

    def fingerprint(self, executor: Executor) -> str:
        result = executor.run(_argv(executor, _FINGERPRINT, self.path), check=False)
        if not result.ok:
            raise _helper_failed(executor, result)
        return result.out.strip()

    def count_rows(
        self,
        executor: Executor,
        table: str,
        since_column: str | None = None,
        since: str | None = None,
    ) -> int:
        """Rows of `table`, or those whose `since_column` is later than `since` (ISO-8601 UTC)."""
        check_identifier(table)
        bound = since_bound(since_column, since)
        moment = (bound.column, bound.text, bound.epoch) if bound else ("", "", "0")
        result = executor.run(_argv(executor, _COUNT, self.path, table, *moment), check=False)
        if not result.ok:
            raise _helper_failed(executor, result)
        return int(result.out.strip())

    def _check_token(self, token: str) -> None:
        if token != self.staging_path:
            raise ValueError(f"not a restore token of {self.path}: {token!r}")


def _argv(executor: Executor, script: str, *args: str) -> list[str]:
    return [executor.python, "-c", _BOOT, script, *args]


def _helper_failed(executor: Executor, result: Result) -> ExecutorError:
    return ExecutorError(f"{executor.url}: {_last_line(result.err) or f'exited {result.rc}'}")


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""

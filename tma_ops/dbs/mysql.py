"""MariaDB/MySQL engine. Every step runs the client tools (mysqldump, mysql) ON THE ENVIRONMENT
through the executor, so the same code works locally, over SSH and in Docker.

Credentials never go on a command line nor into an environment listing: each operation writes a
`[client]` option file into a private directory (`mktemp -d`, mode 0700; the file is chmod 600),
passes it as the first option (`--defaults-extra-file`) and removes the directory afterwards.
Error messages are scrubbed of the password.

A dump is one `mysqldump --single-transaction`: a consistent InnoDB snapshot while the site keeps
writing. `prepare` stages the dump in a private directory and requires mysqldump's completion
trailer (a cut stream lacks it).

`load_aside` then replays it into a shadow database beside the live one (the restore runs it
while the files are still being extracted), and `commit` swaps it in: the live database's views,
triggers, routines and events are dropped, then ONE `RENAME TABLE` moves the live tables out to a
second scratch database and the shadow's in, and both scratch databases are dropped. The live
database is incomplete for the milliseconds of that session instead of the whole load. Disk: for
the time of the restore the server holds the database twice. The names, the rules and the swap
are in tma_ops.dbs.mysql_shadow.

A cross-database RENAME is only safe for plain tables, and the scratch databases need CREATE
DATABASE. The live database is loaded directly instead (`load_aside` returns the staged token,
leaving nothing behind) when the dump holds views, triggers, routines, events or foreign keys,
when the server refuses CREATE DATABASE (a shared host granting the site's own database only:
granting ALL on `<live>\\_\\_tma\\_%`.* as well opens the fast path), when the live name leaves no
room for the scratch names (64 characters), or when the server has no room for a second copy.
That `commit` replays the dump with one `mysql` session that first drops every table, view,
routine and event of the live database, so the result is exactly the dump; MySQL DDL is not
transactional: the database is incomplete while that session runs.

Scratch databases of an interrupted restore are dropped by `discard` and by the next
`load_aside` of the same database (the restores of a site hold its lock).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import BinaryIO

from tma_ops.dbs.mysql_shadow import (
    LIVE_OBJECTS,
    drop_scratch,
    holds_more_than_tables,
    load_shadow,
    scratch_names,
    swap_in,
)
from tma_ops.dbs.rows import check_identifier, quote_name, since_bound
from tma_ops.dbs.server import (
    ServerEngine,
    iter_lines,
    last_line,
    make_private_dir,
    remove_private_dir,
)
from tma_ops.errors import ExecutorError, IntegrityError
from tma_ops.executors import Executor, Result

_HEADERS = ("-- MySQL dump", "-- MariaDB dump")
_TRAILER = "-- Dump completed"
LOADED_NAME = "shadow"  # the last part of a token whose dump is loaded aside
_AUTO_INCREMENT = re.compile(rb" AUTO_INCREMENT=\d+")

# `sh -c` scripts take every path and name as a positional argument, never spliced into code.
_RESTORE = (
    'test -r "$3" && test -r "$4" || { echo "staged restore files are missing" >&2; exit 66; }\n'
    'cat -- "$3" "$4" | mysql --defaults-extra-file="$1" --default-character-set=utf8mb4 '
    '--batch -- "$2"'
)
_RUN_SCRIPT = (
    'exec mysql --defaults-extra-file="$1" --batch --raw --skip-column-names '
    '--default-character-set=utf8mb4 -- "$2" < "$3"'
)

_COLUMNS = """
SELECT HEX(c.TABLE_NAME), t.TABLE_TYPE, HEX(c.COLUMN_NAME), IFNULL(k.ORDINAL_POSITION, 0)
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
LEFT JOIN information_schema.KEY_COLUMN_USAGE k ON k.TABLE_SCHEMA = c.TABLE_SCHEMA
 AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME AND k.CONSTRAINT_NAME = 'PRIMARY'
WHERE c.TABLE_SCHEMA = DATABASE() ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""

# Identifiers are checked (tma_ops.dbs.rows) before they are written into these queries.
_COLUMN_TYPE = """SELECT 'found', IFNULL((SELECT LOWER(DATA_TYPE) FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA = DATABASE() AND BINARY TABLE_NAME = '{table}'
 AND BINARY COLUMN_NAME = '{column}'), '')
FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND BINARY TABLE_NAME = '{table}'"""
_TIME_TYPES = {"datetime", "timestamp", "date"}
_EPOCH_TYPES = {"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "double", "float"}

_HINTS = (
    ("ERROR 1045", "access denied: check the user and password"),
    ("ERROR 1044", "the database does not exist or the user may not use it"),
    ("ERROR 1049", "the database does not exist"),
    ("ERROR 2002", "the server is unreachable"),
    ("ERROR 2003", "the server is unreachable"),
    ("ERROR 2005", "unknown server host"),
    ("ERROR 2013", "the server closed the connection"),
)


DUMP_FLAGS = [
    "--single-transaction",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--default-character-set=utf8mb4",
    "--add-drop-table",
    "--no-tablespaces",  # MySQL 8 would otherwise require the PROCESS privilege
    "--skip-dump-date",  # an unchanged database then dumps to the same bytes: the same chunks
]


class MysqlEngine(ServerEngine):
    name = "mysql"
    extension = "sql"
    restore_prefix = "tma-mysql-restore"
    staged_name = "dump.sql"

    def check(self, executor: Executor) -> None:
        with self._scrubbed(), self._options(executor) as options:
            self._check(executor, options)

    @contextmanager
    def dump(self, executor: Executor) -> Iterator[BinaryIO]:
        with self._scrubbed(), self._options(executor) as options:
            self._check(executor, options)  # a clear error rather than an empty stream
            argv = [
                "mysqldump",
                f"--defaults-extra-file={options}",
                *DUMP_FLAGS,
                "--",
                self.database,
            ]
            with executor.stream_out(argv) as stream:
                yield stream

    def _require_sound_dump(self, executor: Executor, staged: str) -> None:
        _require_complete_dump(executor, staged)

    def load_aside(self, executor: Executor, token: str) -> str:
        """Replay a staged dump into a shadow database beside the live one; the token for
        commit/discard. The staged token itself when the live database must be loaded instead
        (see the module docstring): nothing is left of the attempt then."""
        self._check_token(token)
        names = scratch_names(self.database, PurePosixPath(token).parent.name)
        if names is None or holds_more_than_tables(executor, token):
            return token
        with self._client(executor) as client:
            if not load_shadow(client, names, token):
                return token
        executor.run(["rm", "-f", "--", token])  # its content is in the shadow now
        return str(PurePosixPath(token).with_name(LOADED_NAME))

    def commit(self, executor: Executor, token: str) -> None:
        self._check_token(token, self.staged_name, LOADED_NAME)
        path = PurePosixPath(token)
        names = scratch_names(self.database, path.parent.name)
        if path.name == LOADED_NAME and names is not None:
            try:
                with self._client(executor) as client:
                    swap_in(client, names)
            finally:
                self.discard(executor, token)  # a failed swap leaves no scratch database either
            return
        self._load_live(executor, token)
        self.discard(executor, token)

    def _load_live(self, executor: Executor, staged: str) -> None:
        with self._scrubbed(), self._options(executor) as options:
            live = self._query(executor, options, LIVE_OBJECTS)
            drops = f"{PurePosixPath(options).parent}/drop.sql"
            executor.put(drops, io.BytesIO(_drop_script(live)))
            argv = ["sh", "-c", _RESTORE, "sh", options, self.database, drops, staged]
            result = executor.run(argv, timeout=self.commit_timeout, check=False)
            if not result.ok:
                raise ExecutorError(
                    f"{executor.url}: restore of MySQL/MariaDB database {self.database!r} "
                    f"failed: {last_line(result.err) or f'exited {result.rc}'}"
                )

    def discard(self, executor: Executor, token: str) -> None:
        """Drop the token's scratch databases, if it has any, and its private directory."""
        self._check_token(token, self.staged_name, LOADED_NAME)
        path = PurePosixPath(token)
        names = scratch_names(self.database, path.parent.name)
        if path.name == LOADED_NAME and names is not None:
            with self._client(executor) as client:
                drop_scratch(client, names)
        remove_private_dir(executor, str(path.parent))

    def wipe(self, executor: Executor) -> None:
        with self._scrubbed(), self._options(executor) as options:
            live = self._query(executor, options, LIVE_OBJECTS)
            if not live:
                return
            drops = f"{PurePosixPath(options).parent}/drop.sql"
            executor.put(drops, io.BytesIO(_drop_script(live)))
            argv = ["sh", "-c", _RUN_SCRIPT, "sh", options, self.database, drops]
            result = executor.run(argv, timeout=self.commit_timeout, check=False)
            if not result.ok:
                raise ExecutorError(self._explain(executor, result))

    def fingerprint(self, executor: Executor) -> str:
        with self._scrubbed(), self._options(executor) as options:
            rows = self._query(executor, options, _COLUMNS)
            script = f"{PurePosixPath(options).parent}/fingerprint.sql"
            executor.put(script, io.BytesIO(_fingerprint_script(rows)))
            digest = hashlib.sha256()
            argv = ["sh", "-c", _RUN_SCRIPT, "sh", options, self.database, script]
            with executor.stream_out(argv) as stream:
                for line in iter_lines(stream):
                    digest.update(_AUTO_INCREMENT.sub(b"", line) + b"\n")
        return digest.hexdigest()

    def count_rows(
        self,
        executor: Executor,
        table: str,
        since_column: str | None = None,
        since: str | None = None,
    ) -> int:
        """Rows of `table`, or those whose `since_column` is later than `since` (ISO-8601 UTC):
        DATETIME and DATE read as UTC, TIMESTAMP in a UTC session, integers as unix seconds."""
        quoted = quote_name(check_identifier(table), "`")
        bound = since_bound(since_column, since)
        column = bound.column if bound else ""
        about = f"{executor.url}: MySQL/MariaDB database {self.database!r}"
        with self._scrubbed(), self._options(executor) as options:
            found = self._query(executor, options, _COLUMN_TYPE.format(table=table, column=column))
            if not found:
                raise ExecutorError(f"{about}: table {table!r} not found")
            sql = f"SET time_zone = '+00:00'; SELECT COUNT(*) FROM {quoted}"
            if bound:
                kind = found[0][1]
                if kind not in _EPOCH_TYPES | _TIME_TYPES:
                    problem = f"is {kind}: expected a date, time or unix epoch integer column"
                    raise ExecutorError(
                        f"{about}: column {column!r} of table {table!r} "
                        + (problem if kind else "not found")
                    )
                value = bound.epoch if kind in _EPOCH_TYPES else f"'{bound.text}'"
                sql += f" WHERE `{column}` > {value}"
            return int(self._query(executor, options, sql)[0][0])

    @contextmanager
    def _options(self, executor: Executor) -> Iterator[str]:
        """A private option file with the credentials; its directory is removed on exit."""
        directory = make_private_dir(executor, "tma-mysql")
        try:
            path = f"{directory}/client.cnf"
            executor.put(path, io.BytesIO(self._option_text().encode()))
            executor.run(["chmod", "600", path])
            yield path
        finally:
            remove_private_dir(executor, directory)

    @contextmanager
    def _client(self, executor: Executor) -> Iterator[_Client]:
        """One operation's client session (tma_ops.dbs.mysql_shadow.Client)."""
        with self._scrubbed(), self._options(executor) as options:
            yield _Client(self, executor, options)

    def _option_text(self) -> str:
        spec = self.spec
        given: dict[str, str | int | None] = {"user": spec.user, "password": self.password}
        given |= {"host": spec.host, "port": spec.port, "socket": spec.socket}
        lines = ["[client]"]
        lines += [f"{key}={_option_value(str(v))}" for key, v in given.items() if v is not None]
        lines += ["[mysql]", "connect-timeout=20"]
        return "\n".join(lines) + "\n"

    def _check(self, executor: Executor, options: str) -> None:
        self._query(executor, options, "SELECT 1")

    def _query(
        self, executor: Executor, options: str, sql: str, database: str | None = None
    ) -> list[list[str]]:
        """Rows of a query run in the live database, or in `database`."""
        result = self._sql(executor, options, sql, database)
        if not result.ok:
            raise ExecutorError(self._explain(executor, result))
        return [line.split("\t") for line in result.out.splitlines() if line]

    def _sql(
        self, executor: Executor, options: str, sql: str, database: str | None = None
    ) -> Result:
        argv = [
            "mysql",
            f"--defaults-extra-file={options}",
            "--batch",
            "--raw",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
            "-e",
            sql,
            "--",
            database or self.database,
        ]
        return executor.run(argv, timeout=300, check=False)

    def _explain(self, executor: Executor, result: Result) -> str:
        detail = last_line(result.err) or f"exited {result.rc}"
        hint = next((h for code, h in _HINTS if detail.startswith(code)), "client error")
        if result.rc == 127:
            hint = "the mysql client is not installed on the environment"
        return f"{executor.url}: MySQL/MariaDB database {self.database!r}: {hint} ({detail})"


class _Client:
    """The engine's client bound to one option file: what the shadow restore runs through."""

    def __init__(self, engine: MysqlEngine, executor: Executor, options: str) -> None:
        self.engine, self.executor, self.options = engine, executor, options
        self.database = engine.database

    def sql(self, sql: str, database: str | None = None) -> Result:
        return self.engine._sql(self.executor, self.options, sql, database)

    def query(self, sql: str, database: str | None = None) -> list[list[str]]:
        return self.engine._query(self.executor, self.options, sql, database)

    def put(self, name: str, content: bytes) -> str:
        path = f"{PurePosixPath(self.options).parent}/{name}"
        self.executor.put(path, io.BytesIO(content))
        return path

    def run_file(self, path: str, database: str | None = None) -> Result:
        argv = ["sh", "-c", _RUN_SCRIPT, "sh", self.options, database or self.database, path]
        return self.executor.run(argv, timeout=self.engine.commit_timeout, check=False)

    def explain(self, result: Result) -> str:
        return self.engine._explain(self.executor, result)


def _require_complete_dump(executor: Executor, staged: str) -> None:
    head = executor.run(["head", "-c", "1024", staged]).out
    tail = executor.run(["tail", "-c", "1024", staged]).out.strip().splitlines()
    if not any(header in head for header in _HEADERS):
        raise IntegrityError(f"{executor.url}: staged dump {staged} is not a mysqldump file")
    if not tail or not tail[-1].startswith(_TRAILER):
        raise IntegrityError(
            f"{executor.url}: staged dump {staged} is incomplete: it lacks mysqldump's "
            f"'{_TRAILER}' trailer (cut short?)"
        )


def _drop_script(live: list[list[str]]) -> bytes:
    names: dict[str, list[str]] = {}
    for kind, hex_name in live:
        names.setdefault(kind, []).append(_ident(bytes.fromhex(hex_name).decode()))
    statements = ["SET FOREIGN_KEY_CHECKS = 0;"]
    statements += [
        f"DROP {k} IF EXISTS {', '.join(names[k])};" for k in ("VIEW", "TABLE") if k in names
    ]
    for kind in ("PROCEDURE", "FUNCTION", "EVENT"):
        statements += [f"DROP {kind} IF EXISTS {name};" for name in names.get(kind, [])]
    return ("\n".join(statements) + "\n").encode()


def _fingerprint_script(rows: list[list[str]]) -> bytes:
    """One read-only snapshot: each table's definition, then a digest of each row in key order."""
    tables: dict[bytes, tuple[str, list[str], list[tuple[int, str]]]] = {}
    for hex_table, kind, hex_column, key_position in rows:
        raw = bytes.fromhex(hex_table)
        _, columns, key = tables.setdefault(raw, (kind, [], []))
        column = _ident(bytes.fromhex(hex_column).decode())
        columns.append(f"QUOTE(CAST({column} AS BINARY))")
        if int(key_position):
            key.append((int(key_position), column))
    lines = [
        "SET time_zone = '+00:00';",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT;",
    ]
    for number, raw in enumerate(sorted(tables)):
        kind, columns, key = tables[raw]
        table = _ident(raw.decode())
        lines += [f"SELECT '#{number}';", f"SHOW CREATE TABLE {table};"]
        if kind in ("BASE TABLE", "SYSTEM VERSIONED"):
            order = ", ".join(column for _, column in sorted(key)) or "tma_row"
            lines.append(
                f"SELECT SHA2(CONCAT_WS(',', {', '.join(columns)}), 256) AS tma_row "
                f"FROM {table} ORDER BY {order};"
            )
    lines.append("COMMIT;")
    return ("\n".join(lines) + "\n").encode()


def _option_value(value: str) -> str:
    """A double-quoted option-file value; the client unescapes backslash sequences in it."""
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(escapes.get(char, char) for char in value) + '"'


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"

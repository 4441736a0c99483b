"""PostgreSQL engine. Every step runs the client tools (pg_dump, pg_restore, psql) ON THE
ENVIRONMENT through the executor, so the same code works locally, over SSH and in Docker.

Credentials: the password goes into a password file (PGPASSFILE, chmod 600) in a private
directory (`mktemp -d`, 0700) removed after each operation. Only non-secret settings go on the
command line, as `env PGDATABASE=... PGHOST=... PGPORT=... PGUSER=... PGPASSFILE=<path> tool`;
error messages are scrubbed of the password.

A dump is `pg_dump -Fc` (one repeatable-read snapshot while the site writes). `prepare` stages it
and reads it through (`pg_restore --list`, then a full read into /dev/null: a cut archive fails).

Exact restore, in ONE transaction (nothing changes unless all of it succeeds): a prologue drops
every non-system schema the user owns (as owner of the database it owns `public`), recreates
`public` as initdb makes it, empties what the user owns in schemas it may not drop (`public` of a
superuser before PostgreSQL 15) and unlinks its large objects; then the output of `pg_restore
--single-transaction -f -` runs in the same psql session. pg_restore writes its final COMMIT only
after reading the whole archive: if it fails, psql ends inside the transaction, which rolls back.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import BinaryIO

from tma_ops.dbs.rows import Since, check_identifier, quote_name, since_bound
from tma_ops.dbs.server import (
    ServerEngine,
    iter_lines,
    last_line,
    make_private_dir,
    remove_private_dir,
    scrub,
)
from tma_ops.errors import ExecutorError, IntegrityError, InventoryError
from tma_ops.executors import Executor, Result
from tma_ops.model import ServerDatabase

_FEED_FAILED = 90
_PSQL = ["psql", "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1"]

# $1 prologue, $2 staged archive, $3 file for pg_restore's exit status (a pipeline loses it).
# A pg_restore that fails on its own (not killed by SIGPIPE = 141 because psql stopped first)
# means the archive could not be read, whatever psql then made of the cut-off stream.
_RESTORE = f"""
test -r "$1" && test -r "$2" || {{ echo "staged restore files are missing" >&2; exit 66; }}
{{ cat -- "$1" && pg_restore --single-transaction --no-owner --no-privileges -f - -- "$2"
  echo $? > "$3"; }} | {" ".join(_PSQL)} -o /dev/null
rc=$?
read feed < "$3" || feed=unknown
[ "$feed" = 0 ] && exit "$rc"
[ "$rc" -ne 0 ] && [ "$feed" = 141 ] && exit "$rc"
exit {_FEED_FAILED}
"""

_USER_SCHEMA = "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"

_PROLOGUE = f"""
SET client_min_messages = warning;
BEGIN;
DO $tma$
DECLARE
  item record;
  statement text;
  had_public boolean := EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'public');
BEGIN
  PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata
    WHERE pg_catalog.pg_has_role(lomowner, 'USAGE');
  FOR item IN SELECT n.oid, n.nspname, pg_catalog.pg_has_role(n.nspowner, 'USAGE') AS mine
      FROM pg_catalog.pg_namespace n WHERE {_USER_SCHEMA} LOOP
    IF item.mine THEN
      EXECUTE format('DROP SCHEMA %I CASCADE', item.nspname);
      CONTINUE;
    END IF;
    FOR statement IN
      SELECT format('DROP %s IF EXISTS %I.%I CASCADE', CASE c.relkind WHEN 'v' THEN 'VIEW'
          WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
          WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, item.nspname, c.relname)
        FROM pg_catalog.pg_class c WHERE c.relnamespace = item.oid
        AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
        AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
      UNION ALL SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure)
        FROM pg_catalog.pg_proc p WHERE p.pronamespace = item.oid AND p.prokind IN ('f', 'p')
        AND pg_catalog.pg_has_role(p.proowner, 'USAGE')
      UNION ALL SELECT format('DROP %s IF EXISTS %I.%I CASCADE',
          CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, item.nspname, t.typname)
        FROM pg_catalog.pg_type t WHERE t.typnamespace = item.oid AND t.typtype IN ('d', 'e', 'r')
        AND pg_catalog.pg_has_role(t.typowner, 'USAGE')
    LOOP
      EXECUTE statement;
    END LOOP;
  END LOOP;
  IF had_public AND NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'public') THEN
    CREATE SCHEMA public;
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pg_database_owner') THEN
      ALTER SCHEMA public OWNER TO pg_database_owner;
    END IF;
    GRANT USAGE ON SCHEMA public TO PUBLIC;
  END IF;
END
$tma$;
"""

_TABLES = f"""
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
  coalesce((SELECT string_agg(pg_catalog.quote_ident(a.attname)
      || CASE WHEN a.attcollation <> 0 THEN ' COLLATE "C"' ELSE '' END, ', ' ORDER BY k.ord)
    FROM pg_catalog.pg_index i
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = c.oid AND i.indisprimary), '')
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND {_USER_SCHEMA}
ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"
"""

# Definitions only: sequence positions, like MySQL's AUTO_INCREMENT, are left out. Each query
# gives one text column `item`, sorted bytewise (the databases' collations may differ).
_DEFINITIONS = (
    f"SELECT 'schema ' || quote_ident(n.nspname) FROM pg_namespace n WHERE {_USER_SCHEMA}",
    f"""SELECT format('column %I.%I %s %s %I %s %s %s', n.nspname, c.relname, c.relkind,
      to_char(row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), 'FM0000000000'),
      a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
      pg_get_expr(d.adbin, d.adrelid))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
    WHERE {_USER_SCHEMA} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')""",
    f"""SELECT format('constraint %I.%I %I %s', n.nspname, c.relname, o.conname,
      pg_get_constraintdef(o.oid))
    FROM pg_constraint o JOIN pg_class c ON c.oid = o.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER_SCHEMA}""",
    f"""SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {_USER_SCHEMA}""",
    f"""SELECT format('view %I.%I %s %s', n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {_USER_SCHEMA} AND c.relkind IN ('v', 'm')""",
    f"""SELECT 'routine ' || pg_get_functiondef(p.oid) FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE {_USER_SCHEMA} AND p.prokind IN ('f', 'p')""",
    f"""SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {_USER_SCHEMA} AND NOT t.tgisinternal""",
    """SELECT format('sequence %I.%I %s %s %s %s %s %s', schemaname, sequencename, data_type,
      start_value, min_value, max_value, increment_by, cycle) FROM pg_sequences
    WHERE schemaname !~ '^pg_' AND schemaname <> 'information_schema'""",
)
_SNAPSHOT = """
SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
SET extra_float_digits = 1; SET bytea_output = 'hex'; SET search_path = pg_catalog;
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
"""

# The relation kind and the column's type; identifiers are checked (tma_ops.dbs.rows) before
# they are written into it.
_COLUMN_TYPE = """SELECT coalesce((SELECT relkind::text FROM pg_catalog.pg_class
    WHERE oid = to_regclass('{table}') AND relkind IN ('r', 'p', 'v', 'm', 'f')), ''),
  coalesce((SELECT t.typname::text FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = to_regclass('{table}') AND a.attname = '{column}' AND a.attnum > 0
    AND NOT a.attisdropped), '')"""
_TIME_TYPES = {"timestamptz", "timestamp", "date"}
_EPOCH_TYPES = {"int2", "int4", "int8", "numeric", "float4", "float8"}

_HINTS = (
    (r"password authentication failed|no password supplied", "check the user and password"),
    (r'role ".*" does not exist', "the user does not exist"),
    (r'database ".*" does not exist', "the database does not exist"),
    (r"permission denied for database", "the user may not connect to the database"),
    (r"could not translate host name", "unknown server host"),
    (
        r"Connection refused|No such file or directory|timeout expired|could not connect",
        "the server is unreachable",
    ),
)


class PostgresEngine(ServerEngine):
    name = "postgresql"
    extension = "pgdump"
    restore_prefix = "tma-pg-restore"
    staged_name = "dump.pgdump"

    def __init__(self, spec: ServerDatabase, *, commit_timeout: float = 3600.0) -> None:
        super().__init__(spec, commit_timeout=commit_timeout)
        if self.password is not None and ("\n" in self.password or "\r" in self.password):
            raise InventoryError(
                f"database {spec.name!r}: a PostgreSQL password cannot contain a line break"
            )

    def check(self, executor: Executor) -> None:
        with self._scrubbed(), self._session(executor) as (_, env):
            self._check(executor, env)

    @contextmanager
    def dump(self, executor: Executor) -> Iterator[BinaryIO]:
        with self._scrubbed(), self._session(executor) as (_, env):
            self._check(executor, env)  # a clear error rather than an empty stream
            # Uncompressed: zstd compresses it after, and unchanged data cuts into equal chunks.
            argv = [*env, "pg_dump", "-w", "-Fc", "-Z0", "--no-owner", "--no-privileges"]
            with executor.stream_out(argv) as stream:
                yield stream

    def _require_sound_dump(self, executor: Executor, staged: str) -> None:
        _require_sound_archive(executor, staged)

    def load_aside(self, executor: Executor, token: str) -> str:
        """Nothing to do ahead: the commit's single transaction already keeps the live database
        whole until it ends."""
        self._check_token(token)
        return token

    def commit(self, executor: Executor, token: str) -> None:
        self._check_token(token)
        with self._scrubbed(), self._session(executor) as (directory, env):
            prologue, status = f"{directory}/prologue.sql", f"{directory}/feed.status"
            executor.put(prologue, io.BytesIO(_PROLOGUE.encode()))
            argv = [*env, "sh", "-c", _RESTORE, "sh", prologue, token, status]
            result = executor.run(argv, timeout=self.commit_timeout, check=False)
        if result.rc == _FEED_FAILED:
            raise IntegrityError(
                f"{executor.url}: restore of PostgreSQL database {self.database!r} rolled back: "
                f"pg_restore could not read {token} ({self._detail(result)})"
            )
        if not result.ok:
            raise ExecutorError(
                f"{executor.url}: restore of PostgreSQL database {self.database!r} rolled back: "
                f"{self._detail(result)}"
            )
        self.discard(executor, token)

    def wipe(self, executor: Executor) -> None:
        """The restore's prologue alone, committed: the user's schemas dropped, `public` as
        initdb makes it."""
        with self._scrubbed(), self._session(executor) as (directory, env):
            script = f"{directory}/wipe.sql"
            executor.put(script, io.BytesIO((_PROLOGUE + "COMMIT;\n").encode()))
            argv = [*env, *_PSQL, "-f", script]
            result = executor.run(argv, timeout=self.commit_timeout, check=False)
            if not result.ok:
                raise ExecutorError(self._explain(executor, result))

    def fingerprint(self, executor: Executor) -> str:
        with self._scrubbed(), self._session(executor) as (directory, env):
            tables = self._query(executor, env, _TABLES, columns=2)
            script = f"{directory}/fingerprint.sql"
            executor.put(script, io.BytesIO(_fingerprint_script(tables)))
            digest = hashlib.sha256()
            with executor.stream_out([*env, *_PSQL, "-At", "-f", script]) as stream:
                for line in iter_lines(stream):
                    digest.update(line + b"\n")
        return digest.hexdigest()

    def count_rows(
        self,
        executor: Executor,
        table: str,
        since_column: str | None = None,
        since: str | None = None,
    ) -> int:
        """Rows of `table` (or schema.table), or those whose `since_column` is later than `since`
        (ISO-8601 UTC): timestamptz exactly, timestamp and date read as UTC, numbers as unix
        seconds."""
        quoted = quote_name(check_identifier(table, qualified=True), '"')
        bound = since_bound(since_column, since)
        column = bound.column if bound else ""
        about = f"{executor.url}: PostgreSQL database {self.database!r}"
        with self._scrubbed(), self._session(executor) as (_, env):
            sql = _COLUMN_TYPE.format(table=quoted, column=column)
            kind, type_name = self._query(executor, env, sql, columns=2)[0]
            if not kind:
                raise ExecutorError(f"{about}: table {table!r} not found")
            sql = f"SELECT COUNT(*) FROM {quoted}"
            if bound:
                if type_name not in _EPOCH_TYPES | _TIME_TYPES:
                    problem = f"is {type_name}: expected a date, time or unix epoch number column"
                    raise ExecutorError(
                        f"{about}: column {column!r} of table {table!r} "
                        + (problem if type_name else "not found")
                    )
                sql += f' WHERE "{column}" > {_since_value(type_name, bound)}'
            return int(self._query(executor, env, sql, columns=1)[0][0])

    @contextmanager
    def _session(self, executor: Executor) -> Iterator[tuple[str, list[str]]]:
        """A private directory (with the password file) and the `env ...` command prefix."""
        directory = make_private_dir(executor, "tma-pg")
        try:
            env = ["env", f"PGDATABASE={self.database}", "PGCONNECT_TIMEOUT=20"]
            env += self._location()
            if self.password is not None:
                passfile = f"{directory}/pgpass"
                escaped = self.password.replace("\\", "\\\\").replace(":", "\\:")
                executor.put(passfile, io.BytesIO(f"*:*:*:*:{escaped}\n".encode()))
                executor.run(["chmod", "600", passfile])
                env.append(f"PGPASSFILE={passfile}")
            yield directory, env
        finally:
            remove_private_dir(executor, directory)

    def _location(self) -> list[str]:
        spec, found = self.spec, []
        if spec.socket:  # a socket directory, or the socket file itself (.s.PGSQL.<port>)
            path = PurePosixPath(spec.socket)
            socket_file = path.name.startswith(".s.PGSQL.")
            found.append(f"PGHOST={path.parent if socket_file else path}")
            if socket_file and spec.port is None:
                found.append(f"PGPORT={path.name.removeprefix('.s.PGSQL.')}")
        elif spec.host:
            found.append(f"PGHOST={spec.host}")
        if spec.port is not None:
            found.append(f"PGPORT={spec.port}")
        if spec.user:
            found.append(f"PGUSER={spec.user}")
        return found

    def _check(self, executor: Executor, env: list[str]) -> None:
        self._query(executor, env, "SELECT 1", columns=1)

    def _query(self, executor: Executor, env: list[str], sql: str, columns: int) -> list[list[str]]:
        """Rows of a query: every field ends with a NUL (names may hold any other character)."""
        argv = [*env, *_PSQL, "-At", "--field-separator-zero", "--record-separator-zero", "-c", sql]
        result = executor.run(argv, timeout=300, check=False)
        if not result.ok:
            raise ExecutorError(self._explain(executor, result))
        fields = result.out.split("\0")[:-1]
        return [fields[i : i + columns] for i in range(0, len(fields), columns)]

    def _explain(self, executor: Executor, result: Result) -> str:
        hint = next((h for pattern, h in _HINTS if re.search(pattern, result.err)), "client error")
        if result.rc == 127:
            hint = "the PostgreSQL client tools are not installed on the environment"
        detail = self._detail(result)
        return f"{executor.url}: PostgreSQL database {self.database!r}: {hint} ({detail})"

    def _detail(self, result: Result) -> str:
        """The first error line (libpq adds context lines after it), scrubbed."""
        lines = [line.strip() for line in result.err.splitlines() if line.strip()]
        errors = [line for line in lines if re.search(r"error:|ERROR:|FATAL:", line)]
        detail = (errors or lines or [f"exited {result.rc}"])[0]
        return scrub(detail, self.password)


def _since_value(type_name: str, bound: Since) -> str:
    if type_name in _EPOCH_TYPES:
        return bound.epoch
    if type_name == "timestamptz":
        return f"'{bound.text}+00'::timestamptz"
    return f"'{bound.text}'::timestamp"


def _require_sound_archive(executor: Executor, staged: str) -> None:
    checks = (
        (["pg_restore", "--list", staged], "is not a pg_dump archive"),
        (["pg_restore", "-f", "/dev/null", staged], "is damaged or incomplete"),
    )
    for argv, problem in checks:
        result = executor.run(argv, timeout=3600, check=False)
        if result.rc == 127:
            raise ExecutorError(f"{executor.url}: pg_restore is not installed on the environment")
        if not result.ok:
            raise IntegrityError(
                f"{executor.url}: staged dump {staged} {problem}: {last_line(result.err)}"
            )


def _fingerprint_script(tables: list[list[str]]) -> bytes:
    """Definitions, then a digest of each row in primary-key (else digest) order, one snapshot."""
    lines = [_SNAPSHOT]
    lines += [f'SELECT item FROM ({q}) AS s(item) ORDER BY item COLLATE "C";' for q in _DEFINITIONS]
    for number, (table, key) in enumerate(tables):
        lines.append(f"SELECT '#{number}';")
        lines.append(
            f"SELECT md5(ROW(tma_row.*)::text) AS tma_digest FROM ONLY {table} AS tma_row "
            f"ORDER BY {key or 'tma_digest'};"
        )
    lines.append("COMMIT;")
    return ("\n".join(lines) + "\n").encode()

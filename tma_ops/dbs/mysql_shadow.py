"""The MariaDB/MySQL shadow restore (the engine is tma_ops.dbs.mysql): the dump loaded into a
scratch database beside the live one, then swapped in by one RENAME TABLE. The decisions (names,
leftovers, the swap script, what a failed step means) are pure functions; the steps run through
the engine's client session (`Client`).

A restore token's private directory (`tma-mysql-restore.XXXXXXXXXX`) names two scratch databases
beside the live one: `<live>__tma_<x>` (the shadow, loaded from the dump) and `<live>__tma_<x>_old`
(where the live tables go when the shadow's come in). Both share the prefix `<live>__tma_`, so
that a shared host can grant it alone: GRANT ALL ON `<live>\\_\\_tma\\_%`.* TO the site's user
(the server takes such a pattern, its backslashes included, up to 64 characters).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Protocol

from tma_ops.dbs.server import last_line
from tma_ops.errors import ExecutorError, IntegrityError
from tma_ops.executors import Executor, Result

NAME_LIMIT = 64  # characters of a MariaDB/MySQL database name
SCRATCH_INFIX = "__tma_"
_SUFFIX = re.compile(r"^[a-z0-9]{6,16}$")

# mysqldump writes views as `/*!50001 CREATE ...`, triggers, routines and events between
# `DELIMITER` lines, a foreign key as a `  CONSTRAINT ... FOREIGN KEY` line of CREATE TABLE. Rows
# never start a line with these (an INSERT's values start with `(`, their newlines are escaped):
# a match only costs the fast path, the shadow's content is checked after the load anyway.
NOT_ONLY_TABLES_PATTERNS = (
    r"^DELIMITER ",
    r"^/\*!50001 CREATE",
    r"^  CONSTRAINT .* FOREIGN KEY ",
)

# Errors of CREATE DATABASE that mean "not allowed here" (a host granting the site's own
# database only): the restore loads the live database instead.
_REFUSED = ("ERROR 1044", "ERROR 1142", "ERROR 1227")
# Errors of the load into the shadow that mean "no room for a second copy": the live load drops
# the old tables before it writes, and may fit where two copies do not.
_NO_ROOM = ("ERROR 1114", "ERROR 1021", "errno: 28", "No space left")


# The live database's tables, views, routines and events (what an exact restore drops first).
LIVE_OBJECTS = """
SELECT IF(TABLE_TYPE = 'VIEW', 'VIEW', 'TABLE'), HEX(TABLE_NAME) FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = DATABASE()
UNION ALL SELECT ROUTINE_TYPE, HEX(ROUTINE_NAME) FROM information_schema.ROUTINES
 WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION')
UNION ALL SELECT 'EVENT', HEX(EVENT_NAME) FROM information_schema.EVENTS
 WHERE EVENT_SCHEMA = DATABASE()
"""
# For the swap, triggers too (RENAME TABLE refuses to move a table with triggers to another
# database).
_LIVE_OBJECTS = (
    LIVE_OBJECTS.rstrip("\n")
    + """
UNION ALL SELECT 'TRIGGER', HEX(TRIGGER_NAME) FROM information_schema.TRIGGERS
 WHERE TRIGGER_SCHEMA = DATABASE()
"""
)
# What a loaded shadow holds besides base tables without foreign keys (run in the shadow).
_NOT_ONLY_TABLES = """
SELECT COUNT(*) FROM (
 SELECT 1 AS found FROM information_schema.TABLES
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE <> 'BASE TABLE'
 UNION ALL SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()
 UNION ALL SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()
 UNION ALL SELECT 1 FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()
 UNION ALL SELECT 1 FROM information_schema.REFERENTIAL_CONSTRAINTS
  WHERE CONSTRAINT_SCHEMA = DATABASE() OR UNIQUE_CONSTRAINT_SCHEMA = DATABASE()
) AS others
"""
_TABLES = """SELECT HEX(TABLE_NAME) FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"""
_SCHEMATA = "SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA"
_DEFAULTS = """SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME
 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()"""
_CHARSET_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class Client(Protocol):
    """The engine's mysql client for one operation (its private option file on the
    environment); SQL runs in the live database unless another one is named."""

    executor: Executor
    database: str

    def sql(self, sql: str, database: str | None = None) -> Result: ...

    def query(self, sql: str, database: str | None = None) -> list[list[str]]: ...

    def put(self, name: str, content: bytes) -> str:
        """A file beside the option file; its path."""
        ...

    def run_file(self, path: str, database: str | None = None) -> Result:
        """Feed an SQL file on the environment to one session (the long-running timeout)."""
        ...

    def explain(self, result: Result) -> str: ...


@dataclass(frozen=True)
class ScratchNames:
    shadow: str  # loaded from the dump beside the live database
    old: str  # receives the live tables in the swap, then dropped


def scratch_names(database: str, token_dir: str) -> ScratchNames | None:
    """The scratch databases of a restore token's private directory, or None when the live
    name is too long to derive them (the restore then loads the live database)."""
    suffix = token_dir.rpartition(".")[2].lower()
    if not _SUFFIX.match(suffix):
        raise ValueError(f"not a restore directory: {token_dir!r}")
    shadow = f"{database}{SCRATCH_INFIX}{suffix}"
    names = ScratchNames(shadow, f"{shadow}_old")
    return names if len(names.old) <= NAME_LIMIT else None


def leftover_scratch(database: str, schemas: list[str]) -> list[str]:
    """The databases among `schemas` that an interrupted restore of `database` left behind.
    Letter case aside: a server with lower_case_table_names stores `Site__tma_x` as
    `site__tma_x`."""
    name = re.escape(database + SCRATCH_INFIX) + r"[a-z0-9]{6,16}(_old)?"
    pattern = re.compile(name, re.IGNORECASE)
    return sorted(name for name in schemas if pattern.fullmatch(name))


def refused(detail: str) -> bool:
    """Whether a failed CREATE DATABASE was refused for lack of privileges."""
    return detail.startswith(_REFUSED)


def out_of_room(detail: str) -> bool:
    """Whether a failed load into the shadow ran out of space."""
    return any(sign in detail for sign in _NO_ROOM)


def swap_script(
    database: str, names: ScratchNames, live: list[tuple[str, str]], shadow_tables: list[str]
) -> bytes:
    """One session: the live database's views, triggers, routines and events dropped, then ONE
    RENAME TABLE moving every live table to `old` and every shadow table into the live database
    (atomic: a reader sees the old tables or the new ones). `live`: (kind, name) pairs, kind
    TABLE, VIEW, TRIGGER, PROCEDURE, FUNCTION or EVENT."""
    statements = ["SET FOREIGN_KEY_CHECKS = 0;"]
    views = [ident(name) for kind, name in live if kind == "VIEW"]
    if views:
        statements.append(f"DROP VIEW IF EXISTS {', '.join(views)};")
    for kind in ("TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"):
        statements += [f"DROP {kind} IF EXISTS {ident(n)};" for k, n in live if k == kind]
    moves = [
        f"{ident(database)}.{ident(name)} TO {ident(names.old)}.{ident(name)}"
        for kind, name in live
        if kind == "TABLE"
    ]
    moves += [
        f"{ident(names.shadow)}.{ident(name)} TO {ident(database)}.{ident(name)}"
        for name in shadow_tables
    ]
    if moves:
        statements.append("RENAME TABLE " + ",\n  ".join(moves) + ";")
    return ("\n".join(statements) + "\n").encode()


# -- the steps ------------------------------------------------------------------------------


def holds_more_than_tables(executor: Executor, staged: str) -> bool:
    """A quick look at the dump's statements for views, triggers, routines, events and foreign
    keys: the shadow would only be loaded to be dropped."""
    patterns = [arg for pattern in NOT_ONLY_TABLES_PATTERNS for arg in ("-e", pattern)]
    argv = ["env", "LC_ALL=C", "grep", "-q", "-E", *patterns, "--", staged]
    return executor.run(argv, check=False).rc == 0


def load_shadow(client: Client, names: ScratchNames, staged: str) -> bool:
    """Both scratch databases made (an interrupted restore's dropped first) and the dump replayed
    into the shadow; False, with nothing left, when the live database must be loaded instead."""
    _drop_leftovers(client)
    if not _create_scratch(client, names):
        return False
    try:
        result = client.run_file(staged, names.shadow)
        if not result.ok:
            detail = last_line(result.err) or f"exited {result.rc}"
            if not out_of_room(detail):
                raise ExecutorError(
                    f"{client.executor.url}: the dump of MySQL/MariaDB database "
                    f"{client.database!r} does not load (into scratch database {names.shadow!r}; "
                    f"the live one is untouched): {detail}"
                )
            loaded = False
        else:
            loaded = client.query(_NOT_ONLY_TABLES, names.shadow) == [["0"]]
    except BaseException:
        drop_scratch(client, names)
        raise
    if not loaded:
        drop_scratch(client, names)
    return loaded


def swap_in(client: Client, names: ScratchNames) -> None:
    """The live database's other objects dropped, then one RENAME TABLE (swap_script)."""
    there = client.sql("SELECT 1", names.shadow)
    if not there.ok:
        if not last_line(there.err).startswith("ERROR 1049"):  # not "unknown database"
            raise ExecutorError(client.explain(there))
        raise IntegrityError(
            f"{client.executor.url}: scratch database {names.shadow!r} loaded for the restore "
            f"of {client.database!r} is gone; nothing was changed"
        )
    live = [(kind, _text(name)) for kind, name in client.query(_LIVE_OBJECTS)]
    shadow = [_text(row[0]) for row in client.query(_TABLES, names.shadow)]
    script = client.put("swap.sql", swap_script(client.database, names, live, shadow))
    result = client.run_file(script)
    if not result.ok:
        raise ExecutorError(
            f"{client.executor.url}: swap of the restored MySQL/MariaDB database "
            f"{client.database!r} failed: {last_line(result.err) or f'exited {result.rc}'}"
        )


def drop_scratch(client: Client, names: ScratchNames) -> None:
    """Best effort: what stays is dropped by the next restore of this database."""
    drops = " ".join(f"DROP DATABASE IF EXISTS {ident(n)};" for n in (names.old, names.shadow))
    with contextlib.suppress(ExecutorError):
        client.sql(drops)


def _drop_leftovers(client: Client) -> None:
    """Scratch databases of an interrupted restore of this database: garbage by now."""
    leftovers = leftover_scratch(client.database, _schemas(client))
    if leftovers:
        client.sql(" ".join(f"DROP DATABASE IF EXISTS {ident(name)};" for name in leftovers))


def _create_scratch(client: Client, names: ScratchNames) -> bool:
    """Both scratch databases with the live one's defaults; False when the server refuses them."""
    charset, collation = client.query(_DEFAULTS)[0]
    if not (_CHARSET_NAME.match(charset) and _CHARSET_NAME.match(collation)):
        raise ExecutorError(
            f"{client.executor.url}: MySQL/MariaDB database {client.database!r} has unexpected "
            f"defaults {charset!r} {collation!r}"
        )
    result = client.sql(
        " ".join(
            f"CREATE DATABASE {ident(name)} CHARACTER SET {charset} COLLATE {collation};"
            for name in (names.shadow, names.old)
        )
    )
    if result.ok:
        return True
    if refused(last_line(result.err)):
        drop_scratch(client, names)
        return False
    raise ExecutorError(client.explain(result))


def _schemas(client: Client) -> list[str]:
    return [_text(row[0]) for row in client.query(_SCHEMATA)]


def _text(hex_name: str) -> str:
    return bytes.fromhex(hex_name).decode()


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"

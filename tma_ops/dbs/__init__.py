"""Database engine seam: dump a site's database as a stream; restore one in two phases.

Restore is split so that nothing live changes before the whole stream has been received and its
checksums checked: `prepare` stages the stream next to the database, `load_aside` (once the
checksums are good) may load it beside the live database while the restore does other work, and
`commit` swaps it in.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

from tma_ops.errors import InventoryError
from tma_ops.executors import Executor, open_executor
from tma_ops.model import Database, Environment, ServerDatabase, SqliteDatabase
from tma_ops.streams import Readable


class DatabaseEngine(Protocol):
    name: str
    extension: str  # part of the stored object name: db.<extension>.zst

    def dump(self, executor: Executor) -> AbstractContextManager[BinaryIO]: ...

    def prepare(self, executor: Executor, source: Readable) -> str:
        """Stage a dump on the environment; return a token for commit/discard."""
        ...

    def load_aside(self, executor: Executor, token: str) -> str:
        """Load a staged and checked dump beside the live database, so that `commit` only swaps
        it in; the token for commit/discard (the same one when there is nothing to do ahead)."""
        ...

    def commit(self, executor: Executor, token: str) -> None: ...

    def discard(self, executor: Executor, token: str) -> None: ...

    def check(self, executor: Executor) -> None:
        """Raise a clear TmaError when the database cannot be reached or does not exist."""
        ...

    def wipe(self, executor: Executor) -> None:
        """Empty the database (a sandbox torn down after a restore test): SQLite's file is
        deleted, a server database loses every table, view and routine; the server's other
        databases are never touched."""
        ...

    def fingerprint(self, executor: Executor) -> str:
        """A digest of the database content, equal for equal content (used by checks and tests)."""
        ...

    def count_rows(
        self,
        executor: Executor,
        table: str,
        since_column: str | None = None,
        since: str | None = None,
    ) -> int:
        """Rows of `table`, or those whose `since_column` is later than `since` (ISO-8601 UTC)."""
        ...


def open_database(spec: Database) -> DatabaseEngine:
    if isinstance(spec, SqliteDatabase):
        from tma_ops.dbs.sqlite import SqliteEngine

        return SqliteEngine(spec.path)
    if spec.engine in ("mysql", "mariadb"):
        from tma_ops.dbs.mysql import MysqlEngine

        return MysqlEngine(spec)
    if spec.engine == "postgresql":
        from tma_ops.dbs.postgresql import PostgresEngine

        return PostgresEngine(spec)
    raise InventoryError(
        f"database engine {spec.engine!r} is not supported; expected sqlite, mysql, mariadb "
        "or postgresql"
    )


def database_of(env: Environment) -> tuple[DatabaseEngine, Executor]:
    """An environment's database engine and the executor its client tools run through."""
    spec = env.database
    where = spec.executor if isinstance(spec, ServerDatabase) and spec.executor else env.executor
    return open_database(spec), open_executor(where)

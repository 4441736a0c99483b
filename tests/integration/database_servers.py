"""Private MariaDB and PostgreSQL servers, one of each for the whole test session."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import mariadb as maria
from harness import postgres as pg


def _serve(
    missing: Callable[[], str | None],
    prefix: str,
    start: Callable[[Path], Any],
    stop: Callable[[Any], None],
) -> Iterator[Any]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix=prefix))  # under /tmp: the service user must reach it
    try:
        server = start(base)
        try:
            yield server
        finally:
            stop(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[maria.MariaDbServer]:
    yield from _serve(
        maria.missing_requirements, "tma-mariadb-", maria.start_mariadb, maria.stop_mariadb
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.PostgresServer]:
    yield from _serve(pg.missing_requirements, "tma-postgres-", pg.start_postgres, pg.stop_postgres)

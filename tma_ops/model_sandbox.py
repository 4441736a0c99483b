"""The sandbox environment, where restore tests land: its settings and the rule that it has a
place of its own (never production's or staging's files or database)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from tma_ops.model import Database, Environment

SANDBOX = "sandbox"
DEFAULT_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432}
LOOPBACK = {None, "", "localhost", "127.0.0.1", "::1"}


class RestoreTestSpec(BaseModel):
    """How `tma-ops restore-test` treats a site: how often, how to start and stop the restored
    copy in the sandbox, and whether to tear it down afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cadence_days: int | None = Field(None, ge=1)  # else the tier's (restore_cadence)
    start: str | None = None  # shell command run in the sandbox's code root, e.g. `php -S ... &`
    stop: str | None = None
    teardown: bool = True
    ready_timeout: float = Field(60, gt=0)  # seconds to wait for the first http check


def is_production(name: str, env: Environment) -> bool:
    return name == "production" or env.production


def sandbox_conflict(sandbox: Environment, others: Mapping[Any, Environment]) -> str | None:
    """Why `sandbox` may not be used (a one-line reason naming the key), or None when it has a
    place of its own: not marked production, files and database shared with no other
    environment. Trees nested in one another count as shared: restoring or removing one would
    change the other."""
    if sandbox.production:
        return (
            "sandbox.production: a sandbox is overwritten by restore tests; it cannot be production"
        )
    for name, env in others.items():
        if name == SANDBOX:
            continue
        if same_executor(sandbox.executor.url, env.executor.url) and trees_overlap(
            sandbox.root, env.root
        ):
            return (
                f"sandbox.root: {sandbox.root!r} overlaps {name}'s root {env.root!r} on "
                f"{env.executor.url}; expected a directory of its own"
            )
        if same_database(sandbox, env):
            return (
                f"sandbox.database: {describe_database(sandbox.database)} is also {name}'s; "
                "expected a database of its own"
            )
    return None


def same_executor(first: str, second: str) -> bool:
    return _executor_identity(first) == _executor_identity(second)


def _executor_identity(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port, parts.username or ""


def trees_overlap(first: str, second: str) -> bool:
    a, b = posixpath.normpath(first), posixpath.normpath(second)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def same_database(first: Environment, second: Environment) -> bool:
    return database_identity(first) == database_identity(second)


def database_identity(env: Environment) -> tuple[object, ...]:
    """What names one database: its file on its machine (SQLite), or its server and name."""
    spec = env.database
    if spec.engine == "sqlite":
        return ("sqlite", _executor_identity(env.executor.url), posixpath.normpath(spec.path))
    family = "postgresql" if spec.engine == "postgresql" else "mysql"
    host = (spec.host or "").lower()
    if host not in LOOPBACK and not spec.socket:
        server: tuple[object, ...] = ("host", host, spec.port or DEFAULT_PORTS[spec.engine])
    else:
        client = spec.executor.url if spec.executor else env.executor.url
        where = spec.socket or spec.port or DEFAULT_PORTS[spec.engine]
        server = ("local", _executor_identity(client), where)
    return (family, server, spec.name)


def describe_database(spec: Database) -> str:
    if spec.engine == "sqlite":
        return f"SQLite database {spec.path!r}"
    where = spec.socket or f"{spec.host or 'localhost'}:{spec.port or DEFAULT_PORTS[spec.engine]}"
    return f"{spec.engine} database {spec.name!r} on {where}"

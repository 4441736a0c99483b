"""Where the demo CMS reads its content: SQLite, or a MariaDB/PostgreSQL server.

An environment directory holds `site.sqlite`, or `database.json` naming a server database
({"engine": "mysql"|"mariadb"|"postgresql", "name", "user", "password", "host", "port"}, or for
a MariaDB in a container {"engine", "name", "container", "docker_host"}), kept
beside `www/` like a site's own settings file, so a refresh of the code never overwrites it.
Server databases are read with their command-line clients: the demo needs no driver.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPTIONS_SQL = "SELECT name, value FROM options"
POSTS_SQL = "SELECT id, title, body, published FROM posts ORDER BY published DESC, id DESC"
# UTF-8 whatever the locale: a container's exec has none, and the client then speaks latin1.
MYSQL_OUTPUT = ("--xml", "--default-character-set=utf8mb4")


class DatabaseUnavailable(Exception):
    """The site's database cannot be read (gone, refused, wrong credentials)."""


@dataclass(frozen=True)
class SiteData:
    options: dict[str, str]
    posts: list[dict[str, Any]]


def read_site_data(env_dir: Path) -> SiteData:
    settings = env_dir / "database.json"
    if settings.exists():
        config = json.loads(settings.read_text(encoding="utf-8"))
        query = _mysql_rows if config["engine"] in ("mysql", "mariadb") else _postgres_rows
    else:
        config, query = {"path": str(env_dir / "site.sqlite")}, _sqlite_rows
    options = {row["name"]: row["value"] for row in query(config, OPTIONS_SQL)}
    return SiteData(options=options, posts=query(config, POSTS_SQL))


def _sqlite_rows(config: dict[str, Any], sql: str) -> list[dict[str, Any]]:
    uri = Path(config["path"]).resolve().as_uri() + "?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            connection.row_factory = sqlite3.Row
            return [dict(row) for row in connection.execute(sql)]
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(str(exc)) from exc


def _mysql_rows(config: dict[str, Any], sql: str) -> list[dict[str, Any]]:
    if config.get("container"):
        # A database in a container is read from inside it, as its root (socket auth).
        docker = ["docker", *(["-H", config["docker_host"]] if config.get("docker_host") else [])]
        argv = [*docker, "exec", config["container"], "mysql", *MYSQL_OUTPUT, "-e", sql]
        out = _client([*argv, config["name"]])
    else:
        options = "[client]\n" + "".join(
            f"{key}={config[key]}\n"
            for key in ("user", "password", "host", "port")
            if config.get(key)
        )
        with _private_file(options) as defaults:
            argv = ["mysql", f"--defaults-extra-file={defaults}", *MYSQL_OUTPUT, "-e", sql]
            out = _client([*argv, config["name"]])
    rows = ElementTree.fromstring(out).findall("row")
    return [{str(f.get("name")): f.text or "" for f in row.findall("field")} for row in rows]


def _postgres_rows(config: dict[str, Any], sql: str) -> list[dict[str, Any]]:
    line = ":".join(str(config.get(k) or "*") for k in ("host", "port")) + ":*:*:"
    with _private_file(line + str(config.get("password", "")) + "\n") as passfile:
        environment = {**os.environ, "PGPASSFILE": passfile, "PGCONNECT_TIMEOUT": "5"}
        argv = ["psql", "--csv", "-X", "-v", "ON_ERROR_STOP=1", "-c", sql, "-d", config["name"]]
        for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
            if config.get(key):
                argv[1:1] = [flag, str(config[key])]
        out = _client(argv, environment)
    return list(csv.DictReader(io.StringIO(out)))


def _client(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        result = subprocess.run(
            argv, capture_output=True, encoding="utf-8", errors="replace", timeout=10, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatabaseUnavailable(f"{argv[0]}: {exc}") from exc
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise DatabaseUnavailable(lines[-1] if lines else f"{argv[0]} exited {result.returncode}")
    return result.stdout


@contextmanager
def _private_file(text: str) -> Iterator[str]:
    """A 0600 temporary file holding credentials, removed on exit."""
    handle, path = tempfile.mkstemp(prefix="tma-demo-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        yield path
    finally:
        os.unlink(path)

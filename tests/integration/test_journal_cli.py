"""`journal show` and `journal verify` as real processes, on the journal the inventory names
(PostgreSQL here) and on the state directory's SQLite file when only --state is given."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import run
from harness import postgres as pg

from tma_ops.commands import open_journal
from tma_ops.config import load_inventory
from tma_ops.journal import Journal
from tma_ops.journal_postgres import PostgresJournal

pytestmark = pytest.mark.integration

USER = "tma_journal_cli"
PASSWORD = "cli-Pa55-journal-41d2"
SITES = """\
sites:
  blog:
    tier: business
    store: file://./store
    stack: {kind: archive, channel: channel, components_dir: plugins, version_file: VERSION}
    environments:
      production:
        executor: local://
        root: prod
        database: {engine: sqlite, path: prod.sqlite}
        smoke: [{url: "http://127.0.0.1:1/"}]
      staging:
        executor: local://
        root: staging
        database: {engine: sqlite, path: staging.sqlite}
        smoke: [{url: "http://127.0.0.1:1/"}]
"""


@pytest.fixture
def pg_inventory(postgres_server: pg.PostgresServer, tmp_path: Path) -> Iterator[Path]:
    """tma.yaml whose journal is a fresh PostgreSQL database, its password in a file."""
    database = f"journal_cli_{os.getpid()}_{tmp_path.name[-12:].replace('-', '_')}"
    pg.create_database(postgres_server, database, USER, PASSWORD)
    (tmp_path / "journal-password").write_text(PASSWORD + "\n", encoding="utf-8")
    url = f"postgresql://{USER}@{postgres_server.address}:{postgres_server.port}/{database}"
    path = tmp_path / "tma.yaml"
    path.write_text(
        f"state_dir: state\njournal:\n  url: {url}\n  password_file: journal-password\n{SITES}",
        encoding="utf-8",
    )
    try:
        yield path
    finally:
        pg.drop_database(postgres_server, database)


def test_inventory_journal_is_postgresql_end_to_end(
    pg_inventory: Path, postgres_server: pg.PostgresServer, tmp_path: Path
) -> None:
    inventory = load_inventory(pg_inventory)
    with open_journal(tmp_path / "state", inventory) as journal:
        assert isinstance(journal, PostgresJournal)
        journal.append(
            run_id="run-1",
            site="blog",
            step="snapshot",
            status="ok",
            data={"note": f"connected with {PASSWORD}"},
        )
        journal.append(run_id="run-1", site="blog", step="verify", status="ok")
        description = journal.description
    assert not (tmp_path / "state" / "journal.sqlite").exists()
    assert PASSWORD not in description

    shown = run("-i", str(pg_inventory), "journal", "show", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [e["step"] for e in events] == ["snapshot", "verify"]
    assert events[0]["data"] == {"note": "connected with ***"}

    verified = run("-i", str(pg_inventory), "journal", "verify", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == f"journal {description}: ok, 2 events, hash chain intact"

    database = description.rsplit("/", 1)[1]
    pg.run_sql(
        postgres_server,
        "SET session_replication_role = replica;\n"
        "UPDATE tma_journal.events SET status = 'failed' WHERE id = 1;",
        database,
    )
    broken = run("-i", str(pg_inventory), "journal", "verify", cwd=tmp_path)
    assert broken.returncode == 6
    assert broken.stderr.strip().startswith(f"tma-ops: error: journal {description}: event 1:")
    assert len(broken.stderr.strip().splitlines()) == 1
    as_json = run("-i", str(pg_inventory), "journal", "verify", "--json", cwd=tmp_path)
    assert as_json.returncode == 6
    assert json.loads(as_json.stdout)["first_broken_id"] == 1
    for output in (shown, verified, broken, as_json):
        assert PASSWORD not in output.stdout + output.stderr


def test_wrong_password_is_one_line_naming_the_target(pg_inventory: Path, tmp_path: Path) -> None:
    (tmp_path / "journal-password").write_text("not-the-password-8c1f\n", encoding="utf-8")
    result = run("-i", str(pg_inventory), "journal", "verify", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to PostgreSQL (host 127.0.0.1, port " in lines[0]
    assert f"user {USER}" in lines[0] and "password authentication failed" in lines[0]
    assert "not-the-password-8c1f" not in result.stderr


def test_state_dir_alone_reads_the_sqlite_journal(tmp_path: Path) -> None:
    state, elsewhere = tmp_path / "state", tmp_path / "cwd"
    elsewhere.mkdir()
    missing = run("--state", str(state), "journal", "verify", cwd=elsewhere)
    assert missing.returncode == 2
    assert f"no journal at {state / 'journal.sqlite'}" in missing.stderr
    with Journal(state / "journal.sqlite") as journal:
        journal.append(run_id="r", site="blog", step="snapshot", status="ok", data={"n": 1})
    shown = run("--state", str(state), "journal", "show", "--site", "blog", cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr
    assert "snapshot" in shown.stdout and '{"n": 1}' in shown.stdout
    verified = run("--state", str(state), "journal", "verify", cwd=elsewhere)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == (
        f"journal {state / 'journal.sqlite'}: ok, 1 events, hash chain intact"
    )

"""The inventory's `journal:` key: where the journal lives, its password file, its signing key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tma_ops.config import load_inventory
from tma_ops.errors import InventoryError
from tma_ops.journal_postgres import connection_target, without_password
from tma_ops.model_journal import JournalSettings

pytestmark = pytest.mark.unit

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
PASSWORD = "journal-Pa55-in-a-file"


def inventory_file(tmp_path: Path, journal: str) -> Path:
    """tma.yaml with a `journal:` block (YAML text, first line at line 3) and one site."""
    (tmp_path / "pw").write_text(f"  {PASSWORD}\n", encoding="utf-8")
    path = tmp_path / "tma.yaml"
    path.write_text(f"version: 1\nstate_dir: state\n{journal}\n{SITES}", encoding="utf-8")
    return path


def test_default_is_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    path = tmp_path / "tma.yaml"
    path.write_text(f"version: 1\nstate_dir: state\n{SITES}", encoding="utf-8")
    inventory = load_inventory(path)
    state = tmp_path / "state"
    assert inventory.journal == JournalSettings()
    assert inventory.journal.backend == "sqlite"
    assert inventory.journal.sqlite_path(state) == state / "journal.sqlite"
    assert inventory.journal.signing_key_path(state) == state / "journal-signing-key.pem"
    assert inventory.secrets() == []


def test_postgresql_with_password_file_and_signing_key(tmp_path: Path) -> None:
    journal = (
        "journal:\n"
        "  url: postgresql://tma@db.example.net:5433/tma_journal\n"
        "  password_file: pw\n"
        "  signing_key: keys/journal.pem\n"
    )
    inventory = load_inventory(inventory_file(tmp_path, journal))
    settings = inventory.journal
    assert settings.backend == "postgresql"
    assert settings.url == "postgresql://tma@db.example.net:5433/tma_journal"
    assert settings.password == PASSWORD  # stripped of the file's spaces and newline
    assert settings.password_file == tmp_path / "pw"
    assert settings.signing_key == tmp_path / "keys" / "journal.pem"
    assert settings.signing_key_path(tmp_path / "state") == tmp_path / "keys" / "journal.pem"
    assert PASSWORD in inventory.secrets()
    assert PASSWORD not in repr(settings)


def test_sqlite_url_and_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMA_TEST_JOURNAL_DIR", str(tmp_path / "elsewhere"))
    journal = "journal: {url: 'sqlite://${TMA_TEST_JOURNAL_DIR}/j.sqlite'}"
    settings = load_inventory(inventory_file(tmp_path, journal)).journal
    assert settings.backend == "sqlite"
    assert settings.sqlite_path(tmp_path / "state") == tmp_path / "elsewhere" / "j.sqlite"


def test_first_file_that_sets_it_wins(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "journal: {url: 'postgresql://tma@first/j', password_file: pw}\n" + SITES,
        encoding="utf-8",
    )
    second = SITES.replace("blog:", "shop:")
    (tmp_path / "b.yaml").write_text(
        "journal: {url: 'postgresql://tma@second/j'}\n" + second, encoding="utf-8"
    )
    (tmp_path / "pw").write_text(PASSWORD, encoding="utf-8")
    inventory = load_inventory(tmp_path)
    assert inventory.journal.url == "postgresql://tma@first/j"
    assert inventory.journal.password == PASSWORD


@pytest.mark.parametrize(
    ("journal", "expected"),
    [
        (
            "journal: {url: 'postgresql://tma:hunter2-secret@db/j'}",
            ":3: journal.url: a password inside the URL is refused; put it in a file named by "
            "journal.password_file",
        ),
        (
            "journal:\n  url: postgresql://tma@db/j\n  password: hunter2-secret",
            ":5: journal.password: unknown key; expected one of url, password_file, signing_key, "
            "former_public_keys",
        ),
        (
            "journal:\n  url: postgresql://tma@db/j\n  pasword_file: pw",
            ":5: journal.pasword_file: unknown key; expected one of url, password_file, "
            "signing_key, former_public_keys (did you mean 'password_file'?)",
        ),
        ("journal: postgresql://tma@db/j", ":3: journal: expected a mapping with keys url"),
        (
            "journal: {url: 'mysql://tma@db/j'}",
            ":3: journal.url: expected postgresql://user@host:port/dbname or "
            "sqlite:///absolute/path, got a mysql URL",
        ),
        (
            "journal: {url: 'sqlite://relative/j.sqlite'}",
            ":3: journal.url: expected sqlite:///absolute/path/journal.sqlite (three slashes)",
        ),
        (
            "journal: {url: 'postgresql://tma@db'}",
            ":3: journal.url: expected a database name after the host",
        ),
        (
            "journal: {url: 'sqlite:///x/j.sqlite', password_file: pw}",
            ":3: journal: password_file is only used with a postgresql:// url",
        ),
        ("journal: {url: 42}", ":3: journal.url: expected a string; got 42"),
        (
            "journal: {url: 'postgresql://tma@db/j', password_file: missing}",
            "journal.password_file: cannot read ",
        ),
    ],
)
def test_bad_journal_settings_are_one_line(tmp_path: Path, journal: str, expected: str) -> None:
    path = inventory_file(tmp_path, journal)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert "hunter2-secret" not in message
    assert "Input should" not in message and "Value error" not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://tma@db:5433/j", "postgresql://tma@db:5433/j"),
        ("postgresql://tma:hunter2-secret@db:5433/j", "postgresql://tma:***@db:5433/j"),
        ("postgres://tma:p%40ss@db/j?sslmode=require", "postgres://tma:***@db/j?sslmode=require"),
    ],
)
def test_urls_are_shown_without_password(url: str, shown: str) -> None:
    assert without_password(url) == shown


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("postgresql://tma@db:5433/j", "host db, port 5433, database j, user tma"),
        ("postgresql://tma@db/j", "host db, port 5432, database j, user tma"),
        ("postgresql://tma@/j", "host local socket, port 5432, database j, user tma"),
        ("postgresql://db/j", "host db, port 5432, database j, user the login user"),
        ("postgresql://tma@db", "host db, port 5432, database tma, user tma"),
    ],
)
def test_connection_target_names_what_libpq_will_use(
    url: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PGHOST", "PGPORT", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    assert connection_target(url) == target


def test_former_public_keys_are_taken_from_the_inventory_directory(tmp_path: Path) -> None:
    journal = "journal:\n  former_public_keys: [keys/2025.pub, /etc/tma/2024.pub]\n"
    settings = load_inventory(inventory_file(tmp_path, journal)).journal
    assert settings.former_public_keys == [
        tmp_path / "keys" / "2025.pub",
        Path("/etc/tma/2024.pub"),
    ]
    assert JournalSettings().former_public_keys == []

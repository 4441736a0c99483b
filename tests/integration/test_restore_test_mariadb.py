"""Restore tests of an age-encrypted snapshot stored on the S3 API server, into a sandbox whose
database lives on a real MariaDB server: a pass fully journaled and torn down, then the four
faults of a backup (a flipped byte, a truncated part, a missing part, a wrong key), each a
failed test naming its cause, with production untouched byte for byte."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import mariadb as maria
from harness.s3server import (
    REGION,
    TEST_KEY_ID,
    TEST_SECRET,
    MotoServer,
    client,
    create_locked_bucket,
    empty_bucket,
)
from pyrage import x25519

from tma_ops.config import Site, load_inventory
from tma_ops.demo.app import start_server
from tma_ops.demo.workspace import SITES, build_workspace, content_sql
from tma_ops.errors import EXIT_ERROR, EXIT_INTEGRITY, EXIT_OK
from tma_ops.fingerprint import Fingerprint, environment_fingerprint
from tma_ops.journal import Journal
from tma_ops.restore_test import run_restore_test
from tma_ops.restore_test_record import RestoreTestOutcome
from tma_ops.snapshot import Manifest, create_snapshot
from tma_ops.stores import Store, open_store

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
PREFIX = "backups"
USER = "tma_restore_test"
PASSWORD = "pw-" + secrets.token_urlsafe(12)
FINAL_FIELDS = {
    "snapshot_id",
    "snapshot_created_at",
    "snapshot_age_s",
    "environment",
    "tested_at",
    "parts",
    "bytes_read",
    "time_to_recovery_s",
    "smoke",
    "failed_stage",
    "cause",
    "teardown",
}


@dataclass
class Bench:
    site: Site
    store: Store
    manifest: Manifest
    bucket: str
    endpoint: str
    state: Path
    server: maria.MariaDbServer
    sandbox_db: str
    workspace: Path

    def journal(self) -> Journal:
        return Journal(self.state / "journal.sqlite")

    def restore_test(self, site: Site | None = None) -> RestoreTestOutcome:
        with self.journal() as journal:
            return run_restore_test(
                site or self.site, self.store, journal, self.state, say=lambda _line: None
            )

    def object(self, key: str) -> bytes:
        s3 = client(self.endpoint)
        return bytes(s3.get_object(Bucket=self.bucket, Key=f"{PREFIX}/{key}")["Body"].read())

    def replace_object(self, key: str, data: bytes) -> None:
        client(self.endpoint).put_object(Bucket=self.bucket, Key=f"{PREFIX}/{key}", Body=data)

    def sandbox_tables(self) -> list[str]:
        sql = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
        return maria.run_sql(self.server, sql, self.sandbox_db).split()

    def production(self) -> Fingerprint:
        return environment_fingerprint(self.site, "production")


def _database(server: maria.MariaDbServer, name: str) -> dict[str, Any]:
    return {
        "engine": "mariadb",
        "name": name,
        "user": USER,
        "password": PASSWORD,
        "host": server.address,
        "port": server.port,
    }


def _write_inventory(
    ws: Path, server: maria.MariaDbServer, names: dict[str, str], store: Any
) -> Path:
    """The demo blog with production and sandbox on MariaDB (staging stays on SQLite)."""
    document = yaml.safe_load((ws / "tma.yaml").read_text())
    blog = document["sites"]["blog"]
    document["sites"] = {"blog": blog}
    document["defaults"]["store"] = store
    for env in ("production", "sandbox"):
        blog["environments"][env]["database"] = _database(server, names[env])
        (ws / "sites" / "blog" / env / "database.json").write_text(
            json.dumps(_database(server, names[env]))
        )
    (ws / "tma.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return ws / "tma.yaml"


@pytest.fixture(scope="module")
def bench(
    tmp_path_factory: pytest.TempPathFactory,
    mariadb_server: maria.MariaDbServer,
    s3_server: MotoServer,
) -> Iterator[Bench]:
    base = tmp_path_factory.mktemp("restore-test")
    ws = base / "ws"
    build_workspace(ws, REPO / "inventories" / "demo" / "tma.yaml")
    suffix = secrets.token_hex(3)
    names = {"production": f"rt_prod_{suffix}", "sandbox": f"rt_sandbox_{suffix}"}
    for name in names.values():
        maria.create_database(mariadb_server, name, USER, PASSWORD)
    blog = SITES["blog"]
    posts = [(title, body, "2024-01-01") for title, body, _age in blog.posts]
    options = {"site_title": blog.title, "tagline": blog.tagline}
    maria.run_sql(mariadb_server, content_sql(options, posts, mysql=True), names["production"])
    identity = x25519.Identity.generate()
    key_file = base / "age-key.txt"
    key_file.write_text(f"{identity}\n")
    bucket = create_locked_bucket(s3_server.endpoint)
    store_spec = {
        "url": f"s3://{bucket}/{PREFIX}",
        "endpoint_url": s3_server.endpoint,
        "region": REGION,
        "access_key_id": TEST_KEY_ID,
        "secret_access_key": TEST_SECRET,
        "encryption": {"recipients": [str(identity.to_public())], "identity_file": str(key_file)},
    }
    server = start_server(ws)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("TMA_DEMO_PORT", str(server.server_address[1]))
    try:
        site = load_inventory(_write_inventory(ws, mariadb_server, names, store_spec)).site("blog")
        store = open_store(site.store)
        manifest = create_snapshot(site, "production", store)
        yield Bench(
            site,
            store,
            manifest,
            bucket,
            s3_server.endpoint,
            base / "state",
            mariadb_server,
            names["sandbox"],
            ws,
        )
    finally:
        monkeypatch.undo()
        server.shutdown()
        server.server_close()
        empty_bucket(s3_server.endpoint, bucket)
        for name in names.values():
            maria.drop_database(mariadb_server, name)


def final_event(bench: Bench, outcome: RestoreTestOutcome) -> tuple[list[Any], Any]:
    with bench.journal() as journal:
        events = journal.events(site="blog", run_id=outcome.run_id)
    return events, events[-1]


def test_a_snapshot_from_the_s3_store_restores_into_the_mariadb_sandbox_and_is_torn_down(
    bench: Bench,
) -> None:
    before = bench.production()
    outcome = bench.restore_test()

    assert outcome.passed, outcome.cause
    assert outcome.exit_code == EXIT_OK
    events, final = final_event(bench, outcome)
    assert events[0].status == "started"
    assert events[0].data == {
        "snapshot_id": bench.manifest.snapshot_id,
        "environment": "sandbox",
        "chosen": "latest",
    }
    stages = [e.data["stage"] for e in events if e.status == "stage"]
    assert stages == ["fetch-verify", "restore", "start", "smoke", "teardown"]
    assert all(e.data["seconds"] >= 0 for e in events if e.status == "stage")
    assert final.status == "passed"
    data = final.data
    assert set(data) == FINAL_FIELDS
    assert data["snapshot_id"] == bench.manifest.snapshot_id
    assert data["snapshot_created_at"] == bench.manifest.created_at
    assert data["snapshot_age_s"] > 0
    assert data["environment"] == "sandbox" and data["tested_at"].endswith("Z")
    db, files = bench.manifest.parts["db"], bench.manifest.parts["files"]
    assert data["parts"] == [
        {
            "name": "db",
            "snapshot_id": bench.manifest.snapshot_id,
            "key": db.key,
            "sha256": db.plain_sha256,
            "sha256_of": "plain bytes, joined",
            "size": db.plain_size,
            "stored_size": db.size,
            "chunks": [
                {"key": chunk.key, "sha256": chunk.sha256, "stored_size": chunk.size}
                for chunk in db.chunks
            ],
        },
        {
            "name": "files",
            "snapshot_id": bench.manifest.snapshot_id,
            "key": files.key,
            "sha256": files.sha256,
            "size": files.plain_size,
            "stored_size": files.size,
        },
    ]
    assert db.key.endswith(".age") and data["bytes_read"] == db.size + files.size
    assert 0 < data["time_to_recovery_s"] < 120
    assert [(s["kind"], s["ok"]) for s in data["smoke"]] == [
        ("http", True),
        ("http", True),
        ("logscan", True),
    ]
    assert (data["failed_stage"], data["cause"], data["teardown"]) == (None, None, "done")
    # Torn down: the sandbox database is empty, its files are gone; production as it was.
    assert bench.sandbox_tables() == []
    sandbox_root = Path(bench.site.environment("sandbox").root)
    assert not sandbox_root.exists()
    assert not list(sandbox_root.parent.glob("www.tma-*"))
    assert bench.production() == before


@pytest.mark.parametrize(
    ("marker", "passes"), [("Vitraux et verre", True), ("Not on this site", False)]
)
def test_the_sandbox_smoke_suite_judges_the_restored_content(
    bench: Bench, marker: str, passes: bool
) -> None:
    """The tagline is read from the restored database: an empty one would not show it. A check
    that cannot pass is a failed test at the smoke stage, still torn down."""
    site = bench.site
    sandbox = site.environment("sandbox")
    checks = [check.model_copy(update={"contains": marker}) for check in sandbox.smoke[:1]]
    strict = sandbox.model_copy(update={"smoke": checks})
    site = site.model_copy(update={"environments": {**site.environments, "sandbox": strict}})

    outcome = bench.restore_test(site)

    assert outcome.passed is passes, outcome.cause
    if passes:
        assert outcome.exit_code == EXIT_OK and "status 200" in outcome.smoke[0]["detail"]
    else:
        assert (outcome.failed_stage, outcome.exit_code) == ("smoke", EXIT_ERROR)
        assert outcome.cause is not None and marker in outcome.cause
        assert outcome.time_to_recovery_s is None
    assert outcome.teardown == "done" and bench.sandbox_tables() == []


@dataclass(frozen=True)
class Fault:
    name: str
    part: str  # db | files
    damage: str  # flip | truncate | delete | wrong-key
    expected: tuple[str, ...]  # words the cause must hold


FAULTS = [
    Fault("flipped byte", "files", "flip", ("SHA-256 mismatch",)),
    Fault("truncated part", "db", "truncate", ("truncated",)),
    Fault("missing part", "files", "delete", ("missing",)),
    Fault("wrong key", "db", "wrong-key", ("cannot decrypt", "no identity matches")),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_a_damaged_backup_is_a_failed_test_naming_its_cause(
    bench: Bench, fault: Fault, tmp_path: Path
) -> None:
    key = bench.manifest.parts[fault.part].objects()[0].key
    original = bench.object(key)
    site = bench.site
    before = bench.production()
    if fault.damage == "flip":
        middle = len(original) // 2
        bench.replace_object(
            key, original[:middle] + bytes([original[middle] ^ 1]) + original[middle + 1 :]
        )
    elif fault.damage == "truncate":
        bench.replace_object(key, original[:-10])
    elif fault.damage == "delete":
        client(bench.endpoint).delete_object(Bucket=bench.bucket, Key=f"{PREFIX}/{key}")
    else:
        other = tmp_path / "other-age-key.txt"
        other.write_text(f"{x25519.Identity.generate()}\n")
        encryption = site.store.encryption
        assert encryption is not None
        store = site.store.model_copy(
            update={"encryption": encryption.model_copy(update={"identity_file": str(other)})}
        )
        site = site.model_copy(update={"store": store})
    try:
        outcome = bench.restore_test(site)
    finally:
        bench.replace_object(key, original)

    assert not outcome.passed
    assert outcome.exit_code == EXIT_INTEGRITY
    _events, final = final_event(bench, outcome)
    assert final.status == "failed"
    assert set(final.data) == FINAL_FIELDS
    cause = final.data["cause"]
    assert all(word in cause for word in fault.expected), cause
    # A wrong key decrypts no part: the restore names whichever it read first.
    named = (
        [stored.key for stored in bench.manifest.objects()]
        if fault.damage == "wrong-key"
        else [key]
    )
    assert any(part_key in cause for part_key in named), cause
    assert final.data["time_to_recovery_s"] is None
    expected_stage = "restore" if fault.damage == "wrong-key" else "fetch-verify"
    assert final.data["failed_stage"] == expected_stage
    assert final.data["teardown"] == "done"
    assert bench.sandbox_tables() == []
    assert not Path(site.environment("sandbox").root).exists()
    assert bench.production() == before

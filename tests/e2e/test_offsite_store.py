"""Off-site backups on a real S3 API server: encrypted increments, a new machine with nothing but
the inventory and the keys, and the README's manual restore run as written, without tma-ops."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from harness import mariadb
from harness.s3server import REGION, TEST_KEY_ID, TEST_SECRET, MotoServer, client
from pyrage import x25519
from remote_support import HostServices, RemoteFleet, add_site

from tma_ops.config import load_inventory
from tma_ops.errors import EXIT_OK
from tma_ops.executors.local import LocalExecutor
from tma_ops.fingerprint import Fingerprint, environment_fingerprint, tree_fingerprint
from tma_ops.model import ServerDatabase

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"
S3_ENV = {"TMA_S3_KEY_ID": TEST_KEY_ID, "TMA_S3_SECRET": TEST_SECRET}


@dataclass
class Offsite:
    fleet: RemoteFleet
    site: str
    key_file: Path
    server: mariadb.MariaDbServer  # production's MariaDB


@pytest.fixture
def offsite(
    fleet: RemoteFleet,
    remote_hosts: tuple[HostServices, HostServices],
    s3_server: MotoServer,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Offsite:
    """A MariaDB site on SSH hosts whose store is an encrypted S3 bucket."""
    prod, staging = remote_hosts
    # Hosts live for the whole session: each test's site gets a name of its own.
    site = add_site(fleet, "blog", "mariadb", prod, staging, name=f"off-{secrets.token_hex(3)}")
    identity = x25519.Identity.generate()
    key_file = tmp_path / "age-key.txt"
    key_file.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    document = yaml.safe_load(fleet.inventory_file.read_text())
    document["defaults"]["store"] = {
        "url": f"s3://{s3_bucket}/agency",
        "endpoint_url": s3_server.endpoint,
        "region": REGION,
        "access_key_id": "${TMA_S3_KEY_ID}",
        "secret_access_key": "${TMA_S3_SECRET}",
        "encryption": {"recipients": [str(identity.to_public())], "identity_file": str(key_file)},
        "object_lock": {"mode": "governance", "days": 1},
    }
    fleet.inventory_file.write_text(yaml.safe_dump(document, sort_keys=False))
    for name, value in {**S3_ENV, "TMA_E2E_DB_PASSWORD": fleet.password}.items():
        monkeypatch.setenv(name, value)
    assert prod.mariadb is not None
    return Offsite(fleet, site, key_file, prod.mariadb)


def cli(fleet: RemoteFleet, *args: str) -> subprocess.CompletedProcess[str]:
    done = fleet.cli(*args, **S3_ENV)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    return done


def production_root(fleet: RemoteFleet, site: str) -> Path:
    return Path(load_inventory(fleet.inventory_file).site(site).production.root)


def fingerprint(fleet: RemoteFleet, site: str) -> Fingerprint:
    return environment_fingerprint(load_inventory(fleet.inventory_file).site(site), "production")


def change_production(offsite: Offsite, round_: int) -> None:
    """Files added, rewritten and deleted, and a row added, as a month of a live site would."""
    root = production_root(offsite.fleet, offsite.site)
    (root / "uploads" / f"invoice-{round_}.pdf").write_bytes(os.urandom(200_000))
    (root / "index.php").write_text((root / "index.php").read_text() + f"// {round_}\n")
    doomed = sorted((root / "uploads").rglob("*.png"))
    if doomed:
        doomed[0].unlink()
    mariadb.run_sql(
        offsite.server,
        "INSERT INTO posts (id, title, body, published) "
        f"SELECT MAX(id) + 1, 'round {round_}', 'x', '2026-11-01' FROM posts;",
        production_database(offsite),
    )


def production_database(offsite: Offsite) -> str:
    database = load_inventory(offsite.fleet.inventory_file).site(offsite.site).production.database
    assert isinstance(database, ServerDatabase)
    return database.name


def snapshot_list(fleet: RemoteFleet, site: str) -> list[dict[str, object]]:
    out = cli(fleet, "snapshots", "list", site, "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


def test_a_new_machine_lists_and_restores_an_encrypted_increment_from_the_bucket_alone(
    offsite: Offsite, s3_server: MotoServer, s3_bucket: str
) -> None:
    fleet, site = offsite.fleet, offsite.site
    cli(fleet, "snapshot", site)
    change_production(offsite, 1)
    cli(fleet, "snapshot", site)
    expected = fingerprint(fleet, site)

    shutil.rmtree(fleet.root / "state")  # the engineer's laptop at 3 a.m.: no local catalog
    listed = snapshot_list(fleet, site)
    assert [(s["level"], s["encrypted"]) for s in listed] == [(0, True), (1, True)]
    assert listed[1]["parent"] == listed[0]["snapshot_id"]
    assert cli(fleet, "verify", site, "--read-data").returncode == EXIT_OK
    s3 = client(s3_server.endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    snapshot_keys = [key for key in keys if "/snapshots/" in key]
    assert len(snapshot_keys) == 6  # two snapshots: manifest, db, files
    assert any("/journal/" in key and "/heads/" in key for key in keys)  # the runs' signed heads
    for key in keys:
        head = s3.head_object(Bucket=s3_bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)

    change_production(offsite, 2)
    assert fingerprint(fleet, site) != expected
    cli(fleet, "restore", site, "latest", "--to", "production", "--yes")
    assert fingerprint(fleet, site) == expected
    journal = cli(fleet, "journal", "show", "--json").stdout
    assert TEST_SECRET not in journal
    assert "restore" in journal


def test_the_readme_manual_restore_rebuilds_files_and_database_without_tma_ops(
    offsite: Offsite, s3_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    fleet, site, server = offsite.fleet, offsite.site, offsite.server
    cli(fleet, "snapshot", site)
    change_production(offsite, 1)
    cli(fleet, "snapshot", site)
    latest = snapshot_list(fleet, site)[-1]
    assert latest["level"] == 1
    mariadb.run_sql(server, "CREATE DATABASE manual_restore;")

    workdir = tmp_path / "engineer"
    workdir.mkdir()
    script = manual_restore_block()
    client = mariadb.client_argv(server, "manual_restore")
    subprocess.run(
        ["bash", "-c", script],
        cwd=workdir,
        check=True,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "AWS_ACCESS_KEY_ID": TEST_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": TEST_SECRET,
            "AWS_DEFAULT_REGION": REGION,
            "S3": f"aws s3 --endpoint-url {s3_server.endpoint}",
            "STORE": f"s3://{s3_bucket}/agency",
            "SITE": site,
            "KEY": str(offsite.key_file),
            "ID": str(latest["snapshot_id"]),
            "DB_RESTORE": " ".join(client),
        },
        timeout=600,
    )

    restored = workdir / "restore" / "www"
    local = LocalExecutor("local://")
    assert tree_fingerprint(local, str(restored)) == tree_fingerprint(
        local, str(production_root(fleet, site))
    )
    query = "SELECT id, title, body FROM posts ORDER BY id;"
    assert mariadb.run_sql(server, query, "manual_restore") == mariadb.run_sql(
        server, query, production_database(offsite)
    )
    assert "round 1" in mariadb.run_sql(server, query, "manual_restore")


def manual_restore_block() -> str:
    """The shell block the README marks as the manual restore procedure, verbatim."""
    text = README.read_text()
    found = re.search(r"<!-- manual-restore:[^>]*-->\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert found, "README lost its manual-restore block"
    return found.group(1)

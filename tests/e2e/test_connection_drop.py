"""The SSH connection to production dropped in the middle of a snapshot or of an update.

The sshd of the production host is killed with all its sessions and comes back a few seconds
later, as after a network cut or a restart. The step fails with a clear message, production is
as it was (never touched, or rolled back), and the next run succeeds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from harness.sshd import kill_sshd, restart_sshd
from remote_support import HostServices, RemoteFleet, add_site

from tma_ops.config import load_inventory
from tma_ops.errors import EXIT_ERROR, EXIT_OK
from tma_ops.fingerprint import Fingerprint, environment_fingerprint

pytestmark = pytest.mark.e2e

DOWN_SECONDS = 4


def production_fingerprint(fleet: RemoteFleet, site: str) -> Fingerprint:
    os.environ["TMA_E2E_DB_PASSWORD"] = fleet.password
    try:
        inventory = load_inventory(fleet.inventory_file)
        return environment_fingerprint(inventory.site(site), "production")
    finally:
        del os.environ["TMA_E2E_DB_PASSWORD"]


def wait_for(condition: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def journal_has(fleet: RemoteFleet, step: str, status: str) -> bool:
    path = fleet.root / "state" / "journal.sqlite"
    if not path.exists():
        return False
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        query = "SELECT 1 FROM events WHERE step = ? AND status = ? LIMIT 1"
        return connection.execute(query, (step, status)).fetchone() is not None


def drop_production_ssh(prod: HostServices) -> None:
    kill_sshd(prod.ssh)
    time.sleep(DOWN_SECONDS)
    restart_sshd(prod.ssh)


def test_connection_dropped_during_the_snapshot(
    fleet: RemoteFleet, remote_hosts: tuple[HostServices, HostServices], tmp_path: Path
) -> None:
    prod, staging = remote_hosts
    site = add_site(fleet, "blog", "mariadb", prod, staging, name="blog-drop-snapshot")
    # More than the SSH windows and pipes hold, so the drop lands in the middle of the tar.
    (prod.sites_root / site / "production" / "www" / "uploads" / "video.bin").write_bytes(
        os.urandom(48 << 20)
    )
    before = production_fingerprint(fleet, site)
    marker = tmp_path / "paused"
    process = fleet.popen(
        "cycle",
        site,
        TMA_OPS_PAUSE_AT="upload:files.tar.zst",
        TMA_OPS_PAUSE_FILE=str(marker),
        TMA_OPS_PAUSE_SECONDS="3",
    )
    wait_for(marker.exists, "the files upload to start")
    drop_production_ssh(prod)
    _, err = process.communicate(timeout=300)

    assert process.returncode == EXIT_ERROR, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "snapshot production failed" in err and "lost" in err
    assert "production unchanged" in err
    assert production_fingerprint(fleet, site) == before
    assert fleet.cli("cycle", site).returncode == EXIT_OK


def test_connection_dropped_during_the_update_of_production(
    fleet: RemoteFleet, remote_hosts: tuple[HostServices, HostServices]
) -> None:
    prod, staging = remote_hosts
    site = add_site(fleet, "blog", "postgresql", prod, staging, name="blog-drop-update")
    before = production_fingerprint(fleet, site)
    process = fleet.popen("cycle", site, "--json")
    wait_for(lambda: journal_has(fleet, "promote", "ansible-ok"), "the playbook on production")
    drop_production_ssh(prod)
    out, err = process.communicate(timeout=600)

    assert process.returncode == EXIT_ERROR, out + err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "promote to production failed" in err
    assert "production restored to its pre-promotion snapshot" in err
    assert production_fingerprint(fleet, site) == before
    rerun = fleet.cli("cycle", site, "--json")
    assert rerun.returncode == EXIT_OK, rerun.stdout + rerun.stderr
    assert json.loads(rerun.stdout.splitlines()[-1])["outcome"] == "promoted"

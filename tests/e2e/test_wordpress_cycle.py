"""Whole cycles through the real `tma-ops` on a real WordPress: production and staging are two
copies (two databases on one MariaDB, two `php -S` servers), the marker plugin updated from a
zip channel. A plugin release that fatals at load is caught on staging and never reaches
production."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from e2e_support import CliRunner
from harness import wp_contact
from harness.wordpress import (
    DB_PASSWORD,
    DB_USER,
    MARKER_PLUGIN,
    WordPressLab,
    WordPressSite,
    marker_plugin_files,
    session_lab,
    write_zip,
)

from tma_ops.config import load_inventory
from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK
from tma_ops.fingerprint import Fingerprint, environment_fingerprint
from tma_ops.journal import Journal

pytestmark = pytest.mark.e2e

SITE = "atelier"
PASSWORD_VARIABLE = "TMA_E2E_WP_DB_PASSWORD"


@dataclass
class WordPressPair(CliRunner):
    """Production and staging WordPress sites, their inventory, channel, store and journal."""

    root: Path
    inventory_file: Path
    production: WordPressSite
    staging: WordPressSite

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, PASSWORD_VARIABLE: DB_PASSWORD, "TMA_OPS_PAUSE_AT": ""}

    @property
    def channel(self) -> Path:
        return self.root / "channel"

    def fingerprint(self, env: str) -> Fingerprint:
        return environment_fingerprint(load_inventory(self.inventory_file).site(SITE), env)

    def journal(self) -> Journal:
        return Journal(self.root / "state" / "journal.sqlite")


def environment(site: WordPressSite) -> dict[str, object]:
    return {
        # pyenv's python3 shim breaks Ansible on these machines
        "executor": {"url": "local://", "python": "/usr/bin/python3"},
        "root": str(site.root),
        # Each copy keeps its own database settings and address (wp-config.php reads them from
        # site-config.php, beside the docroot, which the snapshots do not hold).
        "persistent": ["wp-config.php"],
        "database": {
            "engine": "mariadb",
            "name": site.database,
            "user": DB_USER,
            "password": "${" + PASSWORD_VARIABLE + "}",
            "host": "127.0.0.1",
            "port": site.server.port,
        },
        # php -S answers one request at a time: generous on a loaded machine
        "smoke": [
            {"url": site.url + "/", "contains": 'name="tma-marker"', "max_latency_ms": 15000}
        ],
    }


def write_inventory(root: Path, production: WordPressSite, staging: WordPressSite) -> Path:
    inventory = {
        "version": 1,
        "state_dir": "state",
        "sites": {
            SITE: {
                "tier": "business",
                "store": "file://./store",
                "stack": {"kind": "wordpress", "channel": "channel"},
                "environments": {
                    "production": environment(production),
                    "staging": environment(staging),
                },
            }
        },
    }
    path = root / "tma.yaml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> WordPressLab:
    return session_lab(request)


@pytest.fixture
def pair(
    lab: WordPressLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WordPressPair]:
    monkeypatch.setenv(PASSWORD_VARIABLE, DB_PASSWORD)  # the inventory reads it, as in real use
    production = lab.new_site(tmp_path / "production")
    staging = lab.new_site(tmp_path / "staging")
    inventory_file = write_inventory(tmp_path, production, staging)
    (tmp_path / "channel").mkdir()
    try:
        production.serve()
        staging.serve()
        assert production.marker() == staging.marker() == "1.0.0"  # and WordPress is warm
        yield WordPressPair(tmp_path, inventory_file, production, staging)
    finally:
        production.stop()
        staging.stop()


def eventually(read: Callable[[], str], expected: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while read() != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_a_plugin_update_is_tested_on_staging_then_promoted(pair: WordPressPair) -> None:
    write_zip(pair.channel / f"{MARKER_PLUGIN}-1.1.0.zip", marker_plugin_files("1.1.0"))
    result = pair.cli("cycle", SITE)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert f"== {SITE}: promoted" in result.stdout, result.stdout
    assert f"plan: {MARKER_PLUGIN} 1.0.0 -> 1.1.0 (minor)" in result.stdout
    assert pair.production.marker() == "1.1.0"
    assert pair.staging.marker() == "1.1.0"
    steps = [(e.step, e.status) for e in pair.journal().events(site=SITE)]
    assert ("promote", "done") in steps and ("smoke_production", "done") in steps
    assert DB_PASSWORD not in result.stdout + result.stderr
    assert pair.cli("journal", "verify").returncode == EXIT_OK


def test_a_plugin_that_fatals_is_caught_on_staging_and_never_reaches_production(
    pair: WordPressPair,
) -> None:
    files = marker_plugin_files("1.1.0", fatal=True)
    write_zip(pair.channel / f"{MARKER_PLUGIN}-1.1.0.zip", files)
    before = pair.fingerprint("production")
    result = pair.cli("cycle", SITE)
    assert result.returncode == EXIT_ROLLED_BACK, result.stdout + result.stderr
    assert "staging-failed" in result.stdout
    assert "smoke staging: FAILED" in result.stdout
    assert pair.fingerprint("production") == before
    assert pair.production.marker() == "1.0.0"
    # staging was reset to the snapshot of production taken at the start of the run (its
    # opcache may serve the broken release until it revalidates, about 2 s)
    assert eventually(pair.staging.marker, "1.0.0")
    events = pair.journal().events(site=SITE)
    steps = {e.step for e in events}
    assert "promote" not in steps and "pre_promotion_snapshot" not in steps
    smoke = next(e for e in events if e.step == "smoke_staging" and e.status == "done")
    assert smoke.data["ok"] is False
    assert pair.cli("journal", "verify").returncode == EXIT_OK


def test_a_contact_form_that_no_longer_sends_is_caught_by_its_journey(
    pair: WordPressPair,
) -> None:
    for site in (pair.production, pair.staging):
        wp_contact.install_contact_plugin(site, wp_contact.WORKING_VERSION)
    inventory = yaml.safe_load(pair.inventory_file.read_text())
    for name, site in (("production", pair.production), ("staging", pair.staging)):
        smoke = inventory["sites"][SITE]["environments"][name]["smoke"]
        smoke.append(wp_contact.contact_journey(site.url))
    pair.inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    # a patch release whose handler silently drops the message: the page still renders
    broken = wp_contact.contact_plugin_files("1.0.1", sends=False)
    write_zip(pair.channel / f"{wp_contact.CONTACT_PLUGIN}-1.0.1.zip", broken)

    result = pair.cli("cycle", SITE)

    assert result.returncode == EXIT_ROLLED_BACK, result.stdout + result.stderr
    assert "smoke staging: FAILED contact form: step 2/2 POST" in result.stdout
    assert wp_contact.CONFIRMATION in result.stdout  # the marker the journey did not find
    assert "claire@example.invalid" not in result.stdout  # form values are never printed
    assert wp_contact.served_version(pair.production) == wp_contact.WORKING_VERSION
    steps = {e.step for e in pair.journal().events(site=SITE)}
    assert "promote" not in steps

"""The whole cycle against SSH hosts: production and staging on separate hosts with MariaDB or
PostgreSQL, updates through Ansible over SSH, smoke tests over HTTP to each host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from remote_support import HostServices, RemoteFleet, add_site

from tma_ops.config import load_inventory
from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK
from tma_ops.fingerprint import Fingerprint, environment_fingerprint

pytestmark = pytest.mark.e2e


def fingerprint(fleet: RemoteFleet, site: str, monkeypatch: pytest.MonkeyPatch) -> Fingerprint:
    monkeypatch.setenv("TMA_E2E_DB_PASSWORD", fleet.password)
    return environment_fingerprint(load_inventory(fleet.inventory_file).site(site), "production")


def versions(root: Path) -> dict[str, str]:
    return {
        d.name: (d / "VERSION").read_text().strip()
        for d in (root / "plugins").iterdir()
        if not d.name.startswith(".")
    }


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_cycle_on_ssh_hosts_promotes_good_updates_and_rolls_back_a_breaking_one(
    fleet: RemoteFleet,
    remote_hosts: tuple[HostServices, HostServices],
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prod, staging = remote_hosts
    blog = add_site(fleet, "blog", engine, prod, staging)
    shop = add_site(fleet, "shop", engine, prod, staging)
    shop_before = fingerprint(fleet, shop, monkeypatch)

    promoted = fleet.cli("cycle", blog, "--json")
    assert promoted.returncode == EXIT_OK, promoted.stdout + promoted.stderr
    assert json.loads(promoted.stdout.splitlines()[-1])["outcome"] == "promoted"
    assert versions(prod.sites_root / blog / "production" / "www") == {
        "gallery": "2.0.1",
        "seo": "1.1.0",
    }

    rolled_back = fleet.cli("cycle", shop, "--json")
    assert rolled_back.returncode == EXIT_ROLLED_BACK, rolled_back.stdout + rolled_back.stderr
    assert json.loads(rolled_back.stdout.splitlines()[-1])["outcome"] == "rolled-back"
    assert fingerprint(fleet, shop, monkeypatch) == shop_before
    assert fleet.cli("journal", "verify").returncode == EXIT_OK

    secrets = [fleet.password.encode(), *private_key_lines(prod.ssh.identity_file)]
    outputs = promoted.stdout + promoted.stderr + rolled_back.stdout + rolled_back.stderr
    journal = fleet.cli("journal", "show", "--json").stdout
    for secret in secrets:
        assert secret not in outputs.encode() and secret not in journal.encode()
    assert files_holding(fleet.root / "state", secrets) == []
    assert files_holding(fleet.root / "store", secrets) == []
    assert files_holding(Path("/tmp"), secrets, prefix="tma-ansible-") == []


def private_key_lines(identity_file: Path) -> list[bytes]:
    lines = identity_file.read_bytes().splitlines()
    return [line for line in lines if line and not line.startswith(b"-----")]


def files_holding(top: Path, secrets: list[bytes], prefix: str = "") -> list[str]:
    """Files under top (or its entries starting with prefix) whose bytes contain a secret."""
    roots = [p for p in top.iterdir() if p.name.startswith(prefix)] if prefix else [top]
    found = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            data = path.read_bytes()
            found += [str(path) for secret in secrets if secret in data]
    return found

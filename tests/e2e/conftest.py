"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Workspace, make_workspace
from harness import mariadb, postgres
from harness.sshd import SshServer
from remote_support import HostServices, RemoteFleet, new_fleet


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    yield from make_workspace(tmp_path / "ws", monkeypatch)


@pytest.fixture(scope="session")
def remote_hosts(
    ssh_host: SshServer, ssh_staging_host: SshServer
) -> Iterator[tuple[HostServices, HostServices]]:
    """Production and staging hosts, each with sshd, MariaDB, PostgreSQL and the demo CMS."""
    missing = mariadb.missing_requirements() or postgres.missing_requirements()
    if missing:
        pytest.skip(missing)
    prod, staging = HostServices(ssh_host), HostServices(ssh_staging_host)
    try:
        for services in (prod, staging):
            services.start_databases()
            services.start_app()
        yield prod, staging
    finally:
        prod.stop()
        staging.stop()


@pytest.fixture
def fleet(tmp_path: Path) -> RemoteFleet:
    return new_fleet(tmp_path / "controller")

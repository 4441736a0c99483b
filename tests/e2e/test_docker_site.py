"""The whole cycle on Docker-based sites: the database in a MariaDB container reached through the
docker:// executor, the files in a directory of the Docker host, the sites served over HTTP by
the demo CMS reading that container. One good update is promoted, one breaking one rolled back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from docker_site_support import (
    DockerSites,
    add_site,
    files_holding,
    start_db_container,
    stop_db_container,
    versions,
)
from harness.docker_engine import DockerEngine
from remote_support import PASSWORD_VARIABLE, RemoteFleet, new_fleet

from tma_ops.config import load_inventory
from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK
from tma_ops.fingerprint import Fingerprint, environment_fingerprint
from tma_ops.snapshot import Manifest, list_snapshots
from tma_ops.stores.file import FileStore
from tma_ops.streams import decompressing

pytestmark = pytest.mark.e2e

RECENT_POSTS = {"blog": "Journées du patrimoine", "shop": "Huile de massage lavande"}


@dataclass
class Cycles:
    """Both sites' cycles, run once for the module, with what was measured around them."""

    fleet: RemoteFleet
    sites: DockerSites
    blog: str
    shop: str
    promoted: subprocess.CompletedProcess[str]
    rolled_back: subprocess.CompletedProcess[str]
    shop_before: Fingerprint
    shop_after: Fingerprint
    staging_posts_before: dict[str, int]


@pytest.fixture(scope="module")
def docker_sites(
    docker_engine: DockerEngine, site_image_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerSites]:
    dumps = tmp_path_factory.mktemp("docker-site-db")
    sites: DockerSites | None = None
    try:
        db = start_db_container(docker_engine, site_image_tag, dumps)
        sites = DockerSites(tmp_path_factory.mktemp("docker-site-web"), db)
        sites.start_app()
        yield sites
    finally:
        if sites is not None:
            sites.stop()
        stop_db_container(docker_engine)


@pytest.fixture(scope="module")
def cycles(docker_sites: DockerSites, tmp_path_factory: pytest.TempPathFactory) -> Cycles:
    fleet = new_fleet(tmp_path_factory.mktemp("docker-site") / "controller")
    blog = add_site(fleet, "blog", docker_sites)
    shop = add_site(fleet, "shop", docker_sites)
    staging_posts = {
        kind: docker_sites.db.count(f"{kind}_staging", "posts") for kind in ("blog", "shop")
    }
    shop_before = fingerprint(fleet, shop, "production")
    promoted = fleet.cli("cycle", blog, "--json")
    rolled_back = fleet.cli("cycle", shop, "--json")
    shop_after = fingerprint(fleet, shop, "production")
    return Cycles(
        fleet,
        docker_sites,
        blog,
        shop,
        promoted,
        rolled_back,
        shop_before,
        shop_after,
        staging_posts,
    )


def fingerprint(fleet: RemoteFleet, site: str, env: str) -> Fingerprint:
    """Files through local://, database through database_of: the docker:// executor."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSWORD_VARIABLE, fleet.password)
        return environment_fingerprint(load_inventory(fleet.inventory_file).site(site), env)


def outcome(result: subprocess.CompletedProcess[str]) -> str:
    return str(json.loads(result.stdout.splitlines()[-1])["outcome"])


def test_good_updates_are_promoted_to_the_docker_site(cycles: Cycles) -> None:
    result = cycles.promoted
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert outcome(result) == "promoted"
    www = cycles.sites.sites_root / cycles.blog / "production" / "www"
    assert versions(www) == {"gallery": "2.0.1", "seo": "1.1.0"}


def test_a_breaking_update_is_rolled_back_and_production_is_unchanged(cycles: Cycles) -> None:
    result = cycles.rolled_back
    assert result.returncode == EXIT_ROLLED_BACK, result.stdout + result.stderr
    assert outcome(result) == "rolled-back"
    assert cycles.shop_after == cycles.shop_before
    www = cycles.sites.sites_root / cycles.shop / "production" / "www"
    assert versions(www) == {"payments": "3.1.0", "seo": "1.0.0"}


def test_the_snapshots_database_part_came_from_the_container(cycles: Cycles) -> None:
    store, db = FileStore(cycles.fleet.root / "store"), cycles.sites.db
    for kind, site in (("blog", cycles.blog), ("shop", cycles.shop)):
        manifests = list_snapshots(store, site)
        assert manifests, f"no snapshot of {site}"
        assert {m.database_engine for m in manifests} == {"mysql"}
        dump = read_db_part(store, manifests[0]).decode()
        assert "-- MariaDB dump" in dump[:200], dump[:200]  # after a sandbox-mode line
        assert f"Host: 127.0.0.1    Database: {kind}_production" in dump
        assert RECENT_POSTS[kind] in dump  # a post of production's, not yet of staging's
        # Refreshing staging restored production's posts into the staging DB of the container.
        production_posts = db.count(f"{kind}_production", "posts")
        assert cycles.staging_posts_before[kind] < production_posts
        assert db.count(f"{kind}_staging", "posts") == production_posts
    blog_staging = fingerprint(cycles.fleet, cycles.blog, "staging")
    assert blog_staging.database == fingerprint(cycles.fleet, cycles.blog, "production").database
    assert db.private_dirs() == []  # option files and staged dumps all cleaned up


def test_the_journal_verifies_and_the_password_shows_nowhere(cycles: Cycles) -> None:
    fleet = cycles.fleet
    verify = fleet.cli("journal", "verify")
    assert verify.returncode == EXIT_OK, verify.stdout + verify.stderr
    journal = fleet.cli("journal", "show", "--json")
    assert journal.returncode == EXIT_OK, journal.stderr
    for result in (cycles.promoted, cycles.rolled_back, verify, journal):
        assert fleet.password not in result.stdout + result.stderr
    secrets = [fleet.password.encode()]
    assert files_holding(fleet.root / "state", secrets) == []
    assert files_holding(fleet.root / "store", secrets) == []
    assert files_holding(cycles.sites.workspace, secrets) == []  # the CMS logs in as root
    assert files_holding(Path("/tmp"), secrets, prefix="tma-ansible-") == []


def read_db_part(store: FileStore, manifest: Manifest) -> bytes:
    dump = b""
    for chunk in manifest.parts["db"].chunks:
        with store.get(chunk.key) as stored, decompressing(stored) as plain:
            dump += plain.read()
    return dump

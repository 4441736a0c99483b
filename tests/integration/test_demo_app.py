"""The embedded demo: a workspace built on disk, served by the demo CMS over real HTTP."""

from __future__ import annotations

import shutil
import sqlite3
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

from tma_ops.checks import CheckTarget
from tma_ops.checks.suite import build_checks, run_suite, take_baselines
from tma_ops.config import HttpCheck, load_inventory
from tma_ops.demo.app import CRITICAL_ERROR, start_server
from tma_ops.demo.workspace import (
    MARKER,
    ArchiveFormat,
    build_component_archive,
    build_workspace,
)
from tma_ops.errors import TmaError

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"
BROKEN_PLUGIN = 'def render(page, context):\n    raise RuntimeError("broken on purpose")\n'


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    build_workspace(tmp_path / "demo", TEMPLATE)
    return tmp_path / "demo"


@pytest.fixture
def server(workspace: Path) -> Iterator[ThreadingHTTPServer]:
    server = start_server(workspace)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def base_url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def fetch(url: str) -> tuple[int, str]:
    try:
        with urlopen(url, timeout=5) as response:
            return response.status, response.read().decode("utf-8")
    except HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode("utf-8")


def install_from_channel(archive: Path, plugins_dir: Path, name: str) -> None:
    shutil.rmtree(plugins_dir / name)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(plugins_dir)
    else:
        with tarfile.open(archive) as bundle:
            bundle.extractall(plugins_dir, filter="data")


def plugins_of(workspace: Path, site: str, env: str) -> Path:
    return workspace / "sites" / site / env / "www" / "plugins"


def test_every_smoke_check_of_the_inventory_passes(
    workspace: Path, server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMA_DEMO_PORT", str(server.server_address[1]))
    inventory = load_inventory(workspace / "tma.yaml")
    checked = 0
    for site in inventory.sites.values():
        for name, env in site.environments.items():
            if name == "sandbox":  # empty until a restore test lands there
                continue
            for check in (c for c in env.smoke if isinstance(c, HttpCheck)):
                status, body = fetch(check.url)
                assert status == check.status, check.url
                assert check.contains is not None
                assert check.contains in body, check.url
                checked += 1
    assert checked == 6


def test_the_whole_smoke_suite_passes_log_scan_included(
    workspace: Path, server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMA_DEMO_PORT", str(server.server_address[1]))
    site = load_inventory(workspace / "tma.yaml").site("shop")
    target = CheckTarget("shop", "production", site.production, tmp_path / "artifacts")
    checks = build_checks(target)
    baselines = take_baselines(checks)
    fetch(f"http://127.0.0.1:{server.server_address[1]}/shop/production/")
    results = run_suite(checks, baselines)
    assert [r.kind for r in results] == ["http", "logscan"]
    assert all(r.ok for r in results), results


@pytest.mark.parametrize(
    ("site", "marker"), [("blog", "Atelier Lumière"), ("shop", "Maison Dupont")]
)
@pytest.mark.parametrize("env", ["production", "staging"])
def test_homepage_and_contact_page(base_url: str, site: str, env: str, marker: str) -> None:
    status, body = fetch(f"{base_url}/{site}/{env}/")
    assert status == 200
    assert marker in body
    status, body = fetch(f"{base_url}/{site}/{env}/contact")
    assert status == 200
    assert "Contact form" in body


def test_footer_lists_plugin_versions(base_url: str) -> None:
    _, blog = fetch(f"{base_url}/blog/production/")
    _, shop = fetch(f"{base_url}/shop/staging/")
    assert "gallery v2.0.0" in blog
    assert "seo v1.0.0" in blog
    assert "payments v3.1.0" in shop
    assert "seo v1.0.0" in shop


def test_staging_is_an_older_copy_of_production(base_url: str) -> None:
    _, production = fetch(f"{base_url}/blog/production/")
    _, staging = fetch(f"{base_url}/blog/staging/")
    assert date.today().isoformat() in production
    assert date.today().isoformat() not in staging
    assert production.count("<article") > staging.count("<article") > 0


def test_database_change_shows_on_next_request(workspace: Path, base_url: str) -> None:
    database = workspace / "sites" / "shop" / "production" / "site.sqlite"
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute(
            "INSERT INTO posts (title, body, published) VALUES (?, ?, ?)",
            ("Nouveauté : savon au miel", "Tout juste sorti de l'atelier.", "2099-01-01"),
        )
    _, body = fetch(f"{base_url}/shop/production/")
    assert "Nouveauté : savon au miel" in body


def test_updated_plugin_takes_effect_at_once(workspace: Path, base_url: str) -> None:
    install_from_channel(
        workspace / "channel" / "seo-1.1.0.zip", plugins_of(workspace, "blog", "production"), "seo"
    )
    status, body = fetch(f"{base_url}/blog/production/")
    assert status == 200
    assert "seo v1.1.0" in body
    assert 'class="seo-meta"' in body


@pytest.mark.parametrize("source", [BROKEN_PLUGIN, "def render(page, context)\n"])
def test_broken_plugin_gives_critical_error_and_logs(
    workspace: Path, base_url: str, source: str
) -> None:
    (plugins_of(workspace, "blog", "staging") / "gallery" / "plugin.py").write_text(source)
    status, body = fetch(f"{base_url}/blog/staging/")
    assert status == 500
    assert CRITICAL_ERROR in body
    assert "Atelier Lumière" not in body
    log = (workspace / "sites" / "blog" / "staging" / "error.log").read_text(encoding="utf-8")
    assert "GET /blog/staging/" in log
    assert "Error" in log
    assert fetch(f"{base_url}/blog/production/")[0] == 200


def test_payments_4_breaks_production_only(workspace: Path, base_url: str) -> None:
    archive = workspace / "channel" / "payments-4.0.0.zip"
    for env in ("production", "staging"):
        install_from_channel(archive, plugins_of(workspace, "shop", env), "payments")
    status, body = fetch(f"{base_url}/shop/staging/")
    assert status == 200
    assert "payments v4.0.0" in body
    status, body = fetch(f"{base_url}/shop/production/")
    assert status == 500
    assert CRITICAL_ERROR in body
    log = (workspace / "sites" / "shop" / "production" / "error.log").read_text(encoding="utf-8")
    assert "ConnectionError: live payment gateway unreachable" in log


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_archive_built_by_tests_installs_like_channel_ones(
    workspace: Path, base_url: str, fmt: ArchiveFormat
) -> None:
    channel = workspace / "channel"
    archive = build_component_archive(channel, "gallery", "9.0.0", BROKEN_PLUGIN, fmt)
    assert archive.name == f"gallery-9.0.0.{fmt}"
    install_from_channel(archive, plugins_of(workspace, "blog", "staging"), "gallery")
    gallery = plugins_of(workspace, "blog", "staging") / "gallery"
    assert (gallery / "VERSION").read_text().strip() == "9.0.0"
    assert fetch(f"{base_url}/blog/staging/")[0] == 500


def test_channel_holds_current_and_older_versions(workspace: Path) -> None:
    names = {path.name for path in (workspace / "channel").iterdir()}
    assert {"seo-1.0.0.zip", "seo-1.1.0.zip", "gallery-2.0.1.tar.gz"} <= names
    assert {"payments-3.1.0.zip", "payments-4.0.0.zip"} <= names
    with tarfile.open(workspace / "channel" / "gallery-2.0.1.tar.gz") as bundle:
        assert {"gallery", "gallery/VERSION", "gallery/plugin.py"} <= set(bundle.getnames())


def test_not_found_and_missing_database(workspace: Path, base_url: str) -> None:
    assert fetch(f"{base_url}/nosuchsite/production/")[0] == 404
    assert fetch(f"{base_url}/blog/preprod/")[0] == 404
    assert fetch(f"{base_url}/blog/production/admin")[0] == 404
    assert fetch(f"{base_url}/")[0] == 404
    (workspace / "sites" / "blog" / "staging" / "site.sqlite").unlink()
    assert fetch(f"{base_url}/blog/staging/")[0] == 500


def test_inventory_loads_and_points_into_workspace(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMA_DEMO_PORT", "18765")
    inventory = load_inventory(workspace / "tma.yaml")
    root = workspace.resolve()
    assert set(inventory.sites) == {"blog", "shop"}
    assert inventory.state_dir == root / "state"
    for site in inventory.sites.values():
        assert site.store.url == f"file://{root / 'store'}"
        assert Path(site.stack.channel) == root / "channel"
        for name, env in site.environments.items():
            assert Path(env.root) == root / "sites" / site.name / name / "www"
            built = name != "sandbox"  # the sandbox is empty until a restore test lands there
            assert Path(env.root, "plugins").is_dir() is built
            assert Path(env.database.path).is_file() is built
            urls = [check.url for check in env.smoke if isinstance(check, HttpCheck)]
            assert urls and all(":18765/" in url for url in urls)


def test_build_refuses_unmarked_directory(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("do not delete")
    with pytest.raises(TmaError, match="refusing"):
        build_workspace(tmp_path, TEMPLATE)
    assert (tmp_path / "precious.txt").read_text() == "do not delete"


def test_build_rebuilds_marked_directory(workspace: Path) -> None:
    (workspace / "leftover.txt").write_text("from an earlier run")
    (workspace / "sites" / "blog" / "production" / "error.log").write_text("old")
    inventory = build_workspace(workspace, TEMPLATE)
    assert inventory == workspace / "tma.yaml"
    assert (workspace / MARKER).is_file()
    assert not (workspace / "leftover.txt").exists()
    assert not (workspace / "sites" / "blog" / "production" / "error.log").exists()
    assert (workspace / "store").is_dir()
    assert (workspace / "state").is_dir()

"""Emergency rollback through the real `tma-ops rollback`, with the local state dir removed:
from the store and the environment alone, production goes back to the snapshot (or the release)
and the time to recovery is printed."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from e2e_support import Workspace, installed_versions, pre_promotion_snapshot_id, unpack_snapshot

from tma_ops.errors import EXIT_LOCK_HELD, EXIT_OK, EXIT_ROLLED_BACK
from tma_ops.journal import Journal
from tma_ops.lock import SiteLock

pytestmark = pytest.mark.e2e

OLD = {"gallery": "2.0.0", "seo": "1.0.0"}
NEW = {"gallery": "2.0.1", "seo": "1.1.0"}


def edit_inventory(
    workspace: Workspace,
    name: str,
    site: dict[str, object] | None = None,
    **environment: object,
) -> None:
    """Add `site` keys to the site and `environment` keys to each of its environments."""
    data = yaml.safe_load(workspace.inventory_file.read_text())
    data["sites"][name].update(site or {})
    for env in data["sites"][name]["environments"].values():
        env.update(environment)
    workspace.inventory_file.write_text(yaml.safe_dump(data, sort_keys=False))


def add_posts(workspace: Workspace, site: str, count: int) -> None:
    path = workspace.root / f"sites/{site}/production/site.sqlite"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany(
            "INSERT INTO posts (title, body, published) VALUES (?, ?, ?)",
            [(f"written after the promotion {n}", "body", "2026-11-29") for n in range(count)],
        )


def post_count(workspace: Workspace, site: str) -> int:
    path = workspace.root / f"sites/{site}/production/site.sqlite"
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM posts").fetchone()[0])


def events(workspace: Workspace, site: str) -> list[tuple[str, str]]:
    journal = Journal(workspace.root / "state" / "journal.sqlite")
    return [(e.step, e.status) for e in journal.events(site=site)]


def test_rollback_without_local_state_restores_the_snapshot(workspace: Workspace) -> None:
    edit_inventory(workspace, "blog", site={"user_data": [{"table": "posts"}]})
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK
    snapshot_id = pre_promotion_snapshot_id(workspace, "blog")
    production = workspace.root / "sites/blog/production/www"
    assert installed_versions(production) == NEW
    add_posts(workspace, "blog", 2)
    shutil.rmtree(workspace.root / "state")

    result = workspace.cli("rollback", "blog", "--yes")

    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert f"restore the files of snapshot {snapshot_id}" in result.stdout
    assert f"restore the database of snapshot {snapshot_id}" in result.stdout
    assert "posts: 2" in result.stdout  # the rows the restore throws away were counted first
    assert "time to recovery" in result.stdout
    expected = unpack_snapshot(workspace, "blog", snapshot_id, workspace.root / "unpacked")
    assert workspace.fingerprint("blog") == expected
    assert installed_versions(production) == OLD
    steps = events(workspace, "blog")
    assert ("emergency_rollback", "done") in steps
    assert ("smoke", "done") in steps
    assert steps[-1] == ("emergency_rollback", "finished")


def test_json_output_gives_time_to_recovery(workspace: Workspace) -> None:
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK
    shutil.rmtree(workspace.root / "state")
    result = workspace.cli("rollback", "blog", "--yes", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["smoke_ok"] is True
    assert summary["time_to_recovery_s"] >= summary["seconds"] > 0
    assert summary["database"] == "restore" and summary["code"] == "restore"


def test_held_lock_needs_break_glass_which_is_journaled(workspace: Workspace) -> None:
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK
    lock = SiteLock(workspace.root / "state", "blog")
    lock.acquire("cycle-still-running")
    try:
        refused = workspace.cli("rollback", "blog", "--yes")
        assert refused.returncode == EXIT_LOCK_HELD
        assert "--break-glass" in refused.stderr
        assert installed_versions(workspace.root / "sites/blog/production/www") == NEW
        forced = workspace.cli("rollback", "blog", "--yes", "--break-glass")
    finally:
        lock.release()
    assert forced.returncode == EXIT_OK, forced.stdout + forced.stderr
    assert "BREAK-GLASS" in forced.stdout
    assert ("lock", "overridden") in events(workspace, "blog")
    assert installed_versions(workspace.root / "sites/blog/production/www") == OLD


def test_no_terminal_and_no_yes_changes_nothing(workspace: Workspace) -> None:
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK
    result = workspace.cli("rollback", "blog")
    assert result.returncode != EXIT_OK
    assert "--yes" in result.stderr
    assert installed_versions(workspace.root / "sites/blog/production/www") == NEW


def with_releases(workspace: Workspace, site: str) -> Path:
    edit_inventory(workspace, site, releases={"keep": 3, "shared": ["uploads"]})
    adopted = workspace.cli("releases", "adopt", site, "--yes")
    assert adopted.returncode == EXIT_OK, adopted.stdout + adopted.stderr
    base = workspace.root / f"sites/{site}/production/www"
    assert (base / "current").is_symlink()
    return base


def test_release_rollback_switches_code_and_keeps_the_database(workspace: Workspace) -> None:
    base = with_releases(workspace, "blog")
    first = (base / "current").resolve().name
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK
    assert installed_versions(base / "current") == NEW
    assert installed_versions(base / "releases" / first) == OLD  # the old release is untouched
    add_posts(workspace, "blog", 3)
    shutil.rmtree(workspace.root / "state")

    result = workspace.cli("rollback", "blog", "--yes")

    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert f"switch the code back to release {first}; keep the current database" in result.stdout
    assert (base / "current").resolve().name == first
    assert installed_versions(base / "current") == OLD
    assert post_count(workspace, "blog") >= 3  # nothing visitors wrote was lost
    listing = workspace.cli("releases", "list", "blog")
    assert "bad" in listing.stdout and f"* {first}" in listing.stdout


def test_failed_promotion_rolls_back_to_the_previous_release(workspace: Workspace) -> None:
    base = with_releases(workspace, "shop")
    first = (base / "current").resolve().name
    result = workspace.cli("cycle", "shop", "--json")
    assert result.returncode == EXIT_ROLLED_BACK, result.stdout + result.stderr
    assert (base / "current").resolve().name == first
    assert installed_versions(base / "current") == {"payments": "3.1.0", "seo": "1.0.0"}
    journal = Journal(workspace.root / "state" / "journal.sqlite")
    rollback = [e for e in journal.events(site="shop") if e.step == "rollback"][-1]
    assert rollback.data["code"] == "switch" and rollback.data["database"] == "keep"
    assert rollback.data["marked_bad"] is not None

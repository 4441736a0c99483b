"""Emergency rollback through the real `tma-ops rollback`, with the local state dir removed:
from the store and the environment alone, production goes back to the snapshot (or the release)
and the time to recovery is printed."""

from __future__ import annotations

import json
import shutil

import pytest
from e2e_support import (
    Workspace,
    add_posts,
    edit_inventory,
    installed_versions,
    pre_promotion_snapshot_id,
    unpack_snapshot,
)

from tma_ops.errors import EXIT_LOCK_HELD, EXIT_OK
from tma_ops.journal import Journal
from tma_ops.lock import SiteLock

pytestmark = pytest.mark.e2e

OLD = {"gallery": "2.0.0", "seo": "1.0.0"}
NEW = {"gallery": "2.0.1", "seo": "1.1.0"}


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

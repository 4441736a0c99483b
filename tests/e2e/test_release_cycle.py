"""Cycles on sites whose code is kept as releases (the demo sites adopted into releases/):
a promotion is a new release switched to atomically, a failed one is switched back in one step
with the database kept, and a cycle killed right after the switch is finished by the rerun."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from e2e_support import Workspace, add_posts, edit_inventory, installed_versions, post_count
from test_crash_resume import kill_at

from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK
from tma_ops.journal import Journal

pytestmark = pytest.mark.e2e

OLD = {"gallery": "2.0.0", "seo": "1.0.0"}
NEW = {"gallery": "2.0.1", "seo": "1.1.0"}


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


def test_cycle_killed_after_the_switch_is_finished_by_the_rerun(
    workspace: Workspace, tmp_path: Path
) -> None:
    base = with_releases(workspace, "blog")
    first = (base / "current").resolve().name
    kill_at(workspace, "blog", "apply-production:after-switch", tmp_path)
    assert installed_versions(base / "current") == NEW  # killed on the new, unchecked release
    rerun = workspace.cli("cycle", "blog", "--break-stale-lock")
    assert rerun.returncode == EXIT_OK, rerun.stdout + rerun.stderr
    assert "resuming run" in rerun.stdout
    current = (base / "current").resolve().name
    assert current.endswith("_2")  # the redone promotion is a release of its own
    assert installed_versions(base / "current") == NEW
    assert installed_versions(base / "releases" / first) == OLD
    listing = workspace.cli("releases", "list", "blog").stdout
    assert f"* {current}  good" in listing
    assert "bad" in listing  # the release the kill left was rolled back before the redo

"""Whole cycles through the real `tma-ops` command on the demo sites, served over HTTP."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import Workspace, installed_versions, leftovers

from tma_ops.demo.workspace import build_component_archive
from tma_ops.errors import EXIT_INTEGRITY, EXIT_LOCK_HELD, EXIT_OK, EXIT_ROLLED_BACK
from tma_ops.lock import SiteLock

pytestmark = pytest.mark.e2e

BROKEN_EVERYWHERE = """
def render(page, context):
    raise RuntimeError("seo 1.2.0 calls a function that no longer exists")
"""


def test_demo_command_prints_one_promoted_one_rolled_back(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tma_ops", "demo", "--workspace", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "blog: promoted" in result.stdout
    assert "shop: rolled-back" in result.stdout
    assert "identical to before the cycle" in result.stdout
    assert "hash chain verified" in result.stdout


def test_good_updates_are_promoted(workspace: Workspace) -> None:
    database_before = workspace.fingerprint("blog").database
    result = workspace.cli("cycle", "blog")
    assert result.returncode == EXIT_OK, result.stderr
    assert "== blog: promoted" in result.stdout
    production = workspace.root / "sites/blog/production/www"
    assert installed_versions(production) == {"gallery": "2.0.1", "seo": "1.1.0"}
    assert workspace.fingerprint("blog").database == database_before
    assert leftovers(workspace.root) == []
    assert workspace.cli("journal", "verify").returncode == EXIT_OK


def test_failed_production_smoke_rolls_back_exactly(workspace: Workspace) -> None:
    before = workspace.fingerprint("shop")
    result = workspace.cli("cycle", "shop", "--json")
    assert result.returncode == EXIT_ROLLED_BACK, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["outcome"] == "rolled-back"
    assert workspace.fingerprint("shop") == before
    production = workspace.root / "sites/shop/production/www"
    assert installed_versions(production) == {"payments": "3.1.0", "seo": "1.0.0"}
    steps = [(e.step, e.status) for e in workspace.journal().events(site="shop")]
    assert ("smoke_production", "done") in steps
    assert ("rollback", "done") in steps
    assert steps[-1] == ("run", "finished")


def test_failed_staging_smoke_never_touches_production(workspace: Workspace) -> None:
    """Every planned update breaks staging: bisect names them all and nothing is promoted."""
    channel = workspace.root / "channel"
    build_component_archive(channel, "seo", "1.2.0", BROKEN_EVERYWHERE, "zip")
    build_component_archive(channel, "gallery", "2.0.2", BROKEN_EVERYWHERE, "zip")
    before = workspace.fingerprint("blog")
    result = workspace.cli("cycle", "blog")
    assert result.returncode == EXIT_ROLLED_BACK, result.stdout + result.stderr
    assert "staging-failed" in result.stdout
    assert "culprit: gallery 2.0.0 -> 2.0.2" in result.stdout
    assert "culprit: seo 1.0.0 -> 1.2.0" in result.stdout
    assert workspace.fingerprint("blog") == before
    # staging was reset to the production snapshot taken at the start of the run
    assert workspace.fingerprint("blog", "staging") == before
    steps = {e.step for e in workspace.journal().events(site="blog")}
    assert "promote" not in steps and "pre_promotion_snapshot" not in steps


def test_dry_run_prints_the_plan_and_changes_nothing(workspace: Workspace) -> None:
    before = workspace.fingerprint("blog")
    result = workspace.cli("cycle", "--all", "--dry-run")
    assert result.returncode == EXIT_OK, result.stderr
    assert "payments 3.1.0 -> 4.0.0 (major)" in result.stdout
    assert "seo 1.0.0 -> 1.1.0 (minor)" in result.stdout
    assert workspace.fingerprint("blog") == before
    assert not (workspace.root / "state" / "journal.sqlite").exists()
    assert list((workspace.root / "store").iterdir()) == []


def test_second_run_on_a_locked_site_is_refused(workspace: Workspace) -> None:
    lock = SiteLock(workspace.root / "state", "blog")
    lock.acquire("run-held-by-test")
    try:
        result = workspace.cli("cycle", "blog")
    finally:
        lock.release()
    assert result.returncode == EXIT_LOCK_HELD
    assert "site 'blog' is locked by run run-held-by-test" in result.stderr
    assert "Traceback" not in result.stderr
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK


def test_stale_lock_is_reported_then_broken_explicitly(workspace: Workspace) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file = workspace.root / "state" / "locks" / "blog.lock"
    lock_file.parent.mkdir(parents=True)
    lock_file.write_text(
        json.dumps(
            {
                "site": "blog",
                "run_id": "old-run",
                "pid": dead.pid,
                "host": "here",
                "since": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    refused = workspace.cli("cycle", "blog")
    assert refused.returncode == EXIT_LOCK_HELD
    assert "stale lock from run old-run" in refused.stderr
    status = workspace.cli("lock", "status", "blog")
    assert "blog: stale" in status.stdout
    broken = workspace.cli("lock", "break", "blog")
    assert broken.returncode == EXIT_OK and "broken" in broken.stdout
    assert workspace.cli("lock", "status", "blog").stdout.startswith("blog: free")
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK


@pytest.mark.parametrize(
    ("tampering", "named"),
    [
        ("""UPDATE events SET data = '{"tampered": true}' WHERE id = 7""", "event 7"),
        ("DELETE FROM events WHERE id = 7", "chain broken after event 6"),
    ],
    ids=["edit", "delete"],
)
def test_journal_tampering_is_named_by_verify(
    workspace: Workspace, tampering: str, named: str
) -> None:
    assert workspace.cli("cycle", "blog").returncode == EXIT_OK
    assert workspace.cli("journal", "verify").returncode == EXIT_OK
    database = workspace.root / "state" / "journal.sqlite"
    with sqlite3.connect(database) as connection:
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='trigger'"):
            connection.execute(f"DROP TRIGGER {name}")
        connection.execute(tampering)
    result = workspace.cli("journal", "verify")
    assert result.returncode == EXIT_INTEGRITY
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert named in result.stderr


def test_emergency_restore_of_production_from_a_manual_snapshot(workspace: Workspace) -> None:
    before = workspace.fingerprint("blog")
    taken = workspace.cli("snapshot", "blog", "--json")
    assert taken.returncode == EXIT_OK, taken.stderr
    snapshot_id = json.loads(taken.stdout)["snapshot_id"]
    production = workspace.root / "sites/blog/production"
    shutil.rmtree(production / "www/uploads")
    (production / "www/index.php").write_text("<?php // defaced")
    with sqlite3.connect(production / "site.sqlite") as connection:
        connection.execute("DELETE FROM posts")
    assert workspace.fingerprint("blog") != before

    refused = workspace.cli("restore", "blog", "latest", "--to", "production")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    restored = workspace.cli("restore", "blog", snapshot_id[:18], "--to", "production", "--yes")
    assert restored.returncode == EXIT_OK, restored.stderr
    assert workspace.fingerprint("blog") == before
    steps = [(e.step, e.status) for e in workspace.journal().events(site="blog")]
    assert steps == [
        ("snapshot", "started"),
        ("snapshot", "done"),
        ("restore", "started"),
        ("restore", "done"),
    ]

    cycle = workspace.cli("cycle", "blog")
    assert cycle.returncode == EXIT_OK, cycle.stdout + cycle.stderr
    assert "resuming" not in cycle.stdout


def test_all_sites_run_and_the_worst_exit_code_wins(workspace: Workspace) -> None:
    result = workspace.cli("cycle", "--all", "--json")
    assert result.returncode == EXIT_ROLLED_BACK, result.stderr
    outcomes = {s["site"]: s["outcome"] for s in map(json.loads, result.stdout.splitlines())}
    assert outcomes == {"blog": "promoted", "shop": "rolled-back"}

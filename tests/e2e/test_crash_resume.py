"""A real `tma-ops cycle` killed with SIGKILL at points of the cycle, then rerun.

Whatever the point, the rerun finishes the run and production ends exactly as a clean run
leaves it: updated for `blog` (good updates), identical to before for `shop` (rolled back).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import (
    Workspace,
    installed_versions,
    leftovers,
    make_workspace,
    pre_promotion_snapshot_id,
    unpack_snapshot,
)

from tma_ops.errors import EXIT_OK, EXIT_ROLLED_BACK
from tma_ops.executors.local import LocalExecutor
from tma_ops.fingerprint import Fingerprint, tree_fingerprint

pytestmark = pytest.mark.e2e

KILL_POINTS = [
    # (site, pause point, what production looks like at the moment of the kill)
    ("blog", "snapshot:after-db", "untouched"),
    ("blog", "restore-staging:after-db-commit", "untouched"),
    ("blog", "apply-staging:after-gallery", "untouched"),
    ("blog", "apply-production:after-gallery", "half-updated"),
    ("shop", "apply-production:after-payments", "half-updated"),
    ("shop", "restore-production:after-db-commit", "half-restored"),
]


@pytest.fixture(scope="module")
def clean_blog_result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fingerprint]:
    """Production of `blog` after an uninterrupted cycle, in a workspace of its own."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for reference in make_workspace(tmp_path_factory.mktemp("reference") / "ws", monkeypatch):
            assert reference.cli("cycle", "blog").returncode == EXIT_OK
            yield reference.fingerprint("blog")


def kill_at(workspace: Workspace, site: str, point: str, tmp_path: Path) -> None:
    marker = tmp_path / "paused"
    process = workspace.popen("cycle", site, TMA_OPS_PAUSE_AT=point, TMA_OPS_PAUSE_FILE=str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"tma-ops ended (rc {process.returncode}) before {point}: {out}{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"tma-ops never reached {point}")
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.communicate()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("site", "point", "state_at_kill"),
    KILL_POINTS,
    ids=[f"{site}-{point}" for site, point, _ in KILL_POINTS],
)
def test_killed_cycle_is_finished_by_the_rerun(
    workspace: Workspace,
    clean_blog_result: Fingerprint,
    tmp_path: Path,
    site: str,
    point: str,
    state_at_kill: str,
) -> None:
    production = workspace.root / "sites" / site / "production" / "www"
    before = workspace.fingerprint(site)
    versions_before = installed_versions(production)

    kill_at(workspace, site, point, tmp_path)
    if state_at_kill == "untouched":
        assert workspace.fingerprint(site) == before
    elif state_at_kill == "half-updated":
        assert installed_versions(production) != versions_before

    refused = workspace.cli("cycle", site)
    assert "stale lock" in refused.stderr
    rerun = workspace.cli("cycle", site, "--break-stale-lock")
    assert "resuming run" in rerun.stdout, rerun.stdout + rerun.stderr

    snapshot = unpack_snapshot(
        workspace, site, pre_promotion_snapshot_id(workspace, site), tmp_path / "unpacked"
    )
    after = workspace.fingerprint(site)
    assert after.database == snapshot.database
    if site == "blog":
        assert rerun.returncode == EXIT_OK, rerun.stdout + rerun.stderr
        assert after == clean_blog_result
        assert tree_fingerprint(LocalExecutor(), str(production / "uploads")) == tree_fingerprint(
            LocalExecutor(), str(tmp_path / "unpacked" / "www" / "uploads")
        )
    else:
        assert rerun.returncode == EXIT_ROLLED_BACK, rerun.stdout + rerun.stderr
        assert after == before == snapshot
    assert leftovers(workspace.root) == []
    assert workspace.cli("journal", "verify").returncode == EXIT_OK
    statuses = [(e.step, e.status) for e in workspace.journal().events(site=site)]
    assert ("run", "resumed") in statuses
    assert statuses[-1] == ("run", "finished")
    assert workspace.cli("cycle", site).returncode in (EXIT_OK, EXIT_ROLLED_BACK)


def test_sigterm_during_promotion_rolls_production_back(
    workspace: Workspace, tmp_path: Path
) -> None:
    before = workspace.fingerprint("blog")
    marker = tmp_path / "paused"
    process = workspace.popen(
        "cycle",
        "blog",
        TMA_OPS_PAUSE_AT="apply-production:after-gallery",
        TMA_OPS_PAUSE_FILE=str(marker),
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted by SIGTERM" in err and "production restored" in err
    assert workspace.fingerprint("blog") == before
    finished = workspace.journal().events(site="blog")[-1]
    assert (finished.step, finished.status) == ("run", "finished")
    assert finished.data["outcome"] == "failed"
    assert workspace.cli("lock", "status", "blog").stdout.startswith("blog: free")

"""`tma-ops restore-test` and `tma-ops status` through the real CLI on the demo workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import Workspace

from tma_ops.errors import (
    EXIT_ERROR,
    EXIT_INTEGRITY,
    EXIT_INVALID_INVENTORY,
    EXIT_OK,
    EXIT_WARNINGS,
)
from tma_ops.fingerprint import environment_fingerprint

pytestmark = pytest.mark.e2e


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def by_site(stdout: str) -> dict[str, dict[str, Any]]:
    return {record["site"]: record for record in records(stdout)}


def restore_test_events(workspace: Workspace) -> list[Any]:
    path = workspace.root / "state" / "journal.sqlite"
    if not path.exists():
        return []
    with workspace.journal() as journal:
        return [e for e in journal.events() if e.step == "restore-test"]


def sandbox_is_empty(workspace: Workspace, site: str) -> bool:
    sandbox = workspace.root / "sites" / site / "sandbox"
    return not (sandbox / "www").exists() and not (sandbox / "site.sqlite").exists()


def test_status_flags_untested_sites_and_due_tests_only_the_due_ones(workspace: Workspace) -> None:
    status = workspace.cli("--json", "status")
    assert status.returncode == EXIT_WARNINGS, status.stderr
    before = by_site(status.stdout)
    assert {name: r["restore_tested_in_3_months"] for name, r in before.items()} == {
        "blog": False,
        "shop": False,
    }
    assert before["blog"]["last_test"] is None and before["blog"]["due"] is True
    assert "C3: NO PASSING RESTORE TEST" in workspace.cli("status").stdout
    for site in ("blog", "shop"):
        assert workspace.cli("snapshot", site).returncode == EXIT_OK
    production = workspace.fingerprint("blog")

    tested = workspace.cli("--json", "restore-test", "blog")

    assert tested.returncode == EXIT_OK, tested.stdout + tested.stderr
    (result,) = records(tested.stdout)
    assert (result["site"], result["passed"], result["chosen"]) == ("blog", True, "latest")
    assert result["time_to_recovery_s"] > 0 and result["teardown"] == "done"
    assert workspace.fingerprint("blog") == production
    assert sandbox_is_empty(workspace, "blog")
    heads = (workspace.root / "store" / "journal").glob("*/heads/*.json")
    signed_runs = {json.loads(head.read_text())["head"]["run_id"] for head in heads}
    assert result["run_id"] in signed_runs  # the run's journal head is signed into the store

    status = workspace.cli("--json", "status")
    after = by_site(status.stdout)
    assert status.returncode == EXIT_WARNINGS  # shop is still untested
    assert after["blog"]["restore_tested_in_3_months"] is True
    assert after["blog"]["last_test"]["passed"] is True and after["blog"]["due"] is False
    assert after["blog"]["newest_snapshot"] == result["snapshot_id"]
    assert after["shop"]["restore_tested_in_3_months"] is False

    due = workspace.cli("restore-test", "--due")

    assert due.returncode == EXIT_OK, due.stdout + due.stderr
    assert "blog: not due: last passed" in due.stdout
    assert "cadence: every 7 days" in due.stdout  # business: weekly
    assert "shop: due: no restore test has passed yet (cadence: daily)" in due.stdout
    assert "shop: restore test PASSED" in due.stdout
    assert workspace.cli("status").returncode == EXIT_OK
    finals = [e for e in restore_test_events(workspace) if e.status in ("passed", "failed")]
    assert [(e.site, e.status) for e in finals] == [("blog", "passed"), ("shop", "passed")]
    assert workspace.cli("journal", "verify").returncode == EXIT_OK


def test_a_random_or_named_snapshot_is_tested_and_said(workspace: Workspace) -> None:
    for _ in range(2):
        assert workspace.cli("snapshot", "blog").returncode == EXIT_OK
    random = workspace.cli("restore-test", "blog", "--random", "--seed", "11")
    assert random.returncode == EXIT_OK, random.stdout + random.stderr
    assert "seed 11" in random.stdout and "(random)" in random.stdout
    listed = workspace.cli("--json", "snapshots", "list", "blog")
    oldest = records(listed.stdout)[0]["snapshot_id"]

    named = workspace.cli("--json", "restore-test", "blog", "--snapshot", oldest)

    assert named.returncode == EXIT_OK
    (result,) = records(named.stdout)
    assert (result["snapshot_id"], result["chosen"]) == (oldest, "named")
    started = [e for e in restore_test_events(workspace) if e.status == "started"]
    assert started[-1].data == {"snapshot_id": oldest, "environment": "sandbox", "chosen": "named"}


def test_a_damaged_part_fails_the_test_with_the_integrity_exit_code(workspace: Workspace) -> None:
    assert workspace.cli("snapshot", "blog").returncode == EXIT_OK
    production = workspace.fingerprint("blog")
    (files_part,) = (workspace.root / "store" / "blog" / "snapshots").glob("*/files.tar.zst")
    data = bytearray(files_part.read_bytes())
    data[len(data) // 2] ^= 0x01
    files_part.write_bytes(bytes(data))

    tested = workspace.cli("restore-test", "blog")

    assert tested.returncode == EXIT_INTEGRITY, tested.stdout + tested.stderr
    assert "restore test FAILED at fetch-verify" in tested.stdout
    assert "SHA-256 mismatch" in tested.stdout and "production untouched" in tested.stdout
    assert workspace.fingerprint("blog") == production
    assert sandbox_is_empty(workspace, "blog")
    (final,) = [e for e in restore_test_events(workspace) if e.status == "failed"]
    assert "files.tar.zst: SHA-256 mismatch" in final.data["cause"]
    # A damaged backup does not count: the site is still flagged and due.
    assert workspace.cli("status").returncode == EXIT_WARNINGS


def edit_sandbox(workspace: Workspace, **settings: object) -> None:
    document = yaml.safe_load(workspace.inventory_file.read_text())
    document["sites"]["blog"]["environments"]["sandbox"].update(settings)
    workspace.inventory_file.write_text(yaml.safe_dump(document, sort_keys=False))


def production_root(workspace: Workspace) -> Path:
    return workspace.root / "sites" / "blog" / "production" / "www"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"production": True}, "sandbox.production"),
        (
            {"database": {"engine": "sqlite", "path": "sites/blog/production/site.sqlite"}},
            "sandbox.database: SQLite database 'sites/blog/production/site.sqlite' is also "
            "production's",
        ),
        ({"root": "sites/blog/production/www/restored"}, "sandbox.root"),
        # written differently from production's root: caught once the paths are resolved
        ({"root": "PRODUCTION_ROOT"}, "sandbox.root"),
    ],
)
def test_a_sandbox_without_a_place_of_its_own_is_refused_and_nothing_is_touched(
    workspace: Workspace, settings: dict[str, object], named: str
) -> None:
    if settings.get("root") == "PRODUCTION_ROOT":
        settings = {"root": str(production_root(workspace))}
    assert workspace.cli("snapshot", "blog").returncode == EXIT_OK
    blog = workspace.inventory().site("blog")  # as it was: the edited inventory will not load
    production = environment_fingerprint(blog, "production")
    edit_sandbox(workspace, **settings)
    events_before = len(restore_test_events(workspace))

    refused = workspace.cli("restore-test", "blog")

    assert refused.returncode == EXIT_INVALID_INVENTORY, refused.stdout + refused.stderr
    assert named in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert environment_fingerprint(blog, "production") == production
    assert len(restore_test_events(workspace)) == events_before


def test_naming_a_site_without_a_sandbox_is_an_inventory_error(workspace: Workspace) -> None:
    document = yaml.safe_load(workspace.inventory_file.read_text())
    del document["sites"]["blog"]["environments"]["sandbox"]
    workspace.inventory_file.write_text(yaml.safe_dump(document, sort_keys=False))
    refused = workspace.cli("restore-test", "blog")
    assert refused.returncode == EXIT_INVALID_INVENTORY
    assert "no sandbox environment" in refused.stderr
    due = workspace.cli("restore-test", "--due")
    assert "blog: not tested: no sandbox environment" in due.stdout
    assert due.returncode == EXIT_ERROR  # shop is due and has no snapshot to test


def edit_restore_test(workspace: Workspace, **settings: object) -> None:
    document = yaml.safe_load(workspace.inventory_file.read_text())
    document["sites"]["blog"]["restore_test"] = settings
    workspace.inventory_file.write_text(yaml.safe_dump(document, sort_keys=False))


def test_start_and_stop_run_in_the_sandbox_and_a_failing_start_fails_the_test(
    workspace: Workspace,
) -> None:
    assert workspace.cli("snapshot", "blog").returncode == EXIT_OK
    log = workspace.root / "sites" / "blog" / "sandbox" / "commands.log"
    edit_restore_test(
        workspace,
        start="ls plugins > ../commands.log && echo started >> ../commands.log",
        stop="echo stopped >> ../commands.log",
    )
    assert workspace.cli("restore-test", "blog").returncode == EXIT_OK
    # start ran in the restored code root, stop at the teardown
    assert log.read_text().split() == ["gallery", "seo", "started", "stopped"]

    edit_restore_test(workspace, start="echo 'port 8080 already in use' >&2; exit 3")
    failed = workspace.cli("--json", "restore-test", "blog")

    assert failed.returncode == EXIT_ERROR
    (result,) = records(failed.stdout)
    assert result["failed_stage"] == "start" and result["teardown"] == "done"
    assert "restore_test.start failed" in result["cause"]
    assert "port 8080 already in use" in result["cause"]
    assert sandbox_is_empty(workspace, "blog")


def test_a_sandbox_can_be_kept_for_inspection(workspace: Workspace) -> None:
    assert workspace.cli("snapshot", "blog").returncode == EXIT_OK
    edit_restore_test(workspace, teardown=False)
    kept = workspace.cli("--json", "restore-test", "blog")
    assert kept.returncode == EXIT_OK
    (result,) = records(kept.stdout)
    assert result["teardown"] == "skipped"
    assert workspace.fingerprint("blog", "sandbox") == workspace.fingerprint("blog")

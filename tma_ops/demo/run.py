"""`tma-ops demo`: build the demo workspace, serve its sites, run the cycle on each, explain."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from tma_ops.commands import open_journal
from tma_ops.config import Site, load_inventory
from tma_ops.cycle import RunSummary, run_cycle
from tma_ops.demo.app import start_server
from tma_ops.demo.workspace import build_workspace
from tma_ops.errors import EXIT_ERROR, EXIT_OK, TmaError
from tma_ops.fingerprint import Fingerprint, environment_fingerprint
from tma_ops.journal import Journal
from tma_ops.progress import SILENT
from tma_ops.restore_test import run_restore_test
from tma_ops.stores import open_store

EXPECTED = {"blog": "promoted", "shop": "rolled-back"}
RESTORE_TESTED = "blog"


def demo_inventory_template() -> Path:
    """The inventory shipped in the wheel, or inventories/demo/ of a source checkout."""
    packaged = Path(__file__).parent / "inventory" / "tma.yaml"
    if packaged.exists():
        return packaged
    source = Path(__file__).resolve().parents[2] / "inventories" / "demo" / "tma.yaml"
    if source.exists():
        return source
    raise TmaError("the demo inventory is missing from this installation")


def run_demo(workspace: Path, *, as_json: bool = False) -> int:
    inventory_file = build_workspace(workspace, demo_inventory_template())
    server = start_server(workspace)
    os.environ["TMA_DEMO_PORT"] = str(server.server_address[1])
    say = (lambda _line: None) if as_json else print
    say(f"demo workspace {workspace}; sites served at http://127.0.0.1:{server.server_address[1]}/")
    try:
        inventory = load_inventory(inventory_file)
        before = {
            name: environment_fingerprint(site, "production")
            for name, site in inventory.sites.items()
        }
        summaries: dict[str, RunSummary | str] = {}
        with open_journal(inventory.state_dir, inventory) as journal:
            for name, site in sorted(inventory.sites.items()):
                say(f"\n== cycle {name} ({site.tier})")
                summaries[name] = _cycle(site, journal, inventory.state_dir, say)
            say(f"\n== restore test {RESTORE_TESTED} (its newest snapshot, into its sandbox)")
            restore_line, restored = _restore_test(
                inventory.sites[RESTORE_TESTED], journal, inventory.state_dir, say
            )
            report = journal.verify()
        after = {
            name: environment_fingerprint(site, "production")
            for name, site in inventory.sites.items()
        }
    finally:
        server.shutdown()
        server.server_close()
    lines, ok = _outcome_lines(summaries, before, after)
    lines.append(restore_line)
    ok = ok and restored
    lines.append(
        f"journal: {report.count} events, "
        + ("hash chain verified" if report.ok else f"BROKEN: {report.reason}")
    )
    ok = ok and report.ok
    _print_outcome(lines, ok, workspace, inventory_file, as_json)
    return EXIT_OK if ok else EXIT_ERROR


def _cycle(
    site: Site, journal: Journal, state_dir: Path, say: Callable[[str], None]
) -> RunSummary | str:
    try:
        return run_cycle(site, open_store(site.store), journal, state_dir, progress=SILENT, say=say)
    except TmaError as exc:
        say(f"{site.name}: error: {exc}")
        return str(exc)


def _restore_test(
    site: Site, journal: Journal, state_dir: Path, say: Callable[[str], None]
) -> tuple[str, bool]:
    """Prove the site's newest backup restores and serves, in its sandbox (C3 of the checklist)."""
    try:
        outcome = run_restore_test(site, open_store(site.store), journal, state_dir, say=say)
    except TmaError as exc:
        return f"{site.name}: restore test FAILED: {exc}", False
    if not outcome.passed:
        return f"{site.name}: restore test FAILED at {outcome.failed_stage}: {outcome.cause}", False
    return (
        f"{site.name}: restore test passed: snapshot {outcome.snapshot_id} restored into the "
        f"sandbox and smoke-tested in {outcome.time_to_recovery_s or 0:.1f} s, then torn down",
        True,
    )


def _outcome_lines(
    summaries: dict[str, RunSummary | str],
    before: dict[str, Fingerprint],
    after: dict[str, Fingerprint],
) -> tuple[list[str], bool]:
    lines: list[str] = []
    ok = True
    for name, summary in sorted(summaries.items()):
        if isinstance(summary, str):
            lines.append(f"{name}: FAILED: {summary}")
            ok = False
            continue
        updates = ", ".join(
            f"{u['component']} {u['from_version']} -> {u['to_version']}" for u in summary.updates
        )
        unchanged = before[name] == after[name]
        proof = (
            "identical to before the cycle (files and database fingerprints match)"
            if unchanged
            else "changed"
        )
        lines.append(
            f"{name}: {summary.outcome} [{updates}]; production {summary.production}"
            + (f"; {proof}" if summary.outcome != "promoted" else "")
        )
        ok = ok and summary.outcome == EXPECTED.get(name, summary.outcome)
        if summary.outcome == "rolled-back":
            ok = ok and unchanged
    return lines, ok


def _print_outcome(
    lines: list[str], ok: bool, workspace: Path, inventory_file: Path, as_json: bool
) -> None:
    if as_json:
        print(json.dumps({"ok": ok, "outcome": lines, "workspace": str(workspace)}))
        return
    print("\n== demo outcome")
    for line in lines:
        print(f"  {line}")
    command = _invoked_as()
    print(f"\nexplore: {command} -i {inventory_file} journal show --site shop")
    print(f"         {command} -i {inventory_file} snapshots list blog")
    print(f"         {command} -i {inventory_file} status")


def _invoked_as() -> str:
    """How to call tma-ops again: the script path when it is not on PATH (e.g. .venv/bin)."""
    script = Path(sys.argv[0])
    if script.name != "tma-ops" or shutil.which("tma-ops") == str(script.resolve()):
        return "tma-ops"
    return str(script)

"""The audit export of a real restore test on the demo workspace, verified offline.

`tma-ops restore-test` journals the test and publishes the signed run head to the store; the
export of that period must verify with the public key alone, the head covering the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tma_ops.demo.app import start_server
from tma_ops.demo.workspace import build_workspace

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).parents[2] / "inventories" / "demo" / "tma.yaml"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    inventory = build_workspace(tmp_path / "ws", TEMPLATE)
    server = start_server(tmp_path / "ws")
    env = {**os.environ, "TMA_DEMO_PORT": str(server.server_address[1]), "TMA_OPS_PAUSE_AT": ""}
    try:
        yield inventory, env
    finally:
        server.shutdown()
        server.server_close()


def tma(inventory: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tma_ops", "-i", str(inventory), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done


def test_a_demo_restore_test_is_exported_and_verified_against_its_signed_head(
    demo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    inventory, env = demo
    tma(inventory, env, "snapshot", "blog")
    tma(inventory, env, "restore-test", "blog")
    export = tmp_path / "audit.html"
    tma(
        inventory,
        env,
        "audit-log",
        "export",
        "--from",
        "2000-01-01",
        "--to",
        "2999-12-31",
        "--site",
        "blog",
        "--format",
        "html",
        "--output",
        str(export),
    )

    page = export.read_text()
    embedded = page.split('id="tma-audit-export">', 1)[1].split("</script>", 1)[0]
    document = json.loads(embedded)["export"]
    (test,) = document["restore_tests"]
    assert test["status"] == "passed" and test["smoke"] and test["time_to_recovery_s"] > 0
    assert {part["name"] for part in test["parts"]} == {"db", "files"}
    assert test["covered_by_signed_head"] and document["proof"]["not_yet_covered"] == []

    public_key = inventory.parent / "state" / "journal-signing-key.pem.pub"
    done = tma(inventory, env, "audit-log", "verify", str(export), "--public-key", str(public_key))
    assert "covering head: event" in done.stdout and "restore tests: 1 row(s)" in done.stdout
